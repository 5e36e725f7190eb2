#!/usr/bin/env python3
"""Writes the seed corpora of the TLS fuzz targets from handshakes built
here (and the project's own test certificate), never from captures.
Run from sensor/fuzz/."""
import os, struct

def u16(v): return struct.pack(">H", v)
def u24(v): return struct.pack(">I", v)[1:]
def ext(t, d): return u16(t) + u16(len(d)) + d
def list16(vals): return u16(2 * len(vals)) + b"".join(u16(v) for v in vals)
def sni(name):
    e = b"\x00" + u16(len(name)) + name
    return u16(len(e)) + e
def alpn(names):
    l = b"".join(bytes([len(n)]) + n for n in names)
    return u16(len(l)) + l

def client_hello(version, ciphers, exts, sid=b""):
    e = b"".join(exts)
    return (u16(version) + b"\x11" * 32 + bytes([len(sid)]) + sid + list16(ciphers)
            + b"\x01\x00" + u16(len(e)) + e)

def server_hello(version, cipher, exts, random=b"\x22" * 32, sid=b""):
    e = b"".join(exts)
    return u16(version) + random + bytes([len(sid)]) + sid + u16(cipher) + b"\x00" + u16(len(e)) + e

def hs(t, body): return bytes([t]) + u24(len(body)) + body
def rec(ct, frag): return bytes([ct, 3, 3]) + u16(len(frag)) + frag

HRR = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")
sigs = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]
browser = client_hello(0x0303, [0x0a0a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xcca9, 0x002f], [
    ext(0x2a2a, b""), ext(0, sni(b"seed.example.test")), ext(0x0017, b""), ext(0xff01, b"\x00"),
    ext(0x000a, list16([0x4a4a, 0x001d, 0x0017])), ext(0x000b, b"\x01\x00"), ext(0x0023, b""),
    ext(0x0010, alpn([b"h2", b"http/1.1"])), ext(0x000d, list16(sigs)),
    ext(0x002b, b"\x06\x3a\x3a\x03\x04\x03\x03"), ext(0x0033, b"\x00\x00"), ext(0xfe0d, b"\x00" * 8),
    ext(0x0029, b"\x00" * 8), ext(0x0015, b"\x00" * 20)], sid=b"\x05" * 32)
old = client_hello(0x0301, [0x0035, 0x002f, 0x000a, 0x0005], [])
minimal = client_hello(0x0303, [], [])
sh12 = server_hello(0x0303, 0xc02f, [ext(0xff01, b"\x00"), ext(0x0010, alpn([b"h2"]))])
sh13 = server_hello(0x0303, 0x1301, [ext(0x002b, b"\x03\x04"), ext(0x0029, b"\x00\x00")], sid=b"\x05" * 32)
hrr = server_hello(0x0303, 0x1301, [ext(0x002b, b"\x03\x04")], random=HRR)
cert_der = open(os.path.join(os.path.dirname(__file__), "../src/dissect/tls/testdata/rsa.der"), "rb").read()
certs = b"".join(u24(len(c)) + c for c in [cert_der])
cert_msg = hs(11, u24(len(certs)) + certs)

def write(folder, name, data):
    os.makedirs(folder, exist_ok=True)
    open(os.path.join(folder, name), "wb").write(data)

for name, body in [("browser", browser), ("old", old), ("minimal", minimal), ("sh12", sh12),
                   ("sh13", sh13), ("hrr", hrr), ("certs", certs and u24(len(certs)) + certs)]:
    write("corpus/tls_hello", name, body)

def stream(client, server): return u16(len(client)) + client + server

ch_rec = rec(22, hs(1, browser))
msg = hs(1, browser)
split3 = rec(22, msg[:50]) + rec(22, msg[50:120]) + rec(22, msg[120:])
write("corpus/tls_records", "tls12_full", stream(
    ch_rec + rec(22, hs(16, b"\x00" * 33)) + rec(20, b"\x01") + rec(22, b"\x09" * 40),
    rec(22, hs(2, sh12) + cert_msg + hs(14, b"")) + rec(20, b"\x01") + rec(22, b"\x09" * 40)))
write("corpus/tls_records", "tls13_hrr", stream(
    ch_rec + rec(20, b"\x01") + ch_rec + rec(23, b"\x00" * 30),
    rec(22, hs(2, hrr)) + rec(20, b"\x01") + rec(22, hs(2, sh13)) + rec(23, b"\x00" * 30)))
write("corpus/tls_records", "split_hello_alert", stream(split3, rec(21, b"\x02\x28")))
write("corpus/tls_records", "old_resumed", stream(
    rec(22, hs(1, client_hello(0x0300, [0x0004], [], sid=b"\x07" * 32))),
    rec(22, hs(2, server_hello(0x0300, 0x0004, [], sid=b"\x07" * 32))) + rec(20, b"\x01")))

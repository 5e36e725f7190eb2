#!/usr/bin/env python3
"""Makes the test certificates of the TLS dissector's unit tests: our own,
self-signed, with fixed serials, names and dates (keys are fresh each run,
so the SHA-256 changes; the tests compute it). Run from this folder."""
import datetime, ipaddress
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa, ec

def make(key, name, sans, serial, path):
    t0 = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    t1 = datetime.datetime(2025, 1, 1, 12, 30, 5, tzinfo=datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
         .public_key(key.public_key()).serial_number(serial)
         .not_valid_before(t0).not_valid_after(t1))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = b.sign(key, hashes.SHA256())
    open(path, "wb").write(cert.public_bytes(serialization.Encoding.DER))

make(rsa.generate_private_key(public_exponent=65537, key_size=2048),
     x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "Some State"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example, Inc."),
                x509.NameAttribute(NameOID.COMMON_NAME, "www.example.test")]),
     [x509.DNSName("www.example.test"), x509.DNSName("example.test"),
      x509.IPAddress(ipaddress.ip_address("192.0.2.7")),
      x509.IPAddress(ipaddress.ip_address("2001:db8::1"))],
     0xC0FFEE01, "rsa.der")
make(ec.generate_private_key(ec.SECP256R1()),
     x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ec.example.test"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Caf\u00e9")]),
     [], 42, "ec.der")

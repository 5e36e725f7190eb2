//! Builders of TLS handshake bytes for the unit tests.
#![allow(dead_code)]

/// Extension bytes: type and data.
pub fn ext(typ: u16, data: &[u8]) -> Vec<u8> {
    let mut v = typ.to_be_bytes().to_vec();
    v.extend_from_slice(&(data.len() as u16).to_be_bytes());
    v.extend_from_slice(data);
    v
}

/// A 16-bit-length-prefixed list of u16 values.
pub fn list16(vals: &[u16]) -> Vec<u8> {
    let mut v = ((vals.len() * 2) as u16).to_be_bytes().to_vec();
    for x in vals {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v
}

/// server_name extension data for `name`.
pub fn sni_data(name: &str) -> Vec<u8> {
    let mut entry = vec![0u8];
    entry.extend_from_slice(&(name.len() as u16).to_be_bytes());
    entry.extend_from_slice(name.as_bytes());
    let mut v = (entry.len() as u16).to_be_bytes().to_vec();
    v.extend(entry);
    v
}

/// ALPN extension data for `names`.
pub fn alpn_data(names: &[&[u8]]) -> Vec<u8> {
    let mut list = Vec::new();
    for n in names {
        list.push(n.len() as u8);
        list.extend_from_slice(n);
    }
    let mut v = (list.len() as u16).to_be_bytes().to_vec();
    v.extend(list);
    v
}

/// supported_versions (client form) data.
pub fn versions_data(vals: &[u16]) -> Vec<u8> {
    let mut v = vec![(vals.len() * 2) as u8];
    for x in vals {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v
}

/// A ClientHello body: version, random, session id, ciphers, null
/// compression, and the given extensions (already encoded).
pub fn client_hello_body(
    version: u16,
    session_id: &[u8],
    ciphers: &[u16],
    exts: &[Vec<u8>],
) -> Vec<u8> {
    let mut b = version.to_be_bytes().to_vec();
    b.extend_from_slice(&[0x11; 32]);
    b.push(session_id.len() as u8);
    b.extend_from_slice(session_id);
    b.extend(list16(ciphers));
    b.extend_from_slice(&[1, 0]);
    let all: Vec<u8> = exts.concat();
    b.extend_from_slice(&(all.len() as u16).to_be_bytes());
    b.extend(all);
    b
}

/// A ServerHello body.
pub fn server_hello_body(
    version: u16,
    random: [u8; 32],
    session_id: &[u8],
    cipher: u16,
    exts: &[Vec<u8>],
) -> Vec<u8> {
    let mut b = version.to_be_bytes().to_vec();
    b.extend_from_slice(&random);
    b.push(session_id.len() as u8);
    b.extend_from_slice(session_id);
    b.extend_from_slice(&cipher.to_be_bytes());
    b.push(0);
    let all: Vec<u8> = exts.concat();
    b.extend_from_slice(&(all.len() as u16).to_be_bytes());
    b.extend(all);
    b
}

/// A handshake message: type, 24-bit length, body.
pub fn handshake(typ: u8, body: &[u8]) -> Vec<u8> {
    let n = body.len() as u32;
    let mut v = vec![typ];
    v.extend_from_slice(&n.to_be_bytes()[1..]);
    v.extend_from_slice(body);
    v
}

/// A TLS record: content type, version 0x0303, length, fragment.
pub fn record(ct: u8, fragment: &[u8]) -> Vec<u8> {
    let mut v = vec![ct, 3, 3];
    v.extend_from_slice(&(fragment.len() as u16).to_be_bytes());
    v.extend_from_slice(fragment);
    v
}

/// The browser ClientHello of the JA4 example (Chrome-like), GREASE
/// included: its JA4 is `t13d1516h2_8daaf6152771_e5627efa2ab1`.
pub fn ja4_spec_hello() -> Vec<u8> {
    let ciphers = [
        0x0a0a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013,
        0xc014, 0x009c, 0x009d, 0x002f, 0x0035,
    ];
    let sigs = [
        0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
    ];
    let exts = vec![
        ext(0x2a2a, &[]),
        ext(0x001b, &[2, 0, 2]),
        ext(0x0000, &sni_data("example.com")),
        ext(0x0033, &[0, 0]),
        ext(0x0010, &alpn_data(&[b"h2", b"http/1.1"])),
        ext(0x4469, &[0, 3, 2, b'h', b'2']),
        ext(0x0017, &[]),
        ext(0x002d, &[1, 1]),
        ext(0x000d, &list16(&sigs)),
        ext(0x0005, &[1, 0, 0, 0, 0]),
        ext(0x0023, &[]),
        ext(0x0012, &[]),
        ext(0x002b, &versions_data(&[0x3a3a, 0x0304, 0x0303])),
        ext(0xff01, &[0]),
        ext(0x000b, &[1, 0]),
        ext(0x000a, &list16(&[0x4a4a, 0x001d, 0x0017, 0x0018])),
        ext(0x0015, &[0; 10]),
        ext(0x5a5a, &[0]),
    ];
    client_hello_body(0x0303, &[7; 32], &ciphers, &exts)
}

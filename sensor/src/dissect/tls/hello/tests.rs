use super::*;
use crate::dissect::tls::testutil::*;

#[test]
fn grease_values() {
    for v in [0x0a0a, 0x1a1a, 0x2a2a, 0xfafa] {
        assert!(is_grease(v), "{v:04x}");
    }
    for v in [0x0a1a, 0x1301, 0x0000, 0xabab, 0x0a0b] {
        assert!(!is_grease(v), "{v:04x}");
    }
}

#[test]
fn ja4_spec_example() {
    let ch = parse_client_hello(&ja4_spec_hello()).unwrap();
    assert_eq!(ch.sni.as_deref(), Some("example.com"));
    assert_eq!(ch.alpn_strings(), vec!["h2", "http/1.1"]);
    assert_eq!(ch.max_version(), 0x0304);
    assert_eq!(
        ch.ja4_raw(false),
        "t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_\
         0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_\
         0403,0804,0401,0503,0805,0501,0806,0601"
    );
    assert_eq!(ch.ja4(false), "t13d1516h2_8daaf6152771_e5627efa2ab1");
    assert_eq!(ch.ja4(true), "q13d1516h2_8daaf6152771_e5627efa2ab1");
    // JA3 keeps the order and drops GREASE everywhere.
    assert_eq!(
        ch.ja3_string(),
        "771,4865-4866-4867-49195-49199-49196-49200-52393-52392-49171-49172-156-157-47-53,\
         27-0-51-16-17513-23-45-13-5-35-18-43-65281-11-10-21,29-23-24,0"
    );
}

#[test]
fn ja4_without_signature_algorithms_has_no_underscore() {
    // JA4 spec: "0005,...,ff01 = 6d807ffa2a79" when there are no signature algorithms.
    let exts: Vec<Vec<u8>> = [
        0x0005u16, 0x000a, 0x000b, 0x0012, 0x0015, 0x0017, 0x001b, 0x0023, 0x002b, 0x002d, 0x0033,
        0x4469, 0xff01,
    ]
    .iter()
    .map(|t| ext(*t, &[]))
    .collect();
    let mut exts = exts;
    exts.push(ext(0x000d, &list16(&[])));
    let ch = parse_client_hello(&client_hello_body(0x0303, &[], &[0x1301], &exts)).unwrap();
    assert_eq!(ch.ja4(false).rsplit('_').next(), Some("6d807ffa2a79"));
    // No SNI, no ALPN; an empty supported_versions falls back to the legacy version.
    assert!(ch.ja4(false).starts_with("t12i011400_"));
}

#[test]
fn ja4_empty_lists_and_alpn_rules() {
    let ch = parse_client_hello(&client_hello_body(0x0301, &[], &[], &[])).unwrap();
    assert_eq!(ch.ja4(false), "t10i000000_000000000000_000000000000");
    assert_eq!(ch.ja3_string(), "769,,,,");
    let alpn = |v: &[u8]| {
        let exts = vec![ext(0x0010, &alpn_data(&[v]))];
        let ch = parse_client_hello(&client_hello_body(0x0303, &[], &[0x002f], &exts)).unwrap();
        ch.ja4(false)[8..10].to_string()
    };
    assert_eq!(alpn(b"http/1.1"), "h1");
    assert_eq!(alpn(b"h"), "hh");
    assert_eq!(alpn(b""), "00");
    assert_eq!(alpn(&[0xab, 0xcd]), "ad");
    assert_eq!(alpn(&[0x30, 0xab]), "3b");
    assert_eq!(alpn(&[0x30, 0x31, 0xab, 0xcd]), "3d");
    assert_eq!(alpn(&[0x30, 0xab, 0xcd, 0x31]), "01");
}

#[test]
fn ja3_known_vector() {
    // The example of the JA3 README.
    assert_eq!(
        md5_hex("769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0"),
        "ada70206e40642a3e4461f35503241d5"
    );
}

#[test]
fn real_browser_vector() {
    // A Chrome ClientHello as published by a fingerprinting service, with
    // both its JA3 and JA4: rebuild it from its JA3 string.
    let ciphers = [
        0x8a8a, 4865, 4866, 4867, 49195, 49199, 49196, 49200, 52393, 52392, 49171, 49172, 156, 157,
        47, 53,
    ];
    let sigs = [
        0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
    ];
    let mut exts = vec![ext(0xdada, &[])];
    for t in [
        45u16, 51, 16, 65037, 23, 17613, 0, 11, 10, 43, 65281, 35, 18, 5, 13, 27,
    ] {
        let data = match t {
            0 => sni_data("tls.example"),
            16 => alpn_data(&[b"h2", b"http/1.1"]),
            10 => list16(&[0x6a6a, 4588, 29, 23, 24]),
            11 => vec![1, 0],
            13 => list16(&sigs),
            43 => versions_data(&[0x0a0a, 0x0304, 0x0303]),
            _ => vec![],
        };
        exts.push(ext(t, &data));
    }
    exts.push(ext(0x1a1a, &[0]));
    let ch = parse_client_hello(&client_hello_body(0x0303, &[1; 32], &ciphers, &exts)).unwrap();
    assert_eq!(
        ch.ja3_string(),
        "771,4865-4866-4867-49195-49199-49196-49200-52393-52392-49171-49172-156-157-47-53,\
         45-51-16-65037-23-17613-0-11-10-43-65281-35-18-5-13-27,4588-29-23-24,0"
    );
    assert_eq!(ch.ja3(), "98487aa16281980e7d1120d399efb6a4");
    assert_eq!(ch.ja4(false), "t13d1516h2_8daaf6152771_d8a2da3f94cd");
    assert!(ch.ech);
}

#[test]
fn server_hello_fields_and_ja3s() {
    let exts = vec![
        ext(0xff01, &[0]),
        ext(0x0010, &alpn_data(&[b"h2"])),
        ext(0x000b, &[1, 0]),
    ];
    let sh =
        parse_server_hello(&server_hello_body(0x0303, [5; 32], &[9; 32], 0xc02f, &exts)).unwrap();
    assert_eq!(sh.version(), 0x0303);
    assert_eq!(sh.cipher_suite, 0xc02f);
    assert_eq!(sh.alpn_string().as_deref(), Some("h2"));
    assert!(!sh.hello_retry_request);
    assert_eq!(sh.ja3s_string(), "771,49199,65281-16-11");
    assert_eq!(sh.ja3s(), md5_hex("771,49199,65281-16-11"));

    let exts = vec![ext(0x002b, &[3, 4]), ext(0x0033, &[0, 0x1d])];
    let hrr =
        parse_server_hello(&server_hello_body(0x0303, HRR_RANDOM, &[], 0x1301, &exts)).unwrap();
    assert!(hrr.hello_retry_request);
    assert_eq!(hrr.version(), 0x0304);
    assert_eq!(version_name(hrr.version()), "TLSv13");
}

#[test]
fn truncated_and_garbage_never_panic() {
    let full = ja4_spec_hello();
    for n in 0..full.len() {
        let _ = parse_client_hello(&full[..n]);
        let _ = parse_server_hello(&full[..n]);
        let _ = parse_client_hello_dtls(&full[..n]);
    }
    // The fixed part must be complete.
    assert!(parse_client_hello(&full[..40]).is_none());
    // A truncated extensions block keeps the complete extensions.
    let ch = parse_client_hello(&full[..full.len() - 3]).unwrap();
    assert_eq!(ch.extensions.len(), 17);
}

#[test]
fn dtls_client_hello_has_a_cookie() {
    let mut b = 0xfefdu16.to_be_bytes().to_vec();
    b.extend_from_slice(&[0; 32]);
    b.push(0); // session id
    b.extend_from_slice(&[2, 0xaa, 0xbb]); // cookie
    b.extend(list16(&[0xc02b]));
    b.extend_from_slice(&[1, 0]);
    let exts = ext(0x0000, &sni_data("d.example"));
    b.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    b.extend(exts);
    let ch = parse_client_hello_dtls(&b).unwrap();
    assert_eq!(ch.sni.as_deref(), Some("d.example"));
    assert!(ch.ja4(false).starts_with("dd2d0101"));
}

//! Unit tests of the DNS wire parser: names (compression, loops, escaping,
//! length caps), whole messages (truncation, extended RCODE) and the
//! presentation of every record type shown, down to the address writers.
//! The message builders are in the parent module.

use super::*;

// ---- names ----

#[test]
fn names_decompress_and_escape() {
    // "a.b" at 12, then a name "x" + pointer to 12 at 17.
    let msg = Msg::new(0, 0, 0, 0, 0, 0)
        .name("a.b")
        .bytes(&[1, b'x', 0xc0, 12])
        .0;
    let (n, next) = read_name(&msg, 17).expect("name");
    assert_eq!(n.text, "x.a.b");
    assert_eq!(next, msg.len());
    // The root.
    let (root, _) = read_name(&[0], 0).expect("root");
    assert_eq!(root.text, ".");
    // A dot, a backslash and a control byte inside labels.
    let (odd, _) = read_name(&[3, b'a', b'.', 1, 1, b'\\', 0], 0).expect("odd");
    assert_eq!(odd.text, "a\\.\\001.\\\\");
}

#[test]
fn every_label_byte_is_shown_as_rfc_1035_says() {
    // Every byte value, alone and inside runs of plain letters (the runs
    // are copied whole), against the per-byte rule of RFC 1035 §5.1.
    let expected = |b: u8| match b {
        b'.' | b'\\' => format!("\\{}", char::from(b)),
        0x21..=0x7e => char::from(b).to_string(),
        _ => format!("\\{b:03}"),
    };
    for b in 0..=255u8 {
        let (alone, _) = read_name(&[1, b, 0], 0).expect("one byte");
        assert_eq!(alone.text, expected(b), "byte {b}");
        let (mixed, _) = read_name(&[5, b'a', b, b'b', b, b'c', 2, b, b, 0], 0).expect("mixed");
        let e = expected(b);
        assert_eq!(mixed.text, format!("a{e}b{e}c.{e}{e}"), "byte {b}");
    }
}

#[test]
fn pointer_loops_fail_without_hanging() {
    // A pointer to itself, and two pointers to each other.
    let self_loop = Msg::new(0, 0, 0, 0, 0, 0).bytes(&[0xc0, 12]).0;
    assert_eq!(
        read_name(&self_loop, 12).map(|_| ()),
        Err(message::Malformed("name_pointer_loop"))
    );
    let pair = Msg::new(0, 0, 0, 0, 0, 0)
        .bytes(&[1, b'a', 0xc0, 16, 1, b'b', 0xc0, 12])
        .0;
    // Two labelled pointers to each other: the name grows past 255 octets
    // and ends there, truncated.
    let (n, _) = read_name(&pair, 12).expect("truncated, not endless");
    assert!(n.truncated);
    assert!(n.text.len() <= 255);
}

#[test]
fn forward_pointers_are_followed() {
    // The name at 12 points forward to "fwd" at 14.
    let msg = Msg::new(0, 0, 0, 0, 0, 0)
        .bytes(&[0xc0, 14])
        .name("fwd.example")
        .0;
    assert_eq!(read_name(&msg, 12).expect("name").0.text, "fwd.example");
}

#[test]
fn bad_names_are_errors() {
    // Pointer beyond the message, truncated label, reserved label type.
    assert!(read_name(&[0xc0, 0xff], 0).is_err());
    assert!(read_name(&[5, b'a', b'b'], 0).is_err());
    assert!(read_name(&[0x40, 0], 0).is_err());
    assert!(read_name(&[], 0).is_err());
    assert!(read_name(&[0xc0], 0).is_err());
}

#[test]
fn over_long_names_are_truncated_and_flagged() {
    let label = "a".repeat(63);
    let long = [label.as_str(); 5].join(".");
    let wire = wire_name(&long);
    let (n, next) = read_name(&wire, 0).expect("name");
    assert!(n.truncated);
    assert_eq!(next, wire.len());
    assert!(n.text.len() <= 255, "{}", n.text.len());
    let ok = [label.as_str(); 3].join(".");
    let (n, _) = read_name(&wire_name(&ok), 0).expect("name");
    assert!(!n.truncated);
    assert_eq!(n.text, ok);
}

// ---- messages ----

#[test]
fn truncated_messages() {
    let full = response_a(7, "example.com", [192, 0, 2, 1]);
    // Header cut: an error.
    assert!(message::parse(&full[..11]).is_err());
    // Question cut: an error.
    assert!(message::parse(&full[..20]).is_err());
    // Answer cut: the header and question are kept, the anomaly listed.
    let m = message::parse(&full[..full.len() - 2]).expect("partial");
    assert!(m.answers.is_empty());
    assert_eq!(m.anomalies, vec!["rdata_truncated"]);
    assert_eq!(
        m.question.map(|q| q.name.text),
        Some("example.com".to_owned())
    );
    // Every prefix of a message parses or fails without panicking.
    for n in 0..full.len() {
        let _ = message::parse(&full[..n]);
    }
}

#[test]
fn extended_rcode_from_opt() {
    // Response, rcode 0 in the header; OPT with extended rcode 1 -> 16
    // (BADVERS).
    let msg = Msg::new(1, 0x8000, 1, 0, 0, 1)
        .question("example.com", 1)
        .bytes(&[0])
        .u16(41)
        .u16(4096)
        .u32(0x0100_0000)
        .u16(0)
        .0;
    let m = message::parse(&msg).expect("parse");
    assert_eq!(m.rcode(), 16);
    assert_eq!(names::rcode(m.rcode()).name(), Some("BADVERS"));
}

// ---- record data ----

#[test]
fn rdata_addresses_and_names() {
    assert_eq!(data_of(1, &[192, 0, 2, 1]), "192.0.2.1");
    let mut v6 = [0u8; 16];
    v6[0] = 0x20;
    v6[1] = 0x01;
    v6[2] = 0x0d;
    v6[3] = 0xb8;
    v6[15] = 1;
    assert_eq!(data_of(28, &v6), "2001:db8::1");
    assert_eq!(data_of(5, &wire_name("alias.example")), "alias.example");
    assert_eq!(data_of(2, &wire_name("ns1.example")), "ns1.example");
    assert_eq!(data_of(12, &wire_name("host.example")), "host.example");
    // A compressed CNAME pointing at the question name.
    assert_eq!(
        data_of(5, &[3, b'w', b'w', b'w', 0xc0, 12]),
        "www.example.com"
    );
}

#[test]
fn rdata_mx_soa_srv() {
    let mut mx = 10u16.to_be_bytes().to_vec();
    mx.extend(wire_name("mail.example"));
    assert_eq!(data_of(15, &mx), "10 mail.example");
    let mut soa = wire_name("ns.example");
    soa.extend(wire_name("admin.example"));
    for v in [2024010101u32, 7200, 3600, 1209600, 300] {
        soa.extend(v.to_be_bytes());
    }
    assert_eq!(
        data_of(6, &soa),
        "ns.example admin.example 2024010101 7200 3600 1209600 300"
    );
    let mut srv = Vec::new();
    for v in [10u16, 60, 5060] {
        srv.extend(v.to_be_bytes());
    }
    srv.extend(wire_name("sip.example"));
    assert_eq!(data_of(33, &srv), "10 60 5060 sip.example");
}

#[test]
fn rdata_text_types() {
    let txt = [&[5u8][..], b"hello", &[7], b"a \"b\"\\c"].concat();
    assert_eq!(data_of(16, &txt), "\"hello\" \"a \\\"b\\\"\\\\c\"");
    assert_eq!(data_of(99, &[3, b'v', b'=', 1]), "\"v=\\001\"");
    assert_eq!(data_of(16, &[0]), "\"\"");
    assert_eq!(data_of(16, &[]), "\"\"");
    let hinfo = [&[3u8][..], b"x86", &[5], b"Linux"].concat();
    assert_eq!(data_of(13, &hinfo), "\"x86\" \"Linux\"");
    let caa = [&[0u8, 5][..], b"issue", b"letsencrypt.org"].concat();
    assert_eq!(data_of(257, &caa), "0 issue \"letsencrypt.org\"");
    let mut naptr = Vec::new();
    naptr.extend(100u16.to_be_bytes());
    naptr.extend(10u16.to_be_bytes());
    naptr.extend([&[1u8][..], b"S", &[7], b"SIP+D2U", &[0]].concat());
    naptr.extend(wire_name("_sip._udp.example"));
    assert_eq!(
        data_of(35, &naptr),
        "100 10 \"S\" \"SIP+D2U\" \"\" _sip._udp.example"
    );
    let mut uri = vec![0, 10, 0, 1];
    uri.extend(b"https://example/");
    assert_eq!(data_of(256, &uri), "10 1 \"https://example/\"");
}

#[test]
fn rdata_dnssec_types() {
    assert_eq!(data_of(44, &[1, 1, 0xab, 0xcd]), "1 1 ABCD");
    assert_eq!(data_of(52, &[3, 1, 1, 0x01, 0xff]), "3 1 1 01FF");
    assert_eq!(
        data_of(43, &[0x30, 0x39, 8, 2, 0xde, 0xad]),
        "12345 8 2 DEAD"
    );
    assert_eq!(data_of(48, &[1, 1, 3, 8, b'M', b'a', b'n']), "257 3 8 TWFu");
    assert_eq!(data_of(48, &[1, 0, 3, 13, 1]), "256 3 13 AQ==");
    let mut rrsig = Vec::new();
    rrsig.extend(1u16.to_be_bytes()); // covers A
    rrsig.extend([8, 2]);
    rrsig.extend(3600u32.to_be_bytes());
    rrsig.extend(1_700_000_000u32.to_be_bytes());
    rrsig.extend(0u32.to_be_bytes());
    rrsig.extend(4242u16.to_be_bytes());
    rrsig.extend(wire_name("example"));
    rrsig.extend([0xff, 0xfe]);
    assert_eq!(
        data_of(46, &rrsig),
        "A 8 2 3600 20231114221320 19700101000000 4242 example //4="
    );
    // NSEC: next name, then types A (1), MX (15), RRSIG (46), and TYPE1234
    // in window 4.
    let mut nsec = wire_name("b.example");
    nsec.extend([0, 6, 0x40, 0x01, 0, 0, 0, 0x02]);
    nsec.extend([4, 27]);
    nsec.extend([0u8; 26]);
    nsec.push(0x20);
    assert_eq!(data_of(47, &nsec), "b.example A MX RRSIG TYPE1234");
    let nsec3 = [
        &[1u8, 0, 0, 10, 2, 0xaa, 0xbb, 2, 0xff, 0xff][..],
        &[0, 1, 0x40],
    ]
    .concat();
    assert_eq!(data_of(50, &nsec3), "1 0 10 AABB VVVG A");
    assert_eq!(data_of(51, &[1, 0, 0, 0, 0]), "1 0 0 -");
    // A malformed bitmap is an error, not a panic.
    let bad = [&wire_name("x")[..], &[0, 40]].concat();
    let msg = Msg::new(1, RESPONSE, 1, 1, 0, 0)
        .question("example.com", 47)
        .answer(47, 60, &bad)
        .0;
    assert!(present(&msg, 47, msg.len() - bad.len(), bad.len()).is_err());
}

#[test]
fn rdata_svcb_wks_loc_and_generic() {
    let mut https = 1u16.to_be_bytes().to_vec();
    https.push(0); // target "."
    https.extend([0, 1, 0, 6, 2, b'h', b'2', 2, b'h', b'3']);
    https.extend([0, 3, 0, 2, 0x01, 0xbb]);
    https.extend([0, 4, 0, 4, 192, 0, 2, 1]);
    assert_eq!(
        data_of(65, &https),
        "1 . alpn=h2,h3 port=443 ipv4hint=192.0.2.1"
    );
    // WKS: 192.0.2.1, TCP, ports 22 and 25.
    assert_eq!(
        data_of(11, &[192, 0, 2, 1, 6, 0, 0, 0b0010_0000, 0b0100_0000]),
        "192.0.2.1 6 18 25"
    );
    // LOC example of RFC 1876: 42 21 54 N 71 06 18 W -24m 30m.
    let loc = [
        0u8, 0x33, 0x16, 0x13, 0x89, 0x17, 0x2d, 0xd0, 0x70, 0xbe, 0x15, 0xf0, 0x00, 0x98, 0x8d,
        0x20,
    ];
    assert_eq!(
        data_of(29, &loc),
        "42 21 54.000 N 71 6 18.000 W -24.00m 30.00m 10000.00m 10.00m"
    );
    assert_eq!(data_of(10, &[1, 2, 0xff]), "\\# 3 0102FF");
    assert_eq!(data_of(65280, &[]), "\\# 0");
    // A wrong length for an address is an error (the caller falls back to
    // the generic form).
    let msg = Msg::new(1, RESPONSE, 1, 1, 0, 0)
        .question("example.com", 1)
        .answer(1, 60, &[1, 2, 3])
        .0;
    assert!(present(&msg, 1, msg.len() - 3, 3).is_err());
    let m = message::parse(&msg).expect("parse");
    assert_eq!(m.answers[0].data, "\\# 3 010203");
    assert_eq!(m.anomalies, vec!["rdata_bad_length"]);
}

/// The direct address writers agree with the standard library's
/// `Display` byte for byte (records must not change).
#[test]
fn address_presentation_matches_std_display() {
    use nucleus_proto::{push_ipv4, push_ipv6};
    use std::net::{Ipv4Addr, Ipv6Addr};
    let mut v4s: Vec<[u8; 4]> = vec![[0, 0, 0, 0], [255, 255, 255, 255], [10, 0, 9, 100]];
    let mut v6s: Vec<[u8; 16]> = vec![[0; 16], [0xff; 16]];
    // Deterministic pseudo-random values, with many zero groups.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..20_000 {
        let r = next();
        v4s.push((r as u32).to_be_bytes());
        let mut b = [0u8; 16];
        for pair in b.chunks_exact_mut(2) {
            let r = next();
            let g: u16 = match r % 4 {
                0 | 1 => 0,
                2 => (r >> 8) as u16 & 0xf,
                _ => (r >> 16) as u16,
            };
            pair.copy_from_slice(&g.to_be_bytes());
        }
        if next() % 8 == 0 {
            // IPv4-mapped and IPv4-compatible forms.
            b[..10].fill(0);
            let ff = if next() % 2 == 0 { 0xff } else { 0 };
            b[10] = ff;
            b[11] = ff;
        }
        v6s.push(b);
    }
    for b in v4s {
        let mut s = String::new();
        push_ipv4(&mut s, b);
        assert_eq!(s, Ipv4Addr::from(b).to_string());
    }
    for b in v6s {
        let mut s = String::new();
        push_ipv6(&mut s, &Ipv6Addr::from(b));
        assert_eq!(s, Ipv6Addr::from(b).to_string(), "{b:?}");
    }
}

//! Unit tests of the DNS dissector: the wire parser (compression, loops,
//! truncation), the presentation of every record type shown, the probe,
//! TCP framing, and query/response pairing.

use nucleus_proto::{DnsRecord, Mnemonic};

use super::message::{self, read_name};
use super::rdata::present;
use super::*;
use crate::dissect::{Probe, ProbeInput};

/// Builds messages for the tests.
struct Msg(Vec<u8>);

impl Msg {
    fn new(id: u16, flags: u16, qd: u16, an: u16, ns: u16, ar: u16) -> Self {
        let mut b = Vec::new();
        for v in [id, flags, qd, an, ns, ar] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        Msg(b)
    }

    fn name(mut self, name: &str) -> Self {
        for label in name.split('.').filter(|l| !l.is_empty()) {
            self.0.push(label.len() as u8);
            self.0.extend_from_slice(label.as_bytes());
        }
        self.0.push(0);
        self
    }

    fn bytes(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }

    fn u16(self, v: u16) -> Self {
        self.bytes(&v.to_be_bytes())
    }

    fn u32(self, v: u32) -> Self {
        self.bytes(&v.to_be_bytes())
    }

    fn question(self, name: &str, qtype: u16) -> Self {
        self.name(name).u16(qtype).u16(1)
    }

    /// An answer owned by a pointer to the first question (offset 12).
    fn answer(self, rtype: u16, ttl: u32, rdata: &[u8]) -> Self {
        self.u16(0xc00c)
            .u16(rtype)
            .u16(1)
            .u32(ttl)
            .u16(rdata.len() as u16)
            .bytes(rdata)
    }
}

const QUERY: u16 = 0x0100; // RD
const RESPONSE: u16 = 0x8180; // QR RD RA

fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    Msg::new(id, QUERY, 1, 0, 0, 0).question(name, qtype).0
}

fn response_a(id: u16, name: &str, addr: [u8; 4]) -> Vec<u8> {
    Msg::new(id, RESPONSE, 1, 1, 0, 0)
        .question(name, 1)
        .answer(1, 300, &addr)
        .0
}

/// The `data` of a one-answer response with this RDATA.
fn data_of(rtype: u16, rdata: &[u8]) -> String {
    let msg = Msg::new(1, RESPONSE, 1, 1, 0, 0)
        .question("example.com", rtype)
        .answer(rtype, 60, rdata)
        .0;
    let start = msg.len() - rdata.len();
    present(&msg, rtype, start, rdata.len()).expect("presentable")
}

fn wire_name(name: &str) -> Vec<u8> {
    Msg(Vec::new()).name(name).0
}

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

// ---- probe ----

fn udp_probe(data: &[u8], ports: (u16, u16)) -> Probe {
    probe(&ProbeInput {
        l4: L4::Udp,
        dir: Direction::Originator,
        ports,
        data,
    })
}

fn tcp_probe(data: &[u8], ports: (u16, u16)) -> Probe {
    probe(&ProbeInput {
        l4: L4::Tcp,
        dir: Direction::Originator,
        ports,
        data,
    })
}

fn framed(msg: &[u8]) -> Vec<u8> {
    let mut v = (msg.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(msg);
    v
}

#[test]
fn probe_accepts_dns_on_any_port_and_both_directions() {
    let q = query(0x1234, "example.com", 1);
    let r = response_a(0x1234, "example.com", [1, 2, 3, 4]);
    for ports in [(40000, 53), (40000, 8053)] {
        assert_eq!(udp_probe(&q, ports), Probe::Match);
        assert_eq!(udp_probe(&r, ports), Probe::Match);
        assert_eq!(tcp_probe(&framed(&q), ports), Probe::Match);
        assert_eq!(tcp_probe(&framed(&r), ports), Probe::Match);
    }
    // TCP: too few bytes to tell.
    assert_eq!(tcp_probe(&framed(&q)[..1], (1, 53)), Probe::NeedMore);
    assert_eq!(tcp_probe(&framed(&q)[..10], (1, 53)), Probe::NeedMore);
    assert_eq!(tcp_probe(&framed(&q)[..16], (1, 53)), Probe::NeedMore);
}

#[test]
fn probe_rejects_http_and_random_bytes() {
    let http = b"GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n";
    let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    for ports in [(40000, 53), (40000, 80)] {
        // (On a DNS port a UDP probe waits for the next datagrams.)
        assert_ne!(udp_probe(http, ports), Probe::Match);
        assert_eq!(tcp_probe(http, ports), Probe::NoMatch);
        assert_eq!(tcp_probe(reply, ports), Probe::NoMatch);
    }
    // Pseudo-random bytes (a fixed xorshift): none taken for DNS off port 53.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut matched = 0;
    for _ in 0..2000 {
        let mut b = Vec::new();
        for _ in 0..64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.push(x as u8);
        }
        if udp_probe(&b, (40000, 40001)) == Probe::Match
            || tcp_probe(&b, (40000, 40001)) == Probe::Match
        {
            matched += 1;
        }
    }
    assert_eq!(matched, 0);
    // A bare 12-byte header is DNS only on a DNS port.
    let bare = Msg::new(1, 0x8000, 0, 0, 0, 0).0;
    assert_eq!(udp_probe(&bare, (40000, 40001)), Probe::NoMatch);
    assert_eq!(udp_probe(b"junk", (40000, 40001)), Probe::NoMatch);
    assert_eq!(udp_probe(b"junk", (40000, 53)), Probe::NeedMore);
    assert_eq!(udp_probe(&bare, (40000, 53)), Probe::Match);
}

// ---- the dissector ----

struct Run {
    d: Box<dyn Dissector>,
    out: Vec<super::super::Emitted>,
    anomalies: Vec<&'static str>,
}

impl Run {
    fn new(l4: L4, limits: Limits) -> Self {
        Run {
            d: new(&limits, l4),
            out: Vec::new(),
            anomalies: Vec::new(),
        }
    }

    fn data(&mut self, ts_us: i64, dir: Direction, data: &[u8]) -> Want {
        let mut cx = Context {
            ts_us,
            out: &mut self.out,
            anomalies: &mut self.anomalies,
        };
        self.d.data(&mut cx, dir, data)
    }

    fn gap(&mut self, dir: Direction, len: u64) -> Want {
        let mut cx = Context {
            ts_us: 0,
            out: &mut self.out,
            anomalies: &mut self.anomalies,
        };
        self.d.gap(&mut cx, dir, len)
    }

    fn close(&mut self) {
        let mut cx = Context {
            ts_us: 0,
            out: &mut self.out,
            anomalies: &mut self.anomalies,
        };
        self.d.close(&mut cx);
    }

    fn records(&self) -> Vec<(i64, DnsRecord)> {
        self.out
            .iter()
            .map(|e| match &e.event {
                AppEvent::Dns(r) => (e.ts_us, r.clone()),
                other => panic!("not DNS: {other:?}"),
            })
            .collect()
    }
}

use Direction::{Originator as O, Responder as R};

#[test]
fn udp_pairs_query_and_response() {
    let mut run = Run::new(L4::Udp, Limits::default());
    run.data(1_000_000, O, &query(7, "Example.COM", 1));
    run.data(1_250_000, R, &response_a(7, "example.com", [192, 0, 2, 1]));
    run.close();
    let recs = run.records();
    assert_eq!(recs.len(), 1);
    let (ts, r) = &recs[0];
    assert_eq!(*ts, 1_000_000);
    assert_eq!(r.trans_id, 7);
    assert_eq!(r.query.as_deref(), Some("Example.COM"));
    assert_eq!(r.qtype.and_then(Mnemonic::name), Some("A"));
    assert_eq!(r.qclass, Some(1));
    assert_eq!(r.rcode.and_then(Mnemonic::name), Some("NOERROR"));
    assert_eq!(r.rtt, Some(0.25));
    assert!(r.rd && r.ra && !r.aa && !r.tc);
    assert_eq!(r.answers.len(), 1);
    assert_eq!(r.answers[0].name, "example.com");
    assert_eq!(r.answers[0].rtype.name(), Some("A"));
    assert_eq!(r.answers[0].ttl, 300);
    assert_eq!(r.answers[0].data, "192.0.2.1");
    assert!(!r.unanswered && !r.unsolicited);
}

#[test]
fn unanswered_unsolicited_and_duplicate_responses() {
    let mut run = Run::new(L4::Udp, Limits::default());
    run.data(1, O, &query(1, "a.example", 1));
    run.data(2, O, &query(2, "b.example", 28));
    // The response to 1 comes twice; one for 3 was never asked.
    run.data(3, R, &response_a(1, "a.example", [1, 1, 1, 1]));
    run.data(4, R, &response_a(1, "a.example", [1, 1, 1, 1]));
    run.data(5, R, &response_a(3, "c.example", [3, 3, 3, 3]));
    run.close();
    let recs = run.records();
    assert_eq!(recs.len(), 4, "{recs:?}");
    let find = |id: u16, ts: i64| {
        recs.iter()
            .find(|(t, r)| r.trans_id == id && *t == ts)
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| panic!("no record {id} at {ts}: {recs:?}"))
    };
    assert!(!find(1, 1).unsolicited);
    assert!(find(1, 4).unsolicited, "the second response");
    let c = find(3, 5);
    assert!(c.unsolicited && c.rtt.is_none());
    assert_eq!(c.query.as_deref(), Some("c.example"));
    let b = find(2, 2);
    assert!(b.unanswered && b.rcode.is_none() && b.answers.is_empty());
}

#[test]
fn same_id_different_question_is_not_a_match() {
    let mut run = Run::new(L4::Udp, Limits::default());
    run.data(1, O, &query(0, "one.local", 1));
    run.data(2, R, &response_a(0, "two.local", [1, 2, 3, 4]));
    run.close();
    let recs = run.records();
    assert_eq!(recs.len(), 2);
    assert!(recs.iter().any(|(_, r)| r.unsolicited));
    assert!(recs.iter().any(|(_, r)| r.unanswered));
}

#[test]
fn multicast_answers_without_question_stand_alone() {
    let mut run = Run::new(L4::Udp, Limits::default());
    run.data(1, O, &query(0, "printer.local", 1));
    let announce = Msg::new(0, 0x8400, 0, 1, 0, 0)
        .name("other.local")
        .u16(1)
        .u16(1)
        .u32(120)
        .u16(4)
        .bytes(&[10, 0, 0, 9])
        .0;
    run.data(2, O, &announce);
    run.close();
    let recs = run.records();
    assert_eq!(recs.len(), 2);
    let (_, ann) = recs.iter().find(|(t, _)| *t == 2).expect("announcement");
    assert!(ann.unsolicited);
    assert_eq!(ann.query.as_deref(), Some("other.local"));
    assert_eq!(ann.qtype, None);
}

#[test]
fn retransmitted_query_answers_the_oldest() {
    let mut run = Run::new(L4::Udp, Limits::default());
    run.data(10, O, &query(5, "x.example", 1));
    run.data(20, O, &query(5, "x.example", 1));
    run.data(30, R, &response_a(5, "x.example", [9, 9, 9, 9]));
    run.close();
    let recs = run.records();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].0, 10);
    assert!(!recs[0].1.unanswered);
    assert_eq!(recs[1].0, 20);
    assert!(recs[1].1.unanswered);
}

#[test]
fn pending_queries_are_bounded() {
    let limits = Limits {
        max_pending_transactions: 3,
        ..Limits::default()
    };
    let mut run = Run::new(L4::Udp, limits);
    for id in 0..10 {
        run.data(i64::from(id), O, &query(id, "flood.example", 1));
    }
    // Seven evicted so far, reported as unanswered and counted.
    assert_eq!(run.records().len(), 7);
    assert_eq!(
        run.anomalies
            .iter()
            .filter(|a| **a == "pending_transactions_cap")
            .count(),
        7
    );
    run.close();
    assert_eq!(run.records().len(), 10);
    assert!(run.records().iter().all(|(_, r)| r.unanswered));
}

#[test]
fn malformed_messages_are_counted_not_fatal() {
    let mut run = Run::new(L4::Udp, Limits::default());
    assert_eq!(run.data(1, O, &[1, 2, 3]), Want::More);
    let mut looped = Msg::new(9, QUERY, 1, 0, 0, 0).0;
    looped.extend([0xc0, 12, 0, 1, 0, 1]);
    run.data(2, O, &looped);
    run.close();
    assert!(run.records().is_empty());
    assert_eq!(run.anomalies, vec!["header_truncated", "name_pointer_loop"]);
}

#[test]
fn tcp_messages_split_and_coalesced() {
    let q1 = framed(&query(1, "one.example", 1));
    let q2 = framed(&query(2, "two.example", 1));
    let r1 = framed(&response_a(1, "one.example", [1, 0, 0, 1]));
    let r2 = framed(&response_a(2, "two.example", [2, 0, 0, 2]));
    let mut run = Run::new(L4::Tcp, Limits::default());
    // Both queries in one segment; responses split byte by byte.
    run.data(1, O, &[q1, q2].concat());
    for b in [r1, r2].concat() {
        assert_eq!(run.data(2, R, &[b]), Want::More);
    }
    run.close();
    let recs = run.records();
    assert_eq!(recs.len(), 2, "{recs:?}");
    assert_eq!(recs[0].1.answers[0].data, "1.0.0.1");
    assert_eq!(recs[1].1.answers[0].data, "2.0.0.2");
    assert!(run.anomalies.is_empty(), "{:?}", run.anomalies);
}

#[test]
fn tcp_gap_inside_a_message_skips_to_the_next() {
    let r1 = framed(&response_a(1, "one.example", [1, 0, 0, 1]));
    let r2 = framed(&response_a(2, "two.example", [2, 0, 0, 2]));
    let mut run = Run::new(L4::Tcp, Limits::default());
    run.data(1, R, &r1[..10]);
    run.gap(R, 5);
    run.data(2, R, &[&r1[15..], &r2[..]].concat());
    let recs = run.records();
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0].1.trans_id, 2);
    assert_eq!(run.anomalies, vec!["message_lost_in_gap"]);
}

#[test]
fn tcp_gap_resynchronises_on_a_message_start_or_gives_up() {
    let r2 = framed(&response_a(2, "two.example", [2, 0, 0, 2]));
    // Gap at a boundary, then a whole message: read.
    let mut run = Run::new(L4::Tcp, Limits::default());
    run.gap(R, 100);
    assert_eq!(run.data(1, R, &r2), Want::More);
    assert_eq!(run.records().len(), 1);
    // Gap, then the middle of something: that direction gives up; when
    // both have, the dissector is done.
    let mut run = Run::new(L4::Tcp, Limits::default());
    run.gap(R, 100);
    assert_eq!(run.data(1, R, b"garbage garbage garbage"), Want::More);
    run.gap(O, 5);
    assert_eq!(
        run.data(2, O, b"\xff\xff\xff\xff more garbage here"),
        Want::Done
    );
    assert!(run.anomalies.contains(&"framing_lost"));
}

#[test]
fn tcp_message_over_buffer_cap_is_skipped() {
    let limits = Limits {
        max_buffered_bytes: 40,
        ..Limits::default()
    };
    let big = framed(&response_a(
        1,
        "a-rather-long-name.example.com",
        [1, 0, 0, 1],
    ));
    let small = framed(&query(2, "b.ex", 1));
    assert!(big.len() > 40 && small.len() <= 40);
    let mut run = Run::new(L4::Tcp, limits);
    run.data(1, O, &[&big[..], &small[..]].concat());
    run.close();
    let recs = run.records();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].1.trans_id, 2);
    assert!(run.anomalies.contains(&"message_over_buffer_cap"));
}

#[test]
fn arbitrary_bytes_never_panic() {
    let mut x = 0x1234_5678_9abc_def0u64;
    for round in 0..3000 {
        let len = (round % 90) + 1;
        let mut b = Vec::new();
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.push(x as u8);
        }
        // Mostly valid headers with random bodies, to reach the sections.
        if round % 2 == 0 && b.len() > 12 {
            b[4..12].copy_from_slice(&[0, 1, 0, 2, 0, 1, 0, 1]);
        }
        let _ = message::parse(&b);
        let mut run = Run::new(L4::Tcp, Limits::default());
        run.data(0, O, &b);
        run.close();
    }
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

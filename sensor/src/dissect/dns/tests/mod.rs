//! Unit tests of the DNS dissector: the probe, TCP framing, query/response
//! pairing, and the message builders the tests share. The wire parser's
//! tests (names, messages, record data) are in `wire.rs`.

use nucleus_proto::{DnsRecord, Mnemonic};

use super::message::{self, read_name};
use super::rdata::present;
use super::*;
use crate::dissect::{Probe, ProbeInput};

mod wire;

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

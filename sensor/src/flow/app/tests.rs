//! The framework with two test protocols: probing across segments, port
//! hints, giving up, stopping, and what reaches the dissector.

use super::*;
use crate::config::{DissectConfig, ReassemblyConfig};
use crate::dissect::{AppEvent, Probe, ProbeInput, Transports};
use std::cell::RefCell;

thread_local! {
    /// Everything the test dissectors were given on this test's thread, in
    /// order, as text.
    static SEEN: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn seen() -> Vec<String> {
    SEEN.with(|s| std::mem::take(&mut *s.borrow_mut()))
}

fn note(line: String) {
    SEEN.with(|s| s.borrow_mut().push(line));
}

/// "HELLO" at the start of either direction; needs 5 bytes to decide.
fn hello_probe(i: &ProbeInput<'_>) -> Probe {
    let want = b"HELLO";
    let n = i.data.len().min(want.len());
    if i.data[..n] != want[..n] {
        Probe::NoMatch
    } else if n < want.len() {
        Probe::NeedMore
    } else {
        Probe::Match
    }
}

#[derive(Debug)]
struct Recorder(&'static str);

impl Dissector for Recorder {
    fn data(&mut self, cx: &mut Context<'_>, dir: Direction, data: &[u8]) -> Want {
        note(format!(
            "{} {dir:?} {}",
            self.0,
            String::from_utf8_lossy(data)
        ));
        if data.ends_with(b"BYE") {
            return Want::Done;
        }
        cx.emit(
            cx.ts_us,
            AppEvent::Http(nucleus_proto::HttpRecord::default()),
        );
        Want::More
    }
    fn gap(&mut self, _cx: &mut Context<'_>, dir: Direction, len: u64) -> Want {
        note(format!("{} {dir:?} gap {len}", self.0));
        Want::More
    }
    fn close(&mut self, cx: &mut Context<'_>) {
        note(format!("{} close", self.0));
        cx.anomaly("closed");
    }
}

static HELLO: Protocol = Protocol {
    name: "hello",
    transports: Transports {
        tcp: true,
        udp: true,
    },
    ports: &[7],
    probe: hello_probe,
    new: |_, _| Box::new(Recorder("hello")),
};

/// Accepts anything: shows the port-hinted protocol is asked first.
static ANY: Protocol = Protocol {
    name: "any",
    transports: Transports {
        tcp: true,
        udp: false,
    },
    ports: &[9],
    probe: |_| Probe::Match,
    new: |_, _| Box::new(Recorder("any")),
};

fn shared(protocols: Vec<&'static Protocol>, probe_bytes: usize) -> AppShared {
    let d = DissectConfig {
        probe_bytes,
        probe_datagrams: 2,
        ..DissectConfig::default()
    };
    AppShared::new(&ReassemblyConfig::default(), &d).with_protocols(protocols)
}

fn seg(seq: u32, payload: &[u8]) -> Segment<'_> {
    Segment {
        seq,
        syn: false,
        fin: false,
        rst: false,
        payload,
        claimed_len: payload.len() as u32,
    }
}

const O: Direction = Direction::Originator;
const R: Direction = Direction::Responder;

#[test]
fn a_split_greeting_is_probed_across_segments_and_delivered_whole() {
    let _ = seen();
    let mut sh = shared(vec![&HELLO], 64);
    let mut app = AppState::new(L4::Tcp, (40000, 7));
    assert_eq!(
        app.tcp_segment(&mut sh, O, &seg(100, b"HEL"), 1),
        Outcome::Continue
    );
    assert_eq!(
        app.tcp_segment(&mut sh, O, &seg(103, b"LO world"), 2),
        Outcome::Identified("hello")
    );
    assert_eq!(
        app.tcp_segment(&mut sh, R, &seg(900, b"hi"), 3),
        Outcome::Continue
    );
    assert_eq!(
        seen(),
        ["hello Originator HELLO world", "hello Responder hi"]
    );
    // Each data call emitted one record, with its packet time.
    let times: Vec<i64> = sh.emitted.iter().map(|e| e.ts_us).collect();
    assert_eq!(times, [2, 3]);
    app.close(&mut sh, 4);
    assert_eq!(seen(), ["hello close"]);
    assert_eq!(sh.anomalies, ["closed"]);
}

#[test]
fn the_port_hinted_protocol_is_asked_first() {
    let _ = seen();
    // Registry order puts ANY first, but port 7 hints HELLO.
    let mut sh = shared(vec![&ANY, &HELLO], 64);
    let mut app = AppState::new(L4::Tcp, (40000, 7));
    let got = app.tcp_segment(&mut sh, O, &seg(1, b"HELLO"), 1);
    assert_eq!(got, Outcome::Identified("hello"));
    // Without the hint, registry order decides.
    let mut app = AppState::new(L4::Tcp, (40000, 1234));
    let got = app.tcp_segment(&mut sh, O, &seg(1, b"HELLO"), 1);
    assert_eq!(got, Outcome::Identified("any"));
    let _ = seen();
}

#[test]
fn content_no_protocol_accepts_finishes_the_flow_and_releases_it() {
    let mut sh = shared(vec![&HELLO], 64);
    let mut app = AppState::new(L4::Tcp, (40000, 7));
    assert_eq!(
        app.tcp_segment(&mut sh, O, &seg(1, b"GET / HTTP/1.1"), 1),
        Outcome::Finished
    );
    assert_eq!(app.service(), None);
    assert_eq!(sh.budget.used, 0);
    assert!(sh.emitted.is_empty());
}

#[test]
fn undecided_past_the_probe_bytes_gives_up() {
    static SLOW: Protocol = Protocol {
        name: "slow",
        transports: Transports {
            tcp: true,
            udp: true,
        },
        ports: &[],
        probe: |_| Probe::NeedMore,
        new: |_, _| Box::new(Recorder("slow")),
    };
    let mut sh = shared(vec![&SLOW], 8);
    let mut app = AppState::new(L4::Tcp, (40000, 7));
    assert_eq!(
        app.tcp_segment(&mut sh, O, &seg(1, b"abcd"), 1),
        Outcome::Continue
    );
    assert_eq!(
        app.tcp_segment(&mut sh, O, &seg(5, b"efgh"), 2),
        Outcome::Finished
    );
}

#[test]
fn udp_probes_a_few_datagrams_then_gives_up() {
    let _ = seen();
    let mut sh = shared(vec![&HELLO], 64);
    let mut app = AppState::new(L4::Udp, (5000, 6000));
    // NeedMore on a datagram does not exclude: the next one may match.
    assert_eq!(app.udp_datagram(&mut sh, O, b"HE", 1), Outcome::Continue);
    assert_eq!(
        app.udp_datagram(&mut sh, R, b"HELLO there", 2),
        Outcome::Identified("hello")
    );
    assert_eq!(seen(), ["hello Responder HELLO there"]);
    let mut app = AppState::new(L4::Udp, (5000, 6000));
    assert_eq!(app.udp_datagram(&mut sh, O, b"HE", 1), Outcome::Continue);
    assert_eq!(app.udp_datagram(&mut sh, O, b"HE", 2), Outcome::Finished);
}

#[test]
fn a_dissector_that_is_done_stops_the_flow() {
    let _ = seen();
    let mut sh = shared(vec![&HELLO], 64);
    let mut app = AppState::new(L4::Tcp, (40000, 7));
    assert_eq!(
        app.tcp_segment(&mut sh, O, &seg(1, b"HELLO"), 1),
        Outcome::Identified("hello")
    );
    assert_eq!(
        app.tcp_segment(&mut sh, O, &seg(6, b"BYE"), 2),
        Outcome::Finished
    );
    // The flow keeps its service after the dissector is done.
    assert_eq!(app.service(), Some("hello"));
    let _ = seen();
}

#[test]
fn tls_inside_an_http_connect_tunnel_is_dissected() {
    use crate::dissect::tls::testutil::{client_hello_body, ext, handshake, record, sni_data};
    let mut sh = AppShared::new(&ReassemblyConfig::default(), &DissectConfig::default());
    let mut app = AppState::new(L4::Tcp, (40000, 3128));
    let req = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n";
    assert_eq!(
        app.tcp_segment(&mut sh, O, &seg(1, req), 1),
        Outcome::Identified("http")
    );
    let resp = b"HTTP/1.1 200 Connection established\r\n\r\n";
    assert_eq!(
        app.tcp_segment(&mut sh, R, &seg(1000, resp), 2),
        Outcome::Continue
    );
    let hello = record(
        22,
        &handshake(
            1,
            &client_hello_body(
                0x0303,
                &[],
                &[0x1301, 0xc02f],
                &[ext(0, &sni_data("inner.example"))],
            ),
        ),
    );
    let next = 1 + req.len() as u32;
    assert_ne!(
        app.tcp_segment(&mut sh, O, &seg(next, &hello), 3),
        Outcome::Finished
    );
    app.close(&mut sh, 4);
    let kinds: Vec<&str> = sh
        .emitted
        .iter()
        .map(|e| match &e.event {
            AppEvent::Http(_) => "http",
            AppEvent::Tls(_) => "tls",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["http", "tls"]);
    let sni = sh.emitted.iter().find_map(|e| match &e.event {
        AppEvent::Tls(t) => t.sni.clone(),
        _ => None,
    });
    assert_eq!(sni.as_deref(), Some("inner.example"));
}

fn tls_hello(sni: &str) -> Vec<u8> {
    use crate::dissect::tls::testutil::{client_hello_body, ext, handshake, record, sni_data};
    record(
        22,
        &handshake(
            1,
            &client_hello_body(0x0303, &[], &[0x1301, 0xc02f], &[ext(0, &sni_data(sni))]),
        ),
    )
}

fn tls_snis(sh: &AppShared) -> Vec<String> {
    sh.emitted
        .iter()
        .filter_map(|e| match &e.event {
            AppEvent::Tls(t) => t.sni.clone(),
            _ => None,
        })
        .collect()
}

#[test]
fn tls_after_an_smtp_starttls_is_dissected_from_the_bytes_after_the_reply() {
    let mut sh = AppShared::new(&ReassemblyConfig::default(), &DissectConfig::default());
    let mut app = AppState::new(L4::Tcp, (40000, 2525));
    let greeting = b"220 mx.example ESMTP\r\n";
    assert_eq!(
        app.tcp_segment(&mut sh, R, &seg(1000, greeting), 1),
        Outcome::Identified("smtp")
    );
    let cmd = b"EHLO me\r\nSTARTTLS\r\n";
    app.tcp_segment(&mut sh, O, &seg(1, cmd), 2);
    // The reply to EHLO, the 220 to STARTTLS and, in the same segment, the
    // start of what the server sends under TLS (nothing readable yet).
    let mut reply = b"250 hi\r\n220 go ahead\r\n".to_vec();
    reply.extend_from_slice(&[0x16, 0x03]);
    let next_r = 1000 + greeting.len() as u32;
    assert_eq!(
        app.tcp_segment(&mut sh, R, &seg(next_r, &reply), 3),
        Outcome::Continue
    );
    let hello = tls_hello("mail.example");
    let next_o = 1 + cmd.len() as u32;
    assert_ne!(
        app.tcp_segment(&mut sh, O, &seg(next_o, &hello), 4),
        Outcome::Finished
    );
    app.close(&mut sh, 5);
    assert_eq!(tls_snis(&sh), ["mail.example"]);
    // The flow keeps the protocol it began with.
    assert_eq!(app.service(), Some("smtp"));
}

#[test]
fn client_bytes_held_while_the_reply_was_awaited_are_probed_first() {
    let mut sh = AppShared::new(&ReassemblyConfig::default(), &DissectConfig::default());
    let mut app = AppState::new(L4::Tcp, (40000, 1100));
    let greeting = b"+OK ready\r\n";
    app.tcp_segment(&mut sh, R, &seg(1000, greeting), 1);
    // A client that does not wait for the +OK.
    let mut cmd = b"STLS\r\n".to_vec();
    cmd.extend_from_slice(&tls_hello("pop.example"));
    app.tcp_segment(&mut sh, O, &seg(1, &cmd), 2);
    let next_r = 1000 + greeting.len() as u32;
    app.tcp_segment(&mut sh, R, &seg(next_r, b"+OK go\r\n"), 3);
    app.close(&mut sh, 4);
    assert_eq!(tls_snis(&sh), ["pop.example"]);
}

#[test]
fn upgrades_past_the_cap_leave_the_flow_alone() {
    /// Upgrades at every chunk, handing the whole chunk over.
    #[derive(Debug, Default)]
    struct Upgrader(Vec<u8>);
    impl Dissector for Upgrader {
        fn data(&mut self, _cx: &mut Context<'_>, _dir: Direction, data: &[u8]) -> Want {
            self.0 = data.to_vec();
            Want::Reprobe
        }
        fn gap(&mut self, _cx: &mut Context<'_>, _dir: Direction, _len: u64) -> Want {
            Want::Done
        }
        fn close(&mut self, _cx: &mut Context<'_>) {}
        fn handover(&mut self, dir: Direction) -> Vec<u8> {
            if dir == Direction::Originator {
                std::mem::take(&mut self.0)
            } else {
                Vec::new()
            }
        }
    }
    static LOOP: Protocol = Protocol {
        name: "loop",
        transports: Transports {
            tcp: true,
            udp: false,
        },
        ports: &[],
        probe: |_| Probe::Match,
        new: |_, _| Box::new(Upgrader::default()),
    };
    let d = DissectConfig {
        max_upgrades: 3,
        ..DissectConfig::default()
    };
    let mut sh = AppShared::new(&ReassemblyConfig::default(), &d).with_protocols(vec![&LOOP]);
    let mut app = AppState::new(L4::Tcp, (40000, 7));
    // Each upgrade hands the chunk back and it matches again: without the
    // cap this would never end.
    assert_eq!(
        app.tcp_segment(&mut sh, O, &seg(1, b"again"), 1),
        Outcome::Finished
    );
    assert_eq!(app.reader.upgrades, 3);
}

#[test]
fn dtls_after_stun_connectivity_checks_is_identified_from_its_first_datagram() {
    use crate::dissect::tls::testutil::{client_hello_body, ext, sni_data};
    let mut sh = AppShared::new(&ReassemblyConfig::default(), &DissectConfig::default());
    let mut app = AppState::new(L4::Udp, (51462, 43044));
    let mut binding = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    binding.extend_from_slice(&[7; 12]);
    assert_eq!(
        app.udp_datagram(&mut sh, O, &binding, 1),
        Outcome::Identified("stun")
    );
    // More checks than `probe_datagrams` allows: the follower keeps them.
    for ts in 2..10 {
        assert_eq!(
            app.udp_datagram(&mut sh, R, &binding, ts),
            Outcome::Continue
        );
    }
    // The DTLS client is the responder here: a ClientHello with an empty
    // cookie, in one fragment.
    let tls = client_hello_body(0xfefd, &[], &[0xc02b], &[ext(0, &sni_data("peer.test"))]);
    let mut body = tls[..35].to_vec();
    body.push(0);
    body.extend_from_slice(&tls[35..]);
    let mut hs = vec![1];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&[0, 0, 0, 0, 0]);
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut record = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0];
    record.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    record.extend_from_slice(&hs);
    assert_eq!(app.udp_datagram(&mut sh, R, &record, 10), Outcome::Continue);
    app.close(&mut sh, 11);
    assert_eq!(tls_snis(&sh), ["peer.test"]);
    assert_eq!(app.service(), Some("stun"));
}

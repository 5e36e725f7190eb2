//! The TLS dissector on synthetic handshakes.

use super::testutil::*;
use super::*;
use crate::dissect::{Probe, ProbeInput};
use sha2::{Digest as _, Sha256};

const RSA_DER: &[u8] = include_bytes!("testdata/rsa.der");
const EC_DER: &[u8] = include_bytes!("testdata/ec.der");

fn run(calls: &[(Direction, Vec<u8>)]) -> (Vec<TlsRecord>, Vec<&'static str>, Want) {
    run_with(Limits::default(), calls)
}

fn run_with(
    limits: Limits,
    calls: &[(Direction, Vec<u8>)],
) -> (Vec<TlsRecord>, Vec<&'static str>, Want) {
    let mut d = Tls::new(limits);
    let mut out = Vec::new();
    let mut anomalies = Vec::new();
    let mut want = Want::More;
    {
        let mut cx = Context {
            ts_us: 7,
            out: &mut out,
            anomalies: &mut anomalies,
        };
        for (dir, bytes) in calls {
            want = d.data(&mut cx, *dir, bytes);
        }
        d.close(&mut cx);
    }
    let recs = out
        .into_iter()
        .map(|e| match e.event {
            AppEvent::Tls(r) => r,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    (recs, anomalies, want)
}

const C: Direction = Direction::Originator;
const S: Direction = Direction::Responder;

fn cert_msg(ders: &[&[u8]]) -> Vec<u8> {
    let mut list = Vec::new();
    for d in ders {
        list.extend_from_slice(&(d.len() as u32).to_be_bytes()[1..]);
        list.extend_from_slice(d);
    }
    let mut body = (list.len() as u32).to_be_bytes()[1..].to_vec();
    body.extend(list);
    handshake(11, &body)
}

fn tls12_server_flight(session_id: &[u8]) -> Vec<u8> {
    let sh = server_hello_body(
        0x0303,
        [3; 32],
        session_id,
        0xc02f,
        &[ext(0xff01, &[0]), ext(0x0010, &alpn_data(&[b"h2"]))],
    );
    let mut hs = handshake(2, &sh);
    hs.extend(cert_msg(&[RSA_DER, EC_DER]));
    hs.extend(handshake(14, &[]));
    record(22, &hs)
}

#[test]
fn probe_accepts_hellos_and_rejects_other_protocols() {
    let ch = record(22, &handshake(1, &ja4_spec_hello()));
    assert_eq!(probe_bytes(&ch), Probe::Match);
    for n in 0..11 {
        assert_eq!(probe_bytes(&ch[..n]), Probe::NeedMore, "{n}");
    }
    let sh = tls12_server_flight(&[]);
    assert_eq!(probe_bytes(&sh), Probe::Match);
    for other in [
        &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"\x00\x1d\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x01a\x00\x00\x01\x00\x01",
        b"\x17\x03\x03\x00\x20aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        b"\x16\x03\x03\x00\x40\x0b\x00\x00\x3c\x03\x03",
        b"\x16\x03\x03\x50\x00\x01\x00\x00\x3c\x03\x03",
        b"\x16\x03\x09\x00\x40\x01",
    ] {
        assert_eq!(probe_bytes(other), Probe::NoMatch, "{other:?}");
    }
    let input = ProbeInput {
        l4: L4::Udp,
        dir: C,
        ports: (1, 443),
        data: &ch,
    };
    assert_eq!(probe(&input), Probe::NoMatch);
}

#[test]
fn full_tls12_handshake_with_certificates() {
    let ch = record(22, &handshake(1, &ja4_spec_hello()));
    let (recs, anomalies, want) = run(&[
        (C, ch),
        (S, tls12_server_flight(&[])),
        (
            C,
            [
                record(22, &handshake(16, &[0; 33])),
                record(20, &[1]),
                record(22, &[9; 40]),
            ]
            .concat(),
        ),
        (S, [record(20, &[1]), record(22, &[9; 40])].concat()),
        (C, record(23, &[0; 100])),
    ]);
    assert!(anomalies.is_empty(), "{anomalies:?}");
    assert_eq!(want, Want::Done);
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert_eq!(r.version.as_deref(), Some("TLSv12"));
    assert_eq!(r.client_version.as_deref(), Some("TLSv13"));
    assert_eq!(r.sni.as_deref(), Some("example.com"));
    assert_eq!(r.alpn, vec!["h2", "http/1.1"]);
    assert_eq!(r.alpn_selected.as_deref(), Some("h2"));
    assert_eq!(
        r.cipher.as_deref(),
        Some("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")
    );
    assert_eq!(
        r.ja4.as_deref(),
        Some("t13d1516h2_8daaf6152771_e5627efa2ab1")
    );
    assert_eq!(r.ja3s_string.as_deref(), Some("771,49199,65281-16"));
    assert!(r.established);
    assert!(!r.resumed);
    assert_eq!(r.certs.len(), 2);
    let leaf = &r.certs[0];
    assert_eq!(
        leaf.subject,
        "CN=www.example.test,O=Example\\, Inc.,ST=Some State,C=US"
    );
    assert_eq!(leaf.issuer, leaf.subject);
    assert_eq!(leaf.san_dns, vec!["www.example.test", "example.test"]);
    assert_eq!(leaf.san_ip, vec!["192.0.2.7", "2001:db8::1"]);
    assert_eq!(leaf.serial, "C0FFEE01");
    assert_eq!(leaf.not_before, "2024-01-01T00:00:00Z");
    assert_eq!(leaf.not_after, "2025-01-01T12:30:05Z");
    assert_eq!(leaf.key_type, "rsa");
    assert_eq!(leaf.key_bits, 2048);
    let sha: String = Sha256::digest(RSA_DER)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(leaf.sha256, sha);
    let ec = &r.certs[1];
    assert_eq!(ec.subject, "O=Caf\\C3\\A9,CN=ec.example.test");
    assert_eq!(ec.serial, "2A");
    assert_eq!((ec.key_type.as_str(), ec.key_bits), ("ecdsa", 256));
}

#[test]
fn hello_split_across_records_and_byte_segments() {
    // One ClientHello in three records, delivered one byte at a time.
    let msg = handshake(1, &ja4_spec_hello());
    let third = msg.len() / 3;
    let stream = [
        record(22, &msg[..third]),
        record(22, &msg[third..2 * third]),
        record(22, &msg[2 * third..]),
    ]
    .concat();
    let calls: Vec<_> = stream.chunks(1).map(|b| (C, b.to_vec())).collect();
    let (recs, anomalies, _) = run(&calls);
    assert!(anomalies.is_empty());
    assert_eq!(recs.len(), 1);
    assert_eq!(
        recs[0].ja4.as_deref(),
        Some("t13d1516h2_8daaf6152771_e5627efa2ab1")
    );
    assert!(!recs[0].established);
}

#[test]
fn tls13_with_hello_retry_request_and_psk() {
    let ch = client_hello_body(
        0x0303,
        &[5; 32],
        &[0x1301, 0x1302],
        &[
            ext(0x0000, &sni_data("a.test")),
            ext(0x002b, &versions_data(&[0x0304])),
            ext(0xfe0d, &[0; 8]),
            ext(0x0029, &[0; 8]),
        ],
    );
    let hrr = server_hello_body(
        0x0303,
        hello::HRR_RANDOM,
        &[5; 32],
        0x1301,
        &[ext(0x002b, &[3, 4])],
    );
    let sh = server_hello_body(
        0x0303,
        [8; 32],
        &[5; 32],
        0x1302,
        &[ext(0x002b, &[3, 4]), ext(0x0029, &[0, 0])],
    );
    let (recs, anomalies, want) = run(&[
        (C, record(22, &handshake(1, &ch))),
        (
            S,
            [record(22, &handshake(2, &hrr)), record(20, &[1])].concat(),
        ),
        // Compatibility ChangeCipherSpec, then the second ClientHello.
        (
            C,
            [record(20, &[1]), record(22, &handshake(1, &ch))].concat(),
        ),
        (
            S,
            [record(22, &handshake(2, &sh)), record(23, &[0; 50])].concat(),
        ),
        (C, record(23, &[0; 50])),
    ]);
    assert!(anomalies.is_empty(), "{anomalies:?}");
    assert_eq!(want, Want::Done);
    let r = &recs[0];
    assert!(r.hello_retry_request);
    assert!(r.ech);
    assert!(r.resumed, "PSK accepted");
    assert!(r.established);
    assert_eq!(r.version.as_deref(), Some("TLSv13"));
    assert_eq!(r.cipher.as_deref(), Some("TLS_AES_256_GCM_SHA384"));
    // Echoing the session id is not resumption in TLS 1.3.
    let sh_no_psk = server_hello_body(0x0303, [8; 32], &[5; 32], 0x1301, &[ext(0x002b, &[3, 4])]);
    let (recs, _, _) = run(&[
        (C, record(22, &handshake(1, &ch))),
        (S, record(22, &handshake(2, &sh_no_psk))),
    ]);
    assert!(!recs[0].resumed);
}

#[test]
fn tls12_resumption_rules() {
    let ch = |sid: &[u8]| {
        record(
            22,
            &handshake(1, &client_hello_body(0x0303, sid, &[0xc02f], &[])),
        )
    };
    let sh = |sid: &[u8]| {
        record(
            22,
            &handshake(2, &server_hello_body(0x0303, [1; 32], sid, 0xc02f, &[])),
        )
    };
    // Session id echoed.
    let (recs, _, _) = run(&[
        (C, ch(&[4; 32])),
        (S, [sh(&[4; 32]), record(20, &[1])].concat()),
    ]);
    assert!(recs[0].resumed);
    // New session id, but an abbreviated handshake (ticket).
    let (recs, _, _) = run(&[
        (C, ch(&[4; 32])),
        (S, [sh(&[6; 32]), record(20, &[1])].concat()),
    ]);
    assert!(recs[0].resumed);
    // Full handshake.
    let (recs, _, _) = run(&[(C, ch(&[4; 32])), (S, tls12_server_flight(&[6; 32]))]);
    assert!(!recs[0].resumed);
    assert_eq!(recs[0].certs.len(), 2);
}

#[test]
fn alerts_are_recorded() {
    let ch = record(22, &handshake(1, &ja4_spec_hello()));
    let (recs, anomalies, _) = run(&[(C, ch), (S, record(21, &[2, 40]))]);
    assert!(anomalies.is_empty());
    let r = &recs[0];
    assert_eq!(r.alerts_total, 1);
    assert_eq!(r.alerts[0].from, "server");
    assert_eq!(r.alerts[0].level, "fatal");
    assert_eq!(r.alerts[0].description, "handshake_failure");
    assert_eq!(r.last_alert.as_deref(), Some("handshake_failure"));
    assert!(!r.established);
}

#[test]
fn gaps_and_garbage_give_up_gracefully() {
    let ch = record(22, &handshake(1, &ja4_spec_hello()));
    // A gap in the server's stream: what the client said is kept.
    let mut d = Tls::new(Limits::default());
    let mut out = Vec::new();
    let mut anomalies = Vec::new();
    let mut cx = Context {
        ts_us: 1,
        out: &mut out,
        anomalies: &mut anomalies,
    };
    assert_eq!(d.data(&mut cx, C, &ch), Want::More);
    assert_eq!(d.gap(&mut cx, S, 100), Want::More);
    assert_eq!(d.gap(&mut cx, C, 100), Want::More);
    // After a hole, data that starts no record header gives the side up.
    assert_eq!(d.data(&mut cx, S, b"\x17\x09garbage"), Want::More);
    assert_eq!(d.data(&mut cx, C, b"more garbage"), Want::Done);
    d.close(&mut cx);
    assert_eq!(out.len(), 1, "emitted once");
    // A server speaking something else.
    let (recs, anomalies, want) = run(&[
        (C, ch.clone()),
        (S, b"HTTP/1.1 400 Bad Request\r\n".to_vec()),
    ]);
    assert_eq!(anomalies, vec!["bad_record_header"]);
    assert_eq!(recs.len(), 1);
    assert_eq!(want, Want::More);
    // Nothing recognisable: no record.
    let (recs, _, _) = run(&[(C, b"\x16\x03\x01\x00\x05\x0b\x00\x00\x01\x00".to_vec())]);
    assert!(recs.is_empty());
}

#[test]
fn records_resume_after_a_hole_that_ends_at_a_record_start() {
    let ch = record(22, &handshake(1, &ja4_spec_hello()));
    let flight = tls12_server_flight(&[]);
    let mut d = Tls::new(Limits::default());
    let mut out = Vec::new();
    let mut anomalies = Vec::new();
    let mut cx = Context {
        ts_us: 1,
        out: &mut out,
        anomalies: &mut anomalies,
    };
    d.data(&mut cx, C, &ch);
    // The server's stream jumps (a lost segment, or sequence numbers that
    // do not follow its SYN-ACK): its next record is still read.
    d.gap(&mut cx, S, 1_180_489_186);
    d.data(&mut cx, S, &flight);
    d.close(&mut cx);
    let AppEvent::Tls(r) = &out[0].event else {
        panic!("not tls: {:?}", out[0].event)
    };
    assert_eq!(
        r.cipher.as_deref(),
        Some("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")
    );
    assert!(r.ja3s.is_some());
    assert_eq!(r.certs.len(), 2);
    assert!(anomalies.is_empty(), "{anomalies:?}");
}

#[test]
fn handshake_cap_is_respected() {
    let limits = Limits {
        max_pending_transactions: 4,
        max_buffered_bytes: 200,
    };
    let msg = handshake(1, &ja4_spec_hello());
    let (recs, anomalies, _) = run_with(limits, &[(C, record(22, &msg))]);
    assert!(recs.is_empty());
    assert_eq!(anomalies, vec!["handshake_too_large"]);
    // A declared length over the cap is refused before buffering it.
    let (_, anomalies, _) = run_with(limits, &[(C, record(22, &[1, 0, 0x40, 0]))]);
    assert_eq!(anomalies, vec!["handshake_too_large"]);
}

#[test]
fn fuzz_entry_points_survive_truncations() {
    let stream = [
        record(22, &handshake(1, &ja4_spec_hello())),
        tls12_server_flight(&[1; 32]),
    ]
    .concat();
    for n in (0..stream.len()).step_by(7) {
        fuzz_input(&stream[..n]);
        fuzz_input(&stream[n..]);
    }
}

#[test]
fn sslv2_client_hello_then_tls_server() {
    // SSLv2-format hello offering TLS 1.0: two v3 suites and one v2 spec.
    let mut msg = vec![1, 3, 1, 0, 9, 0, 0, 0, 16];
    msg.extend_from_slice(&[0, 0, 0x39, 0, 0, 0x2f, 0x07, 0x00, 0xc0]);
    msg.extend_from_slice(&[0xaa; 16]);
    let mut v2 = vec![0x80 | (msg.len() >> 8) as u8, msg.len() as u8];
    v2.extend_from_slice(&msg);
    assert_eq!(probe_bytes(&v2), Probe::Match);
    assert_eq!(
        probe_bytes(b"\x80\x05\x02\x00\x02\x00\x00\x00\x00\x00\x00"),
        Probe::NoMatch
    );
    let sh = server_hello_body(0x0301, [1; 32], &[], 0x0039, &[ext(0xff01, &[0])]);
    let calls: Vec<_> = v2.chunks(1).map(|b| (C, b.to_vec())).collect();
    let mut calls = calls;
    calls.push((S, record(22, &handshake(2, &sh))));
    let (recs, anomalies, _) = run(&calls);
    assert!(anomalies.is_empty(), "{anomalies:?}");
    let r = &recs[0];
    assert_eq!(r.client_version.as_deref(), Some("TLSv10"));
    assert_eq!(r.version.as_deref(), Some("TLSv10"));
    assert_eq!(r.ja3, None, "no JA3 for an SSLv2-format hello");
    assert_eq!(r.ja3s_string.as_deref(), Some("769,57,65281"));
}

#[test]
fn a_client_hello_repeated_before_any_server_hello_gets_its_own_record() {
    let hello = |sni: &str| {
        record(
            22,
            &handshake(
                1,
                &client_hello_body(0x0303, &[], &[0xc02f], &[ext(0, &sni_data(sni))]),
            ),
        )
    };
    let (recs, anomalies, _) = run(&[
        (C, hello("first.test")),
        (C, hello("second.test")),
        (S, tls12_server_flight(&[])),
    ]);
    assert!(anomalies.is_empty(), "{anomalies:?}");
    let snis: Vec<_> = recs.iter().map(|r| r.sni.as_deref()).collect();
    assert_eq!(snis, [Some("first.test"), Some("second.test")]);
    // The server answered the second.
    assert_eq!(recs[0].ja3s, None);
    assert!(recs[1].ja3s.is_some());
    // Bounded: a flood of hellos gives at most max_pending_transactions
    // extra records.
    let limits = Limits {
        max_pending_transactions: 2,
        ..Limits::default()
    };
    let flood: Vec<_> = (0..10).map(|_| (C, hello("x.test"))).collect();
    let (recs, _, _) = run_with(limits, &flood);
    assert_eq!(recs.len(), 3);
}

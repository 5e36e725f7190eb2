//! The DTLS dissector on synthetic datagrams.

use super::*;
use crate::dissect::tls::testutil::{client_hello_body, ext, server_hello_body, sni_data};

const C: Direction = Direction::Originator;
const S: Direction = Direction::Responder;

/// A DTLS ClientHello body: the TLS one with an empty (or given) cookie
/// after the session id.
fn dtls_client_hello(cookie: &[u8], sni: &str) -> Vec<u8> {
    let tls = client_hello_body(0xfefd, &[], &[0xc02b, 0xc02f], &[ext(0, &sni_data(sni))]);
    // Version (2), random (32), session id length (1) and its empty id.
    let mut b = tls[..35].to_vec();
    b.push(cookie.len() as u8);
    b.extend_from_slice(cookie);
    b.extend_from_slice(&tls[35..]);
    b
}

/// One handshake fragment: type, total length, message_seq, offset, bytes.
fn fragment(typ: u8, total: usize, seq: u16, offset: usize, bytes: &[u8]) -> Vec<u8> {
    let mut v = vec![typ];
    v.extend_from_slice(&(total as u32).to_be_bytes()[1..]);
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&(offset as u32).to_be_bytes()[1..]);
    v.extend_from_slice(&(bytes.len() as u32).to_be_bytes()[1..]);
    v.extend_from_slice(bytes);
    v
}

fn message(typ: u8, seq: u16, body: &[u8]) -> Vec<u8> {
    fragment(typ, body.len(), seq, 0, body)
}

/// A DTLS record: type, version, epoch, sequence number, length, body.
fn record(ct: u8, epoch: u16, body: &[u8]) -> Vec<u8> {
    let mut v = vec![ct, 0xfe, 0xfd];
    v.extend_from_slice(&epoch.to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 0, 0, 1]);
    v.extend_from_slice(&(body.len() as u16).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn run(limits: Limits, datagrams: &[(Direction, Vec<u8>)]) -> (Vec<TlsRecord>, Vec<&'static str>) {
    let mut d = Dtls::new(limits);
    let (mut out, mut anomalies) = (Vec::new(), Vec::new());
    let mut cx = Context {
        ts_us: 5,
        out: &mut out,
        anomalies: &mut anomalies,
    };
    for (dir, dg) in datagrams {
        if d.data(&mut cx, *dir, dg) == Want::Done {
            break;
        }
    }
    d.close(&mut cx);
    let recs = out
        .into_iter()
        .map(|e| match e.event {
            AppEvent::Tls(r) => r,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    (recs, anomalies)
}

fn server_hello() -> Vec<u8> {
    server_hello_body(0xfefd, [9; 32], &[], 0xc02f, &[ext(0xff01, &[0])])
}

#[test]
fn the_probe_wants_a_dtls_record_header() {
    let p = |d: &[u8], l4| {
        probe(&ProbeInput {
            l4,
            dir: C,
            ports: (5000, 6000),
            data: d,
        })
    };
    let ch = record(22, 0, &message(1, 0, &dtls_client_hello(&[], "a.test")));
    assert_eq!(p(&ch, L4::Udp), Probe::Match);
    assert_eq!(p(&ch, L4::Tcp), Probe::NoMatch);
    // The length must fit the datagram.
    assert_eq!(p(&ch[..ch.len() - 1], L4::Udp), Probe::NoMatch);
    let mut tls_version = ch.clone();
    tls_version[1] = 3;
    assert_eq!(p(&tls_version, L4::Udp), Probe::NoMatch);
    let mut bad_type = ch.clone();
    bad_type[0] = 26;
    assert_eq!(p(&bad_type, L4::Udp), Probe::NoMatch);
    assert_eq!(p(b"\x16\xfe\xfd", L4::Udp), Probe::NoMatch);
}

#[test]
fn hello_verify_then_cookie_hello_then_server_flight() {
    let hvr = [0xfe, 0xff, 2, 0xaa, 0xbb];
    let (recs, anomalies) = run(
        Limits::default(),
        &[
            (
                C,
                record(22, 0, &message(1, 0, &dtls_client_hello(&[], "first.test"))),
            ),
            (S, record(22, 0, &message(3, 0, &hvr))),
            (
                C,
                record(
                    22,
                    0,
                    &message(1, 1, &dtls_client_hello(&[0xaa, 0xbb], "retry.test")),
                ),
            ),
            // A retransmission of the retry is ignored.
            (
                C,
                record(
                    22,
                    0,
                    &message(1, 1, &dtls_client_hello(&[1], "again.test")),
                ),
            ),
            (
                S,
                [
                    record(22, 0, &message(2, 1, &server_hello())),
                    record(20, 0, &[1]),
                ]
                .concat(),
            ),
            (C, [record(20, 0, &[1]), record(22, 1, &[0; 40])].concat()),
        ],
    );
    assert!(anomalies.is_empty(), "{anomalies:?}");
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert_eq!(r.sni.as_deref(), Some("retry.test"));
    assert_eq!(r.version.as_deref(), Some("DTLSv12"));
    assert_eq!(
        r.cipher.as_deref(),
        Some("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")
    );
    assert!(r.established);
    // JA3 and JA4 of a DTLS hello: the legacy version (65277); JA4 starts with the transport `d` and the version `d2`.
    assert!(
        r.ja3_string
            .as_deref()
            .is_some_and(|s| s.starts_with("65277,49195-49199,0,"))
    );
    assert!(
        r.ja4.as_deref().is_some_and(|s| s.starts_with("dd2d0201")),
        "{:?}",
        r.ja4
    );
    assert_eq!(r.ja3s_string.as_deref(), Some("65277,49199,65281"));
}

#[test]
fn fragments_out_of_order_are_reassembled_and_the_client_may_be_the_responder() {
    let body = dtls_client_hello(&[], "frag.test");
    let (a, b) = body.split_at(40);
    let (recs, anomalies) = run(
        Limits::default(),
        &[
            // The side that sent first (STUN in WebRTC) is the DTLS server.
            (S, record(22, 0, &fragment(1, body.len(), 0, 40, b))),
            (S, record(22, 0, &fragment(1, body.len(), 0, 0, a))),
            (C, record(22, 0, &message(2, 0, &server_hello()))),
        ],
    );
    assert!(anomalies.is_empty(), "{anomalies:?}");
    assert_eq!(recs[0].sni.as_deref(), Some("frag.test"));
    assert!(recs[0].ja3s.is_some());
    assert!(!recs[0].established);
}

#[test]
fn dtls13_unified_header_records_count_as_encrypted() {
    let sh = server_hello_body(0xfefd, [9; 32], &[], 0x1301, &[ext(0x002b, &[0xfe, 0xfc])]);
    let (recs, _) = run(
        Limits::default(),
        &[
            (
                C,
                record(22, 0, &message(1, 0, &dtls_client_hello(&[], "x"))),
            ),
            (
                S,
                [
                    record(22, 0, &message(2, 0, &sh)),
                    vec![0x2c, 0x00, 0x05, 1, 2, 3, 4, 5],
                ]
                .concat(),
            ),
            (C, vec![0x2c, 0x00, 0x02, 1, 2]),
        ],
    );
    assert_eq!(recs[0].version.as_deref(), Some("DTLSv13"));
    assert!(recs[0].established);
}

#[test]
fn after_a_hello_retry_request_the_retried_hello_is_reported() {
    let hrr = server_hello_body(
        0xfefd,
        hello::HRR_RANDOM,
        &[],
        0x1301,
        &[ext(0x002b, &[0xfe, 0xfc]), ext(0x002c, &[0, 2, 1, 2])],
    );
    let sh = server_hello_body(0xfefd, [9; 32], &[], 0x1301, &[ext(0x002b, &[0xfe, 0xfc])]);
    let (recs, _) = run(
        Limits::default(),
        &[
            (
                C,
                record(22, 0, &message(1, 0, &dtls_client_hello(&[], "first"))),
            ),
            (S, record(22, 0, &message(2, 0, &hrr))),
            (
                C,
                record(22, 0, &message(1, 1, &dtls_client_hello(&[], "retry"))),
            ),
            (S, record(22, 0, &message(2, 1, &sh))),
            // Retransmitted with a new message_seq: not a new hello.
            (
                C,
                record(22, 0, &message(1, 2, &dtls_client_hello(&[], "late"))),
            ),
        ],
    );
    assert_eq!(recs[0].sni.as_deref(), Some("retry"));
    assert!(recs[0].hello_retry_request);
    assert_eq!(recs[0].ja3s_string.as_deref(), Some("65277,4865,43"));
}

#[test]
fn hostile_records_and_fragments_are_counted_and_bounded() {
    let limits = Limits {
        max_pending_transactions: 2,
        max_buffered_bytes: 1024,
    };
    let (recs, anomalies) = run(
        limits,
        &[
            (C, vec![0x16, 0xfe]),
            (C, vec![0x17, 0x03, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            (C, record(22, 0, &[1, 0, 0])),
            // Beyond its stated length.
            (C, record(22, 0, &fragment(1, 10, 0, 8, &[0; 4]))),
            // Too large to buffer.
            (C, record(22, 0, &fragment(1, 5000, 1, 0, &[0; 10]))),
            // Three partial messages with a cap of two.
            (C, record(22, 0, &fragment(1, 100, 2, 0, &[0; 10]))),
            (C, record(22, 0, &fragment(1, 100, 3, 0, &[0; 10]))),
            (C, record(22, 0, &fragment(1, 100, 4, 0, &[0; 10]))),
            (C, record(22, 0, &message(1, 5, &[1, 2, 3]))),
        ],
    );
    assert!(recs.is_empty());
    assert_eq!(
        anomalies,
        [
            "truncated_record",
            "bad_record_header",
            "truncated_fragment",
            "bad_fragment",
            "handshake_too_large",
            "too_many_partial_messages",
            "malformed_client_hello",
        ]
    );
}

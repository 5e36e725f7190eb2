//! Unit tests of the TCP tracker against Zeek's behaviour.

use super::*;
use Direction::{Originator as O, Responder as R};

fn hinted(src_port: u16, dst_port: u16) -> TcpConnection {
    let likely = |p| crate::config::DEFAULT_LIKELY_SERVER_PORTS_TCP.contains(&p);
    TcpConnection::with_ports(PortHint {
        src_port,
        dst_port,
        src_likely_server: likely(src_port),
        dst_likely_server: likely(dst_port),
    })
}

const A: u8 = ACK;
const PA: u8 = ACK | 0x08;

/// A segment with a fixed window and a good checksum (the property tests
/// build theirs with it too).
pub(super) fn seg(flags: u8, seq: u32, ack: u32, len: u32) -> TcpSegment {
    TcpSegment {
        flags,
        seq,
        ack,
        window: 1024,
        payload_len: len,
        checksum_ok: Some(true),
    }
}

/// Feeds (direction, segment) pairs, returning how many flips were reported.
fn feed(c: &mut TcpConnection, segs: &[(Direction, TcpSegment)]) -> usize {
    segs.iter()
        .filter(|(d, s)| c.on_segment(*d, s) == RoleChange::Flip)
        .count()
}

fn handshake(c: &mut TcpConnection) {
    feed(
        c,
        &[
            (O, seg(SYN, 100, 0, 0)),
            (R, seg(SYN | A, 500, 101, 0)),
            (O, seg(A, 101, 501, 0)),
        ],
    );
}

#[test]
fn full_connection_is_sf_with_sequence_sizes() {
    let mut c = TcpConnection::new();
    handshake(&mut c);
    assert!(!c.is_closed());
    feed(
        &mut c,
        &[
            (O, seg(PA, 101, 501, 10)),
            (R, seg(A, 501, 111, 0)),
            (R, seg(PA, 501, 111, 20)),
            (O, seg(FIN | A, 111, 521, 0)),
            (R, seg(FIN | A, 521, 112, 0)),
            (O, seg(A, 112, 522, 0)),
        ],
    );
    assert_eq!((c.history(), c.conn_state()), ("ShADadFf", "SF"));
    assert_eq!(
        (c.payload_bytes(O), c.payload_bytes(R), c.missed_bytes()),
        (10, 20, 0)
    );
    assert!(c.is_closed() && c.both_closed());
}

#[test]
fn established_only_is_s1() {
    let mut c = TcpConnection::new();
    handshake(&mut c);
    assert_eq!((c.history(), c.conn_state()), ("ShA", "S1"));
    assert!(!c.awaiting_reply());
}

#[test]
fn unanswered_syn_is_s0_and_awaits_reply() {
    let mut c = TcpConnection::new();
    feed(&mut c, &[(O, seg(SYN, 7, 0, 0)), (O, seg(SYN, 7, 0, 0))]);
    assert_eq!((c.history(), c.conn_state()), ("S", "S0"));
    assert!(c.awaiting_reply() && !c.is_closed());
    // A SYN with a new ISN is a new connection (Zeek's IsReuse); fed
    // anyway, it restarts the numbering, so no second 'S' (as in Zeek).
    assert!(c.is_reuse(&seg(SYN, 9, 0, 0)) && !c.is_reuse(&seg(SYN, 7, 0, 0)));
    feed(&mut c, &[(O, seg(SYN, 9, 0, 0))]);
    assert_eq!(c.history(), "S");
    // After a close, a SYN at a new relative sequence repeats the letter.
    feed(&mut c, &[(O, seg(FIN, 10, 0, 0)), (O, seg(SYN, 20, 0, 0))]);
    assert_eq!(c.history(), "SFS");
}

#[test]
fn resets_in_every_position() {
    type Case<'a> = (&'a [(Direction, TcpSegment)], &'a str, &'a str);
    let cases: [Case; 7] = [
        (
            &[(O, seg(SYN, 1, 0, 0)), (R, seg(RST | A, 0, 2, 0))],
            "Sr",
            "REJ",
        ),
        (
            &[(O, seg(SYN, 1, 0, 0)), (O, seg(RST, 2, 0, 0))],
            "SR",
            "RSTOS0",
        ),
        (&[(O, seg(RST, 1, 0, 0))], "R", "OTH"),
        (
            &[(R, seg(SYN | A, 9, 2, 0)), (R, seg(RST, 10, 0, 0))],
            "hr",
            "RSTRH",
        ),
        (
            &[
                (O, seg(SYN, 1, 0, 0)),
                (R, seg(A, 0, 0, 0)),
                (O, seg(FIN, 2, 0, 0)),
                (O, seg(RST, 2, 0, 0)),
            ],
            "SaFR",
            "OTH",
        ),
        (
            &[
                (O, seg(SYN, 1, 0, 0)),
                (R, seg(SYN | A, 9, 2, 0)),
                (O, seg(RST | A, 2, 10, 0)),
            ],
            "ShR",
            "RSTO",
        ),
        (
            &[
                (O, seg(SYN, 1, 0, 0)),
                (R, seg(SYN | A, 9, 2, 0)),
                (O, seg(A, 2, 10, 0)),
                (R, seg(RST, 10, 0, 0)),
            ],
            "ShAr",
            "RSTR",
        ),
    ];
    for (segs, history, state) in cases {
        let mut c = TcpConnection::new();
        feed(&mut c, segs);
        assert_eq!((c.history(), c.conn_state()), (history, state), "{segs:?}");
        assert!(c.is_closed());
    }
}

#[test]
fn rst_after_both_fins_keeps_sf_and_fin_rst_is_i() {
    let mut c = TcpConnection::new();
    handshake(&mut c);
    feed(
        &mut c,
        &[
            (O, seg(FIN | A, 101, 501, 0)),
            (R, seg(FIN | A, 501, 102, 0)),
            (O, seg(RST, 102, 0, 0)),
        ],
    );
    assert_eq!((c.history(), c.conn_state()), ("ShAFfR", "SF"));
    let mut c = TcpConnection::new();
    handshake(&mut c);
    feed(&mut c, &[(R, seg(FIN | RST, 501, 0, 0))]);
    assert_eq!((c.history(), c.conn_state()), ("ShAi", "RSTR"));
}

#[test]
fn half_open_closes_are_sh_and_shr() {
    let mut c = TcpConnection::new();
    feed(&mut c, &[(O, seg(SYN, 1, 0, 0)), (O, seg(FIN, 2, 0, 0))]);
    assert_eq!((c.history(), c.conn_state()), ("SF", "SH"));
    assert!(c.is_closed() && !c.both_closed());
    let mut c = TcpConnection::new();
    feed(
        &mut c,
        &[(R, seg(SYN | A, 9, 2, 0)), (R, seg(FIN | A, 10, 2, 0))],
    );
    assert_eq!((c.history(), c.conn_state()), ("hf", "SHR"));
    let mut c = TcpConnection::new();
    handshake(&mut c);
    feed(&mut c, &[(O, seg(FIN | A, 101, 501, 0))]);
    assert_eq!(c.conn_state(), "S2");
    feed(&mut c, &[(R, seg(A, 501, 102, 0))]);
    assert!(!c.is_closed());
}

#[test]
fn mid_stream_pickup_numbers_from_first_segment() {
    let mut c = TcpConnection::new();
    feed(
        &mut c,
        &[
            (O, seg(PA, 5000, 9000, 100)),
            (R, seg(PA, 9000, 5100, 50)),
            (O, seg(A, 5100, 9050, 0)),
        ],
    );
    assert_eq!((c.history(), c.conn_state()), ("DdA", "OTH"));
    assert_eq!(
        (c.payload_bytes(O), c.payload_bytes(R), c.missed_bytes()),
        (100, 50, 0)
    );
    // Acks for data never seen stretch the size but are not gaps for partial connections.
    feed(&mut c, &[(R, seg(A, 9050, 8100, 0))]);
    assert_eq!((c.payload_bytes(O), c.missed_bytes()), (3100, 0));
}

#[test]
fn flips_on_syn_ack_first() {
    // Port heuristic: a SYN-ACK from a likely server port flips at once.
    let mut c = hinted(80, 40000);
    assert_eq!(c.on_segment(O, &seg(SYN | A, 9, 2, 0)), RoleChange::Flip);
    assert_eq!(feed(&mut c, &[(O, seg(A, 2, 10, 0))]), 0);
    assert_eq!((c.history(), c.conn_state()), ("^hA", "S1"));
    // Without the heuristic, the ACK that follows flips (Zeek PR #2191).
    let mut c = TcpConnection::new();
    assert_eq!(c.on_segment(O, &seg(SYN | A, 9, 2, 0)), RoleChange::Keep);
    assert_eq!(c.on_segment(R, &seg(A, 2, 10, 0)), RoleChange::Flip);
    feed(&mut c, &[(O, seg(PA, 2, 10, 5)), (R, seg(PA, 10, 7, 4))]);
    assert_eq!((c.history(), c.conn_state()), ("^hADd", "S1"));
    assert_eq!((c.payload_bytes(O), c.payload_bytes(R)), (5, 4));
    // A SYN-ACK followed by a RST (stealth scan) keeps its roles.
    let mut c = TcpConnection::new();
    assert_eq!(
        feed(
            &mut c,
            &[(O, seg(SYN | A, 9, 2, 0)), (R, seg(RST, 2, 0, 0))]
        ),
        0
    );
    assert_eq!(c.history(), "Hr");
}

#[test]
fn flips_on_reordered_handshake_and_port_rules() {
    let mut c = TcpConnection::new();
    assert_eq!(c.on_segment(O, &seg(SYN | A, 9, 2, 0)), RoleChange::Keep);
    assert_eq!(c.on_segment(R, &seg(SYN, 1, 0, 0)), RoleChange::Flip);
    feed(&mut c, &[(O, seg(A, 2, 10, 0))]);
    assert_eq!((c.history(), c.conn_state()), ("Hs^A", "S1"));
    let first = |flags, src, dst| hinted(src, dst).on_segment(O, &seg(flags, 1, 1, 0));
    assert_eq!(first(SYN, 80, 1234), RoleChange::Keep); // a bare SYN never flips
    assert_eq!(first(A, 80, 1234), RoleChange::Flip);
    assert_eq!(first(A, 1234, 80), RoleChange::Keep);
    assert_eq!(first(A, 25, 80), RoleChange::Flip); // both likely: toward the lower port
    assert_eq!(first(A, 80, 25), RoleChange::Keep);
    assert_eq!(first(SYN | A, 25, 80), RoleChange::Keep);
}

#[test]
fn retransmissions_and_thresholds() {
    let mut c = TcpConnection::new();
    handshake(&mut c);
    feed(&mut c, &[(O, seg(PA, 101, 501, 10))]);
    let resend = seg(PA, 101, 501, 10);
    for (count, history) in [(1, "ShADT"), (9, "ShADTT"), (90, "ShADTTT")] {
        for _ in 0..count {
            c.on_segment(O, &resend);
        }
        assert_eq!(c.history(), history);
    }
    assert_eq!(c.payload_bytes(O), 10);
}

#[test]
fn zero_windows_and_checksum_errors_scale() {
    let mut c = TcpConnection::new();
    handshake(&mut c);
    let zero = TcpSegment {
        window: 0,
        ..seg(A, 501, 101, 0)
    };
    for _ in 0..10 {
        c.on_segment(R, &zero);
    }
    assert_eq!(c.history(), "ShAaww");
    let bad = TcpSegment {
        checksum_ok: Some(false),
        ..seg(PA, 101, 501, 10)
    };
    for _ in 0..100 {
        c.on_segment(O, &bad);
    }
    assert_eq!((c.history(), c.payload_bytes(O)), ("ShAawwCCC", 0));
    // Zero windows after the peer's FIN are not interesting.
    feed(&mut c, &[(O, seg(FIN | A, 101, 501, 0))]);
    c.on_segment(R, &zero);
    assert_eq!(c.history(), "ShAawwCCCF");
}

#[test]
fn sizes_follow_sequence_wraparound() {
    let isn = u32::MAX - 10;
    let mut c = TcpConnection::new();
    feed(
        &mut c,
        &[
            (O, seg(SYN, isn, 0, 0)),
            (R, seg(SYN | A, 500, isn.wrapping_add(1), 0)),
        ],
    );
    let mut seq = isn.wrapping_add(1);
    for _ in 0..3 {
        c.on_segment(O, &seg(PA, seq, 501, 1000));
        seq = seq.wrapping_add(1000);
    }
    feed(
        &mut c,
        &[
            (R, seg(A, 501, seq, 0)),
            (O, seg(FIN | A, seq, 501, 0)),
            (R, seg(FIN | A, 501, seq.wrapping_add(1), 0)),
        ],
    );
    assert_eq!(
        (c.history(), c.conn_state(), c.payload_bytes(O)),
        ("ShDaFf", "SF", 3000)
    );
    assert_eq!(c.missed_bytes(), 0);
}

#[test]
fn acked_holes_are_missed_bytes() {
    let mut c = TcpConnection::new();
    handshake(&mut c);
    // Bytes 1..=100 never seen; 101..=150 seen above the hole, then acked.
    feed(
        &mut c,
        &[(O, seg(PA, 201, 501, 50)), (R, seg(A, 501, 251, 0))],
    );
    assert_eq!((c.history(), c.missed_bytes()), ("ShADaG", 100));
    // Truncated capture: payload unavailable, so acked data is missed.
    let cut = TcpSegment {
        checksum_ok: None,
        ..seg(PA, 501, 251, 40)
    };
    feed(&mut c, &[(R, cut), (O, seg(A, 251, 541, 0))]);
    assert_eq!((c.history(), c.missed_bytes()), ("ShADaGdg", 140));
    // An ack covering the FIN does not count the FIN octet.
    feed(
        &mut c,
        &[(R, seg(FIN | A, 541, 251, 0)), (O, seg(A, 251, 542, 0))],
    );
    assert_eq!((c.missed_bytes(), c.payload_bytes(R)), (140, 40));
}

#[test]
fn syn_with_payload_counts_data_after_syn() {
    let mut c = TcpConnection::new();
    feed(
        &mut c,
        &[
            (O, seg(SYN, 1, 0, 20)),
            (R, seg(SYN | A, 9, 22, 0)),
            (O, seg(A, 22, 10, 0)),
        ],
    );
    // Zeek marks SYN payload as a retransmission ('T'), a known quirk.
    assert_eq!(
        (c.history(), c.payload_bytes(O), c.missed_bytes()),
        ("SThA", 20, 0)
    );
}

#[test]
fn arbitrary_segments_never_panic() {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..2_000 {
        let mut c = if next() & 1 == 0 {
            TcpConnection::new()
        } else {
            hinted(80, 443)
        };
        let base = next() as u32;
        for _ in 0..(next() % 64) {
            let r = next();
            // Mostly near-base sequence numbers so states and wraps get exercised.
            let near = |x: u64| {
                if x & 3 == 0 {
                    x as u32
                } else {
                    base.wrapping_add((x % 4096) as u32)
                }
            };
            let s = TcpSegment {
                flags: (r >> 8) as u8,
                seq: near(next()),
                ack: near(next()),
                window: if r % 7 == 0 { 0 } else { r as u16 },
                payload_len: if r % 5 == 0 {
                    u32::MAX - (r % 3) as u32
                } else {
                    (r % 1500) as u32
                },
                checksum_ok: [Some(true), Some(false), None][(r % 3) as usize],
            };
            let dir = if r & 1 == 0 { O } else { R };
            let _ = (c.is_reuse(&s), c.awaiting_reply(), c.both_closed());
            c.on_segment(dir, &s);
            assert!(c.history().len() <= HISTORY_CAPACITY && c.history().is_ascii());
            let _ = (
                c.conn_state(),
                c.payload_bytes(O),
                c.payload_bytes(R),
                c.missed_bytes(),
                c.is_closed(),
            );
        }
    }
}

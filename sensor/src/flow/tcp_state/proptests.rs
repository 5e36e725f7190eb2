//! The established fast path against the general path: on the same
//! segments both leave identical trackers (every field) and report the same
//! role changes; the fast path takes exactly the segments it claims.

use super::endpoint::State;
use super::tests::seg;
use super::*;
use Direction::{Originator as O, Responder as R};
use proptest::prelude::*;

/// One generated segment, relative to where its direction's stream stands.
#[derive(Debug, Clone)]
struct Step {
    from_resp: bool,
    flags: u8,
    seq_jitter: i64,
    ack_jitter: i64,
    len: u32,
    window_zero: bool,
    checksum: Option<bool>,
}

fn flags() -> impl Strategy<Value = u8> {
    prop_oneof![
        8 => Just(ACK),
        8 => Just(ACK | 0x08),
        2 => Just(SYN),
        2 => Just(SYN | ACK),
        2 => Just(FIN | ACK),
        1 => Just(RST),
        1 => Just(RST | ACK),
        1 => Just(0u8),
        1 => any::<u8>(),
    ]
}

fn jitter() -> impl Strategy<Value = i64> {
    prop_oneof![
        8 => Just(0i64),
        3 => -3000i64..3000,
        1 => any::<u32>().prop_map(i64::from),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    (
        any::<bool>(),
        flags(),
        jitter(),
        jitter(),
        prop_oneof![3 => Just(0u32), 6 => 1u32..1500, 1 => 16_000u32..70_000],
        prop::bool::weighted(0.25),
        prop_oneof![8 => Just(Some(true)), 1 => Just(None), 1 => Just(Some(false))],
    )
        .prop_map(
            |(from_resp, flags, seq_jitter, ack_jitter, len, window_zero, checksum)| Step {
                from_resp,
                flags,
                seq_jitter,
                ack_jitter,
                len,
                window_zero,
                checksum,
            },
        )
}

fn isn() -> impl Strategy<Value = u32> {
    prop_oneof![any::<u32>(), (u32::MAX - 5000)..=u32::MAX]
}

/// Feeds `steps` (after a handshake if `handshake`) to a tracker through
/// `on_segment` and to a copy through the general path only, comparing them
/// after every segment. Returns how many segments took the fast path.
fn compare(isns: (u32, u32), handshake: bool, hinted: bool, steps: &[Step]) -> usize {
    let hint = PortHint {
        src_port: 443,
        dst_port: 50_000,
        src_likely_server: true,
        dst_likely_server: false,
    };
    let mut fast = if hinted {
        TcpConnection::with_ports(hint)
    } else {
        TcpConnection::new()
    };
    let mut general = fast.clone();
    let mut next = [isns.0, isns.1];
    let mut segs: Vec<(Direction, TcpSegment)> = Vec::new();
    if handshake {
        let (o, r) = (isns.0, isns.1);
        segs.push((O, seg(SYN, o, 0, 0)));
        segs.push((R, seg(SYN | ACK, r, o.wrapping_add(1), 0)));
        segs.push((O, seg(ACK, o.wrapping_add(1), r.wrapping_add(1), 0)));
        next = [o.wrapping_add(1), r.wrapping_add(1)];
    }
    for st in steps {
        let (dir, me, peer) = if st.from_resp { (R, 1, 0) } else { (O, 0, 1) };
        let mut segment = seg(
            st.flags,
            shift(next[me], st.seq_jitter),
            shift(next[peer], st.ack_jitter),
            st.len,
        );
        segment.window = if st.window_zero { 0 } else { 1024 };
        segment.checksum_ok = st.checksum;
        let octets = st.len + u32::from(st.flags & SYN != 0) + u32::from(st.flags & FIN != 0);
        next[me] = segment.seq.wrapping_add(octets);
        segs.push((dir, segment));
    }
    let mut taken = 0;
    for (i, (dir, seg)) in segs.iter().enumerate() {
        let before = format!("{fast:?}");
        let mut probe = fast.clone();
        if probe.established_segment(*dir, seg) {
            taken += 1;
        } else {
            assert_eq!(
                format!("{probe:?}"),
                before,
                "segment {i}: declined but changed"
            );
        }
        let a = fast.on_segment(*dir, seg);
        let b = general.general_segment(*dir, seg);
        assert_eq!(a, b, "segment {i} {seg:?}: role change");
        assert_eq!(
            format!("{fast:?}"),
            format!("{general:?}"),
            "segment {i} {seg:?}"
        );
        assert_eq!(fast.conn_state(), general.conn_state());
        assert_eq!(fast.history(), general.history());
        assert_eq!(fast.payload_bytes(O), general.payload_bytes(O));
        assert_eq!(fast.payload_bytes(R), general.payload_bytes(R));
    }
    taken
}

fn shift(base: u32, by: i64) -> u32 {
    base.wrapping_add(by as u32)
}

proptest! {
    #[test]
    fn fast_path_matches_general_path(
        isns in (isn(), isn()),
        handshake in any::<bool>(),
        hinted in any::<bool>(),
        steps in prop::collection::vec(step(), 0..60),
    ) {
        compare(isns, handshake, hinted, &steps);
    }
}

#[test]
fn established_data_and_acks_take_the_fast_path() {
    let plain = |from_resp, flags, len| Step {
        from_resp,
        flags,
        seq_jitter: 0,
        ack_jitter: 0,
        len,
        window_zero: false,
        checksum: Some(true),
    };
    let steps = [
        plain(false, ACK | 0x08, 100),
        plain(true, ACK, 0),
        plain(true, ACK | 0x08, 1400),
        plain(false, ACK, 0),
    ];
    // The SYN-ACK establishes both sides: the handshake's ACK is fast too.
    assert_eq!(compare((1000, u32::MAX - 10), true, false, &steps), 5);
    // Retransmissions, gaps, a zero window and an unknown checksum too.
    let odd = [
        Step {
            seq_jitter: -100,
            ..plain(false, ACK, 100)
        },
        Step {
            seq_jitter: 5000,
            ..plain(true, ACK, 10)
        },
        Step {
            ack_jitter: 9000,
            ..plain(false, ACK, 0)
        },
        Step {
            window_zero: true,
            ..plain(true, ACK, 0)
        },
        Step {
            checksum: None,
            ..plain(false, ACK, 50)
        },
    ];
    assert_eq!(compare((7, 9), true, false, &odd), 6);
    // Without the handshake both sides are partial once each has spoken.
    assert_eq!(compare((7, 9), false, false, &steps), 2);
    // The first segment, from a server port, flips the roles: the second
    // comes from the same endpoint, so only the last two are fast.
    assert_eq!(compare((u32::MAX, 0), false, true, &odd), 2);
}

#[test]
fn other_segments_take_the_general_path() {
    let mut c = TcpConnection::new();
    let before = format!("{c:?}");
    // Not established yet.
    assert!(!c.established_segment(O, &seg(ACK, 1, 1, 10)));
    assert_eq!(format!("{c:?}"), before);
    c.on_segment(O, &seg(SYN, 100, 0, 0));
    c.on_segment(R, &seg(SYN | ACK, 500, 101, 0));
    c.on_segment(O, &seg(ACK, 101, 501, 0));
    assert_eq!(c.endpoints[0].state, State::Established);
    for flags in [SYN | ACK, FIN | ACK, RST | ACK, 0x08, 0] {
        assert!(!c.established_segment(R, &seg(flags, 501, 101, 0)));
    }
    let mut bad = seg(ACK, 501, 101, 0);
    bad.checksum_ok = Some(false);
    assert!(!c.established_segment(R, &bad));
    assert!(c.established_segment(R, &seg(ACK, 501, 101, 0)));
    assert_eq!(c.history(), "ShAa");
}

#[test]
fn acks_after_a_fin_take_the_fast_path() {
    let step = |from_resp, flags, len, window_zero| Step {
        from_resp,
        flags,
        seq_jitter: 0,
        ack_jitter: 0,
        len,
        window_zero,
        checksum: Some(true),
    };
    let steps = [
        step(false, ACK | 0x08, 100, false),
        step(true, FIN | ACK, 0, false),
        // A zero window toward a closed peer adds no W.
        step(false, ACK, 0, true),
        step(true, ACK, 0, true),
        step(false, FIN | ACK, 0, false),
        step(true, ACK, 0, false),
    ];
    // The handshake's ACK, the data, and the three ACKs after a FIN.
    assert_eq!(compare((5, 50), true, false, &steps), 5);
    let mut c = TcpConnection::new();
    for (dir, s) in [
        (O, seg(SYN, 5, 0, 0)),
        (R, seg(SYN | ACK, 50, 6, 0)),
        (O, seg(ACK, 6, 51, 0)),
        (R, seg(FIN | ACK, 51, 6, 0)),
    ] {
        c.on_segment(dir, &s);
    }
    let mut zero = seg(ACK, 6, 52, 0);
    zero.window = 0;
    assert!(c.established_segment(O, &zero));
    assert_eq!(c.history(), "ShAf");
    assert_eq!(c.conn_state(), "S3");
}

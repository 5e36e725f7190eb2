//! Unit tests of the reassembly caps: the per-stream segment and byte
//! caps, the per-worker budget, and floods of out-of-order segments, which
//! must stay within them. The stream builders are in the parent module.

use super::*;

#[test]
fn segment_cap_gives_up_the_oldest_hole() {
    let mut h = H::with(limits(100, 2), 100);
    h.syn();
    h.at(2, b"c");
    h.at(4, b"e");
    assert_eq!(h.text(), "");
    h.at(6, b"g");
    // The hole at 0..2 is given up; "c" follows it; 3 is the next hole.
    assert_eq!(h.text(), "[2]c");
    assert_eq!(h.stats.stream_cap_hits, 1);
    assert_eq!(h.s.held_segments(), 2);
    h.flush();
    assert_eq!(h.text(), "[2]c[1]e[1]g");
    assert_eq!(h.stats.gap_bytes, 4);
    assert_eq!(h.budget.used, 0);
}

#[test]
fn byte_cap_gives_up_the_oldest_hole() {
    let mut h = H::with(limits(4, 100), 100);
    h.syn();
    h.at(2, b"cc");
    h.at(5, b"fff");
    assert_eq!(h.text(), "[2]cc");
    assert_eq!(h.s.held_bytes(), 3);
    assert_eq!(h.stats.stream_cap_hits, 1);
    h.at(4, b"e");
    assert_eq!(h.text(), "[2]ccefff");
    assert_eq!(h.budget.used, 0);
}

#[test]
fn a_segment_larger_than_the_cap_is_delivered_after_a_gap() {
    let mut h = H::with(limits(2, 100), 100);
    h.syn();
    h.at(3, b"xyz");
    assert_eq!(h.got, [Got::Gap(3), Got::Data(b"xyz".to_vec())]);
    assert_eq!(h.stats.stream_cap_hits, 1);
    assert_eq!(h.budget.used, 0);
}

#[test]
fn nothing_is_held_with_caps_of_zero() {
    for lim in [limits(0, 100), limits(100, 0)] {
        let mut h = H::with(lim, 100);
        h.syn();
        h.at(2, b"cd");
        h.at(6, b"gh");
        h.at(0, b"ab");
        assert_eq!(h.text(), "[2]cd[2]gh");
        assert_eq!(h.s.held_segments(), 0);
    }
}

#[test]
fn an_exhausted_budget_turns_the_segment_into_a_gap_later() {
    let lim = limits(100, 100);
    let mut budget = Budget::new(5);
    let mut stats = Stats::default();
    let mut a = Stream::new();
    let mut b = Stream::new();
    let feed = |s: &mut Stream,
                budget: &mut Budget,
                stats: &mut Stats,
                seq: u32,
                flags: &str,
                p: &[u8]| {
        let mut got = Vec::new();
        let seg = Segment {
            seq,
            syn: flags.contains('S'),
            fin: false,
            rst: false,
            payload: p,
            claimed_len: p.len() as u32,
        };
        s.segment(&seg, &lim, budget, stats, &mut |c| {
            got.push(own(c));
            true
        });
        got
    };
    feed(&mut a, &mut budget, &mut stats, ISN, "S", b"");
    feed(&mut b, &mut budget, &mut stats, ISN, "S", b"");
    // a holds 4 of the 5 bytes.
    feed(&mut a, &mut budget, &mut stats, ISN + 3, "", b"dddd");
    assert_eq!(budget.used, 4);
    // b cannot hold 3 and has nothing of its own to give up: the bytes are
    // remembered as missing.
    feed(&mut b, &mut budget, &mut stats, ISN + 3, "", b"xyz");
    assert_eq!(b.held_bytes(), 0);
    assert_eq!(budget.used, 4);
    assert_eq!(stats.budget_cap_hits, 1);
    // When the hole before them fills, they are delivered as a gap.
    let got = feed(&mut b, &mut budget, &mut stats, ISN + 1, "", b"ab");
    assert_eq!(got, [Got::Data(b"ab".to_vec()), Got::Gap(3)]);
    // A retransmission of the bytes not kept is old by now.
    let got = feed(&mut b, &mut budget, &mut stats, ISN + 4, "", b"yz!");
    assert_eq!(got, [Got::Data(b"!".to_vec())]);
    // a, holding bytes, gives up its own hole to make room.
    let got = feed(&mut a, &mut budget, &mut stats, ISN + 9, "", b"ii");
    assert_eq!(got, [Got::Gap(2), Got::Data(b"dddd".to_vec())]);
    assert_eq!(stats.budget_cap_hits, 2);
    assert_eq!(a.held_bytes(), 2);
    assert_eq!(budget.used, 2);
    a.stop(&mut budget);
    b.stop(&mut budget);
    assert_eq!(budget.used, 0);
}

#[test]
fn flood_of_out_of_order_segments_stays_within_the_caps() {
    let lim = limits(256 * 1024, 512);
    let mut h = H::with(lim, 1 << 20);
    h.syn();
    // One hole at the start, then 20 000 segments of 100 bytes after it,
    // in a shuffled-looking order (a stride through the offsets).
    let n: u64 = 20_000;
    for i in 0..n {
        let k = (i * 7919) % n;
        h.at(100 + (k * 100) as u32, &[b'x'; 100]);
        assert!(h.s.held_bytes() <= lim.max_bytes);
        assert!(h.s.held_segments() <= lim.max_segments);
        assert_eq!(h.budget.used, h.s.held_bytes());
    }
    assert!(h.stats.stream_cap_hits > 0);
    h.flush();
    assert_eq!(h.budget.used, 0);
    // Everything is accounted for: data and gaps add up to the stream.
    let data: u64 = h
        .got
        .iter()
        .map(|g| match g {
            Got::Data(d) => d.len() as u64,
            Got::Gap(n) => *n,
        })
        .sum();
    assert_eq!(data, 100 + n * 100);
    assert_eq!(h.s.delivered(), 100 + n * 100);
}

#[test]
fn flood_over_many_streams_stays_within_the_budget() {
    let lim = limits(64 * 1024, 512);
    let mut budget = Budget::new(200 * 1024);
    let mut stats = Stats::default();
    let mut streams: Vec<Stream> = (0..20).map(|_| Stream::new()).collect();
    let payload = [7u8; 1000];
    for s in &mut streams {
        let seg = Segment {
            seq: ISN,
            syn: true,
            fin: false,
            rst: false,
            payload: b"",
            claimed_len: 0,
        };
        s.segment(&seg, &lim, &mut budget, &mut stats, &mut |_| true);
    }
    for round in 0..200u32 {
        for s in &mut streams {
            let seg = Segment {
                seq: ISN + 1 + 1000 + round * 1000,
                syn: false,
                fin: false,
                rst: false,
                payload: &payload,
                claimed_len: 1000,
            };
            s.segment(&seg, &lim, &mut budget, &mut stats, &mut |_| true);
            assert!(budget.used <= budget.cap);
            assert!(s.held_bytes() <= lim.max_bytes);
        }
        let held: usize = streams.iter().map(Stream::held_bytes).sum();
        assert_eq!(held, budget.used);
    }
    assert!(stats.budget_cap_hits > 0);
    for s in &mut streams {
        s.stop(&mut budget);
    }
    assert_eq!(budget.used, 0);
}

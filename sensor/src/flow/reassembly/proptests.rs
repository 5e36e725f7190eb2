//! Property tests: reordering and duplication do not change the stream;
//! arbitrary segments never break the caps or leak budget.

use super::*;
use proptest::prelude::*;
use proptest::sample::Index;

/// A segment of the test stream: `[start, end)` and whether it carries the
/// FIN.
type Span = (usize, usize, bool);

/// A byte stream, an ISN, and segments covering the stream (cut at random
/// points, plus random overlapping copies and duplicates), shuffled.
fn shuffled_segments() -> impl Strategy<Value = (Vec<u8>, u32, Vec<Span>)> {
    (
        prop::collection::vec(any::<u8>(), 1..2000),
        prop_oneof![any::<u32>(), (u32::MAX - 3000)..=u32::MAX],
        any::<bool>(),
    )
        .prop_flat_map(|(bytes, isn, fin)| {
            let n = bytes.len();
            (
                Just(bytes),
                Just(isn),
                Just(fin),
                prop::collection::vec(1..=n, 0..40),
                prop::collection::vec((0..n, 1..300usize), 0..12),
                prop::collection::vec(any::<Index>(), 0..25),
            )
        })
        .prop_flat_map(|(bytes, isn, fin, cuts, overlaps, dups)| {
            let n = bytes.len();
            let mut points = cuts;
            points.extend([0, n]);
            points.sort_unstable();
            points.dedup();
            let mut segs: Vec<Span> = points
                .windows(2)
                .map(|w| (w[0], w[1], fin && w[1] == n))
                .collect();
            for (start, len) in overlaps {
                let end = (start + len).min(n);
                segs.push((start, end, fin && end == n));
            }
            for i in dups {
                let s = segs[i.index(segs.len())];
                segs.push(s);
            }
            (Just(bytes), Just(isn), Just(segs).prop_shuffle())
        })
}

/// Feeds a SYN at `isn` then `segs`, flushes, and returns the data and the
/// gap bytes delivered, with the counts and the budget left in use.
fn reassemble(bytes: &[u8], isn: u32, segs: &[Span]) -> (Vec<u8>, u64, Stats, usize) {
    let limits = StreamLimits {
        max_bytes: bytes.len(),
        max_segments: 2 * segs.len() + 1,
    };
    let mut budget = Budget::new(bytes.len());
    let mut stats = Stats::default();
    let mut s = Stream::new();
    let mut data = Vec::new();
    let mut gaps = 0;
    let mut take = |c: Chunk<'_>| {
        match c {
            Chunk::Data(d) => data.extend_from_slice(d),
            Chunk::Gap(n) => gaps += n,
        }
        true
    };
    let syn = Segment {
        seq: isn,
        syn: true,
        fin: false,
        rst: false,
        payload: b"",
        claimed_len: 0,
    };
    s.segment(&syn, &limits, &mut budget, &mut stats, &mut take);
    for &(start, end, fin) in segs {
        let payload = &bytes[start..end];
        let seg = Segment {
            seq: isn.wrapping_add(1).wrapping_add(start as u32),
            syn: false,
            fin,
            rst: false,
            payload,
            claimed_len: payload.len() as u32,
        };
        s.segment(&seg, &limits, &mut budget, &mut stats, &mut take);
        assert!(s.held_bytes() <= limits.max_bytes);
        assert!(s.held_segments() <= limits.max_segments);
    }
    s.flush(&mut budget, &mut stats, &mut take);
    (data, gaps, stats, budget.used)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any order and any duplication of a stream's segments, within the
    /// caps, delivers the same bytes as the segments in order: the stream.
    #[test]
    fn reordering_and_duplication_deliver_the_same_stream(
        (bytes, isn, segs) in shuffled_segments()
    ) {
        let (data, gaps, stats, used) = reassemble(&bytes, isn, &segs);
        let mut in_order = segs.clone();
        in_order.sort_unstable();
        let (reference, ..) = reassemble(&bytes, isn, &in_order);
        prop_assert_eq!(&reference, &bytes);
        prop_assert_eq!(&data, &reference);
        prop_assert_eq!(gaps, 0);
        prop_assert_eq!(stats.gap_bytes, 0);
        prop_assert_eq!(stats.overlap_differing, 0);
        prop_assert_eq!(stats.stream_cap_hits + stats.budget_cap_hits, 0);
        prop_assert_eq!(used, 0);
    }
}

/// Where a hostile segment's sequence number lies.
#[derive(Debug, Clone, Copy)]
enum Seq {
    /// This far from the first ISN.
    Near(i64),
    /// Anywhere.
    Any(u32),
}

#[derive(Debug, Clone)]
enum Op {
    Segment {
        second: bool,
        seq: Seq,
        syn: bool,
        fin: bool,
        rst: bool,
        payload: Vec<u8>,
        claimed_delta: u32,
        shorter: bool,
    },
    Flush {
        second: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        20 => (
            any::<bool>(),
            prop_oneof![
                8 => (-300i64..4000).prop_map(Seq::Near),
                1 => any::<u32>().prop_map(Seq::Any),
            ],
            prop::bool::weighted(0.05),
            prop::bool::weighted(0.05),
            prop::bool::weighted(0.03),
            prop::collection::vec(0u8..4, 0..300),
            prop_oneof![4 => Just(0u32), 1 => 0u32..2000],
            prop::bool::weighted(0.1),
        )
            .prop_map(|(second, seq, syn, fin, rst, payload, claimed_delta, shorter)| {
                Op::Segment { second, seq, syn, fin, rst, payload, claimed_delta, shorter }
            }),
        1 => any::<bool>().prop_map(|second| Op::Flush { second }),
    ]
}

/// What one stream's reader saw.
#[derive(Debug, Default)]
struct Seen {
    chunks: usize,
    total: u64,
    gaps: u64,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary, inconsistent segments on two streams sharing a budget:
    /// no panic, the caps always hold, the budget is exactly what the
    /// streams hold, every delivered byte is accounted for, nothing is
    /// left in use after stop, and a segment `is_behind` calls old changes
    /// nothing.
    #[test]
    fn hostile_segments_keep_the_caps_and_the_budget(
        isn in any::<u32>(),
        max_bytes in 0usize..3000,
        max_segments in 0usize..40,
        cap in 0usize..5000,
        refuse_at in prop::option::weighted(0.2, 1usize..30),
        ops in prop::collection::vec(op(), 0..150),
    ) {
        let limits = StreamLimits { max_bytes, max_segments };
        let mut budget = Budget::new(cap);
        let mut stats = Stats::default();
        let mut streams = [Stream::new(), Stream::new()];
        let mut seen = [Seen::default(), Seen::default()];
        for op in &ops {
            let i = match op {
                Op::Segment { second, .. } | Op::Flush { second } => usize::from(*second),
            };
            let seen_i = &mut seen[i];
            let mut take = |c: Chunk<'_>| {
                match c {
                    Chunk::Data(d) => {
                        assert!(!d.is_empty(), "empty data chunk");
                        seen_i.total += d.len() as u64;
                    }
                    Chunk::Gap(n) => {
                        assert!(n > 0, "empty gap");
                        seen_i.total += n;
                        seen_i.gaps += n;
                    }
                }
                seen_i.chunks += 1;
                refuse_at != Some(seen_i.chunks)
            };
            match op {
                Op::Segment { seq, syn, fin, rst, payload, claimed_delta, shorter, .. } => {
                    let seq = match *seq {
                        Seq::Near(d) => isn.wrapping_add(d as u32),
                        Seq::Any(s) => s,
                    };
                    let len = payload.len() as u32;
                    let claimed_len = if *shorter {
                        len.saturating_sub(*claimed_delta)
                    } else {
                        len + claimed_delta
                    };
                    let seg = Segment {
                        seq,
                        syn: *syn,
                        fin: *fin,
                        rst: *rst,
                        payload,
                        claimed_len,
                    };
                    let behind = streams[i].is_behind(&seg);
                    let was = (format!("{:?}", streams[i]), stats, budget);
                    streams[i].segment(&seg, &limits, &mut budget, &mut stats, &mut take);
                    if behind {
                        // What `is_behind` promises the caller that skips
                        // the call: it would have changed nothing.
                        prop_assert_eq!(&was, &(format!("{:?}", streams[i]), stats, budget));
                    }
                }
                Op::Flush { .. } => streams[i].flush(&mut budget, &mut stats, &mut take),
            }
            for s in &streams {
                prop_assert!(s.held_bytes() <= max_bytes);
                prop_assert!(s.held_segments() <= max_segments);
            }
            prop_assert!(budget.used <= cap);
            prop_assert_eq!(budget.used, streams[0].held_bytes() + streams[1].held_bytes());
            prop_assert_eq!(stats.gap_bytes, seen[0].gaps + seen[1].gaps);
            for (s, seen) in streams.iter().zip(&seen) {
                if !s.is_stopped() {
                    prop_assert_eq!(s.delivered(), seen.total);
                } else {
                    prop_assert_eq!(s.held_bytes(), 0);
                }
            }
        }
        for s in &mut streams {
            s.stop(&mut budget);
        }
        prop_assert_eq!(budget.used, 0);
    }
}

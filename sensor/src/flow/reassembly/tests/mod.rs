//! Unit tests of the reassembly policy, one point at a time. The caps and
//! floods are in `caps.rs`.

use super::*;

mod caps;

/// An owned copy of a delivered chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Got {
    Data(Vec<u8>),
    Gap(u64),
}

/// A stream with its limits, budget, counts and everything it delivered.
struct H {
    s: Stream,
    limits: StreamLimits,
    budget: Budget,
    stats: Stats,
    got: Vec<Got>,
    /// The reader answers false from this many chunks on.
    refuse_after: usize,
}

const ISN: u32 = 1000;

fn limits(max_bytes: usize, max_segments: usize) -> StreamLimits {
    StreamLimits {
        max_bytes,
        max_segments,
    }
}

impl H {
    fn new() -> Self {
        Self::with(limits(1 << 20, 1000), 1 << 20)
    }

    fn with(limits: StreamLimits, budget: usize) -> Self {
        Self {
            s: Stream::new(),
            limits,
            budget: Budget::new(budget),
            stats: Stats::default(),
            got: Vec::new(),
            refuse_after: usize::MAX,
        }
    }

    fn raw(&mut self, seq: u32, flags: &str, payload: &[u8], claimed: u32) {
        let seg = Segment {
            seq,
            syn: flags.contains('S'),
            fin: flags.contains('F'),
            rst: flags.contains('R'),
            payload,
            claimed_len: claimed,
        };
        let got = &mut self.got;
        let refuse_after = self.refuse_after;
        self.s.segment(
            &seg,
            &self.limits,
            &mut self.budget,
            &mut self.stats,
            &mut |c| {
                got.push(own(c));
                got.len() < refuse_after
            },
        );
    }

    /// A SYN with the stream starting at offset 0 = ISN + 1.
    fn syn(&mut self) {
        self.raw(ISN, "S", b"", 0);
    }

    /// Data at stream offset `off` (after a SYN at ISN).
    fn at(&mut self, off: u32, payload: &[u8]) {
        self.raw(ISN + 1 + off, "", payload, payload.len() as u32);
    }

    fn flush(&mut self) {
        let got = &mut self.got;
        self.s.flush(&mut self.budget, &mut self.stats, &mut |c| {
            got.push(own(c));
            true
        });
    }

    /// What was delivered, gaps written as `[n]`.
    fn text(&self) -> String {
        let mut out = String::new();
        for g in &self.got {
            match g {
                Got::Data(d) => out.push_str(&String::from_utf8_lossy(d)),
                Got::Gap(n) => out.push_str(&format!("[{n}]")),
            }
        }
        out
    }
}

fn own(c: Chunk<'_>) -> Got {
    match c {
        Chunk::Data(d) => Got::Data(d.to_vec()),
        Chunk::Gap(n) => Got::Gap(n),
    }
}

#[test]
fn in_order_data_is_delivered_at_once_from_the_packet_itself() {
    let mut s = Stream::new();
    let mut budget = Budget::new(100);
    let mut stats = Stats::default();
    let lim = limits(100, 10);
    let seg = |seq, syn, payload: &'static [u8]| Segment {
        seq,
        syn,
        fin: false,
        rst: false,
        payload,
        claimed_len: payload.len() as u32,
    };
    let mut n = 0;
    s.segment(
        &seg(ISN, true, b""),
        &lim,
        &mut budget,
        &mut stats,
        &mut |_| {
            n += 1;
            true
        },
    );
    assert_eq!(n, 0);
    for (seq, payload) in [(ISN + 1, &b"hello "[..]), (ISN + 7, &b"world"[..])] {
        let mut same = Vec::new();
        s.segment(
            &seg(seq, false, payload),
            &lim,
            &mut budget,
            &mut stats,
            &mut |c| {
                // Not a copy: the very bytes of the packet.
                same.push(
                    matches!(c, Chunk::Data(d) if d.as_ptr() == payload.as_ptr() && d == payload),
                );
                true
            },
        );
        assert_eq!(same, [true]);
    }
    assert_eq!(s.held_bytes(), 0);
    assert_eq!(s.delivered(), 11);
    assert_eq!(budget.used, 0);
    assert_eq!(stats, Stats::default());
}

#[test]
fn out_of_order_data_is_held_until_the_hole_fills() {
    let mut h = H::new();
    h.syn();
    h.at(6, b"world");
    h.at(3, b"lo ");
    assert_eq!(h.text(), "");
    assert_eq!(h.s.held_bytes(), 8);
    assert_eq!(h.s.held_segments(), 2);
    assert_eq!(h.budget.used, 8);
    h.at(0, b"hel");
    assert_eq!(h.text(), "hello world");
    assert_eq!(h.s.held_bytes(), 0);
    assert_eq!(h.budget.used, 0);
    assert_eq!(h.stats.out_of_order_segments, 2);
    assert_eq!(h.stats.gap_bytes, 0);
}

#[test]
fn duplicates_are_delivered_once_and_held_once() {
    let mut h = H::new();
    h.syn();
    h.at(0, b"abc");
    h.at(0, b"abc");
    h.at(6, b"ghi");
    h.at(6, b"ghi");
    assert_eq!(h.s.held_bytes(), 3);
    assert_eq!(h.budget.used, 3);
    h.at(3, b"def");
    h.at(3, b"def");
    h.at(6, b"ghi");
    assert_eq!(h.text(), "abcdefghi");
    assert_eq!(h.stats.overlap_differing, 0);
    assert_eq!(h.budget.used, 0);
}

#[test]
fn identical_overlaps_are_not_counted() {
    let mut h = H::new();
    h.syn();
    h.at(4, b"efg");
    h.at(2, b"cdefgh");
    h.at(0, b"abcd");
    assert_eq!(h.text(), "abcdefgh");
    assert_eq!(h.stats.overlap_differing, 0);
}

#[test]
fn first_copy_wins_over_a_differing_overlap_with_held_data() {
    let mut h = H::new();
    h.syn();
    h.at(4, b"efg");
    // Overlaps the held "efg" with "Xfg" (1 differing byte) and adds "d"
    // before it and "h" after it.
    h.at(3, b"dXfgh");
    // Entirely over held bytes: 2 differ.
    h.at(3, b"dEFg");
    h.at(0, b"abc");
    assert_eq!(h.text(), "abcdefgh");
    assert_eq!(h.stats.overlap_differing, 1 + 2);
    assert_eq!(h.budget.used, 0);
}

#[test]
fn an_in_order_segment_over_held_data_delivers_the_held_copy() {
    let mut h = H::new();
    h.syn();
    h.at(2, b"CD");
    h.at(0, b"abcdef");
    assert_eq!(h.text(), "abCDef");
    assert_eq!(h.stats.overlap_differing, 2);
    assert_eq!(h.budget.used, 0);
}

#[test]
fn retransmissions_of_delivered_data_are_ignored() {
    let mut h = H::new();
    h.syn();
    h.at(0, b"GOOD");
    h.at(0, b"EVIL");
    h.at(1, b"XXX");
    assert_eq!(h.text(), "GOOD");
    // Delivered bytes are not kept, so this overlap is not compared.
    assert_eq!(h.stats.overlap_differing, 0);
    // A segment partly old delivers only its new bytes.
    h.at(2, b"ODAY");
    assert_eq!(h.text(), "GOODAY");
}

#[test]
fn a_truncated_in_order_segment_delivers_a_gap_for_the_rest() {
    let mut h = H::new();
    h.syn();
    h.raw(ISN + 1, "", b"ab", 5);
    assert_eq!(h.got, [Got::Data(b"ab".to_vec()), Got::Gap(3)]);
    h.at(5, b"xyz");
    assert_eq!(h.text(), "ab[3]xyz");
    assert_eq!(h.stats.gap_bytes, 3);
}

#[test]
fn a_truncated_held_segment_remembers_its_hole() {
    let mut h = H::new();
    h.syn();
    h.raw(ISN + 1 + 4, "", b"xy", 4);
    h.at(8, b"z");
    // A later full copy does not replace the first (cut) one.
    h.at(6, b"uv");
    assert_eq!(h.s.held_bytes(), 3);
    h.at(0, b"abcd");
    assert_eq!(h.text(), "abcdxy[2]z");
    assert_eq!(h.stats.gap_bytes, 2);
    assert_eq!(h.budget.used, 0);
}

#[test]
fn sequence_numbers_wrap_around() {
    for isn in [u32::MAX - 2, u32::MAX - 1, u32::MAX, 0] {
        let mut h = H::new();
        h.raw(isn, "S", b"", 0);
        let start = isn.wrapping_add(1);
        h.raw(start.wrapping_add(4), "", b"ef", 2);
        h.raw(start.wrapping_add(2), "", b"cd", 2);
        h.raw(start.wrapping_add(6), "F", b"gh", 2);
        h.raw(start, "", b"ab", 2);
        // Old data from before the wrap stays old.
        h.raw(start.wrapping_sub(3), "", b"zzzzz", 5);
        h.flush();
        assert_eq!(h.text(), "abcdefgh", "isn {isn}");
        assert_eq!(h.stats.gap_bytes, 0);
    }
}

#[test]
fn wraparound_over_many_gigabytes_keeps_offsets_growing() {
    // Nothing held: every segment ahead is delivered after a gap at once.
    let mut h = H::with(limits(1 << 20, 0), 1 << 20);
    h.raw(u32::MAX - 10, "", b"a", 1);
    // Five times around the sequence space, in steps of 1 GiB (as gaps,
    // the stream being cut), each step still ahead of the last.
    let mut seq = u32::MAX - 9;
    for _ in 0..20 {
        seq = seq.wrapping_add(1 << 30);
        h.raw(seq, "", b"b", 1);
        seq = seq.wrapping_add(1);
    }
    h.flush();
    assert_eq!(h.s.delivered(), 1 + 20 * ((1 << 30) + 1));
    assert_eq!(h.text().matches('b').count(), 20);
}

#[test]
fn pickup_starts_at_the_first_data_segment_and_ignores_older_data() {
    let mut h = H::new();
    h.raw(5000, "", b"middle", 6);
    h.raw(4990, "", b"0123456789", 10);
    h.raw(4995, "", b"56789midd", 9);
    h.raw(5006, "", b"-end", 4);
    h.flush();
    assert_eq!(h.text(), "middle-end");
    assert_eq!(h.stats.gap_bytes, 0);
}

#[test]
fn data_on_the_syn_comes_first() {
    let mut h = H::new();
    h.raw(ISN, "S", b"fast", 4);
    h.at(4, b"open");
    assert_eq!(h.text(), "fastopen");
}

#[test]
fn flush_delivers_everything_and_releases_the_budget() {
    let mut h = H::new();
    h.syn();
    h.at(0, b"ab");
    h.at(4, b"ef");
    h.raw(ISN + 1 + 8, "", b"i", 3);
    h.at(12, b"m");
    assert_eq!(h.budget.used, 4);
    h.flush();
    assert_eq!(h.text(), "ab[2]ef[2]i[2][1]m");
    assert_eq!(h.stats.gap_bytes, 7);
    assert_eq!(h.budget.used, 0);
    assert_eq!(h.s.held_bytes(), 0);
    assert_eq!(h.s.held_segments(), 0);
}

#[test]
fn stop_releases_the_budget_and_ignores_later_segments() {
    let mut h = H::new();
    h.syn();
    h.at(4, b"efgh");
    assert_eq!(h.budget.used, 4);
    h.s.stop(&mut h.budget);
    assert!(h.s.is_stopped());
    assert_eq!(h.budget.used, 0);
    h.at(0, b"abcd");
    h.flush();
    assert_eq!(h.got, []);
    assert_eq!(h.budget.used, 0);
}

#[test]
fn a_reader_that_wants_no_more_stops_the_stream() {
    let mut h = H::new();
    h.refuse_after = 2;
    h.syn();
    h.at(3, b"d");
    h.at(5, b"f");
    h.at(7, b"h");
    assert_eq!(h.budget.used, 3);
    // "abc" then "d" are delivered; the reader refuses at the second chunk.
    h.at(0, b"abc");
    assert_eq!(h.text(), "abcd");
    assert!(h.s.is_stopped());
    assert_eq!(h.budget.used, 0);
    assert_eq!(h.s.held_segments(), 0);
    h.at(4, b"e");
    assert_eq!(h.text(), "abcd");
}

#[test]
fn the_stream_ends_after_the_fin() {
    let mut h = H::new();
    h.syn();
    h.raw(ISN + 1, "F", b"abc", 3);
    h.at(3, b"zzz");
    h.at(1, b"bcdef");
    h.flush();
    assert_eq!(h.text(), "abc");
}

#[test]
fn an_early_fin_drops_held_data_beyond_it() {
    let mut h = H::new();
    h.syn();
    h.at(10, b"zz");
    h.at(4, b"efgh");
    assert_eq!(h.budget.used, 6);
    // FIN at offset 6: "gh" and "zz" lie beyond it.
    h.raw(ISN + 1 + 6, "F", b"", 0);
    assert_eq!(h.budget.used, 2);
    assert_eq!(h.s.held_bytes(), 2);
    h.at(0, b"abcd");
    assert_eq!(h.text(), "abcdef");
    assert_eq!(h.budget.used, 0);
}

#[test]
fn flush_reports_missing_bytes_before_the_fin() {
    let mut h = H::new();
    h.syn();
    h.at(0, b"abc");
    h.raw(ISN + 1 + 6, "F", b"", 0);
    h.flush();
    assert_eq!(h.text(), "abc[3]");
    assert_eq!(h.stats.gap_bytes, 3);
}

#[test]
fn a_fin_ahead_of_the_data_waits_for_it() {
    let mut h = H::new();
    h.syn();
    h.raw(ISN + 1 + 6, "F", b"", 0);
    h.at(3, b"def");
    h.at(0, b"abc");
    h.flush();
    assert_eq!(h.text(), "abcdef");
    assert_eq!(h.stats.gap_bytes, 0);
}

#[test]
fn a_rst_delivers_what_is_held() {
    let mut h = H::new();
    h.syn();
    h.at(0, b"ab");
    h.at(5, b"fg");
    h.raw(ISN + 1 + 3, "R", b"de", 2);
    assert_eq!(h.text(), "ab[1]defg");
    assert_eq!(h.budget.used, 0);
    // The stream goes on.
    h.at(7, b"h");
    assert_eq!(h.text(), "ab[1]defgh");
}

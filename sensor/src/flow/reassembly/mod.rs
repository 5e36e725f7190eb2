//! TCP stream reassembly, one direction at a time.
//!
//! Owns: turning one direction's segments (any order, duplicated,
//! overlapping, cut short) into the byte stream a dissector reads: data in
//! sequence order, and gaps where bytes are missing. Input: segments
//! ([`Segment`]) in packet-time order. Output: [`Chunk`]s, through a
//! callback, and counts ([`Stats`]). Does not: track connection state or
//! roles (`flow::tcp_state`), check segments against the receiver's window,
//! or decide who reads the stream (`flow::app`).
//!
//! Policy (documented in ARCHITECTURE.md):
//! - The stream starts after the SYN's sequence number, or at the first
//!   segment carrying data (or a FIN) when the handshake was missed
//!   (pickup); data before that start is old and ignored, and not counted
//!   as a gap. Positions are kept as 64-bit offsets from the start, so the
//!   32-bit sequence space may wrap any number of times; a sequence number
//!   is placed relative to the next byte to deliver (at most 2^31 bytes
//!   ahead, anything else is behind).
//! - In-order data is delivered at once, without copying; out-of-order
//!   data is held (copied) until the hole before it fills, within
//!   `max_stream_bytes` / `max_stream_segments` per direction and a
//!   worker-wide [`Budget`].
//! - Retransmissions and overlaps: the first copy of a byte wins. An
//!   overlap with held data whose bytes differ from the first copy is
//!   counted (`overlap_differing`, in bytes). Delivered data is not kept
//!   (keeping a window would cost a copy of every in-order segment), so a
//!   retransmission of already delivered bytes is ignored without being
//!   compared.
//! - A segment cut short by the capture delivers its captured bytes, then a
//!   gap for the rest; held out of order, the missing part is remembered
//!   and delivered as a gap in its turn (it too is a "first copy").
//! - When a per-stream cap would be exceeded, the oldest hole is given up:
//!   a gap is delivered for it, then the held data after it
//!   (`stream_cap_hits`). When the worker's budget would be exceeded, the
//!   stream first gives up its own oldest holes (`budget_cap_hits`); when it
//!   holds nothing more and the budget is still short, the segment is not
//!   kept but remembered as missing: a gap is delivered in its place later.
//! - FIN: the stream ends after the FIN's data (the first FIN seen wins);
//!   later bytes are ignored. RST: the segment's data is taken as usual,
//!   then everything held is delivered at once, holes as gaps (the sender
//!   will not fill them), and the stream goes on.
//! - [`Stream::flush`] (end of flow) delivers whatever is held, holes as
//!   gaps, and a final gap up to the FIN when bytes before it are missing.
//!   [`Stream::stop`] drops everything; a reader that wants nothing more
//!   (the callback returns false) stops the stream the same way.
//!
//! This file places segments and takes the in-order fast path; the
//! out-of-order data held, its caps and the gaps given up are `held.rs`'s.

use std::collections::BTreeMap;

mod held;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

/// Caps of one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    /// Out-of-order bytes held.
    pub max_bytes: usize,
    /// Out-of-order segments held.
    pub max_segments: usize,
}

/// Out-of-order bytes held over all streams of a worker, against a cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Bytes held now.
    pub used: usize,
    /// The cap.
    pub cap: usize,
}

impl Budget {
    /// An empty budget of `cap` bytes.
    pub fn new(cap: usize) -> Self {
        Self { used: 0, cap }
    }
}

/// What reassembly counted (added to the worker's counters by the caller).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Segments that arrived ahead of a hole and were held.
    pub out_of_order_segments: u64,
    /// Overlapping bytes that differed from the first copy (the first copy
    /// was kept).
    pub overlap_differing: u64,
    /// Bytes delivered as gaps.
    pub gap_bytes: u64,
    /// Holes given up because a per-stream cap was reached.
    pub stream_cap_hits: u64,
    /// Holes given up (or segments not held) because the worker's budget
    /// was reached.
    pub budget_cap_hits: u64,
}

/// One segment of this direction.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    /// Sequence number of the segment (of the SYN itself when `syn`).
    pub seq: u32,
    /// SYN flag: the stream starts at `seq + 1`.
    pub syn: bool,
    /// FIN flag: the stream ends after this segment's data.
    pub fin: bool,
    /// RST flag.
    pub rst: bool,
    /// The captured payload.
    pub payload: &'a [u8],
    /// The payload length the IP header claims (more than `payload.len()`
    /// when the capture cut the packet).
    pub claimed_len: u32,
}

/// A piece of the reassembled stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk<'a> {
    /// The next bytes.
    Data(&'a [u8]),
    /// This many bytes are missing; the next chunk follows them.
    Gap(u64),
}

/// The callback a stream delivers through.
type Deliver<'d> = dyn FnMut(Chunk<'_>) -> bool + 'd;

/// One direction's reassembly state. Allocates only while out-of-order data
/// is held.
#[derive(Debug, Default)]
pub struct Stream {
    /// Sequence number of offset 0 (valid once `started`).
    base: u32,
    /// The start is known.
    started: bool,
    /// Delivery has been stopped.
    stopped: bool,
    /// Offset of the next byte to deliver.
    next: u64,
    /// Offset where the stream ends (the FIN's position), once known.
    end: Option<u64>,
    /// Out-of-order pieces by offset: never overlapping, all beyond `next`.
    held: BTreeMap<u64, held::Piece>,
    /// Sum of the held pieces' `data` lengths (charged to the budget).
    held_bytes: usize,
}

impl Stream {
    /// A stream whose start is not known yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one segment and delivers what became contiguous. `deliver`
    /// returns false when the reader wants nothing more (the stream then
    /// stops, as after [`Stream::stop`]).
    pub fn segment(
        &mut self,
        seg: &Segment<'_>,
        limits: &StreamLimits,
        budget: &mut Budget,
        stats: &mut Stats,
        deliver: &mut Deliver<'_>,
    ) {
        if self.stopped {
            return;
        }
        let claimed = u64::from(seg.claimed_len);
        // Never more captured bytes than the header claims.
        let payload = seg
            .payload
            .get(..seg.claimed_len as usize)
            .unwrap_or(seg.payload);
        let data_seq = if seg.syn {
            seg.seq.wrapping_add(1)
        } else {
            seg.seq
        };
        if !self.started {
            if !(seg.syn || seg.fin || claimed > 0) {
                return;
            }
            self.base = data_seq;
            self.started = true;
        }
        // Fast path: the next bytes, nothing held, nothing special.
        if data_seq == self.next_seq()
            && self.held.is_empty()
            && self.end.is_none()
            && !(seg.syn || seg.fin || seg.rst)
        {
            self.next += claimed;
            if !payload.is_empty() && !self.emit(Chunk::Data(payload), budget, stats, deliver) {
                return;
            }
            let missing = claimed - payload.len() as u64;
            if missing > 0 {
                self.emit(Chunk::Gap(missing), budget, stats, deliver);
            }
            return;
        }
        let seg_off = self.offset_of(data_seq);
        let seg_end = seg_off + claimed as i64;
        if seg.fin && self.end.is_none() && seg_end >= self.next as i64 {
            self.set_end(seg_end as u64, budget);
        }
        let lo = seg_off.max(self.next as i64);
        let hi = self.end.map_or(seg_end, |e| seg_end.min(e as i64));
        if lo < hi {
            let (lo, hi) = (lo as u64, hi as u64);
            stats.overlap_differing += self.count_differing(payload, seg_off, lo, hi);
            if self.take(payload, seg_off, lo, hi, limits, budget, stats, deliver) {
                stats.out_of_order_segments += 1;
            }
        }
        if seg.rst {
            self.deliver_held(budget, stats, deliver);
        }
    }

    /// True when [`Stream::segment`] would do nothing with `seg`: the stream
    /// has started and the segment ends at or before the next byte to
    /// deliver, with no FIN or RST to note (a retransmission of delivered
    /// bytes). Lets the caller skip the set-up of a delivery for the
    /// commonest duplicate.
    #[inline]
    pub fn is_behind(&self, seg: &Segment<'_>) -> bool {
        if !self.started || seg.fin || seg.rst {
            return false;
        }
        let data_seq = if seg.syn {
            seg.seq.wrapping_add(1)
        } else {
            seg.seq
        };
        self.offset_of(data_seq) + i64::from(seg.claimed_len) <= self.next as i64
    }

    /// End of the flow: delivers everything held, holes as gaps, and
    /// releases it from `budget`. A final gap runs up to the FIN when bytes
    /// before it are missing.
    pub fn flush(&mut self, budget: &mut Budget, stats: &mut Stats, deliver: &mut Deliver<'_>) {
        if self.stopped || !self.started {
            return;
        }
        self.deliver_held(budget, stats, deliver);
        if let Some(end) = self.end
            && end > self.next
            && !self.stopped
        {
            let n = end - self.next;
            self.next = end;
            self.emit(Chunk::Gap(n), budget, stats, deliver);
        }
    }

    /// Stops reassembly for good: held data is released from `budget` and
    /// later segments are ignored.
    pub fn stop(&mut self, budget: &mut Budget) {
        self.stopped = true;
        budget.used = budget.used.saturating_sub(self.held_bytes);
        self.held_bytes = 0;
        self.held = BTreeMap::new();
    }

    /// True once stopped.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// True when every byte up to the FIN has been delivered and nothing is
    /// held: no later segment can bring anything.
    pub fn is_complete(&self) -> bool {
        self.started && self.end == Some(self.next) && self.held.is_empty()
    }

    /// Out-of-order bytes held now.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Out-of-order segments (pieces of segments) held now.
    pub fn held_segments(&self) -> usize {
        self.held.len()
    }

    /// Bytes delivered so far, data and gaps together (the offset of the
    /// next byte from the start of the stream).
    pub fn delivered(&self) -> u64 {
        self.next
    }

    #[inline]
    fn next_seq(&self) -> u32 {
        self.base.wrapping_add(self.next as u32)
    }

    /// The offset of `seq`, placed relative to the next byte to deliver.
    #[inline]
    fn offset_of(&self, seq: u32) -> i64 {
        self.next as i64 + i64::from(seq.wrapping_sub(self.next_seq()) as i32)
    }

    /// Delivers one chunk (counting gaps); false, with the stream stopped,
    /// when the reader wants nothing more.
    fn emit(
        &mut self,
        chunk: Chunk<'_>,
        budget: &mut Budget,
        stats: &mut Stats,
        deliver: &mut Deliver<'_>,
    ) -> bool {
        if let Chunk::Gap(n) = chunk {
            stats.gap_bytes += n;
        }
        if deliver(chunk) {
            return true;
        }
        self.stop(budget);
        false
    }

    fn release(&mut self, bytes: usize, budget: &mut Budget) {
        self.held_bytes = self.held_bytes.saturating_sub(bytes);
        budget.used = budget.used.saturating_sub(bytes);
    }
}

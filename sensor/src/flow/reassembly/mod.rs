//! TCP stream reassembly, one direction at a time.
//!
//! Owns: turning one direction's segments (any order, duplicated,
//! overlapping, cut short) into the byte stream a dissector reads: data in
//! sequence order, and gaps where bytes are missing. Input: segments
//! ([`Segment`]) in packet-time order. Output: [`Chunk`]s, through a
//! callback, and counts ([`Stats`]). Does not: track connection state or
//! roles (`flow::tcp_state`), or decide who reads the stream (`flow::app`).
//!
//! Policy (documented in ARCHITECTURE.md):
//! - The stream starts after the SYN's sequence number, or at the first
//!   data segment seen when the handshake was missed (pickup); data before
//!   that start is old and ignored.
//! - In-order data is delivered at once, without copying; out-of-order
//!   data is held (copied) until the hole before it fills, within
//!   `max_stream_bytes` / `max_stream_segments` per direction and a
//!   worker-wide [`Budget`].
//! - Retransmissions and overlaps: the first copy of a byte wins; an
//!   overlap whose bytes differ from the first copy is counted
//!   (`overlap_differing`).
//! - A segment cut short by the capture delivers its captured bytes, then a
//!   gap for the rest. When a cap is reached, the oldest hole is given up:
//!   a gap is delivered for it, then the held data after it.
//! - [`Stream::flush`] (end of flow) delivers whatever is held, holes as
//!   gaps.

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

/// One direction's reassembly state. Allocates only while out-of-order data
/// is held.
#[derive(Debug, Default)]
pub struct Stream {
    /// Sequence number of the next byte to deliver, once the start is known.
    next: Option<u32>,
    /// Delivery has been stopped.
    stopped: bool,
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
        _limits: &StreamLimits,
        _budget: &mut Budget,
        stats: &mut Stats,
        deliver: &mut dyn FnMut(Chunk<'_>) -> bool,
    ) {
        if self.stopped {
            return;
        }
        let data_seq = if seg.syn {
            seg.seq.wrapping_add(1)
        } else {
            seg.seq
        };
        let next = *self.next.get_or_insert(data_seq);
        if seg.payload.is_empty() && seg.claimed_len == 0 {
            return;
        }
        // Interim behaviour (replaced by the full reassembler): in-order
        // data only; anything ahead is a gap, anything behind is old.
        let ahead = data_seq.wrapping_sub(next) as i32;
        if ahead < 0 {
            return;
        }
        if ahead > 0 {
            stats.gap_bytes += ahead as u64;
            if !deliver(Chunk::Gap(ahead as u64)) {
                self.stopped = true;
                return;
            }
        }
        if !seg.payload.is_empty() && !deliver(Chunk::Data(seg.payload)) {
            self.stopped = true;
            return;
        }
        let missing = seg.claimed_len.saturating_sub(seg.payload.len() as u32);
        if missing > 0 {
            stats.gap_bytes += u64::from(missing);
            if !deliver(Chunk::Gap(u64::from(missing))) {
                self.stopped = true;
                return;
            }
        }
        self.next = Some(data_seq.wrapping_add(seg.claimed_len));
    }

    /// End of the flow: delivers everything held, holes as gaps, and
    /// releases it from `budget`.
    pub fn flush(
        &mut self,
        _budget: &mut Budget,
        _stats: &mut Stats,
        _deliver: &mut dyn FnMut(Chunk<'_>) -> bool,
    ) {
    }

    /// Stops reassembly for good: held data is released from `budget` and
    /// later segments are ignored.
    pub fn stop(&mut self, _budget: &mut Budget) {
        self.stopped = true;
    }

    /// True once stopped.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Out-of-order bytes held now.
    pub fn held_bytes(&self) -> usize {
        0
    }
}

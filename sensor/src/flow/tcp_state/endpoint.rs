//! One endpoint of a TCP connection as Zeek models it: its state
//! (`TCP_Endpoint`), sequence bookkeeping with wraparound, and the bounded
//! model of holes in its byte stream that yields `missed_bytes`.

use super::{
    ACK, EXCESSIVE_DATA_WITHOUT_ACKS, FIN, MAX_ABOVE_HOLE_WITHOUT_ACKS, RST, SYN,
    TOO_LARGE_SEQ_DELTA,
};

/// Zeek's `EndpointState`, in its numeric order (0..=6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum State {
    #[default]
    Inactive,
    SynSent,
    SynAckSent,
    Partial,
    Established,
    Closed,
    Reset,
}

/// Zeek's `ScaledHistoryEntry`: fires on the 1st, 10th, 100th, ... event.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Scaled {
    pub(super) count: u32,
    /// Next firing count; 0 stands for Zeek's initial 1.
    pub(super) threshold: u32,
}

impl Scaled {
    pub(super) fn bump(&mut self) -> bool {
        self.count = self.count.wrapping_add(1);
        let threshold = self.threshold.max(1);
        if self.count != threshold {
            return false;
        }
        let next = threshold.wrapping_mul(10);
        // On u32 wrap Zeek keeps the threshold and restarts the count.
        if next <= threshold {
            self.count = 0;
        } else {
            self.threshold = next;
        }
        true
    }
}

/// Bounded model of Zeek's `TCP_Reassembler` for one direction, in relative
/// sequence numbers (1 = first payload byte): the in-order end, the point the
/// peer's acks trimmed to, and one range captured above a hole.
#[derive(Debug, Clone, Copy)]
pub(super) struct Stream {
    pub(super) delivered: u64,
    pub(super) trimmed: u64,
    /// Captured data above the hole at `delivered`; empty when start == end.
    pub(super) above: (u64, u64),
    pub(super) skipping: bool,
}

impl Default for Stream {
    fn default() -> Self {
        Self {
            delivered: 1,
            trimmed: 1,
            above: (0, 0),
            skipping: false,
        }
    }
}

impl Stream {
    /// Payload `[seq, seq + len)` was captured (Zeek's `DataSent`/`NewBlock`).
    pub(super) fn data(&mut self, seq: u64, len: u64, nothing_acked: bool) {
        let upper = seq.saturating_add(len);
        if self.skipping || upper <= self.trimmed {
            return;
        }
        let lower = seq.max(self.trimmed);
        if lower <= self.delivered {
            self.delivered = self.delivered.max(upper);
        } else if self.above.0 == self.above.1 {
            self.above = (lower, upper);
        } else {
            // A second hole merges into the first range and goes uncounted.
            self.above = (self.above.0.min(lower), self.above.1.max(upper));
        }
        self.absorb();
        let top = self.delivered.max(self.above.1);
        // Zeek stops delivering, and so reporting gaps, past these limits.
        if (nothing_acked && top - self.delivered > MAX_ABOVE_HOLE_WITHOUT_ACKS)
            || top.saturating_sub(self.trimmed) > EXCESSIVE_DATA_WITHOUT_ACKS
        {
            (self.skipping, self.above) = (true, (0, 0));
        }
    }

    /// Joins the range above the hole once the in-order data reaches it.
    pub(super) fn absorb(&mut self) {
        if self.above.0 != self.above.1 && self.above.0 <= self.delivered {
            self.delivered = self.delivered.max(self.above.1);
            self.above = (0, 0);
        }
    }

    /// The peer acked up to `up_to` (Zeek's `TrimToSeq`/`Undelivered`).
    /// Returns the acked bytes never captured and the number of holes.
    pub(super) fn acked(&mut self, up_to: u64) -> (u64, u32) {
        if up_to <= self.trimmed {
            return (0, 0);
        }
        let (mut bytes, mut holes) = (0, 0);
        if up_to > self.delivered && !self.skipping {
            if self.above.0 != self.above.1 && self.above.0 < up_to {
                (bytes, holes) = (self.above.0 - self.delivered, 1);
                self.delivered = self.above.0;
                self.absorb();
            }
            if up_to > self.delivered {
                (bytes, holes) = (bytes + up_to - self.delivered, holes + 1);
            }
        }
        self.delivered = self.delivered.max(up_to);
        self.trimmed = up_to;
        (bytes, holes)
    }
}

/// One side of the connection: the fields of Zeek's `TCP_Endpoint` used here.
#[derive(Debug, Clone, Default)]
pub(super) struct Endpoint {
    pub(super) state: State,
    pub(super) prev_state: State,
    /// Zeek keeps it as i64 but stores u32 values; `as u64` reproduces its math.
    pub(super) start_seq: i64,
    pub(super) last_seq: u32,
    pub(super) ack_seq: u32,
    pub(super) seq_wraps: u32,
    pub(super) ack_wraps: u32,
    pub(super) fin_count: u32,
    /// Relative sequence number just past the FIN.
    pub(super) fin_seq: u64,
    pub(super) did_close: bool,
    /// Relative sequence of the last SYN, FIN, RST (for repeated S/H, F, R).
    pub(super) last_ctl: [u64; 3],
    pub(super) checksum_errors: Scaled,
    pub(super) retransmits: Scaled,
    pub(super) zero_windows: Scaled,
    pub(super) gaps: Scaled,
    pub(super) stream: Stream,
}

impl Endpoint {
    pub(super) fn set_state(&mut self, state: State) {
        if state != self.state {
            self.prev_state = self.state;
            self.state = state;
        }
    }

    pub(super) fn start(&self) -> u32 {
        self.start_seq as u32
    }

    pub(super) fn init_seqs(&mut self, start: u32, last: u32) {
        (self.start_seq, self.ack_seq, self.last_seq) = (i64::from(start), start, last);
    }

    pub(super) fn update_last(&mut self, seq: u32) {
        self.seq_wraps = self.seq_wraps.wrapping_add(u32::from(seq < self.last_seq));
        self.last_seq = seq;
    }

    /// Zeek's `update_ack_seq`: forward moves only, ignoring a bogus ack of 0.
    pub(super) fn update_ack(&mut self, ack: u32) {
        let delta = seq_delta(ack, self.ack_seq);
        if delta > 0 && !(ack == 0 && delta > TOO_LARGE_SEQ_DELTA) {
            self.ack_wraps = self.ack_wraps.wrapping_add(u32::from(ack < self.ack_seq));
            self.ack_seq = ack;
        }
    }

    /// Zeek's `get_relative_seq`: 64-bit offset from the start across wraps;
    /// the bool is true when `seq` lies before the start.
    pub(super) fn relative(&self, seq: u32, last: u32, mut wraps: u32) -> (u64, bool) {
        let delta = seq_delta(seq, last);
        if delta < 0 && wraps > 0 && seq > last {
            wraps -= 1;
        } else if delta > 0 && seq < last {
            wraps = wraps.wrapping_add(1);
        }
        if wraps == 0 {
            let from_start = seq_delta(seq, self.start());
            return (from_start as i64 as u64, from_start < 0);
        }
        (full(seq, wraps).wrapping_sub(self.start_seq as u64), false)
    }

    /// Zeek's `NoDataAcked`: the peer acked at most our SYN.
    pub(super) fn no_data_acked(&self) -> bool {
        let acked = full(self.ack_seq, self.ack_wraps).wrapping_sub(self.start_seq as u64);
        acked <= 1
    }

    /// Zeek's `TCP_Endpoint::Size`: highest of last sequence and the peer's
    /// ack, minus the start, less the SYN and FIN octets.
    pub(super) fn size(&self, peer: &Endpoint) -> u64 {
        if self.prev_state == State::SynSent
            && self.state == State::Reset
            && peer.state == State::Inactive
            && !self.no_data_acked()
        {
            return 0; // half-open connection discovered and aborted
        }
        let top = full(self.last_seq, self.seq_wraps).max(full(self.ack_seq, self.ack_wraps));
        let size = top.wrapping_sub(self.start_seq as u64);
        let fin = u64::from(self.fin_count > 0 && size > 1);
        size.saturating_sub(1) - fin
    }

    /// Zeek's `is_clean`: gaps count only while established or closing cleanly.
    pub(super) fn is_clean(&self) -> bool {
        self.state == State::Established
            || (self.state == State::Closed && self.prev_state == State::Established)
    }
}

/// Signed distance between two sequence numbers (Zeek's `seq_delta`).
pub(super) fn seq_delta(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

pub(super) fn full(seq: u32, wraps: u32) -> u64 {
    (u64::from(wraps) << 32) + u64::from(seq)
}

/// (SYN, FIN, RST, ACK) bits of a flags byte.
pub(super) fn flag_bits(flags: u8) -> (bool, bool, bool, bool) {
    (
        flags & SYN != 0,
        flags & FIN != 0,
        flags & RST != 0,
        flags & ACK != 0,
    )
}

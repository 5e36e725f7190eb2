//! Zeek-compatible TCP connection tracking for one bidirectional flow.
//!
//! Owns what Zeek's conn.log derives from TCP headers: both endpoint state
//! machines (Zeek's `TCP_Endpoint` states), `conn_state`, `history`, the
//! sequence-number payload sizes (`orig_bytes`/`resp_bytes`), `missed_bytes`,
//! and the moments Zeek swaps originator and responder.
//!
//! Input: each segment's header fields ([`TcpSegment`]) in packet-time order,
//! with the direction relative to the current roles. Output: those conn.log
//! fields, and [`RoleChange::Flip`] when the caller must swap its addresses
//! and counters. No I/O, no allocation, fixed-size state, no panics; sequence
//! arithmetic wraps like the 32-bit TCP sequence space. It does not reassemble
//! payload (gaps come from a bounded model, see [`TcpConnection::missed_bytes`])
//! and leaves packet/byte counters, timestamps, timers and connection reuse to
//! the caller, which [`TcpConnection::is_reuse`], [`TcpConnection::awaiting_reply`]
//! and [`TcpConnection::both_closed`] help decide.

use crate::packet::Direction;

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;
/// Zeek's `TOO_LARGE_SEQ_DELTA`: SYN/RST sequence jumps beyond this are not trusted.
const TOO_LARGE_SEQ_DELTA: i32 = 1_048_576;
/// Longest history kept; Zeek's is unbounded, real ones stay far below this.
const HISTORY_CAPACITY: usize = 48;
/// init-bare.zeek `tcp_max_above_hole_without_any_acks`, bytes.
const MAX_ABOVE_HOLE_WITHOUT_ACKS: u64 = 16_384;
/// init-bare.zeek `tcp_excessive_data_without_further_acks`, bytes.
const EXCESSIVE_DATA_WITHOUT_ACKS: u64 = 10 * 1024 * 1024;
// Zeek's HIST_* bits (TCP_Endpoint.h); the responder's sit 16 bits higher.
const HIST_SYN: u32 = 0x1;
const HIST_FIN: u32 = 0x2;
const HIST_RST: u32 = 0x4;
const HIST_FIN_RST: u32 = 0x8;
const HIST_DATA: u32 = 0x10;
const HIST_ACK: u32 = 0x20;
const HIST_MULTI_FLAG: u32 = 0x40;
/// One TCP segment as the flow table sees it.
#[derive(Debug, Clone, Copy)]
pub struct TcpSegment {
    /// Raw TCP flags byte: FIN 0x01 SYN 0x02 RST 0x04 PSH 0x08 ACK 0x10 URG 0x20 ECE 0x40 CWR 0x80.
    pub flags: u8,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number (used only with ACK set).
    pub ack: u32,
    /// Raw window field (unscaled).
    pub window: u16,
    /// TCP payload length from the IP length fields (may exceed what was captured).
    pub payload_len: u32,
    /// `Some(false)`: bad checksum; the segment only adds `C`/`c`, as Zeek drops it.
    /// `None`: unverifiable because the capture is truncated; as in Zeek the
    /// payload is then unavailable to reassembly and counts as missed once acked.
    pub checksum_ok: Option<bool>,
}

/// What the flow table must do after a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleChange {
    /// Roles unchanged.
    Keep,
    /// Swap originator and responder (addresses, ports, counters); the
    /// segment just fed then belongs to `dir.reverse()`.
    Flip,
}

mod endpoint;
mod established;
mod machine;

use endpoint::*;

/// The first segment's ports and whether each is a likely server port
/// (the flow table owns the configured port list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortHint {
    /// Source port of the first segment.
    pub src_port: u16,
    /// Destination port of the first segment.
    pub dst_port: u16,
    /// The source port is a likely server port.
    pub src_likely_server: bool,
    /// The destination port is a likely server port.
    pub dst_likely_server: bool,
}

/// Inline history letters (Zeek's is a growing string).
#[derive(Debug, Clone, Copy)]
struct History {
    letters: [u8; HISTORY_CAPACITY],
    len: usize,
}

impl Default for History {
    fn default() -> Self {
        Self {
            letters: [0; HISTORY_CAPACITY],
            len: 0,
        }
    }
}

/// Zeek-compatible TCP state of one connection (fixed size, no heap).
#[derive(Debug, Clone, Default)]
pub struct TcpConnection {
    endpoints: [Endpoint; 2],
    /// Index into `endpoints` of the current originator.
    orig: usize,
    /// Zeek's `hist_seen`: originator bits low, responder bits high.
    hist_seen: u32,
    history: History,
    missed: u64,
    close_complete: bool,
    /// A segment was fed (the port heuristic applies to the first only).
    started: bool,
    /// First segment's ports for the port heuristic.
    ports: Option<PortHint>,
}

impl TcpConnection {
    /// A tracker that never flips on ports (Zeek with empty `likely_server_ports`).
    pub fn new() -> Self {
        Self::default()
    }

    /// A tracker applying Zeek's `likely_server_ports` heuristic
    /// (`TCPAnalyzer::WantConnection`) to the first segment, whose source and
    /// destination ports these are: unless that segment is a bare SYN, if it
    /// comes from a likely server port the first `on_segment` returns
    /// [`RoleChange::Flip`] and history starts with `^`. Zeek skips this when
    /// the destination is a broadcast address; use [`TcpConnection::new`] then.
    pub fn with_ports(hint: PortHint) -> Self {
        Self {
            ports: Some(hint),
            ..Self::default()
        }
    }

    /// Feed one segment in packet-time order. `dir` is relative to the CURRENT roles.
    /// Returns Flip when Zeek would swap originator and responder at this point (then the tracker has already
    /// swapped its own endpoint state and recorded '^'; the caller swaps its counters and addresses).
    pub fn on_segment(&mut self, dir: Direction, seg: &TcpSegment) -> RoleChange {
        if self.established_segment(dir, seg) {
            return RoleChange::Keep;
        }
        self.general_segment(dir, seg)
    }

    /// `on_segment` for any segment; `established_segment` is its shortcut.
    fn general_segment(&mut self, dir: Direction, seg: &TcpSegment) -> RoleChange {
        let mut flipped = !self.started && self.port_flip(seg.flags);
        if flipped {
            self.orig = 1 - self.orig;
            self.push(b'^');
        }
        self.started = true;
        let dir = if flipped { dir.reverse() } else { dir };
        if seg.checksum_ok == Some(false) {
            // Zeek 8.2+ records the error ('C'/'c') and drops the segment.
            let sender = self.index(dir);
            if self.endpoints[sender].checksum_errors.bump() {
                self.letter(sender, b'C');
            }
        } else if !flipped && self.ack_after_lone_syn_ack(seg) {
            self.flip_after_syn_ack();
            self.process(self.index(dir.reverse()), seg);
            flipped = true;
        } else {
            flipped |= self.process(self.index(dir), seg);
        }
        if flipped {
            RoleChange::Flip
        } else {
            RoleChange::Keep
        }
    }

    /// Zeek's conn.log `conn_state` (base/protocols/conn/main.zeek `conn_state()`).
    pub fn conn_state(&self) -> &'static str {
        let (o, r) = (&self.endpoints[self.orig], &self.endpoints[1 - self.orig]);
        let o_inactive = matches!(o.state, State::Inactive | State::Partial);
        let r_inactive = matches!(r.state, State::Inactive | State::Partial);
        match (o.state, r.state) {
            (State::SynSent | State::SynAckSent, State::Reset) => "REJ",
            (State::Reset, State::Reset) if o.size(r) == 0 && r.size(o) == 0 => "REJ",
            (_, State::Reset) if o_inactive => "RSTRH",
            (_, State::Reset) => "RSTR",
            (State::Reset, _) if !r_inactive => "RSTO",
            (State::Reset, _) if self.syn_then_rst() => "RSTOS0",
            (State::Reset, _) => "OTH",
            (State::Closed, State::Closed) => "SF",
            (State::Closed, _) if r_inactive => "SH",
            (State::Closed, _) => "S2",
            (_, State::Closed) if o_inactive => "SHR",
            (_, State::Closed) => "S3",
            (State::SynSent, State::Inactive) => "S0",
            (State::Established, State::Established) => "S1",
            _ => "OTH",
        }
    }

    /// Zeek's history string, e.g. "ShADadFf" (uppercase: originator).
    pub fn history(&self) -> &str {
        std::str::from_utf8(&self.history.letters[..self.history.len]).unwrap_or("")
    }

    /// Zeek's `orig_bytes`/`resp_bytes` (`TCP_Endpoint::Size`): highest
    /// sequence number sent or acked by the peer, minus the start, less SYN
    /// and FIN, across 32-bit wraps. Without a SYN the start is one before the
    /// first sequence number (or peer ack) seen. Zeek logs it only when the
    /// connection's duration is above zero, else `-`.
    pub fn payload_bytes(&self, dir: Direction) -> u64 {
        let me = self.index(dir);
        self.endpoints[me].size(&self.endpoints[1 - me])
    }

    /// Zeek's `missed_bytes` (its reassembler's content gaps): sequence space
    /// the peer acknowledged that was never captured as payload, counted when
    /// the ack arrives, only while both sides are established or closing
    /// cleanly (Zeek's default `report_gaps_for_partial = F`), and never past
    /// a FIN. Approximation: one captured range above a hole is remembered per
    /// direction; a second disjoint one merges into it, hiding its hole.
    pub fn missed_bytes(&self) -> u64 {
        self.missed
    }

    /// True once both sides closed (FIN both ways) or a RST was seen: the flow table may expire it after a short delay.
    /// Also true after a FIN toward a side that never sent anything. Zeek
    /// removes such connections `tcp_close_delay` (RST: `tcp_reset_delay`),
    /// both 5 s, after the last packet.
    pub fn is_closed(&self) -> bool {
        self.close_complete || self.endpoints.iter().any(|e| e.state == State::Reset)
    }

    /// Zeek's `BothClosed`. Ask BEFORE feeding a segment: Zeek moves the
    /// connection's last-seen time (so its duration) only while this is false.
    pub fn both_closed(&self) -> bool {
        self.endpoints.iter().all(|e| e.did_close)
    }

    /// True while the originator's SYN (or SYN-ACK) has no answer: the
    /// responder sent nothing. Zeek's attempt timer removes the connection if
    /// this still holds `tcp_attempt_delay` (5 s) after that first SYN;
    /// later segments then start a new connection.
    pub fn awaiting_reply(&self) -> bool {
        let (o, r) = (&self.endpoints[self.orig], &self.endpoints[1 - self.orig]);
        matches!(o.state, State::SynSent | State::SynAckSent) && r.state == State::Inactive
    }

    /// Zeek's `TCPSessionAdapter::IsReuse`, asked before feeding a segment:
    /// true when this SYN (or SYN-ACK of a half-open connection) starts a new
    /// connection on the same 5-tuple. The caller then logs this connection
    /// and feeds the segment to a fresh tracker.
    pub fn is_reuse(&self, seg: &TcpSegment) -> bool {
        let (o, r) = (&self.endpoints[self.orig], &self.endpoints[1 - self.orig]);
        let syn_ack = seg.flags & ACK != 0;
        if seg.flags & SYN == 0 || (syn_ack && o.state != State::Inactive) {
            return false;
        }
        if self.endpoints.iter().any(|e| e.did_close) {
            return true;
        }
        let target = if syn_ack { r } else { o };
        // A SYN arriving after its SYN-ACK is the same connection.
        let reordered = !syn_ack
            && target.state == State::SynAckSent
            && r.state == State::Inactive
            && seg.seq == r.start();
        seg.seq != target.start() && !reordered
    }

    fn index(&self, dir: Direction) -> usize {
        match dir {
            Direction::Originator => self.orig,
            Direction::Responder => 1 - self.orig,
        }
    }

    fn push(&mut self, code: u8) {
        let h = &mut self.history;
        if h.len < HISTORY_CAPACITY {
            h.letters[h.len] = code;
            h.len += 1;
        }
    }

    /// Adds `upper` in the case of endpoint `ep`'s current role.
    fn letter(&mut self, ep: usize, upper: u8) {
        let code = if ep == self.orig {
            upper
        } else {
            upper.to_ascii_lowercase()
        };
        self.push(code);
    }

    /// Zeek's `CheckHistory`: adds the letter the first time; true if seen before.
    fn seen_before(&mut self, ep: usize, mask: u32, upper: u8) -> bool {
        let mask = if ep == self.orig { mask } else { mask << 16 };
        let seen = self.hist_seen & mask != 0;
        if !seen {
            self.hist_seen |= mask;
            self.letter(ep, upper);
        }
        seen
    }

    /// Zeek's `WantConnection` port heuristic for the first segment.
    fn port_flip(&self, flags: u8) -> bool {
        let Some(h) = self.ports else {
            return false;
        };
        let syn = flags & SYN != 0;
        if (syn && flags & ACK == 0) || !h.src_likely_server {
            return false;
        }
        // Both plausible: flip only non-SYN-ACKs, and toward the lower port.
        !h.dst_likely_server || (!syn && h.src_port < h.dst_port)
    }

    /// Zeek ≥ 5.1 (PR #2191): a connection that began with a lone SYN-ACK is
    /// flipped once an ACK or data follows in either direction (stealth scans
    /// draw only RSTs or nothing).
    fn ack_after_lone_syn_ack(&self, seg: &TcpSegment) -> bool {
        // Asked for every segment: compare the letters as bytes (no UTF-8
        // check of the history) and the cheap state first.
        self.endpoints[self.orig].state == State::SynAckSent
            && self.history.letters[..self.history.len] == *b"H"
            && self.endpoints[1 - self.orig].state == State::Inactive
            && seg.flags & (SYN | RST) == 0
            && (seg.flags & ACK != 0 || seg.payload_len > 0)
    }

    /// Makes the connection look flipped from its first packet, as Zeek logs
    /// it ("^h..."): the SYN-ACK becomes the responder's, which establishes it.
    fn flip_after_syn_ack(&mut self) {
        self.orig = 1 - self.orig;
        (self.history.len, self.hist_seen) = (0, self.hist_seen.rotate_left(16));
        self.push(b'^');
        self.push(b'h');
        let server = &mut self.endpoints[1 - self.orig];
        (server.state, server.prev_state) = (State::Established, State::Inactive);
    }

    /// True if history matches Zeek's RSTOS0 pattern `^?S[^HAFGIQ]*R.*`.
    fn syn_then_rst(&self) -> bool {
        let h = self.history();
        let Some(rest) = h.strip_prefix('^').unwrap_or(h).strip_prefix('S') else {
            return false;
        };
        rest.bytes().find(|c| b"HAFGIQR".contains(c)) == Some(b'R')
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

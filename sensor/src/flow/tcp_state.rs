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

/// Zeek's `EndpointState`, in its numeric order (0..=6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
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
struct Scaled {
    count: u32,
    /// Next firing count; 0 stands for Zeek's initial 1.
    threshold: u32,
}

impl Scaled {
    fn bump(&mut self) -> bool {
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
struct Stream {
    delivered: u64,
    trimmed: u64,
    /// Captured data above the hole at `delivered`; empty when start == end.
    above: (u64, u64),
    skipping: bool,
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
    fn data(&mut self, seq: u64, len: u64, nothing_acked: bool) {
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
    fn absorb(&mut self) {
        if self.above.0 != self.above.1 && self.above.0 <= self.delivered {
            self.delivered = self.delivered.max(self.above.1);
            self.above = (0, 0);
        }
    }

    /// The peer acked up to `up_to` (Zeek's `TrimToSeq`/`Undelivered`).
    /// Returns the acked bytes never captured and the number of holes.
    fn acked(&mut self, up_to: u64) -> (u64, u32) {
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
struct Endpoint {
    state: State,
    prev_state: State,
    /// Zeek keeps it as i64 but stores u32 values; `as u64` reproduces its math.
    start_seq: i64,
    last_seq: u32,
    ack_seq: u32,
    seq_wraps: u32,
    ack_wraps: u32,
    fin_count: u32,
    /// Relative sequence number just past the FIN.
    fin_seq: u64,
    did_close: bool,
    /// Relative sequence of the last SYN, FIN, RST (for repeated S/H, F, R).
    last_ctl: [u64; 3],
    checksum_errors: Scaled,
    retransmits: Scaled,
    zero_windows: Scaled,
    gaps: Scaled,
    stream: Stream,
}

impl Endpoint {
    fn set_state(&mut self, state: State) {
        if state != self.state {
            self.prev_state = self.state;
            self.state = state;
        }
    }

    fn start(&self) -> u32 {
        self.start_seq as u32
    }

    fn init_seqs(&mut self, start: u32, last: u32) {
        (self.start_seq, self.ack_seq, self.last_seq) = (i64::from(start), start, last);
    }

    fn update_last(&mut self, seq: u32) {
        self.seq_wraps = self.seq_wraps.wrapping_add(u32::from(seq < self.last_seq));
        self.last_seq = seq;
    }

    /// Zeek's `update_ack_seq`: forward moves only, ignoring a bogus ack of 0.
    fn update_ack(&mut self, ack: u32) {
        let delta = seq_delta(ack, self.ack_seq);
        if delta > 0 && !(ack == 0 && delta > TOO_LARGE_SEQ_DELTA) {
            self.ack_wraps = self.ack_wraps.wrapping_add(u32::from(ack < self.ack_seq));
            self.ack_seq = ack;
        }
    }

    /// Zeek's `get_relative_seq`: 64-bit offset from the start across wraps;
    /// the bool is true when `seq` lies before the start.
    fn relative(&self, seq: u32, last: u32, mut wraps: u32) -> (u64, bool) {
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
    fn no_data_acked(&self) -> bool {
        let acked = full(self.ack_seq, self.ack_wraps).wrapping_sub(self.start_seq as u64);
        acked <= 1
    }

    /// Zeek's `TCP_Endpoint::Size`: highest of last sequence and the peer's
    /// ack, minus the start, less the SYN and FIN octets.
    fn size(&self, peer: &Endpoint) -> u64 {
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
    fn is_clean(&self) -> bool {
        self.state == State::Established
            || (self.state == State::Closed && self.prev_state == State::Established)
    }
}

/// Signed distance between two sequence numbers (Zeek's `seq_delta`).
fn seq_delta(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

fn full(seq: u32, wraps: u32) -> u64 {
    (u64::from(wraps) << 32) + u64::from(seq)
}

/// (SYN, FIN, RST, ACK) bits of a flags byte.
fn flag_bits(flags: u8) -> (bool, bool, bool, bool) {
    (
        flags & SYN != 0,
        flags & FIN != 0,
        flags & RST != 0,
        flags & ACK != 0,
    )
}

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
    segments: u64,
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
        let mut flipped = self.segments == 0 && self.port_flip(seg.flags);
        if flipped {
            self.orig = 1 - self.orig;
            self.push(b'^');
        }
        self.segments = self.segments.saturating_add(1);
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
        self.history() == "H"
            && self.endpoints[self.orig].state == State::SynAckSent
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

/// Per-segment processing, following Zeek's `TCPSessionAdapter::Process`.
impl TcpConnection {
    /// Handles a segment from endpoint `s`; true if a reversed handshake flipped roles.
    fn process(&mut self, s: usize, seg: &TcpSegment) -> bool {
        let r = 1 - s;
        let (syn, fin, rst, ack) = flag_bits(seg.flags);
        let len = seg.payload_len;
        // SYN and FIN take one octet each; a RST's payload is not stream data.
        let seg_len = (if rst { 0 } else { len }).wrapping_add(u32::from(syn) + u32::from(fin));
        let seq_end = seg.seq.wrapping_add(seg_len);
        init_endpoint(&mut self.endpoints[s], seg.flags, seg.seq, seq_end);
        let e = &self.endpoints[s];
        let (rel_seq, underflow) = e.relative(seg.seq, e.last_seq, e.seq_wraps);
        self.update_history(s, seg.flags, rel_seq, len);
        // Zero windows are boring with or after a RST, or after the peer's FIN.
        let (me, peer) = (&self.endpoints[s], &self.endpoints[r]);
        if seg.window == 0 && !rst && peer.state != State::Closed && me.state != State::Reset {
            self.scaled(s, |e| &mut e.zero_windows, b'W');
        }
        let (me, peer) = pair(&mut self.endpoints, s);
        if fin {
            me.fin_count = me.fin_count.saturating_add(1);
            me.fin_seq = rel_seq.wrapping_add(u64::from(seg_len));
        }
        let mut rel_ack = 0;
        if ack && peer.state == State::Inactive {
            // Number the silent peer as if its SYN came just before the acked byte.
            rel_ack = 1;
            peer.init_seqs(seg.ack.wrapping_sub(1), seg.ack.wrapping_sub(1));
        } else if ack {
            let (rel, ack_underflow) = peer.relative(seg.ack, peer.ack_seq, peer.ack_wraps);
            rel_ack = if ack_underflow { 0 } else { rel };
            if !ack_underflow && !rst {
                peer.update_ack(seg.ack); // acks inside RSTs are not trusted
            }
        }
        if update_last_seq(me, seq_end, seg.flags, len) {
            self.scaled(s, |e| &mut e.retransmits, b'T');
        }
        let is_orig = s == self.orig;
        let (me, peer) = pair(&mut self.endpoints, s);
        let (close, reversed) = update_state(me, peer, seg, is_orig);
        if reversed {
            // SYN and SYN-ACK seen in reverse order: Zeek flips and establishes.
            self.orig = 1 - self.orig;
            self.push(b'^');
        }
        if ack {
            // After the state update, so a closing ack's gaps are judged by it.
            self.ack_received(r, rel_ack);
        }
        let me = &mut self.endpoints[s];
        if len > 0 && !rst && !underflow && seg.checksum_ok.is_some() {
            let nothing_acked = me.no_data_acked();
            let data_seq = rel_seq.wrapping_add(u64::from(syn));
            me.stream.data(data_seq, u64::from(len), nothing_acked);
        }
        if close && !me.did_close {
            // Zeek's `ConnectionClosed`: complete on RST, both FINs, or a FIN to silence.
            me.did_close = true;
            let peer = &self.endpoints[r];
            let me = &self.endpoints[s];
            self.close_complete |=
                me.state == State::Reset || peer.did_close || peer.state == State::Inactive;
        }
        reversed
    }

    /// Zeek's `update_history`: S, H, F and R repeat only with a new relative
    /// sequence number; D, A, I and Q appear once per direction.
    fn update_history(&mut self, s: usize, flags: u8, rel_seq: u64, len: u32) {
        let (syn, fin, rst, ack) = flag_bits(flags);
        let fin_at = rel_seq.wrapping_add(u64::from(len)); // after the FIN's payload
        let (mask, code, slot, at) = match (syn, fin, rst) {
            (false, false, false) if len > 0 => (HIST_DATA, b'D', None, 0),
            (false, false, false) if ack => (HIST_ACK, b'A', None, 0),
            (false, false, false) => return,
            (true, false, false) => (HIST_SYN, if ack { b'H' } else { b'S' }, Some(0), rel_seq),
            (false, true, false) => (HIST_FIN, b'F', Some(1), fin_at),
            (false, false, true) => (HIST_RST, b'R', Some(2), rel_seq),
            (_, true, true) => (HIST_FIN_RST, b'I', None, 0),
            _ => (HIST_MULTI_FLAG, b'Q', None, 0),
        };
        let seen = self.seen_before(s, mask, code);
        if let Some(slot) = slot {
            if seen && at != self.endpoints[s].last_ctl[slot] {
                self.letter(s, code);
            }
            self.endpoints[s].last_ctl[slot] = at;
        }
    }

    /// Counts a C/T/W/G event for endpoint `ep`, adding its letter at 1, 10, 100, ...
    fn scaled(&mut self, ep: usize, counter: fn(&mut Endpoint) -> &mut Scaled, code: u8) {
        if counter(&mut self.endpoints[ep]).bump() {
            self.letter(ep, code);
        }
    }

    /// Zeek's `AckReceived` on endpoint `r`'s reassembler: acked sequence
    /// space never captured is a content gap (missed bytes, 'G').
    fn ack_received(&mut self, r: usize, rel_ack: u64) {
        let clean = self.endpoints[r].is_clean() && self.endpoints[1 - r].is_clean();
        let e = &mut self.endpoints[r];
        let mut up_to = rel_ack;
        if e.fin_count > 0 && up_to >= e.fin_seq {
            up_to = e.fin_seq.saturating_sub(1); // the FIN octet is not payload
        }
        let (bytes, holes) = e.stream.acked(up_to);
        if clean {
            self.missed = self.missed.saturating_add(bytes);
            for _ in 0..holes {
                self.scaled(r, |e| &mut e.gaps, b'G');
            }
        }
    }
}

/// Mutable (endpoint `s`, its peer).
fn pair(endpoints: &mut [Endpoint; 2], s: usize) -> (&mut Endpoint, &mut Endpoint) {
    let [a, b] = endpoints;
    if s == 0 { (a, b) } else { (b, a) }
}

/// Zeek's `init_endpoint`: starts numbering on an endpoint's first segment,
/// or again on a SYN that restarts it.
fn init_endpoint(e: &mut Endpoint, flags: u8, seq: u32, seq_end: u32) {
    let syn = flags & SYN != 0;
    match e.state {
        // No SYN: number as though one came just before, and make this
        // segment new data rather than a retransmission.
        State::Inactive if !syn => e.init_seqs(seq.wrapping_sub(1), seq),
        State::Inactive | State::Established | State::Partial if syn => e.init_seqs(seq, seq_end),
        State::SynSent | State::SynAckSent if syn && seq != e.start() => e.init_seqs(seq, seq_end),
        // Numbers set by a RST that may have been spoofed.
        State::Reset if syn && e.prev_state == State::Inactive => e.init_seqs(seq, seq_end),
        _ => {}
    }
}

/// Zeek's `update_last_seq`: advances the highest sequence sent; true when
/// payload at or below it is a retransmission ('T').
fn update_last_seq(e: &mut Endpoint, seq_end: u32, flags: u8, len: u32) -> bool {
    let delta = seq_delta(seq_end, e.last_seq);
    let limit = -TOO_LARGE_SEQ_DELTA..=TOO_LARGE_SEQ_DELTA;
    if flags & (SYN | RST) != 0 && !limit.contains(&delta) {
        return false; // an untrusted jump
    }
    // Only SYN and FIN seen: trust the FIN even across more than 2 GB.
    if (flags & FIN != 0 && e.last_seq == e.start().wrapping_add(1))
        || (e.state != State::Reset && delta > 0)
    {
        e.update_last(seq_end);
        return false;
    }
    e.state != State::Reset && len > 0
}

/// FIN closes, then RST resets, as Zeek applies them; true if either was set.
fn fin_rst(me: &mut Endpoint, fin: bool, rst: bool) -> bool {
    if fin {
        me.set_state(State::Closed);
    }
    if rst {
        me.set_state(State::Reset);
    }
    fin || rst
}

/// Zeek's `UpdateStateMachine` for a segment from `me`; returns (close
/// reported, SYN/SYN-ACK reversal that flips roles).
fn update_state(
    me: &mut Endpoint,
    peer: &mut Endpoint,
    seg: &TcpSegment,
    is_orig: bool,
) -> (bool, bool) {
    let (syn, fin, rst, ack) = flag_bits(seg.flags);
    let mut reversed = false;
    match me.state {
        State::Inactive => {
            if syn && is_orig {
                let sent = if ack {
                    State::SynAckSent
                } else {
                    State::SynSent
                };
                me.set_state(sent);
            } else if syn {
                reversed = !ack && peer.state == State::SynAckSent && seg.seq == me.start();
                if reversed || peer.state == State::SynSent {
                    peer.set_state(State::Established);
                }
                me.set_state(State::Established);
            }
            fin_rst(me, fin, rst);
            // Some stacks ack a SYN before answering it: not yet partial.
            let early_ack = !is_orig && seg.payload_len == 0 && peer.state == State::SynSent;
            if me.state == State::Inactive && !early_ack {
                // SYN missed but SYN-ACK seen: an ACK completes the handshake.
                let done = ack && peer.state == State::Established;
                me.set_state(if done {
                    State::Established
                } else {
                    State::Partial
                });
            }
            (fin || rst, reversed)
        }
        State::SynSent | State::SynAckSent => (fin_rst(me, fin, rst), false),
        State::Established | State::Partial => {
            if syn && !ack && me.state == State::Partial && peer.state == State::Inactive {
                me.set_state(State::SynSent);
            }
            if fin && !rst {
                me.set_state(State::Closed);
                // The peer's FIN then RST was a normal close after all.
                if peer.state == State::Reset && peer.prev_state == State::Closed {
                    peer.set_state(State::Closed);
                }
            }
            (fin_rst(me, false, rst) || fin, false)
        }
        // A RST after both FINs changes nothing.
        State::Closed if rst && peer.state != State::Closed => {
            me.set_state(State::Reset);
            (!me.did_close, false)
        }
        State::Closed | State::Reset => (false, false),
    }
}

#[cfg(test)]
mod tests {
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

    fn seg(flags: u8, seq: u32, ack: u32, len: u32) -> TcpSegment {
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
}

//! The per-segment state machine, following Zeek's
//! `TCPSessionAdapter::Process` and `TCP_Endpoint` transitions.

use super::endpoint::*;
use super::*;

/// Per-segment processing, following Zeek's `TCPSessionAdapter::Process`.
impl TcpConnection {
    /// Handles a segment from endpoint `s`; true if a reversed handshake flipped roles.
    pub(super) fn process(&mut self, s: usize, seg: &TcpSegment) -> bool {
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
    pub(super) fn update_history(&mut self, s: usize, flags: u8, rel_seq: u64, len: u32) {
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
    pub(super) fn scaled(
        &mut self,
        ep: usize,
        counter: fn(&mut Endpoint) -> &mut Scaled,
        code: u8,
    ) {
        if counter(&mut self.endpoints[ep]).bump() {
            self.letter(ep, code);
        }
    }

    /// Zeek's `AckReceived` on endpoint `r`'s reassembler: acked sequence
    /// space never captured is a content gap (missed bytes, 'G').
    pub(super) fn ack_received(&mut self, r: usize, rel_ack: u64) {
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
pub(super) fn pair(endpoints: &mut [Endpoint; 2], s: usize) -> (&mut Endpoint, &mut Endpoint) {
    let [a, b] = endpoints;
    if s == 0 { (a, b) } else { (b, a) }
}

/// Zeek's `init_endpoint`: starts numbering on an endpoint's first segment,
/// or again on a SYN that restarts it.
pub(super) fn init_endpoint(e: &mut Endpoint, flags: u8, seq: u32, seq_end: u32) {
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
pub(super) fn update_last_seq(e: &mut Endpoint, seq_end: u32, flags: u8, len: u32) -> bool {
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
pub(super) fn fin_rst(me: &mut Endpoint, fin: bool, rst: bool) -> bool {
    if fin {
        me.set_state(State::Closed);
    }
    if rst {
        me.set_state(State::Reset);
    }
    fin || rst
}

/// Zeek's `UpdateStateMachine` for a segment from `me`; returns (close
/// reported, SYN/SYN-ACK reversal that flips roles). Inlined into its one
/// caller, which runs for every segment.
#[inline]
pub(super) fn update_state(
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

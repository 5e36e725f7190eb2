//! The fast path for the segment nearly every packet is: both endpoints
//! established, partial (the handshake was not captured) or closed by a
//! FIN, ACK set, no SYN, FIN or RST, checksum not known bad.
//!
//! Input: the segment and its direction, as for
//! [`TcpConnection::on_segment`]. Output: the same state changes, history
//! letters (in the same order) and missed bytes as [`TcpConnection::process`]
//! makes for such a segment, with the flag decoding, state transitions and
//! close bookkeeping that cannot apply left out. It declines (changing
//! nothing) any other segment, which then takes the general path.

use super::endpoint::*;
use super::machine::pair;
use super::*;

impl TcpConnection {
    /// Handles the segment if it is the common case; false (nothing
    /// changed) otherwise.
    #[inline]
    pub(super) fn established_segment(&mut self, dir: Direction, seg: &TcpSegment) -> bool {
        // Established, partial or closed on both sides rules out the first
        // segment (port flip), a lone SYN-ACK's flip and every state
        // transition a segment without SYN, FIN or RST could make.
        if seg.flags & (SYN | FIN | RST | ACK) != ACK || seg.checksum_ok == Some(false) {
            return false;
        }
        let s = self.index(dir);
        let (me, peer) = pair(&mut self.endpoints, s);
        let open =
            |e: &Endpoint| matches!(e.state, State::Established | State::Partial | State::Closed);
        if !open(me) || !open(peer) {
            return false;
        }
        let len = seg.payload_len;
        let seq_end = seg.seq.wrapping_add(len);
        // Only data needs the relative sequence number, against the highest
        // sequence number before this segment.
        let (last_seq, seq_wraps) = (me.last_seq, me.seq_wraps);
        // The peer is not silent: its ack numbering exists.
        let (rel, ack_underflow) = peer.relative(seg.ack, peer.ack_seq, peer.ack_wraps);
        let mut rel_ack = 0;
        if !ack_underflow {
            peer.update_ack(seg.ack);
            rel_ack = rel;
        }
        // `update_last_seq` without SYN, FIN or RST, outside Reset.
        let retransmit = if seq_delta(seq_end, me.last_seq) > 0 {
            me.update_last(seq_end);
            false
        } else {
            len > 0
        };
        // The counters first, their letters below (they touch no endpoint).
        // Zero windows are boring after the peer's FIN.
        let zero_window_letter =
            seg.window == 0 && peer.state != State::Closed && me.zero_windows.bump();
        let retransmit_letter = retransmit && me.retransmits.bump();
        // `ack_received` on the peer's stream.
        let mut up_to = rel_ack;
        if peer.fin_count > 0 && up_to >= peer.fin_seq {
            up_to = peer.fin_seq.saturating_sub(1);
        }
        let (bytes, holes) = peer.stream.acked(up_to);
        let mut gap_letters = 0;
        // No hole, no missed bytes: skip the states' cleanliness.
        if holes > 0 && me.is_clean() && peer.is_clean() {
            self.missed = self.missed.saturating_add(bytes);
            for _ in 0..holes {
                gap_letters += u32::from(peer.gaps.bump());
            }
        }
        if len > 0 && seg.checksum_ok.is_some() {
            let (rel_seq, underflow) = me.relative(seg.seq, last_seq, seq_wraps);
            if !underflow {
                let nothing_acked = me.no_data_acked();
                me.stream.data(rel_seq, u64::from(len), nothing_acked);
            }
        }
        // History letters in the general path's order: D/A, W, T, G.
        let (mask, code) = if len > 0 {
            (HIST_DATA, b'D')
        } else {
            (HIST_ACK, b'A')
        };
        self.seen_before(s, mask, code);
        if zero_window_letter {
            self.letter(s, b'W');
        }
        if retransmit_letter {
            self.letter(s, b'T');
        }
        for _ in 0..gap_letters {
            self.letter(1 - s, b'G');
        }
        true
    }
}

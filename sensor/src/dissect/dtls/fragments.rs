//! DTLS handshake reassembly (RFC 6347 §4.2.2, RFC 9147 §5.5): the
//! handshake messages of one direction, rebuilt from fragments identified
//! by (message_seq, fragment_offset, fragment_length), in any order, with
//! retransmissions ignored.
//!
//! Input: the body of one plaintext handshake record (one or more 12-byte
//! fragment headers, each followed by its bytes). Output: each handshake
//! message (type and body) once, when its last missing byte arrives.
//!
//! Bounds: a message longer than `Limits::max_buffered_bytes` is counted
//! and skipped; at most `Limits::max_pending_transactions` messages are
//! incomplete at once (the oldest is dropped and counted); a message's
//! received ranges are kept merged (at most 64 disjoint ones). Does not: look inside messages.

use crate::dissect::Limits;

/// Fragment header length: type, length (3), message_seq (2),
/// fragment_offset (3), fragment_length (3).
pub const FRAGMENT_HEADER: usize = 12;
/// message_seq values remembered as done (a handshake is far shorter).
const SEQ_WINDOW: u16 = 64;
/// Disjoint received ranges kept for one message (real stacks fragment to
/// the path MTU: a few ranges at a time).
const MAX_RANGES: usize = 64;

/// A message still missing bytes.
#[derive(Debug)]
struct Partial {
    seq: u16,
    typ: u8,
    body: Vec<u8>,
    /// Received byte ranges, merged, in order.
    have: Vec<(usize, usize)>,
}

impl Partial {
    fn add(&mut self, offset: usize, bytes: &[u8]) {
        let end = offset + bytes.len();
        if let Some(dst) = self.body.get_mut(offset..end) {
            dst.copy_from_slice(bytes);
        }
        self.have.push((offset, end));
        self.have.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(self.have.len());
        for &(s, e) in &self.have {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        self.have = merged;
    }

    fn complete(&self) -> bool {
        self.have.as_slice() == [(0, self.body.len())]
    }
}

/// The reassembly state of one direction.
#[derive(Debug, Default)]
pub struct Reassembly {
    partial: Vec<Partial>,
    /// message_seq values below [`SEQ_WINDOW`] already delivered.
    done: u64,
}

/// A reassembled handshake message.
#[derive(Debug, PartialEq, Eq)]
pub struct Message {
    /// Handshake type.
    pub typ: u8,
    /// message_seq.
    pub seq: u16,
    /// The body (without the fragment header).
    pub body: Vec<u8>,
}

fn be24(d: &[u8]) -> usize {
    d.iter().fold(0usize, |a, b| a << 8 | usize::from(*b))
}

impl Reassembly {
    /// Reads the fragments of one handshake record's body, appending the
    /// messages they complete to `out` and the anomalies to `anomalies`.
    pub fn record(
        &mut self,
        limits: &Limits,
        mut body: &[u8],
        out: &mut Vec<Message>,
        anomalies: &mut Vec<&'static str>,
    ) {
        while !body.is_empty() {
            let Some(h) = body.get(..FRAGMENT_HEADER) else {
                anomalies.push("truncated_fragment");
                return;
            };
            let typ = h.first().copied().unwrap_or(0);
            let len = be24(h.get(1..4).unwrap_or_default());
            let seq = u16::from_be_bytes([
                h.get(4).copied().unwrap_or(0),
                h.get(5).copied().unwrap_or(0),
            ]);
            let offset = be24(h.get(6..9).unwrap_or_default());
            let frag_len = be24(h.get(9..12).unwrap_or_default());
            let Some(bytes) = body.get(FRAGMENT_HEADER..FRAGMENT_HEADER + frag_len) else {
                anomalies.push("truncated_fragment");
                return;
            };
            body = body.get(FRAGMENT_HEADER + frag_len..).unwrap_or_default();
            if offset + frag_len > len {
                anomalies.push("bad_fragment");
                continue;
            }
            if let Some(m) = self.fragment(limits, typ, len, seq, offset, bytes, anomalies) {
                out.push(m);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn fragment(
        &mut self,
        limits: &Limits,
        typ: u8,
        len: usize,
        seq: u16,
        offset: usize,
        bytes: &[u8],
        anomalies: &mut Vec<&'static str>,
    ) -> Option<Message> {
        if seq >= SEQ_WINDOW || self.done & (1 << seq) != 0 {
            // A retransmission, or far past any handshake.
            return None;
        }
        if len > limits.max_buffered_bytes {
            anomalies.push("handshake_too_large");
            self.done |= 1 << seq;
            return None;
        }
        let at = match self.partial.iter().position(|p| p.seq == seq) {
            Some(i) => i,
            None if offset == 0 && bytes.len() == len => {
                // The whole message in one fragment: the common case.
                self.done |= 1 << seq;
                return Some(Message {
                    typ,
                    seq,
                    body: bytes.to_vec(),
                });
            }
            None => {
                if self.partial.len() >= limits.max_pending_transactions.max(1) {
                    self.partial.remove(0);
                    anomalies.push("too_many_partial_messages");
                }
                self.partial.push(Partial {
                    seq,
                    typ,
                    body: vec![0; len],
                    have: Vec::new(),
                });
                self.partial.len() - 1
            }
        };
        let p = self.partial.get_mut(at)?;
        if p.typ != typ || p.body.len() != len {
            anomalies.push("bad_fragment");
            return None;
        }
        p.add(offset, bytes);
        if p.have.len() > MAX_RANGES {
            self.partial.remove(at);
            anomalies.push("too_many_fragments");
            return None;
        }
        if !p.complete() {
            return None;
        }
        let p = self.partial.remove(at);
        self.done |= 1 << seq;
        Some(Message {
            typ: p.typ,
            seq,
            body: p.body,
        })
    }
}

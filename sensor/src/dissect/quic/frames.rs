//! Frames of decrypted Initial packets and the reassembly of the CRYPTO
//! stream they carry.
//!
//! Input: the plaintext payload of one Initial packet; CRYPTO frames at
//! any offset, in any order, repeated or overlapping. Output: the CRYPTO
//! bytes in order from offset 0 ([`CryptoStream::contiguous`]), and the
//! first handshake message once complete ([`CryptoStream::message`]).
//! Overlaps: the first copy of a byte wins; a differing retransmission is
//! reported. Bounded by a byte cap (the flow's `max_buffered_bytes`) and a
//! cap on the number of disjoint fragments held.
//!
//! Does not: decrypt (`initial.rs`) or parse the TLS message (the TLS
//! dissector's hello parser does).

use super::initial::varint;

/// Disjoint CRYPTO fragments held at once.
pub const MAX_FRAGMENTS: usize = 64;

/// Frame types allowed in Initial packets (RFC 9000 §12.4).
const PADDING: u64 = 0x00;
const PING: u64 = 0x01;
const ACK: u64 = 0x02;
const ACK_ECN: u64 = 0x03;
const CRYPTO: u64 = 0x06;
const CONNECTION_CLOSE: u64 = 0x1c;
const CONNECTION_CLOSE_APP: u64 = 0x1d;

fn skip(buf: &[u8], pos: &mut usize, len: u64) -> Option<()> {
    let end = pos.checked_add(usize::try_from(len).ok()?)?;
    if end > buf.len() {
        return None;
    }
    *pos = end;
    Some(())
}

/// Walks the frames of an Initial packet's payload, calling
/// `crypto(offset, data)` for each CRYPTO frame. `Err` names the reason
/// when a frame is truncated or of a type not allowed in Initial packets
/// (the frames before it have been delivered).
pub fn walk(payload: &[u8], mut crypto: impl FnMut(u64, &[u8])) -> Result<(), &'static str> {
    let mut pos = 0;
    while pos < payload.len() {
        let ty = varint(payload, &mut pos).ok_or("truncated_frame")?;
        let ok = match ty {
            PADDING | PING => Some(()),
            ACK | ACK_ECN => (|| {
                varint(payload, &mut pos)?; // largest acknowledged
                varint(payload, &mut pos)?; // ack delay
                let ranges = varint(payload, &mut pos)?;
                varint(payload, &mut pos)?; // first range
                for _ in 0..ranges {
                    varint(payload, &mut pos)?; // gap
                    varint(payload, &mut pos)?; // range length
                }
                if ty == ACK_ECN {
                    for _ in 0..3 {
                        varint(payload, &mut pos)?;
                    }
                }
                Some(())
            })(),
            CRYPTO => (|| {
                let offset = varint(payload, &mut pos)?;
                let len = usize::try_from(varint(payload, &mut pos)?).ok()?;
                let data = payload.get(pos..pos.checked_add(len)?)?;
                pos += len;
                crypto(offset, data);
                Some(())
            })(),
            CONNECTION_CLOSE | CONNECTION_CLOSE_APP => (|| {
                varint(payload, &mut pos)?; // error code
                if ty == CONNECTION_CLOSE {
                    varint(payload, &mut pos)?; // frame type
                }
                let reason = varint(payload, &mut pos)?;
                skip(payload, &mut pos, reason)
            })(),
            _ => return Err("unexpected_frame"),
        };
        ok.ok_or("truncated_frame")?;
    }
    Ok(())
}

/// The CRYPTO stream of one direction and packet number space.
#[derive(Debug, Clone, Default)]
pub struct CryptoStream {
    /// Bytes by offset; holes are zeros until filled.
    buf: Vec<u8>,
    /// Filled ranges `[start, end)`, sorted and disjoint, not adjacent.
    ranges: Vec<(usize, usize)>,
}

/// Why a CRYPTO fragment was refused or flagged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// It ends beyond the byte cap.
    BeyondLimit,
    /// Too many disjoint fragments are held.
    TooManyFragments,
}

impl CryptoStream {
    /// Adds `data` at `offset`, bytes already held kept (first copy wins).
    /// Returns whether a retransmitted byte differed from the first copy.
    pub fn insert(&mut self, offset: u64, data: &[u8], max: usize) -> Result<bool, Refused> {
        let start = usize::try_from(offset).map_err(|_| Refused::BeyondLimit)?;
        let end = start
            .checked_add(data.len())
            .filter(|&e| e <= max)
            .ok_or(Refused::BeyondLimit)?;
        if data.is_empty() {
            return Ok(false);
        }
        // Where the new range goes, and which held ranges it touches.
        let first = self.ranges.partition_point(|&(_, e)| e < start);
        let last = self.ranges.partition_point(|&(s, _)| s <= end);
        let touched = self.ranges.get(first..last).unwrap_or_default();
        if touched.is_empty() && self.ranges.len() >= MAX_FRAGMENTS {
            return Err(Refused::TooManyFragments);
        }
        if self.buf.len() < end {
            self.buf.resize(end, 0);
        }
        let mut differs = false;
        let mut cursor = start;
        for &(s, e) in touched {
            // Fill the hole before this held range, compare the overlap.
            let hole_end = s.max(cursor).min(end);
            copy(&mut self.buf, data, start, cursor, hole_end);
            let (os, oe) = (s.max(start), e.min(end));
            if os < oe {
                let held = self.buf.get(os..oe).unwrap_or_default();
                let new = data.get(os - start..oe - start).unwrap_or_default();
                differs |= held != new;
            }
            cursor = cursor.max(e);
        }
        copy(&mut self.buf, data, start, cursor, end);
        let merged_start = touched.first().map_or(start, |&(s, _)| s.min(start));
        let merged_end = touched.last().map_or(end, |&(_, e)| e.max(end));
        self.ranges
            .splice(first..last, [(merged_start, merged_end)]);
        Ok(differs)
    }

    /// The bytes received without a hole from offset 0.
    pub fn contiguous(&self) -> &[u8] {
        match self.ranges.first() {
            Some(&(0, end)) => self.buf.get(..end).unwrap_or_default(),
            _ => &[],
        }
    }

    /// The first handshake message as `(type, body)` once all its bytes
    /// are in.
    pub fn message(&self) -> Option<(u8, &[u8])> {
        let c = self.contiguous();
        let (&ty, rest) = c.split_first()?;
        let len_bytes = rest.get(..3)?;
        let len = usize::from(len_bytes[0]) << 16
            | usize::from(len_bytes[1]) << 8
            | usize::from(len_bytes[2]);
        Some((ty, rest.get(3..3usize.checked_add(len)?)?))
    }

    /// The declared length of the first handshake message (header
    /// included), once its header is in.
    pub fn message_len(&self) -> Option<usize> {
        let c = self.contiguous();
        let b = c.get(1..4)?;
        Some(4 + (usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2])))
    }
}

/// Copies `data` (which starts at stream offset `start`) for stream
/// offsets `[from, to)` into `buf`.
fn copy(buf: &mut [u8], data: &[u8], start: usize, from: usize, to: usize) {
    if from >= to {
        return;
    }
    if let (Some(dst), Some(src)) = (buf.get_mut(from..to), data.get(from - start..to - start)) {
        dst.copy_from_slice(src);
    }
}

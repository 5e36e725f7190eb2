//! Out-of-order data one direction holds until the hole before it fills.
//!
//! Owns: the held pieces of a [`Stream`] (data copied from segments, and
//! bytes remembered as missing), placing a segment's bytes around them
//! ("first copy wins", differing overlaps counted), the per-stream caps and
//! the worker's [`Budget`] (giving up the oldest hole when one is reached),
//! cutting what lies beyond a FIN, and delivering what became contiguous,
//! holes as gaps. Input: the part of a segment at or after the next byte to
//! deliver, from [`Stream::segment`] (and [`Stream::flush`] at the end).
//! Output: [`Chunk`]s through the stream's callback, and counts in
//! [`Stats`]. Does not: place sequence numbers, start the stream or take
//! the in-order fast path (`reassembly/mod.rs` does).

use super::{Budget, Chunk, Deliver, Stats, Stream, StreamLimits};

/// Held out-of-order bytes: `data`, then `missing` bytes whose content is
/// unknown (cut by the capture, or not kept for lack of budget).
#[derive(Debug)]
pub(super) struct Piece {
    data: Box<[u8]>,
    missing: u64,
}

impl Piece {
    fn len(&self) -> u64 {
        self.data.len() as u64 + self.missing
    }
}

/// The bytes of `payload` (which starts at offset `seg_off`) in
/// `[from, to)`, with the length of the part of that range beyond the
/// captured bytes.
fn split(payload: &[u8], seg_off: i64, from: u64, to: u64) -> (&[u8], u64) {
    let rel_from = (from as i64).saturating_sub(seg_off).max(0) as usize;
    let rel_to = (to as i64).saturating_sub(seg_off).max(0) as usize;
    let known_to = rel_to.min(payload.len());
    let data = payload.get(rel_from..known_to).unwrap_or(&[]);
    (
        data,
        to.saturating_sub(from).saturating_sub(data.len() as u64),
    )
}

/// Bytes that differ between two slices of the same length.
fn differing(a: &[u8], b: &[u8]) -> u64 {
    a.iter().zip(b).filter(|(x, y)| x != y).count() as u64
}

impl Stream {
    /// The stream ends at `end`: drops what is held beyond it.
    pub(super) fn set_end(&mut self, end: u64, budget: &mut Budget) {
        self.end = Some(end);
        let beyond = self.held.split_off(&end);
        for piece in beyond.values() {
            self.release(piece.data.len(), budget);
        }
        let mut cut = 0;
        if let Some((&start, piece)) = self.held.range_mut(..end).next_back() {
            let keep = end - start;
            if piece.len() > keep {
                if piece.data.len() as u64 > keep {
                    cut = piece.data.len() - keep as usize;
                    let mut data = std::mem::take(&mut piece.data).into_vec();
                    data.truncate(keep as usize);
                    piece.data = data.into_boxed_slice();
                    piece.missing = 0;
                } else {
                    piece.missing = keep - piece.data.len() as u64;
                }
            }
        }
        self.release(cut, budget);
    }

    /// Bytes of the segment in `[lo, hi)` that differ from held bytes at
    /// the same offsets (where both are known).
    pub(super) fn count_differing(&self, payload: &[u8], seg_off: i64, lo: u64, hi: u64) -> u64 {
        let before = self.held.range(..lo).next_back();
        let mut n = 0;
        for (&start, piece) in before.into_iter().chain(self.held.range(lo..hi)) {
            let from = start.max(lo);
            let to = (start + piece.data.len() as u64).min(hi);
            if from >= to {
                continue;
            }
            let (new, _) = split(payload, seg_off, from, to);
            let old = piece
                .data
                .get((from - start) as usize..(from - start) as usize + new.len())
                .unwrap_or(&[]);
            n += differing(new, old);
        }
        n
    }

    /// Takes the segment's bytes in `[lo, hi)` (`lo >= next`) that no held
    /// piece covers: delivered when in order, held otherwise. True when
    /// some were held.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn take(
        &mut self,
        payload: &[u8],
        seg_off: i64,
        lo: u64,
        hi: u64,
        limits: &StreamLimits,
        budget: &mut Budget,
        stats: &mut Stats,
        deliver: &mut Deliver<'_>,
    ) -> bool {
        let mut held = false;
        let mut cursor = lo;
        while !self.stopped {
            // Bytes behind `next` were delivered meanwhile (from held copies).
            cursor = cursor.max(self.next);
            if cursor >= hi {
                break;
            }
            if let Some((&start, piece)) = self.held.range(..=cursor).next_back()
                && start + piece.len() > cursor
            {
                cursor = start + piece.len();
                continue;
            }
            let to = self
                .held
                .range(cursor..hi)
                .next()
                .map_or(hi, |(&start, _)| start);
            held |= self.place(payload, seg_off, cursor, to, limits, budget, stats, deliver);
            cursor = to;
        }
        held
    }

    /// Places the segment's bytes in `[from, to)`, which no held piece
    /// covers: delivered when `from` is the next byte, held otherwise (after
    /// giving up holes when a cap is reached). True when held.
    #[allow(clippy::too_many_arguments)]
    fn place(
        &mut self,
        payload: &[u8],
        seg_off: i64,
        from: u64,
        to: u64,
        limits: &StreamLimits,
        budget: &mut Budget,
        stats: &mut Stats,
        deliver: &mut Deliver<'_>,
    ) -> bool {
        let (data, missing) = split(payload, seg_off, from, to);
        while !self.stopped {
            if from == self.next {
                self.next = to;
                if !data.is_empty() && !self.emit(Chunk::Data(data), budget, stats, deliver) {
                    return false;
                }
                if missing > 0 && !self.emit(Chunk::Gap(missing), budget, stats, deliver) {
                    return false;
                }
                self.drain(budget, stats, deliver);
                return false;
            }
            let room = self.held.len() < limits.max_segments
                && self.held_bytes.saturating_add(data.len()) <= limits.max_bytes;
            if !room {
                stats.stream_cap_hits += 1;
                self.give_up_hole(from, budget, stats, deliver);
                continue;
            }
            if budget.used.saturating_add(data.len()) <= budget.cap {
                self.held.insert(
                    from,
                    Piece {
                        data: data.into(),
                        missing,
                    },
                );
                self.held_bytes += data.len();
                budget.used += data.len();
                return true;
            }
            stats.budget_cap_hits += 1;
            if self.held_bytes > 0 {
                self.give_up_hole(from, budget, stats, deliver);
                continue;
            }
            // Nothing of ours to give up: remember the bytes as missing.
            self.held.insert(
                from,
                Piece {
                    data: Box::default(),
                    missing: to - from,
                },
            );
            return true;
        }
        false
    }

    /// Gives up the hole at `next` (it ends at the first held piece, or at
    /// `limit`, whichever comes first): a gap, then what became contiguous.
    fn give_up_hole(
        &mut self,
        limit: u64,
        budget: &mut Budget,
        stats: &mut Stats,
        deliver: &mut Deliver<'_>,
    ) {
        let hole_end = self
            .held
            .keys()
            .next()
            .map_or(limit, |&first| first.min(limit));
        if hole_end > self.next {
            let n = hole_end - self.next;
            self.next = hole_end;
            if !self.emit(Chunk::Gap(n), budget, stats, deliver) {
                return;
            }
        }
        self.drain(budget, stats, deliver);
    }

    /// Delivers the held pieces that start at `next`, one after another.
    fn drain(&mut self, budget: &mut Budget, stats: &mut Stats, deliver: &mut Deliver<'_>) {
        while !self.stopped {
            let Some(entry) = self.held.first_entry() else {
                return;
            };
            if *entry.key() != self.next {
                return;
            }
            let piece = entry.remove();
            self.release(piece.data.len(), budget);
            self.next += piece.len();
            if !piece.data.is_empty()
                && !self.emit(Chunk::Data(&piece.data), budget, stats, deliver)
            {
                return;
            }
            if piece.missing > 0 && !self.emit(Chunk::Gap(piece.missing), budget, stats, deliver) {
                return;
            }
        }
    }

    /// Delivers everything held in order, holes as gaps.
    pub(super) fn deliver_held(
        &mut self,
        budget: &mut Budget,
        stats: &mut Stats,
        deliver: &mut Deliver<'_>,
    ) {
        while !self.stopped && !self.held.is_empty() {
            self.give_up_hole(u64::MAX, budget, stats, deliver);
        }
    }
}

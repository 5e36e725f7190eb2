//! Scanning a segment's bytes back into good entries and reports of the
//! damage between them, from one slice or through a window over a reader.

use std::io::Read;

use super::{
    Candidate, ENTRY_HEADER_LEN, ENTRY_MAGIC, Entry, SEGMENT_HEADER_LEN, SegmentHeader, SpoolError,
    check, decode_header,
};

/// The window a segment is first read through by [`scan_segment`]; it
/// grows, up to one maximum entry, only for a larger entry.
pub(super) const INITIAL_WINDOW_BYTES: usize = 1 << 20;

/// One finding of a [`Scanner`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanItem<'a> {
    /// A good entry.
    Entry(Entry<'a>),
    /// Bytes that are no good entry, skipped; the scan goes on after them.
    Damaged {
        /// Where they start in the file.
        offset: u64,
        /// How many.
        len: u64,
    },
    /// At the end of the file, an entry whose magic (or its first bytes)
    /// is there but whose length runs past the end: a write that did not
    /// finish, or a damaged length with nothing good after it.
    TruncatedTail {
        /// Where it starts in the file.
        offset: u64,
        /// The bytes there.
        len: u64,
    },
    /// Only when scanning a window that is not the end of the file: the
    /// scan must go on in a window that starts at `offset` and holds at
    /// least `needed` bytes. Always the last item of its scan.
    NeedMore {
        /// Where the next window starts.
        offset: u64,
        /// Bytes the next window must hold to make progress.
        needed: usize,
    },
}

/// The entries of a segment's bytes (after its header), in order, with the
/// damage between them. Every byte is accounted for exactly once by an
/// `Entry`, `Damaged` or `TruncatedTail` (or left to a `NeedMore`).
#[derive(Debug)]
pub struct Scanner<'a> {
    bytes: &'a [u8],
    /// Offset of `bytes[0]` in the file.
    base: u64,
    pos: usize,
    max_body: u32,
    /// `bytes` runs to the end of the file.
    at_eof: bool,
    /// An item found while resynchronising, returned after the damage.
    queued: Option<ScanItem<'a>>,
    done: bool,
}

impl<'a> Scanner<'a> {
    /// A scanner over `bytes`, which start at file offset `base` and run to
    /// the end of the file when `at_eof`; entry bodies over `max_body` are
    /// never accepted.
    pub fn new(bytes: &'a [u8], base: u64, max_body: u32, at_eof: bool) -> Self {
        Self {
            bytes,
            base,
            pos: 0,
            max_body,
            at_eof,
            queued: None,
            done: false,
        }
    }

    fn at(&self, pos: usize) -> u64 {
        self.base + pos as u64
    }

    /// From a bad position `start`, the next position where an entry
    /// starts or the scan must stop; what lies between is damage. At the
    /// end of the file, the bytes from the first entry that runs past the
    /// end (`start` itself when `start_cut`) are a truncated tail.
    fn resync(&mut self, start: usize, start_cut: bool) -> ScanItem<'a> {
        let mut first_cut = start_cut.then_some(start);
        let mut q = start + 1;
        while q < self.bytes.len() {
            match find_magic_start(&self.bytes[q..]) {
                None => break,
                Some(i) => q += i,
            }
            match check(&self.bytes[q..], self.at(q), self.max_body) {
                Candidate::Good(e) => {
                    self.queued = Some(ScanItem::Entry(e));
                    self.pos = q + e.len as usize;
                    return self.damage(start, q);
                }
                Candidate::Incomplete(needed) if !self.at_eof => {
                    self.queued = Some(ScanItem::NeedMore {
                        offset: self.at(q),
                        needed,
                    });
                    self.pos = self.bytes.len();
                    return self.damage(start, q);
                }
                Candidate::Incomplete(_) => {
                    first_cut = first_cut.or(Some(q));
                    q += 1;
                }
                Candidate::Bad => q += 1,
            }
        }
        self.pos = self.bytes.len();
        if self.at_eof {
            let end = self.bytes.len();
            return match first_cut {
                Some(cut) if cut == start => self.tail(start),
                Some(cut) => {
                    self.queued = Some(self.tail(cut));
                    self.damage(start, cut)
                }
                None => self.damage(start, end),
            };
        }
        // Keep the last bytes, which may be the start of a magic.
        let keep = self
            .bytes
            .len()
            .saturating_sub(start + 1)
            .min(ENTRY_MAGIC.len() - 1);
        let end = self.bytes.len() - keep;
        self.queued = Some(ScanItem::NeedMore {
            offset: self.at(end),
            needed: ENTRY_HEADER_LEN,
        });
        self.damage(start, end)
    }

    fn tail(&self, start: usize) -> ScanItem<'a> {
        ScanItem::TruncatedTail {
            offset: self.at(start),
            len: (self.bytes.len() - start) as u64,
        }
    }

    fn damage(&self, start: usize, end: usize) -> ScanItem<'a> {
        ScanItem::Damaged {
            offset: self.at(start),
            len: (end - start) as u64,
        }
    }
}

/// Where the first byte of `ENTRY_MAGIC`, complete or cut by the end of
/// `bytes`, is found.
fn find_magic_start(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(ENTRY_MAGIC.len())
        .position(|w| w == ENTRY_MAGIC)
        .or_else(|| {
            let tail = bytes.len().saturating_sub(ENTRY_MAGIC.len() - 1);
            (tail..bytes.len()).find(|&i| ENTRY_MAGIC.starts_with(&bytes[i..]))
        })
}

impl<'a> Iterator for Scanner<'a> {
    type Item = ScanItem<'a>;

    fn next(&mut self) -> Option<ScanItem<'a>> {
        if let Some(item) = self.queued.take() {
            self.done |= matches!(item, ScanItem::NeedMore { .. });
            return Some(item);
        }
        if self.done {
            return None;
        }
        let pos = self.pos;
        if pos >= self.bytes.len() {
            self.done = true;
            // The window ended on an entry boundary: the file may go on.
            return (!self.at_eof).then(|| ScanItem::NeedMore {
                offset: self.at(pos),
                needed: ENTRY_HEADER_LEN,
            });
        }
        match check(&self.bytes[pos..], self.at(pos), self.max_body) {
            Candidate::Good(e) => {
                self.pos += e.len as usize;
                Some(ScanItem::Entry(e))
            }
            Candidate::Incomplete(needed) if !self.at_eof => {
                self.done = true;
                Some(ScanItem::NeedMore {
                    offset: self.at(pos),
                    needed,
                })
            }
            Candidate::Incomplete(_) => Some(self.resync(pos, true)),
            Candidate::Bad => Some(self.resync(pos, false)),
        }
    }
}

/// What [`scan_segment`] found in a whole segment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanSummary {
    /// The header, when it is good.
    pub header: Option<SegmentHeader>,
    /// Bytes in the segment.
    pub bytes: u64,
    /// Good entries.
    pub entries: u64,
    /// Regions skipped (a truncated tail included), adjacent ones merged.
    pub damaged_regions: u64,
    /// Bytes in them.
    pub damaged_bytes: u64,
}

/// Scans a whole segment read from `reader` through a window (1 MiB, more
/// only for an entry that needs it, never more than one entry of
/// `max_body`), calling `found` with each good entry and each damaged
/// region (adjacent damage merged; a header that is not a segment's is a
/// damaged region too, and the entries after it are still found). Fails
/// on a read error, or on a header of a format version this build does not
/// know (nothing is reported then: the file is not this build's to judge).
pub fn scan_segment<R: Read>(
    mut reader: R,
    max_body: u32,
    mut found: impl FnMut(ScanItem<'_>),
) -> std::io::Result<ScanSummary> {
    let mut summary = ScanSummary::default();
    let mut window: Vec<u8> = Vec::new();
    let mut want = INITIAL_WINDOW_BYTES;
    let mut base = 0u64;
    let mut at_eof = fill(&mut reader, &mut window, want)?;
    let mut pending: Option<(u64, u64)> = None;
    let mut start = 0usize;
    match decode_header(&window) {
        Ok(h) => {
            summary.header = Some(h);
            start = SEGMENT_HEADER_LEN;
        }
        Err(SpoolError::UnsupportedVersion(v)) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                SpoolError::UnsupportedVersion(v),
            ));
        }
        // A short or bad header: the scan from 0 reports it as damage.
        Err(_) => {}
    }
    loop {
        let mut next: Option<(u64, usize)> = None;
        for item in Scanner::new(&window[start..], base + start as u64, max_body, at_eof) {
            match item {
                ScanItem::Entry(_) => {
                    flush(&mut pending, &mut summary, &mut found);
                    summary.entries += 1;
                    found(item);
                }
                // Damage split by a window's edge comes in adjacent pieces.
                ScanItem::Damaged { offset, len } => match pending.as_mut() {
                    Some((o, l)) if *o + *l == offset => *l += len,
                    _ => {
                        flush(&mut pending, &mut summary, &mut found);
                        pending = Some((offset, len));
                    }
                },
                ScanItem::TruncatedTail { len, .. } => {
                    flush(&mut pending, &mut summary, &mut found);
                    summary.damaged_regions += 1;
                    summary.damaged_bytes += len;
                    found(item);
                }
                ScanItem::NeedMore { offset, needed } => next = Some((offset, needed)),
            }
        }
        let Some((offset, needed)) = next else { break };
        // Slide the window to `offset`, growing it if the entry there
        // needs more than it holds.
        let consumed = (offset - base) as usize;
        window.drain(..consumed);
        base = offset;
        start = 0;
        want = want.max(needed);
        at_eof = fill(&mut reader, &mut window, want)?;
    }
    flush(&mut pending, &mut summary, &mut found);
    summary.bytes = base + window.len() as u64;
    Ok(summary)
}

fn flush(
    pending: &mut Option<(u64, u64)>,
    summary: &mut ScanSummary,
    found: &mut impl FnMut(ScanItem<'_>),
) {
    if let Some((offset, len)) = pending.take() {
        summary.damaged_regions += 1;
        summary.damaged_bytes += len;
        found(ScanItem::Damaged { offset, len });
    }
}

/// Reads into `window` until it holds `want` bytes or the reader ends;
/// true at the end.
fn fill<R: Read>(reader: &mut R, window: &mut Vec<u8>, want: usize) -> std::io::Result<bool> {
    let missing = want.saturating_sub(window.len());
    let got = reader.by_ref().take(missing as u64).read_to_end(window)?;
    Ok(got < missing)
}

/// The spool scanner's fuzz target body, also replayed over its seed
/// corpus in the tests: scans `data` as a whole segment both from one
/// slice and through [`scan_segment`]'s window, read in pieces whose size
/// the first byte chooses, and checks the two agree and account for every
/// byte. Returns the good entries; panics on a disagreement (that is the
/// finding).
pub fn fuzz_input(data: &[u8]) -> u64 {
    let Some((&split, rest)) = data.split_first() else {
        return 0;
    };
    let max_body = 1 << 12;
    let start = if decode_header(rest).is_ok() {
        SEGMENT_HEADER_LEN
    } else {
        0
    };
    let mut whole = Vec::new();
    let mut covered = start as u64;
    for item in Scanner::new(&rest[start..], start as u64, max_body, true) {
        match item {
            ScanItem::Entry(e) => {
                covered += u64::from(e.len);
                whole.push((e.offset, e.epoch, e.sequence));
            }
            ScanItem::Damaged { len, .. } | ScanItem::TruncatedTail { len, .. } => covered += len,
            ScanItem::NeedMore { .. } => panic!("NeedMore at the end of the file"),
        }
    }
    assert_eq!(covered, rest.len() as u64, "bytes unaccounted for");
    if matches!(decode_header(rest), Err(SpoolError::UnsupportedVersion(_))) {
        return whole.len() as u64;
    }
    let mut windowed = Vec::new();
    let piece = usize::from(split % 64) + 1;
    let summary = scan_segment(PieceReader { data: rest, piece }, max_body, |item| {
        if let ScanItem::Entry(e) = item {
            windowed.push((e.offset, e.epoch, e.sequence));
        }
    });
    let summary = summary.unwrap_or_else(|e| panic!("reading from memory failed: {e}"));
    assert_eq!(whole, windowed, "the window changed what was found");
    assert_eq!(summary.bytes, rest.len() as u64);
    whole.len() as u64
}

/// Hands out at most `piece` bytes per read, as a slow file would.
struct PieceReader<'a> {
    data: &'a [u8],
    piece: usize,
}

impl Read for PieceReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.piece).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

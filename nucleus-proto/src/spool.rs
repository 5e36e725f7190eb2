//! Spool segments: the files a sensor keeps its unacknowledged batches in
//! (PROTOCOL.md, "Spool segments").
//!
//! Owns: the byte layout of a segment (a 16-byte header, then entries of
//! `[magic][length][CRC-32][epoch][sequence][record count][pb::Batch]`,
//! big-endian), encoding a header and an entry, and scanning a segment's
//! bytes back into good entries and reports of damage. Inputs: batches to
//! encode; or a segment's bytes, whole or read through a window. Outputs:
//! bytes; or [`ScanItem`]s. Does not: open files for writing, decide what
//! is kept or dropped (the sensor's `export` store does), or open batches
//! (`crate::batch`).
//!
//! Hostile input: an entry's length is checked against a limit before
//! anything is read or allocated from it; a candidate entry counts only if
//! its CRC-32 matches, so after damage the scanner resynchronises at the
//! next entry magic whose length and checksum check out. Each step forward
//! costs at most one checksum over one maximum entry, so a file of nothing
//! but fake magics is slow (quadratic in the worst case) but bounded; a
//! segment is the sensor's own file, not a network input.

mod scan;

pub use scan::{ScanItem, ScanSummary, Scanner, fuzz_input, scan_segment};

/// First bytes of a segment file.
pub const SEGMENT_MAGIC: [u8; 4] = *b"NSPL";
/// First bytes of each entry, where a reader resynchronises after damage.
pub const ENTRY_MAGIC: [u8; 4] = *b"NSPE";
/// The segment format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Magic, version (u16), flags (u16), the epoch of the first entry (u64).
pub const SEGMENT_HEADER_LEN: usize = 16;
/// Magic, length (u32), CRC-32 (u32).
pub const ENTRY_HEADER_LEN: usize = 12;
/// Epoch (u64), sequence (u64), record count (u32): the part of the body
/// before the batch.
pub const ENTRY_FIXED_LEN: usize = 20;
/// Bytes an entry adds to its batch.
pub const ENTRY_OVERHEAD: usize = ENTRY_HEADER_LEN + ENTRY_FIXED_LEN;
/// The default largest entry body (the length field): a batch as large as
/// the largest frame, plus the fixed fields.
pub const DEFAULT_MAX_BODY_BYTES: u32 =
    crate::frame::DEFAULT_MAX_FRAME_BYTES + ENTRY_FIXED_LEN as u32;

/// Why a segment or an entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpoolError {
    /// Fewer than 16 bytes where a segment header should be.
    #[error("{0} bytes are too short for a segment header")]
    ShortHeader(usize),
    /// The file does not start with `NSPL`.
    #[error("not a spool segment (bad magic)")]
    BadMagic,
    /// A segment of a format version this build does not read.
    #[error(
        "spool segment format version {0} is not supported (this build reads {FORMAT_VERSION})"
    )]
    UnsupportedVersion(u16),
    /// An entry whose body would exceed the limit.
    #[error("an entry body of {len} bytes is over the limit of {max}")]
    EntryTooLarge {
        /// The body's size.
        len: usize,
        /// The limit.
        max: u32,
    },
}

/// A segment's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The format version.
    pub version: u16,
    /// Reserved, written as 0, ignored.
    pub flags: u16,
    /// The epoch of the segment's first entry, as written; informational
    /// (each entry carries its own).
    pub first_epoch: u64,
}

/// The 16 header bytes of a segment whose first entry has `first_epoch`.
pub fn encode_header(first_epoch: u64) -> [u8; SEGMENT_HEADER_LEN] {
    let mut h = [0u8; SEGMENT_HEADER_LEN];
    h[..4].copy_from_slice(&SEGMENT_MAGIC);
    h[4..6].copy_from_slice(&FORMAT_VERSION.to_be_bytes());
    h[8..].copy_from_slice(&first_epoch.to_be_bytes());
    h
}

/// Reads the header at the front of `bytes`.
pub fn decode_header(bytes: &[u8]) -> Result<SegmentHeader, SpoolError> {
    let h = bytes
        .get(..SEGMENT_HEADER_LEN)
        .ok_or(SpoolError::ShortHeader(bytes.len()))?;
    if h[..4] != SEGMENT_MAGIC {
        return Err(SpoolError::BadMagic);
    }
    let version = u16::from_be_bytes([h[4], h[5]]);
    if version != FORMAT_VERSION {
        return Err(SpoolError::UnsupportedVersion(version));
    }
    Ok(SegmentHeader {
        version,
        flags: u16::from_be_bytes([h[6], h[7]]),
        first_epoch: be_u64(&h[8..16]),
    })
}

/// The bytes an entry holding a batch of `batch_len` bytes takes on disk.
pub fn entry_len(batch_len: usize) -> usize {
    ENTRY_OVERHEAD.saturating_add(batch_len)
}

/// Appends one entry to `out`: header and body in one buffer, so a writer
/// issues one write per entry. Refuses a body over `max_body`.
pub fn encode_entry(
    epoch: u64,
    sequence: u64,
    record_count: u32,
    batch: &[u8],
    max_body: u32,
    out: &mut Vec<u8>,
) -> Result<(), SpoolError> {
    let body_len = ENTRY_FIXED_LEN.saturating_add(batch.len());
    let len = u32::try_from(body_len)
        .ok()
        .filter(|&l| l <= max_body)
        .ok_or(SpoolError::EntryTooLarge {
            len: body_len,
            max: max_body,
        })?;
    out.reserve(ENTRY_HEADER_LEN + body_len);
    out.extend_from_slice(&ENTRY_MAGIC);
    out.extend_from_slice(&len.to_be_bytes());
    let crc_at = out.len();
    out.extend_from_slice(&[0; 4]);
    let body_at = out.len();
    out.extend_from_slice(&epoch.to_be_bytes());
    out.extend_from_slice(&sequence.to_be_bytes());
    out.extend_from_slice(&record_count.to_be_bytes());
    out.extend_from_slice(batch);
    let crc = crc32fast::hash(&out[body_at..]);
    out[crc_at..body_at].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// A good entry (its checksum matched), borrowed from the scanned bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Where the entry starts in the segment file.
    pub offset: u64,
    /// The entry's bytes on disk, header included.
    pub len: u32,
    /// The batch's epoch.
    pub epoch: u64,
    /// The batch's sequence.
    pub sequence: u64,
    /// Records in the batch.
    pub record_count: u32,
    /// The encoded `pb::Batch`.
    pub batch: &'a [u8],
}

/// What checking the bytes at one position found.
enum Candidate<'a> {
    Good(Entry<'a>),
    /// Not an entry: no magic, an impossible length, or a bad checksum.
    Bad,
    /// Magic and a possible length, but the bytes end first: the caller
    /// needs this many bytes from the position to decide.
    Incomplete(usize),
}

fn check(bytes: &[u8], offset: u64, max_body: u32) -> Candidate<'_> {
    let magic_in = bytes.len().min(ENTRY_MAGIC.len());
    if bytes[..magic_in] != ENTRY_MAGIC[..magic_in] {
        return Candidate::Bad;
    }
    let Some(h) = bytes.get(..ENTRY_HEADER_LEN) else {
        return Candidate::Incomplete(ENTRY_HEADER_LEN);
    };
    let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
    if len > max_body || (len as usize) < ENTRY_FIXED_LEN {
        return Candidate::Bad;
    }
    let total = ENTRY_HEADER_LEN + len as usize;
    let Some(body) = bytes.get(ENTRY_HEADER_LEN..total) else {
        return Candidate::Incomplete(total);
    };
    if crc32fast::hash(body) != u32::from_be_bytes([h[8], h[9], h[10], h[11]]) {
        return Candidate::Bad;
    }
    Candidate::Good(Entry {
        offset,
        len: total as u32,
        epoch: be_u64(&body[0..8]),
        sequence: be_u64(&body[8..16]),
        record_count: u32::from_be_bytes([body[16], body[17], body[18], body[19]]),
        batch: &body[ENTRY_FIXED_LEN..],
    })
}

/// The entry at the front of `bytes` if it is whole and its checksum
/// matches (a reader that knows where an entry is: the sensor's store).
pub fn decode_entry(bytes: &[u8], offset: u64, max_body: u32) -> Option<Entry<'_>> {
    match check(bytes, offset, max_body) {
        Candidate::Good(e) => Some(e),
        _ => None,
    }
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::scan::INITIAL_WINDOW_BYTES;
    use super::*;
    use proptest::prelude::*;

    const MAX: u32 = 1 << 16;

    fn entry(epoch: u64, sequence: u64, batch: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_entry(epoch, sequence, 3, batch, MAX, &mut out).unwrap();
        out
    }

    fn segment(entries: &[Vec<u8>]) -> Vec<u8> {
        let mut s = encode_header(7).to_vec();
        for e in entries {
            s.extend(e);
        }
        s
    }

    /// Scans a whole segment from memory: (entries as (epoch, sequence,
    /// batch)), (damage as (offset, len, is_tail)).
    #[allow(clippy::type_complexity)]
    fn scan(bytes: &[u8]) -> (Vec<(u64, u64, Vec<u8>)>, Vec<(u64, u64, bool)>) {
        let (mut good, mut bad) = (Vec::new(), Vec::new());
        scan_segment(bytes, MAX, |item| match item {
            ScanItem::Entry(e) => good.push((e.epoch, e.sequence, e.batch.to_vec())),
            ScanItem::Damaged { offset, len } => bad.push((offset, len, false)),
            ScanItem::TruncatedTail { offset, len } => bad.push((offset, len, true)),
            ScanItem::NeedMore { .. } => panic!("NeedMore escaped"),
        })
        .unwrap();
        (good, bad)
    }

    #[test]
    fn header_and_entry_layout_is_big_endian_and_checksummed() {
        let h = encode_header(0x0102_0304_0506_0708);
        assert_eq!(
            &h[..],
            b"NSPL\x00\x01\x00\x00\x01\x02\x03\x04\x05\x06\x07\x08"
        );
        assert_eq!(
            decode_header(&h).unwrap().first_epoch,
            0x0102_0304_0506_0708
        );
        let e = entry(1, 2, b"xyz");
        assert_eq!(e.len(), entry_len(3));
        assert_eq!(&e[..4], b"NSPE");
        assert_eq!(&e[4..8], &23u32.to_be_bytes());
        assert_eq!(&e[8..12], &crc32fast::hash(&e[12..]).to_be_bytes());
        assert_eq!(&e[12..20], &1u64.to_be_bytes());
        assert_eq!(&e[20..28], &2u64.to_be_bytes());
        assert_eq!(&e[28..32], &3u32.to_be_bytes());
        assert_eq!(&e[32..], b"xyz");
        let d = decode_entry(&e, 100, MAX).unwrap();
        assert_eq!(
            (d.offset, d.len, d.epoch, d.sequence, d.batch),
            (100, 35, 1, 2, &b"xyz"[..])
        );
    }

    #[test]
    fn headers_that_are_not_segments_are_refused() {
        assert_eq!(decode_header(b"NSPL"), Err(SpoolError::ShortHeader(4)));
        let mut h = encode_header(0);
        h[0] = b'X';
        assert_eq!(decode_header(&h), Err(SpoolError::BadMagic));
        h = encode_header(0);
        h[5] = 2;
        assert_eq!(decode_header(&h), Err(SpoolError::UnsupportedVersion(2)));
        let err = scan_segment(&h[..], MAX, |_| {}).unwrap_err();
        assert!(err.to_string().contains("version 2"), "{err}");
    }

    #[test]
    fn an_entry_over_the_limit_is_refused_when_written_and_when_read() {
        let mut out = Vec::new();
        let big = vec![0u8; 100];
        assert!(matches!(
            encode_entry(0, 0, 1, &big, 119, &mut out),
            Err(SpoolError::EntryTooLarge { len: 120, max: 119 })
        ));
        assert!(out.is_empty());
        encode_entry(0, 0, 1, &big, 120, &mut out).unwrap();
        assert!(decode_entry(&out, 0, 119).is_none());
        assert!(decode_entry(&out, 0, 120).is_some());
    }

    #[test]
    fn a_clean_segment_gives_its_entries_in_order() {
        let s = segment(&[entry(5, 0, b"a"), entry(5, 1, b""), entry(6, 0, b"ccc")]);
        let (good, bad) = scan(&s);
        assert!(bad.is_empty(), "{bad:?}");
        let ids: Vec<_> = good.iter().map(|g| (g.0, g.1)).collect();
        assert_eq!(ids, [(5, 0), (5, 1), (6, 0)]);
        assert_eq!(good[2].2, b"ccc");
    }

    #[test]
    fn a_flipped_byte_costs_one_entry_and_is_reported_where_it_is() {
        let (a, b, c) = (
            entry(1, 0, b"aaaa"),
            entry(1, 1, b"bbbb"),
            entry(1, 2, b"cccc"),
        );
        let mut s = segment(&[a.clone(), b.clone(), c]);
        let b_at = 16 + a.len();
        s[b_at + 20] ^= 0x40;
        let (good, bad) = scan(&s);
        assert_eq!(good.iter().map(|g| g.1).collect::<Vec<_>>(), [0, 2]);
        assert_eq!(bad, [(b_at as u64, b.len() as u64, false)]);
    }

    #[test]
    fn a_cut_off_last_entry_is_a_truncated_tail() {
        let (a, b) = (entry(1, 0, b"aaaa"), entry(1, 1, b"bbbbbbbb"));
        let full = segment(&[a.clone(), b]);
        for cut in [1, 5, 12, 20] {
            let s = &full[..full.len() - cut];
            let (good, bad) = scan(s);
            assert_eq!(good.len(), 1, "cut {cut}");
            let at = (16 + a.len()) as u64;
            assert_eq!(bad, [(at, s.len() as u64 - at, true)], "cut {cut}");
        }
    }

    #[test]
    fn a_damaged_entry_before_a_cut_off_one_is_damage_then_a_tail() {
        let (a, b, c) = (
            entry(1, 0, b"aa"),
            entry(1, 1, b"bbbb"),
            entry(1, 2, b"cccccc"),
        );
        let mut s = segment(&[a.clone(), b.clone(), c]);
        let b_at = (16 + a.len()) as u64;
        s[b_at as usize + 30] ^= 1;
        s.truncate(s.len() - 2);
        let (good, bad) = scan(&s);
        assert_eq!(good.len(), 1);
        let c_at = b_at + b.len() as u64;
        assert_eq!(
            bad,
            [
                (b_at, b.len() as u64, false),
                (c_at, s.len() as u64 - c_at, true)
            ]
        );
    }

    #[test]
    fn garbage_before_between_and_after_entries_is_skipped() {
        let a = entry(2, 0, b"first");
        let b = entry(2, 1, b"second");
        let mut s = encode_header(2).to_vec();
        s.extend(b"garbage NSP NSPE\xff\xff\xff\xff junk");
        let a_at = s.len();
        s.extend(&a);
        s.extend(b"NSPE\x00\x00\x00\x20\x00\x00\x00\x00 more");
        let b_at = s.len();
        s.extend(&b);
        s.extend(b"trailing");
        let (good, bad) = scan(&s);
        assert_eq!(good.iter().map(|g| g.1).collect::<Vec<_>>(), [0, 1]);
        let end_a = (a_at + a.len()) as u64;
        assert_eq!(
            bad,
            [
                (16, a_at as u64 - 16, false),
                (end_a, b_at as u64 - end_a, false),
                ((b_at + b.len()) as u64, 8, false)
            ]
        );
    }

    #[test]
    fn a_bad_header_is_damage_and_the_entries_after_it_are_kept() {
        let mut s = segment(&[entry(1, 0, b"x")]);
        s[1] = b'?';
        let (good, bad) = scan(&s);
        assert_eq!(good.len(), 1);
        assert_eq!(bad, [(0, 16, false)]);
    }

    #[test]
    fn entries_larger_than_the_first_window_are_read_through_a_grown_one() {
        let big = vec![7u8; INITIAL_WINDOW_BYTES + 1000];
        let mut out = Vec::new();
        encode_entry(1, 1, 1, &big, u32::MAX, &mut out).unwrap();
        let mut s = segment(&[entry(1, 0, b"small")]);
        s.extend(&out);
        s.extend(entry(1, 2, b"after"));
        let mut seen = Vec::new();
        let summary = scan_segment(&s[..], u32::MAX, |i| {
            if let ScanItem::Entry(e) = i {
                seen.push((e.sequence, e.batch.len()));
            }
        })
        .unwrap();
        assert_eq!(seen, [(0, 5), (1, big.len()), (2, 5)]);
        assert_eq!((summary.entries, summary.damaged_bytes), (3, 0));
        assert_eq!(summary.bytes, s.len() as u64);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn any_bytes_never_panic_and_are_all_accounted_for(
            data in proptest::collection::vec(any::<u8>(), 0..600),
            with_header in any::<bool>(),
            piece in any::<u8>(),
        ) {
            let mut input = vec![piece];
            if with_header {
                input.extend(encode_header(1));
            }
            input.extend(&data);
            fuzz_input(&input);
        }

        #[test]
        fn good_entries_survive_any_damage_between_them(
            batches in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..80),
                 proptest::collection::vec(any::<u8>(), 0..40),
                 any::<bool>()),
                1..8),
            piece in any::<u8>(),
        ) {
            let mut s = encode_header(9).to_vec();
            for (seq, (batch, junk, magic_junk)) in batches.iter().enumerate() {
                // Junk that starts like an entry forces a resync.
                if *magic_junk {
                    s.extend(ENTRY_MAGIC);
                }
                s.extend(junk);
                s.extend(entry(9, seq as u64, batch));
            }
            let (good, bad) = scan(&s);
            let expected: Vec<_> = batches.iter().enumerate()
                .map(|(i, b)| (9, i as u64, b.0.clone())).collect();
            prop_assert_eq!(good, expected);
            let junk: u64 = batches.iter()
                .map(|b| b.1.len() as u64 + if b.2 { 4 } else { 0 }).sum();
            prop_assert_eq!(bad.iter().map(|b| b.1).sum::<u64>(), junk);
            let mut input = vec![piece];
            input.extend(&s);
            prop_assert_eq!(fuzz_input(&input), batches.len() as u64);
        }
    }
}

//! HTTP/1.x header fields: the lines of a head after its start line.
//!
//! Owns: splitting a head into lines (LF or CRLF), and keeping the fields a
//! record or the framing needs (Host, User-Agent, Content-Type,
//! Content-Length, Transfer-Encoding), with obsolete line folding, repeated
//! copies and lines without a colon. Input: the [`Lines`] of a head, after
//! its start line. Output: [`Fields`] borrowing from the head (copied only
//! when a field repeats or is folded) and where the head ends.
//!
//! Does not: read the start line (`start_line.rs`), decide a body's framing
//! from the fields (the dissector does), or keep any other header.

use std::borrow::Cow;

use super::trim;

/// A Content-Length as found in a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContentLength {
    /// No Content-Length header.
    #[default]
    Absent,
    /// A valid length (every copy agrees).
    Valid(u64),
    /// Not a number, too large, or copies that disagree.
    Invalid,
}

/// The header fields a record or the framing needs, borrowed from the head
/// (copied only when an obsolete folded line continues one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields<'a> {
    /// Host (the last one).
    pub host: Option<Cow<'a, [u8]>>,
    /// User-Agent (the last one).
    pub user_agent: Option<Cow<'a, [u8]>>,
    /// Content-Type (the last one).
    pub content_type: Option<Cow<'a, [u8]>>,
    /// Content-Length.
    pub content_length: ContentLength,
    /// Transfer-Encoding present.
    pub transfer_encoding: bool,
    /// The last transfer coding is `chunked`.
    pub chunked: bool,
    /// Header lines that were not `name: value` (counted and skipped).
    pub malformed: u32,
}

/// Which kept field a header line filled, for obsolete line folding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kept {
    Host,
    UserAgent,
    ContentType,
    ContentLength,
    TransferEncoding,
    Other,
}

/// Parses the header lines of a head (everything after the start line);
/// `lines` yields lines without their line ends, up to the empty line.
/// Returns the fields and, when the empty line that ends the head was met
/// (with its line feed), the offset just after it.
pub(super) fn parse_fields<'a>(lines: &mut Lines<'a>) -> (Fields<'a>, Option<usize>) {
    let mut f = Fields::default();
    // Borrowed from the head while there is one copy, joined (owned) only
    // when a field repeats or is folded: no allocation in the usual case.
    let mut cl_values: Cow<'a, [u8]> = Cow::Borrowed(&[]);
    let mut te_value: Cow<'a, [u8]> = Cow::Borrowed(&[]);
    let mut last = Kept::Other;
    let mut cl_seen = false;
    let mut end = None;
    while let Some(line) = lines.next() {
        if line.is_empty() {
            if lines.terminated {
                end = Some(lines.pos);
            }
            break;
        }
        if matches!(line.first(), Some(b' ' | b'\t')) {
            // Obsolete line folding: the previous field continues.
            let more = trim(line);
            let target = match last {
                Kept::Host => f.host.as_mut().map(Cow::to_mut),
                Kept::UserAgent => f.user_agent.as_mut().map(Cow::to_mut),
                Kept::ContentType => f.content_type.as_mut().map(Cow::to_mut),
                Kept::ContentLength => Some(cl_values.to_mut()),
                Kept::TransferEncoding => Some(te_value.to_mut()),
                Kept::Other => None,
            };
            if let Some(v) = target
                && !more.is_empty()
            {
                v.push(b' ');
                v.extend_from_slice(more);
            }
            continue;
        }
        last = match classify(line) {
            Line::Malformed => {
                f.malformed += 1;
                Kept::Other
            }
            Line::Other => Kept::Other,
            Line::Kept(Kept::Host, value) => {
                f.host = Some(Cow::Borrowed(value));
                Kept::Host
            }
            Line::Kept(Kept::UserAgent, value) => {
                f.user_agent = Some(Cow::Borrowed(value));
                Kept::UserAgent
            }
            Line::Kept(Kept::ContentType, value) => {
                f.content_type = Some(Cow::Borrowed(value));
                Kept::ContentType
            }
            Line::Kept(Kept::ContentLength, value) => {
                if cl_seen {
                    let v = cl_values.to_mut();
                    v.push(b',');
                    v.extend_from_slice(value);
                } else {
                    cl_values = Cow::Borrowed(value);
                }
                cl_seen = true;
                Kept::ContentLength
            }
            Line::Kept(Kept::TransferEncoding, value) => {
                f.transfer_encoding = true;
                if te_value.is_empty() {
                    te_value = Cow::Borrowed(value);
                } else {
                    let v = te_value.to_mut();
                    v.push(b',');
                    v.extend_from_slice(value);
                }
                Kept::TransferEncoding
            }
            Line::Kept(Kept::Other, _) => Kept::Other,
        };
    }
    if cl_seen {
        f.content_length = content_length(&cl_values);
    }
    if f.transfer_encoding {
        f.chunked = te_value
            .rsplit(|&b| b == b',')
            .map(trim)
            .find(|c| !c.is_empty())
            .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"));
    }
    (f, end)
}

/// What one header line (not empty, not a folded continuation) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line<'a> {
    /// A kept field, with its value (trimmed).
    Kept(Kept, &'a [u8]),
    /// A `name: value` line of a field not kept.
    Other,
    /// No colon.
    Malformed,
}

/// [`classify_general`]'s verdict, reached first by [`classify_exact`]
/// for the lines most heads are made of.
fn classify(line: &[u8]) -> Line<'_> {
    classify_exact(line).unwrap_or_else(|| classify_general(line))
}

/// The general reading of a line: the name is what precedes the first
/// colon, trimmed; the value what follows it, trimmed.
fn classify_general(line: &[u8]) -> Line<'_> {
    let Some(colon) = memchr::memchr(b':', line) else {
        return Line::Malformed;
    };
    let name = trim(line.get(..colon).unwrap_or_default());
    // Most headers are none of the five kept: their length rules them
    // out before any comparison, and their value is never looked at.
    if !matches!(name.len(), 4 | 10 | 12 | 14 | 17) {
        return Line::Other;
    }
    let value = trim(line.get(colon + 1..).unwrap_or_default());
    let is = |n: &[u8]| name.len() == n.len() && name.eq_ignore_ascii_case(n);
    let kept = if is(b"host") {
        Kept::Host
    } else if is(b"user-agent") {
        Kept::UserAgent
    } else if is(b"content-type") {
        Kept::ContentType
    } else if is(b"content-length") {
        Kept::ContentLength
    } else if is(b"transfer-encoding") {
        Kept::TransferEncoding
    } else {
        return Line::Other;
    };
    Line::Kept(kept, value)
}

/// [`classify_general`] for the common lines, by their first byte: a kept
/// field's name exactly (any case) and its colon right after it, without
/// searching for the colon or trimming the name; or a line whose first
/// byte starts no kept name and is not whitespace, which only needs its
/// colon found. `None` for the other lines.
fn classify_exact(line: &[u8]) -> Option<Line<'_>> {
    let &first = line.first()?;
    // `| 0x20` lowercases a letter; no other byte becomes one of these.
    let (name, kept): (&[u8], Kept) = match first | 0x20 {
        b'h' => (b"host", Kept::Host),
        b'u' => (b"user-agent", Kept::UserAgent),
        b'c' if line.get(12) == Some(&b':') => (b"content-type", Kept::ContentType),
        b'c' => (b"content-length", Kept::ContentLength),
        b't' => (b"transfer-encoding", Kept::TransferEncoding),
        _ if first.is_ascii_whitespace() => return None,
        _ => {
            return Some(match memchr::memchr(b':', line) {
                Some(_) => Line::Other,
                None => Line::Malformed,
            });
        }
    };
    let n = name.len();
    if line.get(n) != Some(&b':') || !is_name(line.get(..n)?, name) {
        return None;
    }
    Some(Line::Kept(
        kept,
        trim(line.get(n + 1..).unwrap_or_default()),
    ))
}

/// `bytes` is `name` (lowercase letters and `-`, 4 bytes or 8 to 24) in
/// any case, as `eq_ignore_ascii_case` says, compared a word at a time:
/// setting bit 5 of a byte that must be a letter (bit 6 set in `name`)
/// turns only its uppercase into its lowercase; the other bytes must be
/// equal as they are.
fn is_name(bytes: &[u8], name: &[u8]) -> bool {
    /// Bit 5 of each byte of `lower` whose bit 6 is set.
    fn letters(lower: u64) -> u64 {
        (lower & 0x4040_4040_4040_4040) >> 1
    }
    let word = |b: &[u8], at: usize| {
        b.get(at..at + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map(u64::from_le_bytes)
    };
    let n = name.len();
    if bytes.len() != n {
        return false;
    }
    if n == 4 {
        let (Ok(b), Ok(l)) = (<[u8; 4]>::try_from(bytes), <[u8; 4]>::try_from(name)) else {
            return false;
        };
        let l = u64::from(u32::from_le_bytes(l));
        return u64::from(u32::from_le_bytes(b)) | letters(l) == l;
    }
    // Three words cover 8 to 24 bytes (overlapping when fewer).
    [0, 8.min(n.saturating_sub(8)), n.saturating_sub(8)]
        .into_iter()
        .all(|at| match (word(bytes, at), word(name, at)) {
            (Some(b), Some(l)) => b | letters(l) == l,
            _ => false,
        })
}

/// Content-Length values (several copies joined by commas, as RFC 9110
/// allows in one field): valid when every copy is the same number.
fn content_length(values: &[u8]) -> ContentLength {
    let mut out: Option<u64> = None;
    for part in values.split(|&b| b == b',').map(trim) {
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return ContentLength::Invalid;
        }
        // Digits only (checked above): overflow is the one way to fail.
        let Some(n) = part.iter().try_fold(0u64, |n, &d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        }) else {
            return ContentLength::Invalid;
        };
        match out {
            Some(prev) if prev != n => return ContentLength::Invalid,
            _ => out = Some(n),
        }
    }
    out.map_or(ContentLength::Invalid, ContentLength::Valid)
}

/// The lines of a head, without line ends (LF or CRLF); found with
/// memchr, not byte by byte. The bytes after the last LF are a last line.
pub(super) struct Lines<'a> {
    /// What is left, `None` once the last line was given.
    rest: Option<&'a [u8]>,
    /// Offset (in the bytes iterated) just after the last line given.
    pos: usize,
    /// The last line given ended with a line feed.
    terminated: bool,
}

impl<'a> Lines<'a> {
    pub(super) fn new(head: &'a [u8]) -> Self {
        Self {
            rest: Some(head),
            pos: 0,
            terminated: false,
        }
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let r = self.rest?;
        let line = match memchr::memchr(b'\n', r) {
            Some(p) => {
                self.rest = r.get(p + 1..);
                self.pos += p + 1;
                self.terminated = true;
                r.get(..p).unwrap_or_default()
            }
            None => {
                self.rest = None;
                self.pos += r.len();
                self.terminated = false;
                r
            }
        };
        Some(line.strip_suffix(b"\r").unwrap_or(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Pieces header lines are made of: the kept names in several cases
    /// and near misses (a name one byte short or long, a colon inside,
    /// other headers with the same first byte or length), whitespace where
    /// the general reading trims it, colons and values.
    const PIECES: [&[u8]; 24] = [
        b"Host",
        b"HOST",
        b"hosT",
        b"Hos",
        b"Hosts",
        b"User-Agent",
        b"user-agent",
        b"Content-Type",
        b"CONTENT-LENGTH",
        b"Content-Length",
        b"Content-Encoding",
        b"Transfer-Encoding",
        b"transfer-encodinG",
        b"Connection",
        b"Cookie",
        b"Accept",
        b"Date",
        b":",
        b" ",
        b"\t",
        b"\r",
        b"\x0c",
        b"text/html; q=1",
        b"\x80\xff",
    ];

    proptest! {
        #[test]
        fn the_exact_reading_agrees_with_the_general_one(
            parts in proptest::collection::vec(0..PIECES.len(), 1..7)
        ) {
            let line: Vec<u8> = parts.iter().flat_map(|&i| PIECES[i].iter().copied()).collect();
            if let Some(exact) = classify_exact(&line) {
                prop_assert_eq!(exact, classify_general(&line));
            }
            prop_assert_eq!(classify(&line), classify_general(&line));
        }
    }

    proptest! {
        #[test]
        fn is_name_is_eq_ignore_ascii_case(
            which in 0..5usize,
            // Positions changed and what to: a byte one bit-5 flip away
            // from a name byte (its other case, or CR for `-`), or any byte.
            edits in proptest::collection::vec((0..17usize, any::<bool>(), any::<u8>()), 0..4),
        ) {
            let name: &[u8] = [
                &b"host"[..],
                b"user-agent",
                b"content-type",
                b"content-length",
                b"transfer-encoding",
            ][which];
            let mut bytes = name.to_vec();
            for (at, flip, any) in edits {
                let at = at % bytes.len();
                bytes[at] = if flip { bytes[at] ^ 0x20 } else { any };
            }
            prop_assert_eq!(is_name(&bytes, name), bytes.eq_ignore_ascii_case(name));
        }
    }

    #[test]
    fn kept_fields_are_read_exactly_and_others_fall_back() {
        assert_eq!(
            classify_exact(b"HOST:  example.com "),
            Some(Line::Kept(Kept::Host, b"example.com"))
        );
        assert_eq!(
            classify_exact(b"content-length:12"),
            Some(Line::Kept(Kept::ContentLength, b"12"))
        );
        assert_eq!(
            classify_exact(b"Content-Type: a/b"),
            Some(Line::Kept(Kept::ContentType, b"a/b"))
        );
        assert_eq!(classify_exact(b"Accept: */*"), Some(Line::Other));
        assert_eq!(classify_exact(b"Accept */*"), Some(Line::Malformed));
        // A space before the colon, a near miss, whitespace first: the
        // general reading decides.
        assert_eq!(classify_exact(b"Host : a"), None);
        assert_eq!(classify(b"Host : a"), Line::Kept(Kept::Host, b"a"));
        assert_eq!(classify_exact(b"Hosts: a"), None);
        assert_eq!(classify(b"Hosts: a"), Line::Other);
        assert_eq!(classify_exact(b"\rHost: a"), None);
        assert_eq!(classify(b"\rHost: a"), Line::Kept(Kept::Host, b"a"));
        assert_eq!(classify_exact(b"Cookie"), None);
        assert_eq!(classify(b"Cookie"), Line::Malformed);
    }
}

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
        let Some(colon) = memchr::memchr(b':', line) else {
            f.malformed += 1;
            last = Kept::Other;
            continue;
        };
        let name = trim(line.get(..colon).unwrap_or_default());
        // Most headers are none of the five kept: their length rules them
        // out before any comparison, and their value is never looked at.
        if !matches!(name.len(), 4 | 10 | 12 | 14 | 17) {
            last = Kept::Other;
            continue;
        }
        let value = trim(line.get(colon + 1..).unwrap_or_default());
        let is = |n: &[u8]| name.len() == n.len() && name.eq_ignore_ascii_case(n);
        last = if is(b"host") {
            f.host = Some(Cow::Borrowed(value));
            Kept::Host
        } else if is(b"user-agent") {
            f.user_agent = Some(Cow::Borrowed(value));
            Kept::UserAgent
        } else if is(b"content-type") {
            f.content_type = Some(Cow::Borrowed(value));
            Kept::ContentType
        } else if is(b"content-length") {
            if cl_seen {
                let v = cl_values.to_mut();
                v.push(b',');
                v.extend_from_slice(value);
            } else {
                cl_values = Cow::Borrowed(value);
            }
            cl_seen = true;
            Kept::ContentLength
        } else if is(b"transfer-encoding") {
            f.transfer_encoding = true;
            if te_value.is_empty() {
                te_value = Cow::Borrowed(value);
            } else {
                let v = te_value.to_mut();
                v.push(b',');
                v.extend_from_slice(value);
            }
            Kept::TransferEncoding
        } else {
            Kept::Other
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

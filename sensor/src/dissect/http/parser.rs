//! HTTP/1.x message heads: the content probe, start-line checks, and the
//! parsing of a complete head (request or status line plus header fields).
//!
//! Owns: what counts as a request line or a status line (for probing, for
//! resynchronising after a loss, and for the first line of each message),
//! and extracting from a head the fields a record needs (method, target,
//! version, status, Host, User-Agent, Content-Type) and the framing headers
//! (Content-Length, Transfer-Encoding). Input: byte slices of one
//! direction. Output: [`Probe`](crate::dissect::Probe) verdicts and
//! [`RequestHead`] / [`ResponseHead`] values borrowing from the head (a
//! kept field is copied only when an obsolete folded line continues it;
//! every other header is skipped in place).
//!
//! Does not: buffer bytes (the dissector hands in a complete head), frame
//! bodies (`body.rs`), or keep any header beyond the ones listed.
//!
//! Leniency, as Zeek: lines may end in LF alone; a request line without an
//! `HTTP/x.y` version is HTTP/0.9; obsolete line folding continues the
//! previous field; header lines without a colon are counted and skipped.
//!
//! Layout: start lines (probe, resynchronisation, first-line checks) in
//! `start_line.rs`, header fields in `fields.rs`; this file parses a whole
//! head with them, finds where a head ends across calls ([`HeadEnd`]), and
//! turns a head's parts into record text ([`HeadText`], [`text`]).

mod fields;
mod start_line;

pub use fields::{ContentLength, Fields};
use fields::{Lines, parse_fields};
pub use start_line::{
    check_start, is_text_line, parse_request_line, parse_status_line, probe_request, probe_status,
    resync_request, resync_status,
};

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    b.get(start..end.max(start)).unwrap_or_default()
}

/// A request head, borrowing the start line from the bytes parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead<'a> {
    /// The method.
    pub method: &'a [u8],
    /// The target as sent.
    pub uri: &'a [u8],
    /// The version (`1.1`, `0.9` without one).
    pub version: &'a [u8],
    /// The header fields kept.
    pub fields: Fields<'a>,
    /// Offset just after the empty line that ends the head, when the bytes
    /// parsed hold it (bytes after it are not looked at).
    pub end: Option<usize>,
    /// The head's bytes (up to `end` when known), for [`HeadText`].
    pub bytes: &'a [u8],
}

/// Parses a request head: start line and fields up to the empty line (the
/// bytes may go on past it, or stop short of it when the flow ended; see
/// [`RequestHead::end`]); `None` when the request line is not one.
pub fn parse_request(head: &[u8]) -> Option<RequestHead<'_>> {
    let mut it = Lines::new(head);
    let line = parse_request_line(it.next()?)?;
    let (fields, end) = parse_fields(&mut it);
    Some(RequestHead {
        method: line.method,
        uri: line.uri,
        version: line.version,
        fields,
        end,
        bytes: head_bytes(head, end),
    })
}

/// A response head, borrowing the status line from the bytes parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead<'a> {
    /// The version after `HTTP/`.
    pub version: &'a [u8],
    /// The status code, when it is three digits.
    pub code: Option<u16>,
    /// The reason phrase.
    pub reason: &'a [u8],
    /// The header fields kept.
    pub fields: Fields<'a>,
    /// Offset just after the empty line that ends the head, when the bytes
    /// parsed hold it (bytes after it are not looked at).
    pub end: Option<usize>,
}

/// Parses a response head, as [`parse_request`] does; `None` when the
/// status line does not start with `HTTP/`.
pub fn parse_response(head: &[u8]) -> Option<ResponseHead<'_>> {
    let mut it = Lines::new(head);
    let line = parse_status_line(it.next()?)?;
    let (fields, end) = parse_fields(&mut it);
    Some(ResponseHead {
        version: line.version,
        code: line.code,
        reason: line.reason,
        fields,
        end,
    })
}

/// The bytes of a head parsed from `parsed`, which ends at `end` if known.
fn head_bytes(parsed: &[u8], end: Option<usize>) -> &[u8] {
    parsed.get(..end.unwrap_or(parsed.len())).unwrap_or(parsed)
}

/// Finds the end of a head (the empty line) across calls: fed every byte
/// of a message from its first, it reports where the head ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeadEnd {
    /// The last byte was an LF.
    after_lf: bool,
    /// The last bytes were LF, CR.
    after_lf_cr: bool,
}

impl HeadEnd {
    /// Scans `data`; `Some(n)` when the head ends after `data[..n]`. Jumps
    /// from line feed to line feed (memchr); only the bytes right after one
    /// are looked at one by one.
    pub fn advance(&mut self, data: &[u8]) -> Option<usize> {
        let mut i = 0;
        loop {
            // After an LF (possibly in an earlier call): the next byte or
            // two decide.
            while self.after_lf || self.after_lf_cr {
                let &b = data.get(i)?;
                i += 1;
                match b {
                    b'\n' => {
                        *self = Self::default();
                        return Some(i);
                    }
                    b'\r' if self.after_lf => {
                        self.after_lf = false;
                        self.after_lf_cr = true;
                    }
                    _ => *self = Self::default(),
                }
            }
            let rest = data.get(i..)?;
            let p = memchr::memchr(b'\n', rest)?;
            i += p + 1;
            self.after_lf = true;
        }
    }
}

/// Record text of the parts of one head: the head is checked for UTF-8
/// once, then each part that is a slice of it is copied from the checked
/// text, instead of a check per part (a request head gives five texts;
/// the check's fixed cost is most of what a short text costs). A part from
/// elsewhere (a folded field joined into a copy, a default) or of a head
/// that is not UTF-8 goes through [`text`].
#[derive(Debug)]
pub struct HeadText<'a> {
    head: &'a [u8],
    checked: Option<&'a str>,
}

impl<'a> HeadText<'a> {
    /// Checks `head` once.
    pub fn new(head: &'a [u8]) -> Self {
        Self {
            head,
            checked: std::str::from_utf8(head).ok(),
        }
    }

    /// `part` as [`text`] writes it.
    pub fn text(&self, part: &[u8]) -> String {
        // Where `part` starts in the head (out of range when it is not in it).
        let start = part.as_ptr().addr().wrapping_sub(self.head.as_ptr().addr());
        let cut = self
            .checked
            .and_then(|s| s.get(start..start.checked_add(part.len())?));
        match cut {
            Some(t) => t.to_owned(),
            None => text(part),
        }
    }
}

/// Bytes as text for a record: UTF-8 as is, other bytes as `\xNN`
/// (as Zeek writes them).
pub fn text(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_owned(),
        Err(_) => {
            let mut out = String::with_capacity(b.len());
            for chunk in b.utf8_chunks() {
                out.push_str(chunk.valid());
                for byte in chunk.invalid() {
                    out.push_str(&format!("\\x{byte:02x}"));
                }
            }
            out
        }
    }
}

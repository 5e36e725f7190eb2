//! HTTP/1.x message heads: the content probe, start-line checks, and the
//! parsing of a complete head (request or status line plus header fields).
//!
//! Owns: what counts as a request line or a status line (for probing, for
//! resynchronising after a loss, and for the first line of each message),
//! and extracting from a head the fields a record needs (method, target,
//! version, status, Host, User-Agent, Content-Type) and the framing headers
//! (Content-Length, Transfer-Encoding). Input: byte slices of one
//! direction. Output: [`Probe`] verdicts and [`RequestHead`] /
//! [`ResponseHead`] values borrowing from the head (a kept field is copied
//! only when an obsolete folded line continues it; every other header is
//! skipped in place).
//!
//! Does not: buffer bytes (the dissector hands in a complete head), frame
//! bodies (`body.rs`), or keep any header beyond the ones listed.
//!
//! Leniency, as Zeek: lines may end in LF alone; a request line without an
//! `HTTP/x.y` version is HTTP/0.9; obsolete line folding continues the
//! previous field; header lines without a colon are counted and skipped.

use crate::dissect::Probe;
use std::borrow::Cow;

/// Methods recognised on sight (probe and resynchronisation); any other
/// upper-case token is accepted by the probe only with an `HTTP/1.x`
/// version at the end of its line.
pub const KNOWN_METHODS: &[&[u8]] = &[
    b"GET",
    b"POST",
    b"HEAD",
    b"PUT",
    b"DELETE",
    b"OPTIONS",
    b"CONNECT",
    b"TRACE",
    b"PATCH",
    b"PROPFIND",
    b"PROPPATCH",
    b"MKCOL",
    b"COPY",
    b"MOVE",
    b"LOCK",
    b"UNLOCK",
    b"SEARCH",
    b"REPORT",
    b"MKACTIVITY",
    b"CHECKOUT",
    b"CHECKIN",
    b"UNCHECKOUT",
    b"MERGE",
    b"NOTIFY",
    b"SUBSCRIBE",
    b"UNSUBSCRIBE",
    b"PURGE",
    b"LINK",
    b"UNLINK",
    b"QUERY",
    b"BIND",
    b"REBIND",
    b"UNBIND",
    b"ACL",
    b"MKCALENDAR",
    b"VERSION-CONTROL",
    b"BASELINE-CONTROL",
    b"UPDATE",
    b"LABEL",
    b"MKWORKSPACE",
    b"ORDERPATCH",
    b"POLL",
    b"BPROPFIND",
    b"BPROPPATCH",
];

/// Longest method token the probe considers.
const MAX_PROBE_METHOD: usize = 24;

/// A token character (RFC 9110 `tchar`).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The first line of `data` without its line end, and whether the line
/// end was seen.
fn first_line(data: &[u8]) -> (&[u8], bool) {
    match memchr::memchr(b'\n', data) {
        Some(i) => {
            let line = data.get(..i).unwrap_or_default();
            (line.strip_suffix(b"\r").unwrap_or(line), true)
        }
        None => (data, false),
    }
}

/// True when `v` is `HTTP/1.` followed by a digit.
fn is_http1_version(v: &[u8]) -> bool {
    matches!(v, [b'H', b'T', b'T', b'P', b'/', b'1', b'.', d] if d.is_ascii_digit())
}

/// Probe of an originator's first bytes: a request line.
pub fn probe_request(data: &[u8]) -> Probe {
    let token_len = data
        .iter()
        .take(MAX_PROBE_METHOD + 1)
        .position(|&b| b == b' ');
    let Some(first) = data.first() else {
        return Probe::NeedMore;
    };
    if !first.is_ascii_uppercase() {
        return Probe::NoMatch;
    }
    let method_ok = |m: &[u8]| {
        m.iter()
            .all(|&b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    };
    let Some(token_len) = token_len else {
        // No space yet: still plausible while the token is.
        let seen = data
            .get(..data.len().min(MAX_PROBE_METHOD + 1))
            .unwrap_or_default();
        return if data.len() <= MAX_PROBE_METHOD && method_ok(seen) {
            Probe::NeedMore
        } else {
            Probe::NoMatch
        };
    };
    let method = data.get(..token_len).unwrap_or_default();
    if method.is_empty() || !method_ok(method) {
        return Probe::NoMatch;
    }
    let Some(&target0) = data.get(token_len + 1) else {
        return Probe::NeedMore;
    };
    if !(0x21..0x7f).contains(&target0) {
        return Probe::NoMatch;
    }
    let known = KNOWN_METHODS.contains(&method);
    if known && (target0 == b'/' || target0 == b'*') {
        return Probe::Match;
    }
    // Anything else needs its whole line: `TOKEN target HTTP/1.x`, or a
    // known method with an HTTP/0.9 line (no version at all).
    let (line, complete) = first_line(data);
    if !complete {
        return Probe::NeedMore;
    }
    if line.iter().any(|&b| b < 0x20 && b != b'\t' || b == 0x7f) {
        return Probe::NoMatch;
    }
    let rest = line.get(token_len + 1..).unwrap_or_default();
    match rest.iter().rposition(|&b| b == b' ') {
        Some(sp) if is_http1_version(rest.get(sp + 1..).unwrap_or_default()) => Probe::Match,
        None if known => Probe::Match,
        _ => Probe::NoMatch,
    }
}

/// True when the first line of `data` (or all of it, without a line end)
/// is non-empty text: no control bytes but tab and CR, no NUL. Binary
/// protocols (TLS, DNS over TCP, random bytes) fail at once.
pub fn is_text_line(data: &[u8]) -> bool {
    let (line, _) = first_line(data);
    !line.is_empty()
        && !line.first().is_some_and(u8::is_ascii_whitespace)
        && line
            .iter()
            .all(|&b| (b >= 0x20 && b != 0x7f) || b == b'\t' || b == b'\r')
        // UTF-8, possibly cut in the middle of its last character.
        && std::str::from_utf8(line).map_or_else(|e| e.error_len().is_none(), |_| true)
}

/// Probe of a responder's first bytes: a status line `HTTP/1.x NNN`.
pub fn probe_status(data: &[u8]) -> Probe {
    const SHAPE: &[u8] = b"HTTP/1.d ddd";
    for (i, &want) in SHAPE.iter().enumerate() {
        let Some(&b) = data.get(i) else {
            return Probe::NeedMore;
        };
        let ok = if want == b'd' {
            b.is_ascii_digit()
        } else {
            b == want
        };
        if !ok {
            return Probe::NoMatch;
        }
    }
    Probe::Match
}

/// Whether a request begins at `data` (the start of a line), for
/// resynchronising: a known method followed by a space.
pub fn resync_request(data: &[u8]) -> Probe {
    let mut need_more = false;
    for m in KNOWN_METHODS {
        let n = m.len() + 1;
        let have = data.get(..n.min(data.len())).unwrap_or_default();
        let want = m.get(..have.len().min(m.len())).unwrap_or_default();
        if have.len() == n {
            if have.starts_with(m) && have.last() == Some(&b' ') {
                return Probe::Match;
            }
        } else if have.starts_with(want) {
            need_more = true;
        }
    }
    if need_more {
        Probe::NeedMore
    } else {
        Probe::NoMatch
    }
}

/// Whether a response begins at `data`: `HTTP/` (any case).
pub fn resync_status(data: &[u8]) -> Probe {
    let n = data.len().min(5);
    let have = data.get(..n).unwrap_or_default();
    if !have.eq_ignore_ascii_case(b"HTTP/".get(..n).unwrap_or_default()) {
        Probe::NoMatch
    } else if n == 5 {
        Probe::Match
    } else {
        Probe::NeedMore
    }
}

/// Whether the first line of a message in sync is acceptable so far
/// (`complete`: `data` holds the whole line, with its LF). Originator: a
/// request line a lenient parser reads; responder: it starts with `HTTP/`.
pub fn check_start(responder: bool, data: &[u8], complete: bool) -> Probe {
    if responder {
        return match resync_status(data) {
            Probe::NeedMore if complete => Probe::NoMatch,
            p => p,
        };
    }
    match data.first() {
        None => Probe::NeedMore,
        Some(&b) if !is_tchar(b) => Probe::NoMatch,
        Some(_) if !complete => Probe::NeedMore,
        Some(_) => {
            let (line, _) = first_line(data);
            if parse_request_line(line).is_some() {
                Probe::Match
            } else {
                Probe::NoMatch
            }
        }
    }
}

/// The parts of a request line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLine<'a> {
    /// The method token.
    pub method: &'a [u8],
    /// The target as sent.
    pub uri: &'a [u8],
    /// The version after `HTTP/` (`1.1`), or `0.9` without one.
    pub version: &'a [u8],
}

/// Parses a request line (without its line end); `None` when the method
/// is not a token.
pub fn parse_request_line(line: &[u8]) -> Option<RequestLine<'_>> {
    let is_ws = |b: &u8| *b == b' ' || *b == b'\t';
    let m_end = line.iter().position(is_ws).unwrap_or(line.len());
    let method = line.get(..m_end)?;
    // A method alone (`OPTIONS`) is no request line, as for Zeek.
    if method.is_empty() || m_end == line.len() || !method.iter().all(|&b| is_tchar(b)) {
        return None;
    }
    let rest = trim(line.get(m_end..)?);
    let (uri, version): (&[u8], &[u8]) = match rest.iter().rposition(is_ws) {
        Some(sp) => {
            let last = rest.get(sp + 1..)?;
            match strip_http(last) {
                Some(v) => (trim(rest.get(..sp)?), v),
                None => (rest, b"0.9"),
            }
        }
        None => match strip_http(rest) {
            Some(v) => (b"", v),
            None => (rest, b"0.9"),
        },
    };
    Some(RequestLine {
        method,
        uri,
        version,
    })
}

/// `HTTP/x.y` (any case) -> `x.y`.
fn strip_http(token: &[u8]) -> Option<&[u8]> {
    let head = token.get(..5)?;
    if head.eq_ignore_ascii_case(b"HTTP/") {
        token.get(5..)
    } else {
        None
    }
}

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

/// The parts of a status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusLine<'a> {
    /// The version after `HTTP/`.
    pub version: &'a [u8],
    /// The status code, when it is three digits.
    pub code: Option<u16>,
    /// The reason phrase.
    pub reason: &'a [u8],
}

/// Parses a status line (without its line end); `None` when it does not
/// start with `HTTP/`.
pub fn parse_status_line(line: &[u8]) -> Option<StatusLine<'_>> {
    let after = strip_http(line)?;
    let is_ws = |b: &u8| *b == b' ' || *b == b'\t';
    let v_end = after.iter().position(is_ws).unwrap_or(after.len());
    let version = after.get(..v_end)?;
    let rest = after.get(v_end..)?;
    let rest = rest.get(rest.iter().position(|b| !is_ws(b)).unwrap_or(rest.len())..)?;
    let c_end = rest.iter().position(is_ws).unwrap_or(rest.len());
    let code_bytes = rest.get(..c_end)?;
    let code = match *code_bytes {
        [a, b, c] if code_bytes.iter().all(u8::is_ascii_digit) => {
            Some(u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'))
        }
        _ => None,
    };
    let reason = trim(rest.get(c_end..)?);
    Some(StatusLine {
        version,
        code,
        reason,
    })
}

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
fn parse_fields<'a>(lines: &mut Lines<'a>) -> (Fields<'a>, Option<usize>) {
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
struct Lines<'a> {
    /// What is left, `None` once the last line was given.
    rest: Option<&'a [u8]>,
    /// Offset (in the bytes iterated) just after the last line given.
    pos: usize,
    /// The last line given ended with a line feed.
    terminated: bool,
}

impl<'a> Lines<'a> {
    fn new(head: &'a [u8]) -> Self {
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

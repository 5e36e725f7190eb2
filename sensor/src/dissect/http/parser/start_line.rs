//! HTTP/1.x start lines: the request line and the status line.
//!
//! Owns: what counts as a request line or a status line: the content
//! probe of each direction's first bytes, the check made when resynchronising
//! after a loss, the check of each message's first line, and splitting a
//! line into its parts. Input: bytes at the start of a line (possibly
//! without its line end yet). Output: [`Probe`] verdicts, and
//! [`RequestLine`] / [`StatusLine`] values borrowing from the line.
//!
//! Does not: read header fields (`fields.rs`), find where a head ends
//! ([`super::HeadEnd`]), or buffer bytes.

use super::trim;
use crate::dissect::Probe;

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

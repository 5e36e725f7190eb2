//! HTTP/1.x message bodies: where a body ends and how many bytes it has,
//! never what it says.
//!
//! Owns: the three framings ([`Body::Length`], [`Body::Chunked`],
//! [`Body::UntilClose`]) and the chunked transfer coding (sizes,
//! extensions, the CRLF after each chunk, trailers), parsed byte by byte
//! without buffering. Input: the bytes of one direction after a head, and
//! gaps. Output: how many input bytes were consumed, how many of them are
//! body (chunk framing excluded), and whether the body ended or its framing
//! is broken. Does not: decide the framing of a message (the dissector does,
//! from the head and the request method), keep or decode the body (content
//! codings such as gzip are counted as sent).
//!
//! Gaps: inside data of a known length (a Content-Length body or a chunk's
//! data) a gap is skipped and not counted as body, as Zeek counts it in
//! `content_gap_length`, not in `body_length`; anywhere else in chunked
//! framing the body's end can no longer be found ([`GapStep::Lost`]).

/// Longest chunk-size line extension or trailer section, in bytes.
const MAX_CHUNK_LINE: u64 = 4096;

/// The framing of one body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// `remaining` bytes left (Content-Length).
    Length {
        /// Bytes of body still expected.
        remaining: u64,
    },
    /// Chunked transfer coding.
    Chunked(Chunked),
    /// Everything until the connection closes.
    UntilClose,
}

/// Where a chunked body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunked {
    /// Before a chunk size (skipping leading white space and empty lines).
    SizeStart,
    /// Reading the hex digits of a chunk size.
    Size {
        /// The size so far.
        value: u64,
    },
    /// After the size: an extension, white space, up to the LF.
    SizeRest {
        /// The size.
        value: u64,
        /// Bytes of the extension so far.
        len: u64,
    },
    /// Chunk data.
    Data {
        /// Bytes left in this chunk.
        remaining: u64,
    },
    /// The CRLF after chunk data.
    DataEnd,
    /// The CR of that CRLF was seen.
    DataEndLf,
    /// The trailer section after the last chunk.
    Trailer {
        /// Bytes of the current trailer line (CR excluded).
        line: u64,
        /// Bytes of the whole trailer section.
        total: u64,
    },
}

/// What one call to [`Body::data`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Input bytes consumed.
    pub consumed: usize,
    /// Of those, bytes of body (chunk framing excluded).
    pub body: u64,
    /// How it ended.
    pub end: End,
}

/// Whether the body is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// All input consumed, the body goes on.
    More,
    /// The body ended after `consumed` bytes.
    Done,
    /// The framing is broken (the reason, for an anomaly) after
    /// `consumed` bytes: the body's end cannot be found.
    Broken(&'static str),
}

/// What a gap did to a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapStep {
    /// Skipped inside the body; `done` when the body ends with it.
    Absorbed {
        /// The body ended exactly at the gap's end.
        done: bool,
    },
    /// The gap hides where the body ends.
    Lost,
}

impl Body {
    /// Reads body bytes from the start of `data`.
    pub fn data(&mut self, data: &[u8]) -> Step {
        match self {
            Body::UntilClose => Step {
                consumed: data.len(),
                body: data.len() as u64,
                end: End::More,
            },
            Body::Length { remaining } => {
                let take = usize::try_from(*remaining)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                *remaining -= take as u64;
                Step {
                    consumed: take,
                    body: take as u64,
                    end: if *remaining == 0 {
                        End::Done
                    } else {
                        End::More
                    },
                }
            }
            Body::Chunked(state) => chunked(state, data),
        }
    }

    /// `len` bytes of this direction are missing.
    pub fn gap(&mut self, len: u64) -> GapStep {
        match self {
            Body::UntilClose => GapStep::Absorbed { done: false },
            Body::Length { remaining } => {
                if len > *remaining {
                    GapStep::Lost
                } else {
                    *remaining -= len;
                    GapStep::Absorbed {
                        done: *remaining == 0,
                    }
                }
            }
            Body::Chunked(Chunked::Data { remaining }) if len <= *remaining => {
                *remaining -= len;
                let left = *remaining;
                if left == 0 {
                    *self = Body::Chunked(Chunked::DataEnd);
                }
                GapStep::Absorbed { done: false }
            }
            Body::Chunked(_) => GapStep::Lost,
        }
    }
}

/// Hex value of an ASCII hex digit.
fn hex(b: u8) -> Option<u64> {
    (b as char).to_digit(16).map(u64::from)
}

/// Chunked decoding from `data`, byte by byte except for chunk data.
fn chunked(state: &mut Chunked, data: &[u8]) -> Step {
    let mut i = 0;
    let mut body = 0u64;
    let step = |consumed, body, end| Step {
        consumed,
        body,
        end,
    };
    while i < data.len() {
        if let Chunked::Data { remaining } = state {
            let rest = data.get(i..).unwrap_or_default();
            let take = usize::try_from(*remaining)
                .unwrap_or(usize::MAX)
                .min(rest.len());
            *remaining -= take as u64;
            body += take as u64;
            i += take;
            if *remaining == 0 {
                *state = Chunked::DataEnd;
            }
            continue;
        }
        let Some(&b) = data.get(i) else { break };
        match *state {
            Chunked::Data { .. } => {}
            Chunked::SizeStart => match b {
                b' ' | b'\t' | b'\r' | b'\n' => i += 1,
                _ => match hex(b) {
                    Some(v) => {
                        *state = Chunked::Size { value: v };
                        i += 1;
                    }
                    None => return step(i, body, End::Broken("bad_chunk_size")),
                },
            },
            Chunked::Size { value } => {
                if let Some(v) = hex(b) {
                    let Some(next) = value.checked_mul(16).and_then(|x| x.checked_add(v)) else {
                        return step(i, body, End::Broken("chunk_size_overflow"));
                    };
                    *state = Chunked::Size { value: next };
                    i += 1;
                } else if b == b'\n' {
                    i += 1;
                    *state = after_size(value);
                } else if matches!(b, b';' | b' ' | b'\t' | b'\r') {
                    *state = Chunked::SizeRest { value, len: 0 };
                } else {
                    return step(i, body, End::Broken("bad_chunk_size"));
                }
            }
            Chunked::SizeRest { value, len } => {
                i += 1;
                if b == b'\n' {
                    *state = after_size(value);
                } else if len >= MAX_CHUNK_LINE {
                    return step(i, body, End::Broken("chunk_extension_too_long"));
                } else {
                    *state = Chunked::SizeRest {
                        value,
                        len: len + 1,
                    };
                }
            }
            Chunked::DataEnd => match b {
                b'\r' => {
                    i += 1;
                    *state = Chunked::DataEndLf;
                }
                b'\n' => {
                    i += 1;
                    *state = Chunked::SizeStart;
                }
                _ => return step(i, body, End::Broken("missing_chunk_crlf")),
            },
            Chunked::DataEndLf => {
                if b == b'\n' {
                    i += 1;
                    *state = Chunked::SizeStart;
                } else {
                    return step(i, body, End::Broken("missing_chunk_crlf"));
                }
            }
            Chunked::Trailer { line, total } => {
                i += 1;
                match b {
                    b'\n' if line == 0 => return step(i, body, End::Done),
                    b'\n' => {
                        *state = Chunked::Trailer {
                            line: 0,
                            total: total + 1,
                        }
                    }
                    b'\r' => {
                        *state = Chunked::Trailer {
                            line,
                            total: total + 1,
                        }
                    }
                    _ if total >= MAX_CHUNK_LINE => {
                        return step(i, body, End::Broken("trailer_too_long"));
                    }
                    _ => {
                        *state = Chunked::Trailer {
                            line: line + 1,
                            total: total + 1,
                        }
                    }
                }
            }
        }
    }
    step(i, body, End::More)
}

/// The state after a chunk-size line announcing `value` bytes.
fn after_size(value: u64) -> Chunked {
    if value == 0 {
        Chunked::Trailer { line: 0, total: 0 }
    } else {
        Chunked::Data { remaining: value }
    }
}

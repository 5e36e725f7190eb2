//! One direction's reading of message heads, and finding the next message
//! after a loss.
//!
//! Owns: skipping the empty lines before a message, judging its first line
//! before looking further, gathering a head split across calls (bounded by
//! `Limits::max_buffered_bytes`: beyond it the direction is given up),
//! the responder's head-less answer to an HTTP/0.9 request, and the
//! resynchronising state (a line start carried while too short to judge).
//! Input: the bytes of one direction while it reads a head or resyncs.
//! Output: complete heads handed to `transaction.rs`, how many bytes were
//! used, and anomalies (malformed start lines, over-long heads).
//!
//! Does not: parse a head (`parser.rs`), turn heads into transactions
//! (`transaction.rs`), or read bodies (`body.rs`).

use super::body::Body;
use super::parser::{self, HeadEnd};
use super::{Http, State, resync};
use crate::dissect::{Context, Probe};

/// Longest line start kept while resynchronising.
const MAX_CARRY: usize = 24;

impl Http {
    /// Reads head bytes from `data`; returns how many were used.
    pub(super) fn head(&mut self, cx: &mut Context<'_>, d: usize, data: &[u8]) -> usize {
        let max = self.limits.max_buffered_bytes;
        let side = &mut self.sides[d];
        let mut skip = 0;
        if !side.started {
            skip = data
                .iter()
                .position(|&b| !matches!(b, b'\r' | b'\n'))
                .unwrap_or(data.len());
            if skip == data.len() {
                return skip;
            }
            side.started = true;
            side.line_ok = false;
            side.scan = HeadEnd::default();
            side.msg_ts = cx.ts_us;
        }
        let rest = data.get(skip..).unwrap_or_default();
        if side.buf.is_empty() && side.scan == HeadEnd::default() {
            // The usual case, a head whole in one call: parsed in place, the
            // parse finding where it ends (its empty line), so its lines are
            // scanned once. A head that parses has a first line the check
            // below accepts (the same request-line parse; `HTTP/`), so that
            // check is not made first. A head cut short takes the buffered
            // way below.
            if d == 0 {
                if let Some(req) = parser::parse_request(rest)
                    && let Some(end) = req.end
                {
                    self.request_head(cx, Some(req), false);
                    return skip + end;
                }
            } else if let Some(resp) = parser::parse_response(rest)
                && let Some(end) = resp.end
            {
                self.response_head(cx, Some(resp), false);
                return skip + end;
            }
        }
        let side = &mut self.sides[d];
        if !side.line_ok {
            // Judge the first line before looking for the head's end.
            let lf = memchr::memchr(b'\n', rest);
            let verdict = if side.buf.is_empty() {
                parser::check_start(d == 1, rest, lf.is_some())
            } else {
                let k = lf.map_or(rest.len(), |p| p + 1);
                let mut probe_buf = std::mem::take(&mut side.buf);
                let old = probe_buf.len();
                probe_buf.extend_from_slice(
                    rest.get(..k.min(max.saturating_sub(old)))
                        .unwrap_or_default(),
                );
                let v = parser::check_start(d == 1, &probe_buf, lf.is_some());
                probe_buf.truncate(old);
                side.buf = probe_buf;
                v
            };
            match verdict {
                Probe::Match => side.line_ok = true,
                Probe::NeedMore => return skip + self.keep(cx, d, rest),
                Probe::NoMatch => {
                    let line_end = lf.map_or(rest.len(), |p| p + 1);
                    return skip + self.bad_start(cx, d, line_end, lf.is_some());
                }
            }
        }
        let side = &mut self.sides[d];
        let Some(end) = side.scan.advance(rest) else {
            // The scanner has seen `rest`: keep it.
            let side_buf_len = side.buf.len();
            if side_buf_len + rest.len() > max {
                return skip + self.too_long(cx, d, rest.len());
            }
            side.buf.extend_from_slice(rest);
            return skip + rest.len();
        };
        let head_part = rest.get(..end).unwrap_or_default();
        if side.buf.is_empty() {
            self.message_head(cx, d, head_part, false);
        } else {
            if side.buf.len() + head_part.len() > max {
                return skip + self.too_long(cx, d, end);
            }
            side.buf.extend_from_slice(head_part);
            let buf = std::mem::take(&mut self.sides[d].buf);
            self.message_head(cx, d, &buf, false);
            let mut buf = buf;
            buf.clear();
            if self.sides[d].buf.is_empty() {
                self.sides[d].buf = buf;
            }
        }
        skip + end
    }

    /// Keeps `rest` (an unfinished first line) in the buffer, feeding the
    /// head-end scanner.
    fn keep(&mut self, cx: &mut Context<'_>, d: usize, rest: &[u8]) -> usize {
        let side = &mut self.sides[d];
        if side.buf.len() + rest.len() > self.limits.max_buffered_bytes {
            return self.too_long(cx, d, rest.len());
        }
        side.scan.advance(rest);
        side.buf.extend_from_slice(rest);
        rest.len()
    }

    /// A head longer than the buffer cap: the direction is given up.
    fn too_long(&mut self, cx: &mut Context<'_>, d: usize, used: usize) -> usize {
        cx.anomaly("head_too_long");
        let side = &mut self.sides[d];
        side.buf = Vec::new();
        side.started = false;
        side.state = State::Dead;
        used
    }

    /// The first line of a message is not a start line. A responder
    /// answering an HTTP/0.9 request sends its body without a head;
    /// otherwise the line is dropped and the direction resynchronises.
    fn bad_start(
        &mut self,
        cx: &mut Context<'_>,
        d: usize,
        line_end: usize,
        complete: bool,
    ) -> usize {
        let buffered = self.sides[d].buf.len() as u64;
        self.sides[d].buf.clear();
        self.sides[d].started = false;
        if d == 1 && self.skip_responses == 0 {
            self.promote_request(cx);
            let waiting = self
                .txs
                .iter()
                .find(|t| !t.resp_done)
                .map(|t| (t.rec.trans_depth, t.rec.version.as_deref() == Some("0.9")));
            if let Some((depth, true)) = waiting {
                self.sides[1].cur = Some(depth);
                self.sides[1].state = State::Body(Body::UntilClose);
                self.count_body(1, buffered);
                return 0;
            }
        }
        cx.anomaly(if d == 0 {
            "malformed_request_line"
        } else {
            "malformed_status_line"
        });
        self.sides[d].state = resync(complete);
        line_end
    }

    /// Reads a complete head (`partial`: the flow ended before its empty
    /// line, so no body follows).
    pub(super) fn message_head(
        &mut self,
        cx: &mut Context<'_>,
        d: usize,
        head: &[u8],
        partial: bool,
    ) {
        if d == 0 {
            self.request_head(cx, parser::parse_request(head), partial);
        } else {
            self.response_head(cx, parser::parse_response(head), partial);
        }
    }

    /// Side `d`'s head is read: its reader starts over; returns the time of
    /// the message's first byte.
    pub(super) fn head_read(&mut self, d: usize) -> i64 {
        let side = &mut self.sides[d];
        side.started = false;
        side.line_ok = false;
        side.scan = HeadEnd::default();
        side.msg_ts
    }

    /// Looks for the next start line after a loss.
    pub(super) fn resync(&mut self, cx: &mut Context<'_>, d: usize, data: &[u8]) -> usize {
        let side = &mut self.sides[d];
        let State::Resync {
            at_line_start,
            carry,
        } = &mut side.state
        else {
            return 0;
        };
        let check = |b: &[u8]| {
            if d == 0 {
                parser::resync_request(b)
            } else {
                parser::resync_status(b)
            }
        };
        if !*at_line_start {
            return match data.iter().position(|&b| b == b'\n') {
                Some(p) => {
                    *at_line_start = true;
                    p + 1
                }
                None => data.len(),
            };
        }
        let room = MAX_CARRY.saturating_sub(carry.len());
        let add = data.get(..room.min(data.len())).unwrap_or_default();
        let verdict = if carry.is_empty() {
            check(add)
        } else {
            let old = carry.len();
            carry.extend_from_slice(add);
            let v = check(carry);
            carry.truncate(old);
            v
        };
        match verdict {
            Probe::Match => {
                let start = std::mem::take(carry);
                side.state = State::Head;
                side.started = !start.is_empty();
                side.line_ok = false;
                side.scan = HeadEnd::default();
                side.msg_ts = cx.ts_us;
                side.buf.clear();
                if !start.is_empty() {
                    side.scan.advance(&start);
                    side.buf = start;
                }
                0
            }
            Probe::NeedMore if add.len() == data.len() && carry.len() + add.len() < MAX_CARRY => {
                if carry.is_empty() {
                    side.msg_ts = cx.ts_us;
                }
                carry.extend_from_slice(add);
                data.len()
            }
            _ => {
                carry.clear();
                *at_line_start = false;
                0
            }
        }
    }
}

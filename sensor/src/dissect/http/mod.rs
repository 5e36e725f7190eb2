//! HTTP/1.x: one record per request/response pair, in order.
//!
//! Owns: the `http` [`Protocol`] (content probe: a request line from the
//! originator or a status line from the responder; ports 80, 8080, 8000,
//! 3128 and 8008 are hints only, except that on them a client text line
//! that is no request line waits for the server's status line to decide,
//! as Zeek logs such exchanges from the response), and the per-flow
//! [`Http`] dissector:
//! keep-alive and pipelining (a queue of requests waiting for their
//! responses, bounded by `Limits::max_pending_transactions`), `1xx`
//! interim responses (skipped; the first one's code kept as `info_code`),
//! `101 Switching Protocols` and `CONNECT` answered `2xx` (the rest of the
//! connection is opaque: the record is emitted and nothing more is read),
//! bodies measured by Content-Length, chunked coding or the connection's
//! close (HEAD, `1xx`, `204` and `304` responses have none), requests
//! without responses (emitted when the flow ends) and responses without
//! requests (emitted with what the response says).
//!
//! Input: each direction's reassembled stream, with gaps. Output:
//! [`nucleus_proto::HttpRecord`]s stamped with the time of the request's
//! first byte, and anomalies (malformed lines, broken chunk framing, heads
//! over `Limits::max_buffered_bytes`, lost sync).
//!
//! Does not: keep or decode bodies (lengths are bytes as sent, before any
//! content coding is undone; Zeek counts after gunzip), parse HTTP/2, or
//! look inside a tunnel.
//!
//! Losses: a gap inside a body of known length is skipped (not counted as
//! body bytes, as Zeek); a gap anywhere else loses the message boundaries,
//! and the direction resynchronises at the next line that starts a request
//! (a known method and a space) or a response (`HTTP/`). A head over the
//! buffer cap gives the direction up; when both are given up the flow is
//! done.

mod body;
mod parser;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use nucleus_proto::HttpRecord;

use super::{
    AppEvent, Context, Dissector, L4, Limits, Probe, ProbeInput, Protocol, Transports, Want,
};
use crate::packet::Direction;
use body::{Body, End, GapStep};
use parser::{ContentLength, Fields, HeadEnd, HeadText, text};

/// The HTTP protocol.
pub static PROTOCOL: Protocol = Protocol {
    name: "http",
    transports: Transports {
        tcp: true,
        udp: false,
    },
    ports: &[80, 8080, 8000, 8008, 3128],
    probe,
    new,
};

fn probe(input: &ProbeInput<'_>) -> Probe {
    if input.l4 != L4::Tcp {
        return Probe::NoMatch;
    }
    match input.dir {
        Direction::Originator => match parser::probe_request(input.data) {
            // On an HTTP port, a client line that is text but no request
            // line (a broken or unusual request, which servers answer with
            // a 400) lets the responder's status line decide, as Zeek logs
            // such exchanges from the response.
            Probe::NoMatch if hinted(input.ports) && parser::is_text_line(input.data) => {
                Probe::NeedMore
            }
            p => p,
        },
        Direction::Responder => parser::probe_status(input.data),
    }
}

/// True when either port is one of HTTP's.
fn hinted(ports: (u16, u16)) -> bool {
    PROTOCOL.ports.contains(&ports.0) || PROTOCOL.ports.contains(&ports.1)
}

fn new(limits: &Limits, _l4: L4) -> Box<dyn Dissector> {
    Box::new(Http::new(*limits))
}

/// Longest line start kept while resynchronising.
const MAX_CARRY: usize = 24;

/// One HTTP/1.x connection.
#[derive(Debug)]
pub struct Http {
    limits: Limits,
    /// Transactions not yet emitted, oldest first.
    txs: VecDeque<Tx>,
    /// The next request's `trans_depth`.
    next_depth: u32,
    /// Responses still to come for requests reported early (the queue
    /// overflowed): they are read for their framing but recorded nowhere.
    skip_responses: u32,
    /// Originator, responder.
    sides: [Side; 2],
    /// The connection became opaque (CONNECT, protocol switch).
    tunnel: bool,
    /// That was a CONNECT: the tunnel is probed for its own protocol.
    connect_tunnel: bool,
}

#[derive(Debug)]
struct Tx {
    ts_us: i64,
    rec: HttpRecord,
    /// Was the request line seen (false: a response without a request).
    has_request: bool,
    req_done: bool,
    resp_done: bool,
}

/// One direction's reader.
#[derive(Debug, Default)]
struct Side {
    state: State,
    /// Bytes of a head split across calls (bounded by the buffer cap).
    buf: Vec<u8>,
    /// A message's first byte has been seen.
    started: bool,
    /// Its first line has been accepted.
    line_ok: bool,
    /// Where its head ends.
    scan: HeadEnd,
    /// Packet time of its first byte.
    msg_ts: i64,
    /// `trans_depth` of the transaction whose body is being read.
    cur: Option<u32>,
}

#[derive(Debug, Default)]
enum State {
    /// Reading a head.
    #[default]
    Head,
    /// Reading a body.
    Body(Body),
    /// Looking for the next message after a loss; `carry` holds the start
    /// of the current line while it is too short to judge.
    Resync { at_line_start: bool, carry: Vec<u8> },
    /// Originator after a CONNECT request, until its response decides
    /// whether a tunnel follows; `skipped` is true once bytes were dropped.
    Paused { skipped: bool },
    /// Given up.
    Dead,
}

impl Http {
    /// A dissector for one connection.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            // Most connections have one transaction in flight at a time:
            // room for one, not the four a first push would reserve.
            txs: VecDeque::with_capacity(1),
            next_depth: 1,
            skip_responses: 0,
            sides: [Side::default(), Side::default()],
            tunnel: false,
            connect_tunnel: false,
        }
    }

    fn want(&self) -> Want {
        let dead = |s: &Side| matches!(s.state, State::Dead);
        if self.tunnel && self.connect_tunnel {
            Want::Reprobe
        } else if self.tunnel || self.sides.iter().all(dead) {
            Want::Done
        } else {
            Want::More
        }
    }

    fn tx_mut(&mut self, depth: Option<u32>) -> Option<&mut Tx> {
        let depth = depth?;
        self.txs.iter_mut().find(|t| t.rec.trans_depth == depth)
    }

    /// Emits the transactions at the front that are complete.
    fn flush_ready(&mut self, cx: &mut Context<'_>) {
        while self.txs.front().is_some_and(|t| t.req_done && t.resp_done) {
            if let Some(t) = self.txs.pop_front() {
                cx.emit(t.ts_us, AppEvent::Http(t.rec));
            }
        }
    }

    /// Emits every transaction, complete or not.
    fn flush_all(&mut self, cx: &mut Context<'_>) {
        while let Some(t) = self.txs.pop_front() {
            cx.emit(t.ts_us, AppEvent::Http(t.rec));
        }
    }

    /// Queues a transaction, reporting the oldest one early when the queue
    /// is full.
    fn push(&mut self, cx: &mut Context<'_>, tx: Tx) {
        if self.txs.len() >= self.limits.max_pending_transactions.max(1)
            && let Some(old) = self.txs.pop_front()
        {
            cx.anomaly("too_many_pending_transactions");
            let resp_cur = self.sides[1].cur;
            if !old.resp_done && resp_cur != Some(old.rec.trans_depth) {
                self.skip_responses = self.skip_responses.saturating_add(1);
            }
            cx.emit(old.ts_us, AppEvent::Http(old.rec));
        }
        self.txs.push_back(tx);
    }

    fn feed(&mut self, cx: &mut Context<'_>, d: usize, mut data: &[u8]) {
        while !data.is_empty() && !self.tunnel {
            let used = match &mut self.sides[d].state {
                State::Dead => return,
                State::Paused { skipped } => {
                    *skipped = true;
                    return;
                }
                State::Head => self.head(cx, d, data),
                State::Body(body) => {
                    let step = body.data(data);
                    self.count_body(d, step.body);
                    match step.end {
                        End::More => {}
                        End::Done => self.end_message(cx, d, State::Head),
                        End::Broken(reason) => {
                            cx.anomaly(reason);
                            self.end_message(cx, d, resync(false));
                        }
                    }
                    step.consumed
                }
                State::Resync { .. } => self.resync(cx, d, data),
            };
            data = data.get(used..).unwrap_or_default();
        }
    }

    fn count_body(&mut self, d: usize, n: u64) {
        let cur = self.sides[d].cur;
        if let Some(t) = self.tx_mut(cur) {
            let len = if d == 0 {
                &mut t.rec.request_body_len
            } else {
                &mut t.rec.response_body_len
            };
            *len = len.saturating_add(n);
        }
    }

    /// The message of side `d` is over; the side goes on in `next`.
    fn end_message(&mut self, cx: &mut Context<'_>, d: usize, next: State) {
        let cur = self.sides[d].cur.take();
        if let Some(t) = self.tx_mut(cur) {
            if d == 0 {
                t.req_done = true;
            } else {
                t.resp_done = true;
            }
        }
        self.sides[d].state = next;
        self.flush_ready(cx);
    }

    /// Reads head bytes from `data`; returns how many were used.
    fn head(&mut self, cx: &mut Context<'_>, d: usize, data: &[u8]) -> usize {
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
    fn message_head(&mut self, cx: &mut Context<'_>, d: usize, head: &[u8], partial: bool) {
        if d == 0 {
            self.request_head(cx, parser::parse_request(head), partial);
        } else {
            self.response_head(cx, parser::parse_response(head), partial);
        }
    }

    /// Side `d`'s head is read: its reader starts over; returns the time of
    /// the message's first byte.
    fn head_read(&mut self, d: usize) -> i64 {
        let side = &mut self.sides[d];
        side.started = false;
        side.line_ok = false;
        side.scan = HeadEnd::default();
        side.msg_ts
    }

    fn request_head(
        &mut self,
        cx: &mut Context<'_>,
        req: Option<parser::RequestHead<'_>>,
        partial: bool,
    ) {
        let ts = self.head_read(0);
        let Some(req) = req else {
            cx.anomaly("malformed_request_line");
            self.sides[0].state = resync(true);
            return;
        };
        note_fields(cx, &req.fields);
        let depth = self.next_depth;
        self.next_depth = self.next_depth.saturating_add(1);
        let is_connect = req.method.eq_ignore_ascii_case(b"CONNECT");
        let body = if req.version == b"0.9" || partial {
            None
        } else if req.fields.transfer_encoding {
            if req.fields.content_length != ContentLength::Absent {
                cx.anomaly("transfer_encoding_and_content_length");
            }
            if req.fields.chunked {
                Some(Body::Chunked(body::Chunked::SizeStart))
            } else {
                cx.anomaly("unsupported_transfer_encoding");
                None
            }
        } else {
            match req.fields.content_length {
                ContentLength::Valid(n) if n > 0 => Some(Body::Length { remaining: n }),
                _ => None,
            }
        };
        let t = HeadText::new(req.bytes);
        let rec = HttpRecord {
            trans_depth: depth,
            method: Some(t.text(req.method)),
            host: req.fields.host.as_deref().map(|v| t.text(v)),
            uri: Some(t.text(req.uri)),
            version: Some(t.text(req.version)),
            user_agent: req.fields.user_agent.as_deref().map(|v| t.text(v)),
            ..HttpRecord::default()
        };
        let req_done = body.is_none();
        self.push(
            cx,
            Tx {
                ts_us: ts,
                rec,
                has_request: true,
                req_done,
                resp_done: false,
            },
        );
        let side = &mut self.sides[0];
        side.cur = if req_done { None } else { Some(depth) };
        side.state = match body {
            Some(b) => State::Body(b),
            None if is_connect && !partial => State::Paused { skipped: false },
            None => State::Head,
        };
    }

    fn response_head(
        &mut self,
        cx: &mut Context<'_>,
        resp: Option<parser::ResponseHead<'_>>,
        partial: bool,
    ) {
        let ts = self.head_read(1);
        let Some(resp) = resp else {
            cx.anomaly("malformed_status_line");
            self.sides[1].state = resync(true);
            return;
        };
        note_fields(cx, &resp.fields);
        if resp.code.is_none() {
            cx.anomaly("malformed_status_code");
        }
        let code = resp.code.unwrap_or(0);
        let interim = (100..200).contains(&code) && code != 101;
        if self.skip_responses == 0 && self.txs.iter().all(|t| t.resp_done) {
            self.promote_request(cx);
        }
        // The transaction this response answers.
        let depth = if self.skip_responses > 0 {
            if !interim {
                self.skip_responses -= 1;
            }
            None
        } else if let Some(t) = self.txs.iter().find(|t| !t.resp_done) {
            Some(t.rec.trans_depth)
        } else {
            let depth = self.next_depth;
            self.next_depth = self.next_depth.saturating_add(1);
            self.push(
                cx,
                Tx {
                    ts_us: ts,
                    rec: HttpRecord {
                        trans_depth: depth,
                        version: Some(text(resp.version)),
                        ..HttpRecord::default()
                    },
                    has_request: false,
                    req_done: true,
                    resp_done: false,
                },
            );
            Some(depth)
        };
        let mut method_head = false;
        let mut method_connect = false;
        if let Some(t) = self.tx_mut(depth) {
            if interim || code == 101 {
                // As Zeek, `101 Switching Protocols` is both the interim
                // and the final code.
                t.rec.info_code.get_or_insert(code);
            }
            if !interim {
                // Two short texts: checked one by one, cheaper than the
                // whole head at once (see `HeadText`).
                t.rec.status_code = resp.code;
                t.rec.status_msg = Some(text(resp.reason));
                t.rec.content_type = resp.fields.content_type.as_deref().map(text);
                if t.rec.version.is_none() {
                    t.rec.version = Some(text(resp.version));
                }
            }
            let m = t.rec.method.as_deref().unwrap_or("");
            method_head = t.has_request && m.eq_ignore_ascii_case("HEAD");
            method_connect = t.has_request && m.eq_ignore_ascii_case("CONNECT");
        }
        if interim {
            self.sides[1].state = State::Head;
            return;
        }
        let success = (200..300).contains(&code);
        if code == 101 || (method_connect && success) {
            // The rest of the connection is not HTTP.
            self.sides[1].cur = depth;
            self.end_message(cx, 1, State::Dead);
            self.tunnel = true;
            // After CONNECT the tunnel carries another protocol (TLS, most
            // often): the flow is probed again. After 101 it is a protocol
            // we do not dissect (WebSocket, h2c).
            self.connect_tunnel = code != 101;
            self.flush_all(cx);
            return;
        }
        if method_connect && let State::Paused { skipped } = self.sides[0].state {
            // The CONNECT failed: the originator speaks HTTP again.
            self.sides[0].state = resync(!skipped);
        }
        let body = if partial || method_head || code == 204 || code == 304 {
            None
        } else if resp.fields.transfer_encoding {
            if resp.fields.content_length != ContentLength::Absent {
                cx.anomaly("transfer_encoding_and_content_length");
            }
            if resp.fields.chunked {
                Some(Body::Chunked(body::Chunked::SizeStart))
            } else {
                Some(Body::UntilClose)
            }
        } else {
            match resp.fields.content_length {
                ContentLength::Valid(0) => None,
                ContentLength::Valid(n) => Some(Body::Length { remaining: n }),
                ContentLength::Absent | ContentLength::Invalid => Some(Body::UntilClose),
            }
        };
        self.sides[1].cur = depth;
        match body {
            Some(b) => self.sides[1].state = State::Body(b),
            None => self.end_message(cx, 1, State::Head),
        }
    }

    /// A response arrived while the request it answers is still an
    /// unfinished head (an HTTP/0.9 request line has no empty line after
    /// it; a server may answer a head it rejects): the request is taken as
    /// it stands.
    fn promote_request(&mut self, cx: &mut Context<'_>) {
        let side = &mut self.sides[0];
        if matches!(side.state, State::Head) && side.line_ok && !side.buf.is_empty() {
            let buf = std::mem::take(&mut side.buf);
            self.message_head(cx, 0, &buf, true);
        }
    }

    /// Looks for the next start line after a loss.
    fn resync(&mut self, cx: &mut Context<'_>, d: usize, data: &[u8]) -> usize {
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

/// A resynchronising state.
fn resync(at_line_start: bool) -> State {
    State::Resync {
        at_line_start,
        carry: Vec::new(),
    }
}

/// Counts what the header fields say is odd.
fn note_fields(cx: &mut Context<'_>, f: &Fields<'_>) {
    if f.malformed > 0 {
        cx.anomaly("malformed_header");
    }
    if f.content_length == ContentLength::Invalid {
        cx.anomaly("bad_content_length");
    }
}

impl Dissector for Http {
    fn data(&mut self, cx: &mut Context<'_>, dir: Direction, data: &[u8]) -> Want {
        if self.tunnel {
            return self.want();
        }
        self.feed(cx, dir as usize, data);
        self.want()
    }

    fn gap(&mut self, cx: &mut Context<'_>, dir: Direction, len: u64) -> Want {
        if self.tunnel {
            return self.want();
        }
        let d = dir as usize;
        let side = &mut self.sides[d];
        match &mut side.state {
            State::Dead => {}
            State::Paused { skipped } => *skipped = true,
            State::Resync {
                at_line_start,
                carry,
            } => {
                *at_line_start = true;
                carry.clear();
            }
            State::Head => {
                // The hole may hold the start of the next message: the
                // bytes after it are checked for a start line first.
                if side.started || d == 0 || !self.txs.iter().all(|t| t.resp_done) {
                    cx.anomaly("gap_lost_sync");
                }
                side.buf.clear();
                side.started = false;
                side.state = resync(true);
            }
            State::Body(body) => match body.gap(len) {
                GapStep::Absorbed { done: false } => {}
                GapStep::Absorbed { done: true } => self.end_message(cx, d, State::Head),
                GapStep::Lost => {
                    // The body ended inside the hole; the next message may
                    // start right after it.
                    cx.anomaly("gap_lost_sync");
                    self.end_message(cx, d, resync(true));
                }
            },
        }
        self.want()
    }

    fn close(&mut self, cx: &mut Context<'_>) {
        if !self.tunnel {
            // A head cut short by the end of the flow (an HTTP/0.9 request
            // has no empty line) still says what it was.
            for d in 0..2 {
                let side = &mut self.sides[d];
                if matches!(side.state, State::Head) && side.line_ok && !side.buf.is_empty() {
                    let buf = std::mem::take(&mut side.buf);
                    self.message_head(cx, d, &buf, true);
                }
            }
        }
        self.flush_all(cx);
    }
}

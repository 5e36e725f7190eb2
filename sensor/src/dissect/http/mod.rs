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
//!
//! Layout: this file holds the protocol, the per-connection state and the
//! transaction queue; `reader.rs` reads each direction's heads and
//! resynchronises, `transaction.rs` turns heads into transactions,
//! `body.rs` frames bodies and `parser.rs` parses heads.

mod body;
mod parser;
mod reader;
#[cfg(test)]
mod tests;
mod transaction;

use std::collections::VecDeque;

use nucleus_proto::HttpRecord;

use super::{
    AppEvent, Context, Dissector, L4, Limits, Probe, ProbeInput, Protocol, Transports, Want,
};
use crate::packet::Direction;
use body::{Body, End, GapStep};
use parser::HeadEnd;

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
}

/// A resynchronising state.
fn resync(at_line_start: bool) -> State {
    State::Resync {
        at_line_start,
        carry: Vec::new(),
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

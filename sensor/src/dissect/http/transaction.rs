//! From a parsed head to a transaction: what each request and response
//! adds to its [`HttpRecord`], and what reading comes next.
//!
//! Owns: numbering requests (`trans_depth`), the body framing a head
//! announces (Content-Length, chunked, until close; none for HEAD, `1xx`,
//! `204`, `304`), pairing a response with the oldest request still waiting
//! for one (or a record of its own when none waits), `1xx` interim
//! responses, the switch to an opaque tunnel (`101`, `CONNECT` answered
//! `2xx`) and a failed CONNECT. Input: [`parser::RequestHead`] /
//! [`parser::ResponseHead`] values, or `None` for a start line that did not
//! parse. Output: transactions queued on the dissector, the side's next
//! state, and anomalies about the head's fields.
//!
//! Does not: read bytes or find a head's end (`reader.rs`), or keep the
//! queue of transactions (`mod.rs`, which emits them in order).

use nucleus_proto::HttpRecord;

use super::body::{self, Body};
use super::parser::{self, ContentLength, Fields, HeadText, text};
use super::{Http, State, Tx, resync};
use crate::dissect::Context;

impl Http {
    pub(super) fn request_head(
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

    pub(super) fn response_head(
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
    pub(super) fn promote_request(&mut self, cx: &mut Context<'_>) {
        let side = &mut self.sides[0];
        if matches!(side.state, State::Head) && side.line_ok && !side.buf.is_empty() {
            let buf = std::mem::take(&mut side.buf);
            self.message_head(cx, 0, &buf, true);
        }
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

//! The TLS record layer of one connection: record headers and bodies read
//! incrementally from each direction's stream.
//!
//! Owns: splitting a direction's bytes into records (including an
//! SSLv2-format first record), validating each header, noting the switch
//! to encrypted records (ChangeCipherSpec before TLS 1.3, application
//! data) and the abbreviated-handshake form of resumption, buffering
//! handshake bytes up to `Limits::max_buffered_bytes`, and reading alert
//! records into the record's `alerts`. Input: stream bytes of one
//! direction, in order. Output: whole handshake bytes handed to
//! [`super::handshake`], alerts and flags in the connection's
//! [`TlsRecord`], anomalies in the [`Context`].
//!
//! Does not: interpret handshake messages, decrypt anything, or read on
//! past a bad record header (the direction is given up).

use super::{
    CT_ALERT, CT_APPDATA, CT_CCS, CT_HANDSHAKE, CT_HEARTBEAT, CT_SSLV2, MAX_ALERTS, MAX_RECORD,
    Tls, hello, names,
};
use crate::dissect::Context;
use crate::packet::Direction;
use nucleus_proto::{TlsAlert, TlsRecord};

impl Tls {
    /// Reads `data` of `dir`'s stream record by record.
    pub(super) fn feed(&mut self, cx: &mut Context<'_>, dir: Direction, mut data: &[u8]) {
        let side = self.side(dir);
        if side.resync && !data.is_empty() {
            side.resync = false;
            if !plausible_record_start(data) {
                side.dead = true;
                side.hs = Vec::new();
                return;
            }
        }
        while !data.is_empty() && !self.side(dir).dead {
            let side = self.side(dir);
            if side.remaining == 0 && side.hdr_len < 5 {
                let v2 = dir == Direction::Originator
                    && !side.seen_record
                    && (if side.hdr_len > 0 {
                        Some(&side.hdr[0])
                    } else {
                        data.first()
                    })
                    .is_some_and(|b| b & 0x80 != 0)
                    || side.sslv2;
                let need = if v2 { 2 } else { 5 };
                let n = (need - side.hdr_len.min(need)).min(data.len());
                let (head, rest) = data.split_at(n);
                if let Some(dst) = side.hdr.get_mut(side.hdr_len..side.hdr_len + n) {
                    dst.copy_from_slice(head);
                }
                side.hdr_len += n;
                data = rest;
                if v2 && side.hdr_len == 2 {
                    // SSLv2 record: the body goes to the handshake buffer.
                    side.sslv2 = true;
                    side.seen_record = true;
                    side.hdr_len = 5;
                    side.ct = CT_SSLV2;
                    side.remaining =
                        usize::from(u16::from_be_bytes([side.hdr[0] & 0x7f, side.hdr[1]]));
                    if side.remaining == 0 {
                        side.dead = true;
                    }
                } else if side.hdr_len == 5 {
                    side.seen_record = true;
                    self.record_header(cx, dir);
                }
                continue;
            }
            let n = side.remaining.min(data.len());
            let (chunk, rest) = data.split_at(n);
            data = rest;
            side.remaining -= n;
            let done = side.remaining == 0;
            let ct = side.ct;
            self.record_body(cx, dir, ct, chunk, done);
            if done {
                let side = self.side(dir);
                side.hdr_len = 0;
            }
        }
    }

    /// A complete record header: validate it and prepare for the body.
    fn record_header(&mut self, cx: &mut Context<'_>, dir: Direction) {
        let side = self.side(dir);
        let [ct, major, _minor, l0, l1] = side.hdr;
        let len = usize::from(u16::from_be_bytes([l0, l1]));
        if !(CT_CCS..=CT_HEARTBEAT).contains(&ct) || major != 3 || len > MAX_RECORD {
            side.dead = true;
            cx.anomaly("bad_record_header");
            return;
        }
        side.ct = ct;
        side.remaining = len;
        side.alert.clear();
        match ct {
            CT_CCS => {
                // Before TLS 1.3 the records after ChangeCipherSpec are
                // encrypted; in TLS 1.3 it is a compatibility no-op.
                let tls13 = self
                    .negotiated
                    .is_some_and(|v| (0x0304..0xfe00).contains(&v))
                    || self.rec.hello_retry_request;
                if !tls13 {
                    self.side(dir).encrypted = true;
                    if dir == Direction::Responder && self.server_hello && !self.server_full {
                        self.rec.resumed = true;
                    }
                }
            }
            CT_APPDATA => self.side(dir).encrypted = true,
            _ => {}
        }
        if len == 0 {
            self.side(dir).hdr_len = 0;
            if ct == CT_ALERT {
                self.alert(dir, &[]);
            }
        }
    }

    /// Some bytes of the current record's body; `last` when the record is
    /// complete.
    fn record_body(
        &mut self,
        cx: &mut Context<'_>,
        dir: Direction,
        ct: u8,
        chunk: &[u8],
        last: bool,
    ) {
        match ct {
            CT_HANDSHAKE => {
                if self.side(dir).encrypted || !self.buffer_handshake(cx, dir, chunk) {
                    return;
                }
                self.handshake_messages(cx, dir);
            }
            CT_SSLV2 => {
                if !self.buffer_handshake(cx, dir, chunk) {
                    return;
                }
                if last {
                    let side = self.side(dir);
                    let msg = std::mem::take(&mut side.hs);
                    side.sslv2 = false;
                    match hello::parse_sslv2_client_hello(&msg) {
                        Some(ch) => self.client_hello(cx, &ch),
                        None => {
                            cx.anomaly("malformed_sslv2_hello");
                            self.side(dir).dead = true;
                        }
                    }
                }
            }
            CT_ALERT => {
                let side = self.side(dir);
                let room = 32usize.saturating_sub(side.alert.len());
                side.alert
                    .extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
                if last {
                    let body = std::mem::take(&mut side.alert);
                    self.alert(dir, &body);
                }
            }
            _ => {}
        }
    }

    /// Appends handshake bytes to the direction's buffer; past
    /// `max_buffered_bytes` the direction is given up (counted as
    /// `handshake_too_large`) and false is returned.
    fn buffer_handshake(&mut self, cx: &mut Context<'_>, dir: Direction, chunk: &[u8]) -> bool {
        let cap = self.limits.max_buffered_bytes;
        let side = self.side(dir);
        if side.hs.len().saturating_add(chunk.len()) > cap {
            side.dead = true;
            side.hs = Vec::new();
            cx.anomaly("handshake_too_large");
            return false;
        }
        side.hs.extend_from_slice(chunk);
        true
    }

    /// Records an alert record's content.
    fn alert(&mut self, dir: Direction, body: &[u8]) {
        let from = match dir {
            Direction::Originator => "client",
            Direction::Responder => "server",
        };
        let encrypted = self.side(dir).encrypted;
        let push = |rec: &mut TlsRecord, a: TlsAlert| {
            rec.alerts_total = rec.alerts_total.saturating_add(1);
            if rec.alerts.len() < MAX_ALERTS {
                rec.alerts.push(a);
            }
        };
        if encrypted || body.len() < 2 || !body.len().is_multiple_of(2) {
            push(
                &mut self.rec,
                TlsAlert {
                    from: from.to_string(),
                    level: "encrypted".to_string(),
                    description: String::new(),
                },
            );
            return;
        }
        for pair in body.chunks_exact(2) {
            let (Some(&level), Some(&desc)) = (pair.first(), pair.get(1)) else {
                continue;
            };
            let level = match level {
                1 => "warning".to_string(),
                2 => "fatal".to_string(),
                other => format!("unknown-{other}"),
            };
            let description = names::alert_name(desc);
            self.rec.last_alert = Some(description.clone());
            push(
                &mut self.rec,
                TlsAlert {
                    from: from.to_string(),
                    level,
                    description,
                },
            );
        }
    }
}

/// True when `data` begins with a TLS record header that could be real:
/// a known content type, version 3.0 to 3.4, a length within the limit.
fn plausible_record_start(data: &[u8]) -> bool {
    match data {
        [ct, 3, minor, l0, l1, ..] => {
            (CT_CCS..=CT_HEARTBEAT).contains(ct)
                && *minor <= 4
                && usize::from(u16::from_be_bytes([*l0, *l1])) <= MAX_RECORD
        }
        _ => false,
    }
}

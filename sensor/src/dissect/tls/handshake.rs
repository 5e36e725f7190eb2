//! TLS handshake messages of one connection, once the record layer has
//! reassembled them.
//!
//! Owns: cutting a direction's handshake buffer into whole messages
//! (bounded by `Limits::max_buffered_bytes`), and filling the connection's
//! [`nucleus_proto::TlsRecord`] from the ClientHello (including a repeated
//! one, which closes the first hello's record), the ServerHello (version,
//! cipher, ALPN, JA3S, HelloRetryRequest, resumption) and the TLS ≤1.2
//! Certificate message. Input: handshake bytes of one direction. Output:
//! record fields, an early record for an unanswered ClientHello, and
//! anomalies in the [`Context`].
//!
//! Does not: parse hellos or certificates itself ([`super::hello`] and
//! [`super::cert`] do) or read records ([`super::records`] does).

use super::{
    HS_CERTIFICATE, HS_CLIENT_HELLO, HS_SERVER_HELLO, HS_SERVER_HELLO_DONE, HS_SERVER_KEY_EXCHANGE,
    Tls, cert, hello, names,
};
use crate::dissect::{AppEvent, Context};
use crate::packet::Direction;

impl Tls {
    /// Handles every complete handshake message buffered for `dir`.
    pub(super) fn handshake_messages(&mut self, cx: &mut Context<'_>, dir: Direction) {
        loop {
            let side = self.side(dir);
            let Some(hdr) = side.hs.get(..4) else { return };
            let typ = hdr.first().copied().unwrap_or(0);
            let len = hdr.get(1..4).map_or(0, |b| {
                b.iter().fold(0usize, |a, x| a << 8 | usize::from(*x))
            });
            if len.saturating_add(4) > self.limits.max_buffered_bytes {
                let side = self.side(dir);
                side.dead = true;
                side.hs = Vec::new();
                cx.anomaly("handshake_too_large");
                return;
            }
            let side = self.side(dir);
            if side.hs.len() < 4 + len {
                return;
            }
            let msg: Vec<u8> = side.hs.drain(..4 + len).collect();
            let body = msg.get(4..).unwrap_or_default();
            self.handshake_message(cx, dir, typ, body);
        }
    }

    fn handshake_message(&mut self, cx: &mut Context<'_>, dir: Direction, typ: u8, body: &[u8]) {
        match (dir, typ) {
            (Direction::Originator, HS_CLIENT_HELLO) => {
                let Some(ch) = hello::parse_client_hello(body) else {
                    cx.anomaly("malformed_client_hello");
                    return;
                };
                self.client_hello(cx, &ch);
            }
            (Direction::Responder, HS_SERVER_HELLO) => {
                let Some(sh) = hello::parse_server_hello(body) else {
                    cx.anomaly("malformed_server_hello");
                    return;
                };
                self.server_hello = true;
                self.ts_us.get_or_insert(cx.ts_us);
                let v = sh.version();
                self.negotiated = Some(v);
                let r = &mut self.rec;
                if sh.hello_retry_request {
                    r.hello_retry_request = true;
                    r.hello_retry_ja3s = Some(sh.ja3s());
                }
                r.version = Some(hello::version_name(v));
                r.cipher = Some(names::cipher_name(sh.cipher_suite));
                r.alpn_selected = sh.alpn_string();
                r.ja3s_string = Some(sh.ja3s_string());
                r.ja3s = Some(sh.ja3s());
                let tls13 = (0x0304..0xfe00).contains(&v);
                if tls13 {
                    r.resumed = sh.psk;
                } else if !self.client_session_id.is_empty()
                    && sh.session_id == self.client_session_id
                {
                    r.resumed = true;
                }
            }
            (Direction::Responder, HS_CERTIFICATE) => {
                self.server_full = true;
                if !self.rec.certs.is_empty() {
                    return;
                }
                match cert::parse_certificate_message(body) {
                    Some(certs) => self.rec.certs = certs,
                    None => cx.anomaly("malformed_certificate"),
                }
            }
            (Direction::Responder, HS_SERVER_KEY_EXCHANGE | HS_SERVER_HELLO_DONE) => {
                self.server_full = true;
            }
            (Direction::Responder, HS_CLIENT_HELLO) | (Direction::Originator, HS_SERVER_HELLO) => {
                cx.anomaly("hello_from_wrong_side");
            }
            _ => {}
        }
    }

    /// Fills the record from the (first) ClientHello.
    pub(super) fn client_hello(&mut self, cx: &mut Context<'_>, ch: &hello::ClientHello) {
        if self.client_hello {
            if self.server_hello || self.unanswered >= self.limits.max_pending_transactions {
                // The second ClientHello after a HelloRetryRequest (the
                // first one's fingerprints are kept), or a flood of them.
                return;
            }
            // Another ClientHello before any ServerHello: the first went
            // unanswered. It is reported as it stands and the record
            // starts over with the one the server may answer.
            self.unanswered += 1;
            let first = std::mem::take(&mut self.rec);
            let ts = self.ts_us.take().unwrap_or(cx.ts_us);
            cx.emit(ts, AppEvent::Tls(first));
        }
        self.client_hello = true;
        self.ts_us.get_or_insert(cx.ts_us);
        self.client_session_id = ch.session_id.clone();
        let r = &mut self.rec;
        r.sni = ch.sni.clone();
        r.alpn = ch.alpn_strings();
        if !ch.sslv2 {
            r.ja3_string = Some(ch.ja3_string());
            r.ja3 = Some(ch.ja3());
            r.ja4 = Some(ch.ja4(false));
        }
        r.ech = ch.ech;
        r.client_version = Some(hello::version_name(ch.max_version()));
        if r.version.is_none() {
            r.version = r.client_version.clone();
        }
    }
}

//! DTLS dissector: DTLS 1.0, 1.2 and 1.3 over UDP on any port, identified
//! by content; one `type = "tls"` record per connection, with the same
//! fields as TLS and versions named as Zeek names them (`DTLSv10`,
//! `DTLSv12`, `DTLSv13`).
//!
//! A folder of its own rather than a mode of `tls/`: the transport,
//! record header (13 bytes with epoch and sequence number; DTLS 1.3's
//! unified header) and handshake framing (fragments by message_seq and
//! offset, retransmissions, HelloVerifyRequest) share nothing with TLS's
//! stream reader. What is shared lives in `tls/`: hello parsing and the
//! fingerprints (`hello`, the `_dtls` variants; JA4 starts with `d`), the
//! certificate chain (`cert`) and names (`names`).
//!
//! Input: one datagram at a time, each holding one or more records.
//! Roles come from the hellos, not from who sent first: the side that
//! sends a ClientHello is the client (a WebRTC peer that answered STUN
//! first may be the DTLS client). The record is filled from the
//! ClientHello (after a HelloVerifyRequest or a HelloRetryRequest, DTLS
//! 1.3's cookie exchange, the client's retry replaces the first: it is the
//! hello the connection is made with; later ones are retransmissions), the
//! ServerHello (the final one; a HelloRetryRequest is noted), the server's
//! Certificate (DTLS 1.0/1.2; encrypted in 1.3) and plaintext alerts.
//!
//! Output: the record is emitted once both sides send encrypted records
//! (ChangeCipherSpec, epoch > 0, application data, connection-id or
//! unified-header records), then nothing more is wanted; else at close.
//!
//! Does not: decrypt, read DTLS over TCP/SCTP, or follow a second
//! handshake. Anomalies: bad record headers, truncated records or
//! fragments, malformed hellos, and reassembly over its caps
//! ([`fragments`]).

pub mod fragments;

#[cfg(test)]
mod tests;

use self::fragments::{Message, Reassembly};
use super::tls::{cert, hello, names};
use super::{
    AppEvent, Context, Dissector, L4, Limits, Probe, ProbeInput, Protocol, Transports, Want,
};
use crate::packet::Direction;
use nucleus_proto::{TlsAlert, TlsRecord};

/// The DTLS protocol.
pub static PROTOCOL: Protocol = Protocol {
    name: "dtls",
    transports: Transports {
        tcp: false,
        udp: true,
    },
    ports: &[3391, 4433, 5349, 5684],
    probe,
    new,
};

/// Record header: type, version (2), epoch (2), sequence number (6),
/// length (2).
const RECORD_HEADER: usize = 13;
const CT_CCS: u8 = 20;
const CT_ALERT: u8 = 21;
const CT_HANDSHAKE: u8 = 22;
/// tls12_cid (RFC 9146): always encrypted.
const CT_CID: u8 = 25;
const HS_CLIENT_HELLO: u8 = 1;
const HS_SERVER_HELLO: u8 = 2;
const HS_HELLO_VERIFY_REQUEST: u8 = 3;
const HS_CERTIFICATE: u8 = 11;
/// Alerts kept in the record (all are counted).
const MAX_ALERTS: usize = 16;

fn is_dtls_version(v: u16) -> bool {
    matches!(v, 0xfeff | 0xfefd | 0xfefc)
}

/// The first datagram starts with a DTLS record header: content type
/// 20-25, a DTLS version, and a length that fits the datagram.
fn probe(input: &ProbeInput<'_>) -> Probe {
    if input.l4 != L4::Udp {
        return Probe::NoMatch;
    }
    probe_bytes(input.data)
}

fn probe_bytes(d: &[u8]) -> Probe {
    let (Some(ct), Some(version), Some(len)) = (d.first(), be16(d, 1), be16(d, 11)) else {
        return Probe::NoMatch;
    };
    let fits = usize::from(len) > 0 && usize::from(len) <= d.len() - RECORD_HEADER;
    if (CT_CCS..=CT_CID).contains(ct) && is_dtls_version(version) && fits {
        Probe::Match
    } else {
        Probe::NoMatch
    }
}

fn be16(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*d.get(at)?, *d.get(at + 1)?]))
}

fn new(limits: &Limits, _l4: L4) -> Box<dyn Dissector> {
    Box::new(Dtls::new(*limits))
}

/// One direction.
#[derive(Debug, Default)]
struct Side {
    reassembly: Reassembly,
    encrypted: bool,
}

/// One DTLS connection.
#[derive(Debug)]
struct Dtls {
    limits: Limits,
    /// Indexed by `Direction as usize`.
    sides: [Side; 2],
    /// The direction that sent the ClientHello.
    client: Option<Direction>,
    rec: TlsRecord,
    ts_us: Option<i64>,
    client_hello: bool,
    /// The server asked for a new ClientHello (HelloVerifyRequest, or a
    /// HelloRetryRequest: DTLS 1.3's cookie exchange) and it has not come.
    retry_asked: bool,
    server_hello: bool,
    emitted: bool,
}

impl Dtls {
    fn new(limits: Limits) -> Self {
        Self {
            limits,
            sides: [Side::default(), Side::default()],
            client: None,
            rec: TlsRecord::default(),
            ts_us: None,
            client_hello: false,
            retry_asked: false,
            server_hello: false,
            emitted: false,
        }
    }

    fn side(&mut self, dir: Direction) -> &mut Side {
        let [o, r] = &mut self.sides;
        if dir == Direction::Originator { o } else { r }
    }

    /// Reads the records of one datagram.
    fn datagram(&mut self, cx: &mut Context<'_>, dir: Direction, mut d: &[u8]) {
        while let Some(&first) = d.first() {
            if first & 0xe0 == 0x20 {
                // DTLS 1.3 unified header (RFC 9147 §4): encrypted, and
                // its length may be implicit: the rest of the datagram.
                self.side(dir).encrypted = true;
                return;
            }
            let (Some(version), Some(epoch), Some(len)) = (be16(d, 1), be16(d, 3), be16(d, 11))
            else {
                cx.anomaly("truncated_record");
                return;
            };
            if !(CT_CCS..=CT_CID).contains(&first) || !is_dtls_version(version) {
                cx.anomaly("bad_record_header");
                return;
            }
            let end = RECORD_HEADER + usize::from(len);
            let Some(body) = d.get(RECORD_HEADER..end) else {
                cx.anomaly("truncated_record");
                return;
            };
            d = d.get(end..).unwrap_or_default();
            match first {
                CT_HANDSHAKE if epoch == 0 => self.handshake(cx, dir, body),
                CT_ALERT if epoch == 0 => self.alert(dir, body),
                CT_ALERT => self.alert(dir, &[]),
                // ChangeCipherSpec, application data, connection-id
                // records, and handshake records of a later epoch.
                _ => self.side(dir).encrypted = true,
            }
        }
    }

    fn handshake(&mut self, cx: &mut Context<'_>, dir: Direction, body: &[u8]) {
        if self.side(dir).encrypted {
            return;
        }
        let mut messages = Vec::new();
        let limits = self.limits;
        self.side(dir)
            .reassembly
            .record(&limits, body, &mut messages, cx.anomalies);
        for m in messages {
            self.message(cx, dir, &m);
        }
    }

    fn message(&mut self, cx: &mut Context<'_>, dir: Direction, m: &Message) {
        let client = *self.client.get_or_insert(match m.typ {
            HS_CLIENT_HELLO => dir,
            _ => dir.reverse(),
        });
        match (dir == client, m.typ) {
            (true, HS_CLIENT_HELLO) => match hello::parse_client_hello_dtls(&m.body) {
                Some(ch) => self.client_hello(cx, &ch),
                None => cx.anomaly("malformed_client_hello"),
            },
            (false, HS_HELLO_VERIFY_REQUEST) => self.retry_asked = true,
            (false, HS_SERVER_HELLO) => match hello::parse_server_hello_dtls(&m.body) {
                Some(sh) => self.server_hello(cx, &sh),
                None => cx.anomaly("malformed_server_hello"),
            },
            (false, HS_CERTIFICATE) if self.rec.certs.is_empty() => {
                match cert::parse_certificate_message(&m.body) {
                    Some(certs) => self.rec.certs = certs,
                    None => cx.anomaly("malformed_certificate"),
                }
            }
            (false, HS_CLIENT_HELLO) | (true, HS_SERVER_HELLO) => {
                cx.anomaly("hello_from_wrong_side");
            }
            _ => {}
        }
    }

    fn client_hello(&mut self, cx: &mut Context<'_>, ch: &hello::ClientHello) {
        if self.client_hello && !self.retry_asked {
            // A retransmission, or a hello after the final ServerHello.
            return;
        }
        let retried = self.client_hello;
        self.retry_asked = false;
        self.client_hello = true;
        self.ts_us.get_or_insert(cx.ts_us);
        let r = &mut self.rec;
        let ja3 = ch.ja3();
        if retried && r.ja3.as_ref().is_some_and(|first| *first != ja3) {
            // The hello the server made the client retry (a DTLS 1.3 cookie
            // adds an extension): its fingerprint is kept beside the new one.
            r.first_hello_ja3 = r.ja3.take();
        }
        r.sni = ch.sni.clone();
        r.alpn = ch.alpn_strings();
        r.ja3_string = Some(ch.ja3_string());
        r.ja3 = Some(ja3);
        r.ja4 = Some(ch.ja4(false));
        r.ech = ch.ech;
        r.client_version = Some(hello::version_name(ch.max_version()));
        if !self.server_hello {
            r.version = r.client_version.clone();
        }
    }

    fn server_hello(&mut self, cx: &mut Context<'_>, sh: &hello::ServerHello) {
        self.server_hello = true;
        self.retry_asked = sh.hello_retry_request;
        self.ts_us.get_or_insert(cx.ts_us);
        let r = &mut self.rec;
        r.hello_retry_request |= sh.hello_retry_request;
        if sh.hello_retry_request {
            r.hello_retry_ja3s = Some(sh.ja3s());
        }
        r.version = Some(hello::version_name(sh.version()));
        r.cipher = Some(names::cipher_name(sh.cipher_suite));
        r.alpn_selected = sh.alpn_string();
        r.ja3s_string = Some(sh.ja3s_string());
        r.ja3s = Some(sh.ja3s());
        r.resumed = sh.psk;
    }

    fn alert(&mut self, dir: Direction, body: &[u8]) {
        let from = if Some(dir) == self.client {
            "client"
        } else {
            "server"
        };
        let r = &mut self.rec;
        let mut push = |level: String, description: String| {
            r.alerts_total = r.alerts_total.saturating_add(1);
            if r.alerts.len() < MAX_ALERTS {
                r.alerts.push(TlsAlert {
                    from: from.to_string(),
                    level,
                    description,
                });
            }
        };
        match body {
            [level, desc] => {
                let level = match level {
                    1 => "warning".to_string(),
                    2 => "fatal".to_string(),
                    other => format!("unknown-{other}"),
                };
                let description = names::alert_name(*desc);
                push(level, description.clone());
                r.last_alert = Some(description);
            }
            _ => push("encrypted".to_string(), String::new()),
        }
    }

    fn emit(&mut self, cx: &mut Context<'_>) {
        if self.emitted || !(self.client_hello || self.server_hello) {
            return;
        }
        self.emitted = true;
        self.rec.established = self.sides.iter().all(|s| s.encrypted);
        let ts = self.ts_us.unwrap_or(cx.ts_us);
        cx.emit(ts, AppEvent::Tls(std::mem::take(&mut self.rec)));
    }
}

impl Dissector for Dtls {
    fn data(&mut self, cx: &mut Context<'_>, dir: Direction, data: &[u8]) -> Want {
        if self.emitted {
            return Want::Done;
        }
        self.datagram(cx, dir, data);
        if self.sides.iter().all(|s| s.encrypted) {
            self.emit(cx);
            return Want::Done;
        }
        Want::More
    }

    fn gap(&mut self, _cx: &mut Context<'_>, _dir: Direction, _len: u64) -> Want {
        // Datagrams carry whole records: a lost one loses nothing else.
        Want::More
    }

    fn close(&mut self, cx: &mut Context<'_>) {
        self.emit(cx);
    }
}

//! TLS dissector: TLS over TCP on any port, identified by content; one
//! `type = "tls"` record per connection with what the handshake shows.
//!
//! Owns: the probe (a handshake record header `0x16 0x03 0x00..=0x04` with
//! a plausible length, carrying a ClientHello or ServerHello), reading the
//! record layer of each direction, reassembling handshake messages that
//! span records and segments (bounded by `Limits::max_buffered_bytes`), and
//! filling [`nucleus_proto::TlsRecord`] from the ClientHello (SNI, offered
//! ALPN and versions, JA3, JA4, ECH), ServerHello (version incl.
//! supported_versions, cipher, selected ALPN, JA3S, HelloRetryRequest),
//! Certificate (TLS 1.2 and older: the chain, see [`cert`]) and alert
//! records. Hello parsing and fingerprints live in [`hello`], shared with
//! QUIC.
//!
//! Output: the record is emitted once both directions have switched to
//! encrypted records (ChangeCipherSpec before TLS 1.3, application data
//! records in any version); the dissector then answers [`Want::Done`] so
//! the bulk of the connection costs nothing. Otherwise it is emitted at a
//! gap that leaves nothing readable, or at close. Nothing is emitted for a
//! connection where neither hello was seen.
//!
//! Resumption rule (`resumed`): TLS 1.3, the ServerHello carries
//! pre_shared_key (the server accepted a PSK); before TLS 1.3, the server
//! echoes the client's non-empty session id, or the server's
//! ChangeCipherSpec follows its ServerHello with no Certificate,
//! ServerKeyExchange or ServerHelloDone between them (an abbreviated
//! handshake, as with a session ticket).
//!
//! A ClientHello repeated before any ServerHello (a client that retried on
//! the same connection) closes the record of the first as it stands (no
//! server side) and starts a new one; after a ServerHello (a second hello
//! answering a HelloRetryRequest) the first hello's fingerprints are kept.
//!
//! Does not: decrypt anything, read TLS 1.3 certificates (encrypted), read
//! SSLv2-format hellos, follow renegotiations, or resynchronise a direction
//! after a gap (the record boundaries are lost: that direction is given
//! up, what is known is kept).

pub mod cert;
pub mod hello;
pub mod names;

use super::{
    AppEvent, Context, Dissector, L4, Limits, Probe, ProbeInput, Protocol, Transports, Want,
};
use crate::packet::Direction;
use nucleus_proto::{TlsAlert, TlsRecord};

/// The TLS protocol.
pub static PROTOCOL: Protocol = Protocol {
    name: "tls",
    transports: Transports {
        tcp: true,
        udp: false,
    },
    ports: &[
        443, 465, 563, 636, 853, 989, 990, 992, 993, 994, 995, 5061, 5223, 8443,
    ],
    probe,
    new,
};

/// Largest record fragment accepted (2^14 plus the 2048 bytes of
/// expansion RFC 5246 allows for ciphertext).
const MAX_RECORD: usize = 16_384 + 2048;
/// Alerts kept in the record (all are counted in `alerts_total`).
const MAX_ALERTS: usize = 16;

const CT_CCS: u8 = 20;
const CT_ALERT: u8 = 21;
const CT_HANDSHAKE: u8 = 22;
const CT_APPDATA: u8 = 23;
const CT_HEARTBEAT: u8 = 24;
/// Pseudo content type of an SSLv2-format record.
const CT_SSLV2: u8 = 0x80;

const HS_CLIENT_HELLO: u8 = 1;
const HS_SERVER_HELLO: u8 = 2;
const HS_CERTIFICATE: u8 = 11;
const HS_SERVER_KEY_EXCHANGE: u8 = 12;
const HS_SERVER_HELLO_DONE: u8 = 14;

fn probe(input: &ProbeInput<'_>) -> Probe {
    if input.l4 != L4::Tcp {
        return Probe::NoMatch;
    }
    probe_bytes(input.data)
}

/// One step of [`probe_bytes`]: a test of the first bytes.
type Check = fn(&[u8]) -> bool;

/// The content test of [`probe`]: a handshake record whose first message
/// is a ClientHello or ServerHello with a TLS 1.x body version.
fn probe_bytes(d: &[u8]) -> Probe {
    if d.first().is_some_and(|b| b & 0x80 != 0) {
        return probe_sslv2(d);
    }
    // Checks each byte as far as it is available.
    let checks: [(usize, Check); 5] = [
        (1, |d| d.first() == Some(&CT_HANDSHAKE)),
        (3, |d| {
            d.get(1) == Some(&3) && d.get(2).is_some_and(|v| *v <= 4)
        }),
        (5, |d| {
            let len = be16(d, 3);
            len.is_some_and(|l| (4..=MAX_RECORD).contains(&usize::from(l)))
        }),
        (6, |d| {
            matches!(d.get(5), Some(&HS_CLIENT_HELLO) | Some(&HS_SERVER_HELLO))
        }),
        (11, |d| {
            // Handshake length at least a minimal hello, body version 3.x.
            let hl = d
                .get(6..9)
                .map(|b| b.iter().fold(0usize, |a, x| a << 8 | usize::from(*x)));
            hl.is_some_and(|l| l >= 38)
                && d.get(9) == Some(&3)
                && d.get(10).is_some_and(|v| *v <= 4)
        }),
    ];
    for (need, check) in checks {
        if d.len() < need {
            return Probe::NeedMore;
        }
        if !check(d) {
            return Probe::NoMatch;
        }
    }
    Probe::Match
}

/// An SSLv2-format ClientHello: 2-byte length with the top bit set, type
/// 1, version 2.0 or 3.x, cipher specs a multiple of 3 bytes.
fn probe_sslv2(d: &[u8]) -> Probe {
    if d.len() < 11 {
        return Probe::NeedMore;
    }
    let len = be16(d, 0).map_or(0, |v| usize::from(v & 0x7fff));
    let specs = be16(d, 5).map_or(0, usize::from);
    let ok = d.get(2) == Some(&1)
        && matches!(
            (d.get(3), d.get(4)),
            (Some(0), Some(2)) | (Some(3), Some(0..=4))
        )
        && specs > 0
        && specs.is_multiple_of(3)
        && len >= 9 + specs;
    if ok { Probe::Match } else { Probe::NoMatch }
}

fn be16(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*d.get(at)?, *d.get(at + 1)?]))
}

fn new(limits: &Limits, _l4: L4) -> Box<dyn Dissector> {
    Box::new(Tls::new(*limits))
}

/// The record-layer state of one direction.
#[derive(Debug, Default)]
struct Side {
    /// Bytes of the record header read so far.
    hdr: [u8; 5],
    hdr_len: usize,
    /// Content type and bytes left of the record being read.
    ct: u8,
    remaining: usize,
    /// The first bytes of an alert record's body.
    alert: Vec<u8>,
    /// Handshake bytes not yet forming a whole message.
    hs: Vec<u8>,
    /// This side switched to encrypted records.
    encrypted: bool,
    /// This side was given up (malformed records, over a cap, or a gap
    /// after which no record header followed).
    dead: bool,
    /// Bytes went missing before this side's handshake ended: the next
    /// data must start a plausible record header, or the side is given up.
    resync: bool,
    /// A record was read on this side (an SSLv2 hello can only be first).
    seen_record: bool,
    /// The current record is an SSLv2-format one (2-byte header).
    sslv2: bool,
}

/// One TLS connection.
#[derive(Debug)]
struct Tls {
    limits: Limits,
    /// Client (originator) and server (responder) sides.
    sides: [Side; 2],
    rec: TlsRecord,
    ts_us: Option<i64>,
    client_hello: bool,
    client_session_id: Vec<u8>,
    server_hello: bool,
    /// The negotiated version, from the (last) ServerHello.
    negotiated: Option<u16>,
    /// Certificate, ServerKeyExchange or ServerHelloDone seen from the
    /// server (a full handshake).
    server_full: bool,
    emitted: bool,
    /// ClientHellos reported without an answer (repeated before any
    /// ServerHello); at most `Limits::max_pending_transactions`.
    unanswered: usize,
}

fn idx(dir: Direction) -> usize {
    match dir {
        Direction::Originator => 0,
        Direction::Responder => 1,
    }
}

impl Tls {
    fn new(limits: Limits) -> Self {
        Self {
            limits,
            sides: [Side::default(), Side::default()],
            rec: TlsRecord::default(),
            ts_us: None,
            client_hello: false,
            client_session_id: Vec::new(),
            server_hello: false,
            negotiated: None,
            server_full: false,
            emitted: false,
            unanswered: 0,
        }
    }

    fn side(&mut self, dir: Direction) -> &mut Side {
        // `idx` is 0 or 1 and `sides` has two elements.
        let [c, s] = &mut self.sides;
        if idx(dir) == 0 { c } else { s }
    }

    /// Reads `data` of `dir`'s stream record by record.
    fn feed(&mut self, cx: &mut Context<'_>, dir: Direction, mut data: &[u8]) {
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
                if self.side(dir).encrypted {
                    return;
                }
                let cap = self.limits.max_buffered_bytes;
                let side = self.side(dir);
                if side.hs.len().saturating_add(chunk.len()) > cap {
                    side.dead = true;
                    side.hs = Vec::new();
                    cx.anomaly("handshake_too_large");
                    return;
                }
                side.hs.extend_from_slice(chunk);
                self.handshake_messages(cx, dir);
            }
            CT_SSLV2 => {
                let cap = self.limits.max_buffered_bytes;
                let side = self.side(dir);
                if side.hs.len().saturating_add(chunk.len()) > cap {
                    side.dead = true;
                    side.hs = Vec::new();
                    cx.anomaly("handshake_too_large");
                    return;
                }
                side.hs.extend_from_slice(chunk);
                if last {
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

    /// Handles every complete handshake message buffered for `dir`.
    fn handshake_messages(&mut self, cx: &mut Context<'_>, dir: Direction) {
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
    fn client_hello(&mut self, cx: &mut Context<'_>, ch: &hello::ClientHello) {
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

    /// Both sides are encrypted, given up, or one of each: nothing more to
    /// read.
    fn finished(&self) -> bool {
        self.sides.iter().all(|s| s.encrypted || s.dead)
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

    fn want(&mut self, cx: &mut Context<'_>) -> Want {
        if self.emitted {
            return Want::Done;
        }
        if self.finished() {
            self.emit(cx);
            return Want::Done;
        }
        Want::More
    }
}

impl Dissector for Tls {
    fn data(&mut self, cx: &mut Context<'_>, dir: Direction, data: &[u8]) -> Want {
        if !self.emitted {
            self.feed(cx, dir, data);
        }
        self.want(cx)
    }

    fn gap(&mut self, cx: &mut Context<'_>, dir: Direction, _len: u64) -> Want {
        let side = self.side(dir);
        if !side.encrypted && !side.dead {
            // Records after the hole are read when the data after it starts
            // one (handshake records usually begin a segment): a lost
            // certificate segment, or a peer whose sequence numbers jump,
            // need not cost the ServerHello that follows.
            side.hdr_len = 0;
            side.remaining = 0;
            side.sslv2 = false;
            side.hs = Vec::new();
            side.alert.clear();
            side.resync = true;
        }
        self.want(cx)
    }

    fn close(&mut self, cx: &mut Context<'_>) {
        self.emit(cx);
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

/// Runs arbitrary bytes through the hello parsers, the certificate parser
/// and the dissector (both directions, split in two): the body of the fuzz
/// targets and of their corpus replay test. Never panics.
pub fn fuzz_input(data: &[u8]) {
    if let Some(ch) = hello::parse_client_hello(data) {
        let _ = (ch.ja3(), ch.ja4(false), ch.ja4(true));
    }
    if let Some(ch) = hello::parse_client_hello_dtls(data) {
        let _ = ch.ja4(false);
    }
    if let Some(sh) = hello::parse_server_hello(data) {
        let _ = sh.ja3s();
    }
    let _ = cert::parse_certificate_message(data);
    let _ = fuzz_records(data);
}

/// Feeds arbitrary bytes to a TLS dissector: the first two bytes (big
/// endian) give the length of the client stream that follows, the rest is
/// the server stream; small limits. Returns the number of records
/// emitted.
pub fn fuzz_records(data: &[u8]) -> usize {
    let (hdr, rest) = data.split_at(data.len().min(2));
    let split = hdr.iter().fold(0usize, |a, b| a << 8 | usize::from(*b));
    let (a, b) = rest.split_at(split.min(rest.len()));
    let limits = Limits {
        max_pending_transactions: 4,
        max_buffered_bytes: 16 * 1024,
    };
    let mut d = Tls::new(limits);
    let mut out = Vec::new();
    let mut anomalies = Vec::new();
    let mut cx = Context {
        ts_us: 0,
        out: &mut out,
        anomalies: &mut anomalies,
    };
    let _ = probe_bytes(a);
    let _ = probe_bytes(b);
    for chunk in a.chunks(97) {
        d.data(&mut cx, Direction::Originator, chunk);
    }
    for chunk in b.chunks(89) {
        d.data(&mut cx, Direction::Responder, chunk);
    }
    d.close(&mut cx);
    out.len()
}

#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod testutil;

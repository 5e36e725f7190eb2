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
//! QUIC. Here: the connection's state and its record's life cycle; the
//! probe is in `probe.rs`, the record layer in `records.rs`, handshake
//! messages in `handshake.rs`.
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
mod handshake;
pub mod hello;
pub mod names;
mod probe;
mod records;

use super::{AppEvent, Context, Dissector, L4, Limits, Protocol, Transports, Want};
use crate::packet::Direction;
use nucleus_proto::TlsRecord;
use probe::{probe, probe_bytes};

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

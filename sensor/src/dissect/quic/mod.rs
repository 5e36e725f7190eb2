//! QUIC dissector: the client's Initial packets of versions 1 and 2,
//! decrypted, and the TLS ClientHello they carry.
//!
//! Input: the flow's UDP datagrams, one per call (originator = client).
//! Each datagram may hold several coalesced long-header packets; the
//! client's Initial packets are decrypted with the Initial keys derived
//! from the destination connection id (RFC 9001 §5.2, RFC 9369 for v2;
//! after a Retry, from the new one), their CRYPTO frames reassembled by
//! offset across packets and datagrams, in any order, until the
//! ClientHello is complete (post-quantum hellos span several datagrams).
//! Output: one [`nucleus_proto::QuicRecord`] per connection with the
//! version, the client's first destination and source connection ids, and
//! the ClientHello's SNI, ALPN, JA3 and JA4 (QUIC form), parsed by the TLS
//! dissector's hello parser; emitted as soon as the ClientHello is parsed
//! (then nothing more is wanted) or at close with what is known.
//!
//! Does not: decrypt Handshake or 1-RTT packets (their keys need the TLS
//! secrets), follow connection migration, or hold more than
//! `Limits::max_buffered_bytes` of CRYPTO data (a longer ClientHello is
//! counted as an anomaly and given up).

pub mod frames;
pub mod initial;

#[cfg(test)]
mod tests;

use self::frames::{CryptoStream, Refused};
use self::initial::{Keys, Kind};
use super::tls::hello::parse_client_hello;
use super::{
    AppEvent, Context, Dissector, L4, Limits, Probe, ProbeInput, Protocol, Transports, Want,
};
use crate::dissect::ssh::kexinit::hex;
use crate::packet::Direction;
use nucleus_proto::QuicRecord;

/// The QUIC protocol.
pub static PROTOCOL: Protocol = Protocol {
    name: "quic",
    transports: Transports {
        tcp: false,
        udp: true,
    },
    ports: &[443],
    probe,
    new,
};

/// Client Initial packets that fail to decrypt before the dissector gives
/// up (a few are normal: another connection's packets, corruption).
const MAX_DECRYPT_FAILURES: u32 = 8;
/// Datagrams of the client read without completing the ClientHello before
/// the dissector gives up.
const MAX_CLIENT_DATAGRAMS: u32 = 32;

/// TLS handshake message type of a ClientHello.
const CLIENT_HELLO: u8 = 1;

fn probe(input: &ProbeInput<'_>) -> Probe {
    match initial::parse_long_header(input.data) {
        // The fixed bit is set in every packet of versions 1 and 2. A
        // client resuming a session may send 0-RTT packets first.
        Some(h)
            if matches!(h.kind, Kind::Initial | Kind::ZeroRtt | Kind::Handshake)
                && h.first & 0x40 != 0 =>
        {
            Probe::Match
        }
        _ => Probe::NoMatch,
    }
}

fn new(limits: &Limits, _l4: L4) -> Box<dyn Dissector> {
    Box::new(Quic::new(*limits))
}

/// What the ClientHello gave.
#[derive(Debug, Clone, Default, PartialEq)]
struct Hello {
    sni: Option<String>,
    alpn: Vec<String>,
    ja3: String,
    ja4: String,
}

/// One QUIC connection's dissector.
#[derive(Debug)]
pub struct Quic {
    limits: Limits,
    start_ts: Option<i64>,
    /// Version, first DCID and SCID of the client's first Initial.
    version: Option<u32>,
    dcid: Option<Vec<u8>>,
    scid: Option<Vec<u8>>,
    /// The client's Initial keys and the DCID they derive from.
    keys: Option<(Vec<u8>, Keys)>,
    largest_pn: Option<u64>,
    crypto: CryptoStream,
    hello: Option<Hello>,
    failures: u32,
    datagrams: u32,
    /// Nothing more to learn (hello parsed, or given up).
    finished: bool,
    emitted: bool,
}

impl Quic {
    /// A dissector for one connection.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            start_ts: None,
            version: None,
            dcid: None,
            scid: None,
            keys: None,
            largest_pn: None,
            crypto: CryptoStream::default(),
            hello: None,
            failures: 0,
            datagrams: 0,
            finished: false,
            emitted: false,
        }
    }

    fn give_up(&mut self, cx: &mut Context<'_>, reason: &'static str) {
        cx.anomaly(reason);
        self.finished = true;
        self.crypto = CryptoStream::default();
    }

    /// One client datagram: every coalesced packet in it.
    fn client_datagram(&mut self, cx: &mut Context<'_>, mut rest: &[u8]) {
        self.datagrams += 1;
        while !rest.is_empty() && !self.finished {
            let Some(h) = initial::parse_long_header(rest) else {
                // A short-header packet (the rest of the datagram) or junk.
                break;
            };
            let (packet, after) = rest.split_at(h.total.min(rest.len()));
            rest = after;
            match h.kind {
                Kind::Initial => self.client_initial(cx, &h, packet),
                Kind::ZeroRtt | Kind::Handshake => {}
                Kind::Retry | Kind::Other => break,
            }
        }
        if !self.finished && self.datagrams >= MAX_CLIENT_DATAGRAMS {
            self.give_up(cx, "client_hello_incomplete");
        }
    }

    fn client_initial(&mut self, cx: &mut Context<'_>, h: &initial::LongHeader<'_>, packet: &[u8]) {
        if self.version.is_none() {
            self.version = Some(h.version);
            self.dcid = Some(h.dcid.to_vec());
            self.scid = Some(h.scid.to_vec());
        }
        let mut opened = None;
        if let Some((_, keys)) = &self.keys {
            opened = initial::open(keys, packet, h.pn_offset, self.largest_pn);
        }
        let same_dcid = self.keys.as_ref().is_some_and(|(d, _)| d == h.dcid);
        if opened.is_none() && !same_dcid {
            // First Initial, or new keys after a Retry (RFC 9001 §5.2):
            // derive them from this packet's DCID.
            if let Some(keys) = Keys::initial(h.version, h.dcid, true)
                && let Some(o) = initial::open(&keys, packet, h.pn_offset, None)
            {
                if self.keys.is_some() {
                    // A new key set restarts the CRYPTO stream.
                    self.crypto = CryptoStream::default();
                    self.largest_pn = None;
                }
                self.keys = Some((h.dcid.to_vec(), keys));
                opened = Some(o);
            }
        }
        let Some((pn, payload)) = opened else {
            cx.anomaly("decrypt_failed");
            self.failures += 1;
            if self.failures > MAX_DECRYPT_FAILURES {
                self.give_up(cx, "too_many_decrypt_failures");
            }
            return;
        };
        self.largest_pn = Some(self.largest_pn.map_or(pn, |l| l.max(pn)));
        self.initial_payload(cx, &payload);
    }

    /// The frames of one decrypted client Initial.
    fn initial_payload(&mut self, cx: &mut Context<'_>, payload: &[u8]) {
        let max = self.limits.max_buffered_bytes;
        let crypto = &mut self.crypto;
        let mut refused = None;
        let mut differs = false;
        let walked = frames::walk(payload, |offset, data| {
            match crypto.insert(offset, data, max) {
                Ok(d) => differs |= d,
                Err(r) => refused = Some(r),
            }
        });
        if let Err(reason) = walked {
            cx.anomaly(reason);
        }
        if differs {
            cx.anomaly("crypto_overlap_differs");
        }
        match refused {
            Some(Refused::BeyondLimit) => return self.give_up(cx, "crypto_beyond_limit"),
            Some(Refused::TooManyFragments) => cx.anomaly("crypto_too_many_fragments"),
            None => {}
        }
        self.try_hello(cx);
    }

    fn try_hello(&mut self, cx: &mut Context<'_>) {
        if let Some(len) = self.crypto.message_len()
            && len > self.limits.max_buffered_bytes
        {
            return self.give_up(cx, "client_hello_too_long");
        }
        let Some((ty, body)) = self.crypto.message() else {
            return;
        };
        if ty != CLIENT_HELLO {
            return self.give_up(cx, "not_client_hello");
        }
        match parse_client_hello(body) {
            Some(ch) => {
                self.hello = Some(Hello {
                    sni: ch.sni.clone(),
                    alpn: ch.alpn_strings(),
                    ja3: ch.ja3(),
                    ja4: ch.ja4(true),
                });
                self.finished = true;
                self.crypto = CryptoStream::default();
            }
            None => self.give_up(cx, "malformed_client_hello"),
        }
    }

    /// The record of what was learnt so far.
    pub fn record(&self) -> QuicRecord {
        let hello = self.hello.clone().unwrap_or_default();
        QuicRecord {
            version: self.version.map(version_name),
            sni: hello.sni,
            alpn: hello.alpn,
            ja3: self.hello.as_ref().map(|_| hello.ja3),
            ja4: self.hello.as_ref().map(|_| hello.ja4),
            dcid: self.dcid.as_deref().map(hex),
            scid: self.scid.as_deref().map(hex),
        }
    }

    fn emit(&mut self, cx: &mut Context<'_>) {
        if self.emitted {
            return;
        }
        self.emitted = true;
        let ts = self.start_ts.unwrap_or(cx.ts_us);
        cx.emit(ts, AppEvent::Quic(self.record()));
    }
}

/// `1`, `2`, or the version in hexadecimal (`0x...`).
pub fn version_name(version: u32) -> String {
    match version {
        initial::V1 => "1".to_owned(),
        initial::V2 => "2".to_owned(),
        v => format!("0x{v:08x}"),
    }
}

impl Dissector for Quic {
    fn data(&mut self, cx: &mut Context<'_>, dir: Direction, data: &[u8]) -> Want {
        if self.emitted {
            return Want::Done;
        }
        self.start_ts.get_or_insert(cx.ts_us);
        if dir == Direction::Originator && !self.finished {
            self.client_datagram(cx, data);
        }
        if self.finished {
            if self.version.is_some() {
                self.emit(cx);
            }
            return Want::Done;
        }
        Want::More
    }

    fn gap(&mut self, _cx: &mut Context<'_>, _dir: Direction, _len: u64) -> Want {
        // Datagrams have no gaps; a lost one is simply not seen.
        if self.emitted || self.finished {
            Want::Done
        } else {
            Want::More
        }
    }

    fn close(&mut self, cx: &mut Context<'_>) {
        if self.version.is_some() {
            self.emit(cx);
        }
    }
}

/// Fuzzing entry point (also replayed by the tests): `input` is a sequence
/// of datagrams, each preceded by a control byte (bit 0: direction; bit 1:
/// the bytes are an already decrypted client Initial payload, fed to the
/// frame parser directly) and its length (two bytes, big-endian), fed to
/// one dissector with small limits. Returns the records emitted.
pub fn fuzz_input(input: &[u8]) -> usize {
    let limits = Limits {
        max_pending_transactions: 4,
        max_buffered_bytes: 8192,
    };
    let mut quic = Quic::new(limits);
    let mut out = Vec::new();
    let mut anomalies = Vec::new();
    let mut rest = input;
    let mut ts = 0;
    while let Some((&control, tail)) = rest.split_first() {
        ts += 1;
        let Some(len_bytes) = tail.get(..2) else {
            break;
        };
        let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
        let body = tail.get(2..).unwrap_or_default();
        let (datagram, after) = body.split_at(len.min(body.len()));
        rest = after;
        let dir = if control & 1 == 0 {
            Direction::Originator
        } else {
            Direction::Responder
        };
        let mut cx = Context {
            ts_us: ts,
            out: &mut out,
            anomalies: &mut anomalies,
        };
        if control & 2 != 0 {
            // A decrypted Initial payload: reaches the frame parser and
            // the CRYPTO reassembly, which random bytes cannot reach
            // through authenticated decryption.
            quic.start_ts.get_or_insert(ts);
            quic.version.get_or_insert(initial::V1);
            quic.initial_payload(&mut cx, datagram);
            if quic.finished {
                break;
            }
        } else if quic.data(&mut cx, dir, datagram) == Want::Done {
            break;
        }
    }
    let mut cx = Context {
        ts_us: ts + 1,
        out: &mut out,
        anomalies: &mut anomalies,
    };
    quic.close(&mut cx);
    out.len()
}

/// Frames `datagrams` in [`fuzz_input`]'s format (direction, length, bytes),
/// to make fuzzing seeds.
pub fn fuzz_frame(datagrams: &[(Direction, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (dir, d) in datagrams {
        let len = u16::try_from(d.len()).unwrap_or(u16::MAX);
        out.push(u8::from(*dir == Direction::Responder));
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(d.get(..usize::from(len)).unwrap_or_default());
    }
    out
}

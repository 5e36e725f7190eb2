//! Application-layer dissectors and the framework they plug into.
//!
//! Owns: the [`Dissector`] trait every protocol implements, the
//! [`Protocol`] descriptor (name, transports, port hints, content probe,
//! constructor), the [`REGISTRY`], and the limits every dissector works
//! within ([`Limits`]). Input: a flow's payload in stream order (TCP: as the
//! reassembler delivers it, with gaps; UDP: one datagram at a time), from
//! the flow stage (`flow::app`). Output: application records
//! (`nucleus_proto::Record::Dns`, `Record::Http`, ...) through [`Context`],
//! which also counts anomalies by protocol and reason.
//!
//! Does not: reassemble TCP (`flow::reassembly`), choose the protocol of a
//! flow (`flow::app` probes the registry: a protocol whose port hint matches
//! is tried first, then every other one, on the content), or fill in the
//! flow's uid, 5-tuple and Community ID (`flow::app` wraps what a dissector
//! emits).
//!
//! Adding a protocol: a folder `dissect/<name>/` whose `mod.rs` defines a
//! `pub static PROTOCOL: Protocol`, plus one line in [`REGISTRY`].

pub mod dns;
pub mod dtls;
pub mod http;
pub mod imap;
pub mod irc;
pub mod ldap;
pub mod pop3;
pub mod postgres;
pub mod quic;
pub mod smtp;
pub mod ssh;
pub mod starttls;
pub mod stun;
pub mod tls;
pub mod xmpp;

use crate::packet::Direction;

/// Every protocol the sensor dissects, in probing order (after the
/// port-hinted ones): the common ones first, then the STARTTLS followers
/// (cheapest probes first).
pub static REGISTRY: &[&Protocol] = &[
    &dns::PROTOCOL,
    &http::PROTOCOL,
    &tls::PROTOCOL,
    &quic::PROTOCOL,
    &ssh::PROTOCOL,
    &dtls::PROTOCOL,
    &stun::PROTOCOL,
    &postgres::PROTOCOL,
    &pop3::PROTOCOL,
    &imap::PROTOCOL,
    &smtp::PROTOCOL,
    &ldap::PROTOCOL,
    &xmpp::PROTOCOL,
    &irc::PROTOCOL,
];

/// The transports a protocol runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transports {
    /// Runs over TCP (a reassembled byte stream per direction).
    pub tcp: bool,
    /// Runs over UDP (one datagram at a time).
    pub udp: bool,
}

/// The transport of the flow being probed or dissected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4 {
    /// TCP: data arrives as a byte stream per direction.
    Tcp,
    /// UDP: data arrives one datagram at a time.
    Udp,
}

/// What a probe concluded from the first bytes of one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// The bytes are this protocol.
    Match,
    /// The bytes are not this protocol.
    NoMatch,
    /// Too few bytes to tell: probe again when more arrive.
    NeedMore,
}

/// What a dissector wants after taking some input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Keep delivering both directions.
    More,
    /// Nothing more is needed from this flow (the dissector gave up, or the
    /// rest is opaque, such as a WebSocket after an upgrade): reassembly
    /// stops and the flow costs only its accounting from here on.
    Done,
    /// The rest of the stream is another protocol (a tunnel after an HTTP
    /// CONNECT, TLS after STARTTLS): this dissector is dropped and the flow
    /// is identified afresh, each direction from the bytes
    /// [`Dissector::handover`] returns and then the next byte delivered
    /// (UDP: the datagrams handed over, then the next ones, as DTLS after
    /// STUN).
    Reprobe,
}

/// The flow as a probe sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeInput<'a> {
    /// The transport.
    pub l4: L4,
    /// Which side sent `data`.
    pub dir: Direction,
    /// The originator's and the responder's ports.
    pub ports: (u16, u16),
    /// The first bytes of `dir` (TCP: from the start of the stream seen;
    /// UDP: the first datagram's payload).
    pub data: &'a [u8],
}

/// A protocol the sensor knows how to dissect.
#[derive(Debug)]
pub struct Protocol {
    /// Its name, as the flow's `service` and the records' `type`.
    pub name: &'static str,
    /// Transports it runs over.
    pub transports: Transports,
    /// Ports it usually uses: probed first, and a tie-breaker for content
    /// that several protocols accept.
    pub ports: &'static [u16],
    /// Decides from content whether a flow speaks this protocol.
    pub probe: fn(&ProbeInput<'_>) -> Probe,
    /// A dissector for one flow.
    pub new: fn(&Limits, L4) -> Box<dyn Dissector>,
}

/// Caps every dissector respects (from the `[dissect]` configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Transactions waiting for their other half in one flow (queries
    /// without responses, pipelined requests); beyond it the oldest is
    /// reported as it is and counted.
    pub max_pending_transactions: usize,
    /// Bytes a dissector may buffer for one flow (a header or message split
    /// across segments); beyond it the dissector gives up on that direction
    /// and counts it.
    pub max_buffered_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_pending_transactions: 64,
            max_buffered_bytes: 64 * 1024,
        }
    }
}

/// A record a dissector produces, before the flow stage adds the flow's
/// identity.
#[derive(Debug, Clone, PartialEq)]
pub enum AppEvent {
    /// A DNS transaction.
    Dns(nucleus_proto::DnsRecord),
    /// An HTTP transaction.
    Http(nucleus_proto::HttpRecord),
    /// A TLS handshake.
    Tls(nucleus_proto::TlsRecord),
    /// A QUIC connection's Initial handshake.
    Quic(nucleus_proto::QuicRecord),
    /// An SSH connection's banners and key exchange.
    Ssh(nucleus_proto::SshRecord),
}

/// An application record with the packet time it starts at.
#[derive(Debug, Clone, PartialEq)]
pub struct Emitted {
    /// Packet time of the transaction's first packet (µs since the epoch).
    pub ts_us: i64,
    /// The record.
    pub event: AppEvent,
}

/// What a dissector is given with each call: the packet time, where to put
/// records, and where to count anomalies.
#[derive(Debug)]
pub struct Context<'a> {
    /// Packet time of the data being delivered (µs since the epoch); at
    /// close, of the flow's last packet.
    pub ts_us: i64,
    /// Records produced so far in this call.
    pub out: &'a mut Vec<Emitted>,
    /// Anomalies counted so far in this call (one reason per occurrence);
    /// the flow stage adds them to the protocol's counters.
    pub anomalies: &'a mut Vec<&'static str>,
}

impl Context<'_> {
    /// Emits a record starting at `ts_us`.
    pub fn emit(&mut self, ts_us: i64, event: AppEvent) {
        self.out.push(Emitted { ts_us, event });
    }

    /// Counts one anomaly of this dissector's protocol (a short
    /// snake_case reason, such as `"malformed_header"`).
    pub fn anomaly(&mut self, reason: &'static str) {
        self.anomalies.push(reason);
    }
}

/// One flow's dissector. Calls arrive in packet-time order; directions
/// interleave as the packets did. No call may panic or allocate without a
/// bound from [`Limits`].
pub trait Dissector: Send + std::fmt::Debug {
    /// Payload from `dir`: the next bytes of its stream (TCP) or one
    /// datagram (UDP). The first call of each direction carries the bytes
    /// the probe saw.
    fn data(&mut self, cx: &mut Context<'_>, dir: Direction, data: &[u8]) -> Want;

    /// `len` bytes of `dir`'s stream are missing (TCP: lost, not captured,
    /// or skipped by a reassembly cap). The next `data` of `dir` follows
    /// the hole.
    fn gap(&mut self, cx: &mut Context<'_>, dir: Direction, len: u64) -> Want;

    /// The flow ended (closed, timed out, or end of input): report what is
    /// still pending (a query with no response, a request with no
    /// response).
    fn close(&mut self, cx: &mut Context<'_>);

    /// Asked once per direction right after this dissector answered
    /// [`Want::Reprobe`]: the bytes of `dir` it was given but that belong to
    /// the protocol that follows (the rest of the chunk after a STARTTLS
    /// reply; what the client sent after its command while the reply was
    /// awaited). They are probed before anything delivered later. Default:
    /// none (the next protocol starts at the next byte delivered).
    fn handover(&mut self, dir: Direction) -> Vec<u8> {
        let _ = dir;
        Vec::new()
    }
}

#[cfg(test)]
mod tests;

/// The protocol named `name` in the registry.
pub fn by_name(name: &str) -> Option<&'static Protocol> {
    REGISTRY.iter().copied().find(|p| p.name == name)
}

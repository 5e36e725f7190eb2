//! The record schema shared by the sensor and the Nucleus.
//!
//! Owns: the typed activity records the sensor emits and their JSON view (one
//! object per line, the contract tools outside the project read). Inputs:
//! values filled in by the sensor's pipeline. Outputs: `serde` serialisation.
//! Does not: decide what a record contains (the sensor's `record` stage does)
//! nor move records anywhere (the sensor's `export` stage does).
//!
//! Field names and meanings follow Zeek's `conn.log` where they overlap, so
//! that users can compare the two line by line.

use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

pub mod batch;
pub mod community_id;
pub mod convert;
pub mod dns_names;
pub mod frame;
pub mod pb;
pub mod spool;

pub use dns_names::Mnemonic;

/// The version of the record schema (`proto/nucleus.proto`) this build
/// writes, sent in the Hello. Raised only for a change an older receiver
/// cannot ignore (PROTOCOL.md, "Versioning").
pub const SCHEMA_VERSION: u32 = 1;

mod json;
pub use json::{push_ipv4, push_ipv6};

/// Every record the sensor emits. Each variant is boxed: records are
/// hundreds of bytes, and the pipeline moves and sorts them by the
/// thousand.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// A bidirectional flow (a connection for TCP).
    Flow(Box<FlowRecord>),
    /// A DNS query and its response.
    Dns(Box<AppRecord<DnsRecord>>),
    /// An HTTP/1.x request and its response.
    Http(Box<AppRecord<HttpRecord>>),
    /// A TLS handshake.
    Tls(Box<AppRecord<TlsRecord>>),
    /// A QUIC connection's Initial handshake.
    Quic(Box<AppRecord<QuicRecord>>),
    /// An SSH connection's banners and key exchange.
    Ssh(Box<AppRecord<SshRecord>>),
}

impl Record {
    /// The order records are written in: start time of the activity
    /// (microseconds since the epoch), the flow's uid, the kind (flows
    /// first), then the position of a transaction within its flow.
    pub fn sort_key(&self) -> (i64, &str, u8, u64) {
        match self {
            Record::Flow(f) => (f.ts.0, f.uid.as_str(), 0, 0),
            Record::Dns(r) => (r.ts.0, r.flow.uid.as_str(), 1, r.seq),
            Record::Http(r) => (r.ts.0, r.flow.uid.as_str(), 2, r.seq),
            Record::Tls(r) => (r.ts.0, r.flow.uid.as_str(), 3, r.seq),
            Record::Quic(r) => (r.ts.0, r.flow.uid.as_str(), 4, r.seq),
            Record::Ssh(r) => (r.ts.0, r.flow.uid.as_str(), 5, r.seq),
        }
    }
}

/// The flow an application record belongs to: its uid, Community ID and
/// 5-tuple (originator first, as in its [`FlowRecord`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowRef {
    /// The flow's uid.
    pub uid: String,
    /// Community ID v1 of the flow.
    pub community_id: String,
    /// Transport protocol.
    pub proto: Proto,
    /// Originator address.
    #[serde(serialize_with = "json::serialize_ip")]
    pub src_ip: IpAddr,
    /// Originator port.
    pub src_port: u16,
    /// Responder address.
    #[serde(serialize_with = "json::serialize_ip")]
    pub dst_ip: IpAddr,
    /// Responder port.
    pub dst_port: u16,
}

/// An application-layer record: when it started, the flow it belongs to,
/// and the protocol's own fields, all at the top level of its JSON object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppRecord<T> {
    /// Time of the first packet of the transaction (the request or query;
    /// the response when no request was seen).
    pub ts: TimestampMicros,
    /// The flow.
    #[serde(flatten)]
    pub flow: FlowRef,
    /// Position of the transaction within its flow (0, 1, ...): orders
    /// records with equal times.
    #[serde(skip)]
    pub seq: u64,
    /// The protocol's fields.
    #[serde(flatten)]
    pub body: T,
}

/// A DNS transaction: one query and its response, matched by transaction
/// id (field names as Zeek's `dns.log`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DnsRecord {
    /// DNS transaction id.
    pub trans_id: u16,
    /// Seconds from the query to the response, when both were seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt: Option<f64>,
    /// The name queried (presentation format, no trailing dot).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// The query class (1 = IN).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qclass: Option<u16>,
    /// The query type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qtype: Option<Mnemonic>,
    /// The operation code (`QUERY`, `NOTIFY`, `UPDATE`, ...), of the query
    /// (of the response when no query was seen).
    pub opcode: Mnemonic,
    /// The response code (`NOERROR`, `NXDOMAIN`, ...); absent with no
    /// response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rcode: Option<Mnemonic>,
    /// Authoritative answer.
    pub aa: bool,
    /// Truncated.
    pub tc: bool,
    /// Recursion desired.
    pub rd: bool,
    /// Recursion available.
    pub ra: bool,
    /// The answer section of the response.
    pub answers: Vec<DnsAnswer>,
    /// A query with no response before the flow ended.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unanswered: bool,
    /// A response with no query seen.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unsolicited: bool,
}

/// One resource record of a DNS answer section.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DnsAnswer {
    /// Owner name.
    pub name: String,
    /// Record type.
    #[serde(rename = "type")]
    pub rtype: Mnemonic,
    /// Time to live, seconds.
    pub ttl: u32,
    /// The record's data in presentation format (an address, a name, the
    /// text of a TXT record, ...).
    pub data: String,
}

/// An HTTP/1.x transaction: one request and its response (field names as
/// Zeek's `http.log`). Bodies are measured, never kept.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct HttpRecord {
    /// Position of the request within the connection, from 1.
    pub trans_depth: u32,
    /// Request method.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The Host header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The request target as sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// The HTTP version of the request (`1.1`), else of the response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The User-Agent header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The response's status code (the final one after `100 Continue`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// The response's reason phrase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_msg: Option<String>,
    /// Request body bytes (after removing chunked transfer coding).
    pub request_body_len: u64,
    /// Response body bytes (after removing chunked transfer coding).
    pub response_body_len: u64,
    /// The response's Content-Type header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// The `100 Continue` (or other 1xx) status seen before the final one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info_code: Option<u16>,
}

/// A point in time in microseconds since the Unix epoch (UTC), written as
/// RFC 3339 with six fractional digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimestampMicros(pub i64);

impl Serialize for TimestampMicros {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        json::serialize_timestamp(self.0, s)
    }
}

/// Formats microseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub fn format_rfc3339_micros(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day), after
/// Howard Hinnant's `civil_from_days` algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Transport protocol of a flow: a name for the common ones, the IP protocol
/// number otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proto(pub u8);

impl Serialize for Proto {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            6 => s.serialize_str("tcp"),
            17 => s.serialize_str("udp"),
            1 => s.serialize_str("icmp"),
            58 => s.serialize_str("icmp6"),
            n => s.serialize_u8(n),
        }
    }
}

/// One layer of encapsulation the packets of a flow arrived in, outermost
/// first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TunnelLayer {
    /// VXLAN (RFC 7348), as AWS Traffic Mirroring sends it.
    Vxlan {
        /// VXLAN network identifier (the mirror session's VirtualNetworkId).
        vni: u32,
        /// Outer source address (the mirrored ENI's primary IP on AWS).
        #[serde(serialize_with = "json::serialize_ip")]
        outer_src: IpAddr,
        /// Outer destination address.
        #[serde(serialize_with = "json::serialize_ip")]
        outer_dst: IpAddr,
    },
    /// GENEVE (RFC 8926), as a Gateway Load Balancer sends it.
    Geneve {
        /// Virtual network identifier.
        vni: u32,
        /// Outer source address.
        #[serde(serialize_with = "json::serialize_ip")]
        outer_src: IpAddr,
        /// Outer destination address.
        #[serde(serialize_with = "json::serialize_ip")]
        outer_dst: IpAddr,
        /// The AWS Gateway Load Balancer options (class 0x0108), when present.
        #[serde(skip_serializing_if = "Option::is_none")]
        aws_gwlb: Option<AwsGwlb>,
        /// Other options, as class/type/length.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        options: Vec<GeneveOption>,
    },
    /// An 802.1Q tag (or the outer 802.1ad tag of a QinQ pair).
    Vlan {
        /// VLAN identifier (12 bits).
        id: u16,
        /// The tag's EtherType: 0x8100 (802.1Q), 0x88a8 (802.1ad) or 0x9100.
        tpid: u16,
    },
    /// MPLS label stack entry.
    Mpls {
        /// The 20-bit label.
        label: u32,
    },
    /// Generic Routing Encapsulation (RFC 2784/2890), without ERSPAN.
    Gre {
        /// Outer source address.
        #[serde(serialize_with = "json::serialize_ip")]
        outer_src: IpAddr,
        /// Outer destination address.
        #[serde(serialize_with = "json::serialize_ip")]
        outer_dst: IpAddr,
        /// The GRE protocol type of the payload.
        protocol: u16,
        /// GRE key, when present.
        #[serde(skip_serializing_if = "Option::is_none")]
        key: Option<u32>,
    },
    /// ERSPAN (type I, II or III), how switches mirror on premises.
    Erspan {
        /// ERSPAN type: 1, 2 or 3.
        version: u8,
        /// Mirror session id (absent for type I).
        #[serde(skip_serializing_if = "Option::is_none")]
        session_id: Option<u16>,
        /// Original VLAN of the mirrored frame (types II and III).
        #[serde(skip_serializing_if = "Option::is_none")]
        vlan: Option<u16>,
        /// Outer source address.
        #[serde(serialize_with = "json::serialize_ip")]
        outer_src: IpAddr,
        /// Outer destination address.
        #[serde(serialize_with = "json::serialize_ip")]
        outer_dst: IpAddr,
    },
    /// IP directly in IP (IPv4 protocol 4 or 41, IPv6 next header 4 or 41).
    IpInIp {
        /// Outer source address.
        #[serde(serialize_with = "json::serialize_ip")]
        outer_src: IpAddr,
        /// Outer destination address.
        #[serde(serialize_with = "json::serialize_ip")]
        outer_dst: IpAddr,
    },
    /// Teredo: IPv6 in UDP (RFC 4380).
    Teredo {
        /// Outer source address.
        #[serde(serialize_with = "json::serialize_ip")]
        outer_src: IpAddr,
        /// Outer destination address.
        #[serde(serialize_with = "json::serialize_ip")]
        outer_dst: IpAddr,
    },
    /// AYIYA: IP in UDP.
    Ayiya {
        /// Outer source address.
        #[serde(serialize_with = "json::serialize_ip")]
        outer_src: IpAddr,
        /// Outer destination address.
        #[serde(serialize_with = "json::serialize_ip")]
        outer_dst: IpAddr,
    },
    /// GTP-U: a mobile network's user plane.
    Gtp {
        /// Tunnel endpoint id.
        teid: u32,
        /// Outer source address.
        #[serde(serialize_with = "json::serialize_ip")]
        outer_src: IpAddr,
        /// Outer destination address.
        #[serde(serialize_with = "json::serialize_ip")]
        outer_dst: IpAddr,
    },
}

/// The three options AWS Gateway Load Balancer adds to GENEVE (class 0x0108).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AwsGwlb {
    /// Option type 1: the GWLB endpoint's id as AWS names it (`vpce-` and 17
    /// hexadecimal digits of the 64-bit value).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_id: Option<String>,
    /// Option type 2: the attachment id (64 bits, hexadecimal with `0x`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attachment_id: Option<String>,
    /// Option type 3: the flow cookie.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_cookie: Option<u32>,
}

/// A GENEVE option other than the AWS ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GeneveOption {
    /// Option class.
    pub class: u16,
    /// Option type (the critical bit included).
    #[serde(rename = "type")]
    pub option_type: u8,
    /// Length of the option data in bytes.
    pub len: u16,
}

/// A bidirectional flow, with the meaning of each field as in Zeek's
/// `conn.log` where Zeek has it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowRecord {
    /// Time of the first packet.
    pub ts: TimestampMicros,
    /// Time of the last packet.
    pub end_ts: TimestampMicros,
    /// Unique, deterministic id of the flow (`C` and base62).
    pub uid: String,
    /// Community ID v1 of the inner 5-tuple.
    pub community_id: String,
    /// Transport protocol.
    pub proto: Proto,
    /// Originator address (the side that sent the first packet, or the SYN).
    #[serde(serialize_with = "json::serialize_ip")]
    pub src_ip: IpAddr,
    /// Originator port (ICMP: the type).
    pub src_port: u16,
    /// Responder address.
    #[serde(serialize_with = "json::serialize_ip")]
    pub dst_ip: IpAddr,
    /// Responder port (ICMP: the code).
    pub dst_port: u16,
    /// Packets from the originator.
    pub orig_pkts: u64,
    /// Payload bytes from the originator (TCP: by sequence numbers).
    pub orig_bytes: u64,
    /// IP bytes (sum of IP total lengths) from the originator.
    pub orig_ip_bytes: u64,
    /// Packets from the responder.
    pub resp_pkts: u64,
    /// Payload bytes from the responder (TCP: by sequence numbers).
    pub resp_bytes: u64,
    /// IP bytes from the responder.
    pub resp_ip_bytes: u64,
    /// TCP flags seen from the originator, as letters (`FSRPAUEC`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orig_tcp_flags: Option<String>,
    /// TCP flags seen from the responder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resp_tcp_flags: Option<String>,
    /// Zeek's connection state (`S0`, `SF`, `REJ`, ...).
    pub conn_state: String,
    /// Zeek's history string.
    pub history: String,
    /// Bytes missed: sequence gaps in TCP streams.
    pub missed_bytes: u64,
    /// Bytes the capture or the mirror session cut off (caplen or AWS
    /// PacketLength shorter than the packet).
    pub truncated_bytes: u64,
    /// Seconds between the first and the last packet.
    pub duration: f64,
    /// Application protocol, once known.
    pub service: Option<String>,
    /// Encapsulation of the flow's first packet, outermost first.
    pub tunnel: Vec<TunnelLayer>,
    /// Number of distinct mirror sessions (vantage points) that delivered the
    /// flow.
    pub vantages: u32,
    /// Packets that arrived a second time through another vantage point and
    /// were not counted again.
    pub duplicate_pkts: u64,
    /// The workload the flow was mirrored from: the instance of the mirror
    /// session's source interface, found by the outer source address and
    /// VNI of the flow's VXLAN layer. Absent when the sensor does not know
    /// it (no enrollment inventory, not AWS mirroring, an unknown source).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_instance"
    )]
    pub vantage: Option<Arc<Instance>>,
}

/// An EC2 instance as enrollment describes it: which workload a mirrored
/// interface belongs to. Shared (`Arc`) by every flow of that interface.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Default)]
pub struct Instance {
    /// `i-…`.
    pub instance_id: String,
    /// The mirrored network interface (`eni-…`).
    pub eni_id: String,
    /// `vpc-…`.
    pub vpc_id: String,
    /// The interface's subnet (`subnet-…`).
    pub subnet_id: String,
    /// Availability zone (`us-east-1a`).
    pub availability_zone: String,
    /// The instance's tags the sensor is configured to report (`[enroll]
    /// enrich_tags`), by key.
    pub tags: BTreeMap<String, String>,
}

fn serialize_instance<S: serde::Serializer>(
    v: &Option<Arc<Instance>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(i) => s.serialize_some(i.as_ref()),
        None => s.serialize_none(),
    }
}

/// A TLS handshake (field names as Zeek's `ssl.log` and `x509.log` where
/// they overlap).
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct TlsRecord {
    /// The negotiated version (`TLSv12`, `TLSv13`, ...), else the highest
    /// offered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Server name indication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// ALPN protocols offered by the client.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alpn: Vec<String>,
    /// ALPN protocol the server selected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpn_selected: Option<String>,
    /// The cipher suite the server selected (IANA name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cipher: Option<String>,
    /// JA3 (MD5 of `ja3_string`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ja3: Option<String>,
    /// The JA3 string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ja3_string: Option<String>,
    /// JA3S (MD5 of `ja3s_string`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ja3s: Option<String>,
    /// The JA3S string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ja3s_string: Option<String>,
    /// JA4 (the TLS client fingerprint).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ja4: Option<String>,
    /// The session was resumed.
    pub resumed: bool,
    /// The certificate chain, leaf first, when visible (TLS 1.2 and older).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub certs: Vec<Certificate>,
    /// Both sides switched to encrypted records (ChangeCipherSpec or
    /// application data seen from each).
    pub established: bool,
    /// The server answered with a HelloRetryRequest (TLS 1.3).
    pub hello_retry_request: bool,
    /// JA3S of that HelloRetryRequest (`ja3s` is the final ServerHello's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hello_retry_ja3s: Option<String>,
    /// DTLS: JA3 of the client's first ClientHello when the server made it
    /// retry and the retried one (in `ja3`) differs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_hello_ja3: Option<String>,
    /// The ClientHello carried an encrypted_client_hello extension.
    pub ech: bool,
    /// The highest version the client offered (`TLSv13`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_version: Option<String>,
    /// Alerts seen, in order (at most 16 kept; `alerts_total` counts all).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<TlsAlert>,
    /// Number of alert records seen, readable or encrypted.
    #[serde(skip_serializing_if = "is_zero")]
    pub alerts_total: u32,
    /// Description of the last readable alert (as Zeek's `last_alert`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_alert: Option<String>,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// A TLS alert record.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct TlsAlert {
    /// Who sent it: `client` or `server`.
    pub from: String,
    /// `warning`, `fatal`, `unknown-N`, or `encrypted` (sent after the
    /// switch to encrypted records: its content is not visible).
    pub level: String,
    /// The description (`handshake_failure`, ...), empty when encrypted.
    pub description: String,
}

/// One X.509 certificate of a chain.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Certificate {
    /// Subject distinguished name (RFC 4514 string).
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// DNS subject alternative names.
    pub san_dns: Vec<String>,
    /// IP subject alternative names.
    pub san_ip: Vec<String>,
    /// Serial number, hexadecimal.
    pub serial: String,
    /// Start of validity, RFC 3339.
    pub not_before: String,
    /// End of validity, RFC 3339.
    pub not_after: String,
    /// Public key algorithm (`rsa`, `ecdsa`, `ed25519`, ...).
    pub key_type: String,
    /// Public key size in bits.
    pub key_bits: u32,
    /// SHA-256 of the DER certificate, hexadecimal.
    pub sha256: String,
}

/// A QUIC connection's Initial packets (decrypted).
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct QuicRecord {
    /// QUIC version (`1`, `2`, or the hexadecimal number).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Server name indication of the ClientHello.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// ALPN protocols offered.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alpn: Vec<String>,
    /// JA3 of the ClientHello.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ja3: Option<String>,
    /// JA4 of the ClientHello (QUIC form).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ja4: Option<String>,
    /// Destination connection id of the client's first Initial, hexadecimal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dcid: Option<String>,
    /// Source connection id of the client's first Initial, hexadecimal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scid: Option<String>,
}

/// An SSH connection's banners and key exchange.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct SshRecord {
    /// The client's identification string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_banner: Option<String>,
    /// The server's identification string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_banner: Option<String>,
    /// HASSH of the client's KEXINIT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hassh: Option<String>,
    /// HASSH-server of the server's KEXINIT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hassh_server: Option<String>,
    /// The negotiated key exchange algorithm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kex: Option<String>,
    /// The negotiated cipher (client to server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cipher: Option<String>,
    /// The negotiated MAC (client to server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Protocol version of the banners: `2` (banners `2.0` or `1.99` on
    /// both sides) or `1` (either side speaks only SSH-1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u8>,
    /// The string HASSH hashes: the client's
    /// `kex;enc_c2s;mac_c2s;comp_c2s` algorithm lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hassh_string: Option<String>,
    /// The string HASSH-server hashes: the server's
    /// `kex;enc_s2c;mac_s2c;comp_s2c` algorithm lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hassh_server_string: Option<String>,
    /// The negotiated server host key algorithm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_key_alg: Option<String>,
    /// The negotiated compression (client to server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formatting_matches_known_instants() {
        assert_eq!(format_rfc3339_micros(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            format_rfc3339_micros(1_700_000_000_123_456),
            "2023-11-14T22:13:20.123456Z"
        );
        assert_eq!(
            format_rfc3339_micros(951_782_400_000_001),
            "2000-02-29T00:00:00.000001Z"
        );
        assert_eq!(format_rfc3339_micros(-1), "1969-12-31T23:59:59.999999Z");
    }

    #[test]
    fn proto_names_and_numbers() {
        let v = serde_json::to_string(&[Proto(6), Proto(17), Proto(1), Proto(58), Proto(132)])
            .unwrap_or_default();
        assert_eq!(v, r#"["tcp","udp","icmp","icmp6",132]"#);
    }
}

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
//!
//! Here: the envelope ([`Record`], [`AppRecord`], [`FlowRef`]) and the field
//! types every record shares (time, transport protocol); the flow record and
//! its tunnel layers are in `flow.rs`, the protocols' bodies in `app.rs`.

use serde::Serialize;
use std::net::IpAddr;

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

mod app;
mod flow;
pub use app::{
    Certificate, DnsAnswer, DnsRecord, HttpRecord, QuicRecord, SshRecord, TlsAlert, TlsRecord,
};
pub use flow::{AwsGwlb, FlowRecord, GeneveOption, Instance, TunnelLayer};

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

//! The sensor's JSON flow records, and the flow keys that references share.

use std::fmt;
use std::net::IpAddr;

use serde::Deserialize;
use serde_json::Value;

/// One `"type":"flow"` record as the sensor writes it (the contract's keys;
/// unknown extra keys are ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct Flow {
    /// First packet time, RFC 3339 with microseconds, UTC.
    pub ts: String,
    /// Last packet time.
    #[serde(default)]
    pub end_ts: Option<String>,
    /// Connection uid, Zeek style.
    #[serde(default)]
    pub uid: Option<String>,
    /// Community ID v1.
    #[serde(default)]
    pub community_id: Option<String>,
    /// `"tcp"`, `"udp"`, `"icmp"`, `"icmp6"` or the IP protocol number.
    pub proto: Value,
    /// Originator address.
    pub src_ip: IpAddr,
    /// Originator port (ICMP: type).
    #[serde(default)]
    pub src_port: Option<u16>,
    /// Responder address.
    pub dst_ip: IpAddr,
    /// Responder port (ICMP: code or counterpart type).
    #[serde(default)]
    pub dst_port: Option<u16>,
    /// Packets from the originator.
    pub orig_pkts: u64,
    /// Payload bytes from the originator (TCP: by sequence numbers).
    pub orig_bytes: u64,
    /// Sum of IP total lengths from the originator.
    pub orig_ip_bytes: u64,
    /// Packets from the responder.
    pub resp_pkts: u64,
    /// Payload bytes from the responder.
    pub resp_bytes: u64,
    /// Sum of IP total lengths from the responder.
    pub resp_ip_bytes: u64,
    /// Zeek-style connection state.
    #[serde(default)]
    pub conn_state: Option<String>,
    /// Zeek-style history letters.
    #[serde(default)]
    pub history: Option<String>,
    /// Bytes missing from reassembly.
    #[serde(default)]
    pub missed_bytes: Option<u64>,
    /// Seconds between first and last packet.
    #[serde(default)]
    pub duration: Option<f64>,
    /// Encapsulation layers, outermost first.
    #[serde(default)]
    pub tunnel: Vec<Value>,
    /// How many vantage points saw the flow.
    #[serde(default)]
    pub vantages: Option<u64>,
}

/// Parses the JSON lines of a sensor run and keeps the flow records, in
/// output order. Fails the test on a line that is not JSON or a flow record
/// that does not have the contract's keys.
pub fn parse_flows(stdout: &str) -> Vec<Flow> {
    let mut flows = Vec::new();
    for (n, line) in stdout.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("output line {} is not JSON ({e}): {line}", n + 1));
        if value.get("type").and_then(Value::as_str) != Some("flow") {
            continue;
        }
        let flow: Flow = serde_json::from_value(value).unwrap_or_else(|e| {
            panic!(
                "output line {} is not a contract flow record ({e}): {line}",
                n + 1
            )
        });
        flows.push(flow);
    }
    flows
}

impl Flow {
    /// The IP protocol number of `proto`.
    pub fn proto_number(&self) -> u8 {
        match &self.proto {
            Value::String(name) => match name.as_str() {
                "tcp" => 6,
                "udp" => 17,
                "icmp" => 1,
                "icmp6" | "icmpv6" => 58,
                other => other
                    .parse()
                    .unwrap_or_else(|_| panic!("unknown proto name {other:?}")),
            },
            Value::Number(n) => n
                .as_u64()
                .and_then(|n| u8::try_from(n).ok())
                .unwrap_or_else(|| panic!("proto {n} is not an IP protocol number")),
            other => panic!("proto is neither a name nor a number: {other}"),
        }
    }

    /// Originator endpoint.
    pub fn src(&self) -> Endpoint {
        Endpoint {
            ip: self.src_ip,
            port: self.src_port.unwrap_or(0),
        }
    }

    /// Responder endpoint.
    pub fn dst(&self) -> Endpoint {
        Endpoint {
            ip: self.dst_ip,
            port: self.dst_port.unwrap_or(0),
        }
    }

    /// The direction-free key of this flow.
    pub fn key(&self) -> FlowKey {
        FlowKey::new(self.proto_number(), self.src(), self.dst())
    }

    /// Start time in microseconds since the Unix epoch.
    pub fn start_micros(&self) -> i64 {
        rfc3339_to_micros(&self.ts)
            .unwrap_or_else(|| panic!("flow ts is not RFC 3339 UTC: {}", self.ts))
    }

    /// `src:port -> dst:port proto` for messages.
    pub fn describe(&self) -> String {
        format!(
            "{} -> {} proto {}",
            self.src(),
            self.dst(),
            self.proto_number()
        )
    }

    /// The tunnel entries of one `type` (for example `"geneve"`).
    pub fn tunnels_of<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> {
        self.tunnel
            .iter()
            .filter(move |t| t.get("type").and_then(Value::as_str) == Some(kind))
    }
}

/// An address and a port (ICMP: a type or code in the port's place).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// IPv4 or IPv6 address.
    pub ip: IpAddr,
    /// Port, or 0 for protocols without ports.
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip {
            IpAddr::V4(ip) => write!(f, "{ip}:{}", self.port),
            IpAddr::V6(ip) => write!(f, "[{ip}]:{}", self.port),
        }
    }
}

/// A direction-free 5-tuple: protocol and the two endpoints, smaller first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FlowKey {
    /// IP protocol number.
    pub proto: u8,
    /// The smaller endpoint.
    pub low: Endpoint,
    /// The larger endpoint.
    pub high: Endpoint,
}

impl FlowKey {
    /// The key of a flow between `a` and `b`, in either direction.
    pub fn new(proto: u8, a: Endpoint, b: Endpoint) -> Self {
        let (low, high) = if a <= b { (a, b) } else { (b, a) };
        Self { proto, low, high }
    }
}

impl fmt::Display for FlowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} <-> {} proto {}", self.low, self.high, self.proto)
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.ffffff]Z` into microseconds since the epoch.
pub fn rfc3339_to_micros(ts: &str) -> Option<i64> {
    let ts = ts.strip_suffix('Z')?;
    let (date, time) = ts.split_once('T')?;
    let mut date_parts = date.splitn(3, '-');
    let year: i64 = date_parts.next()?.parse().ok()?;
    let month: i64 = date_parts.next()?.parse().ok()?;
    let day: i64 = date_parts.next()?.parse().ok()?;
    let (hms, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let mut time_parts = hms.splitn(3, ':');
    let hour: i64 = time_parts.next()?.parse().ok()?;
    let minute: i64 = time_parts.next()?.parse().ok()?;
    let second: i64 = time_parts.next()?.parse().ok()?;
    let micros = fraction_to_micros(fraction)?;
    let days = days_from_civil(year, month, day);
    Some(((days * 24 + hour) * 60 + minute) * 60_000_000 + second * 1_000_000 + micros)
}

/// Parses a decimal seconds value such as `1585329542.123456000` into
/// microseconds (truncating below a microsecond).
pub fn epoch_to_micros(seconds: &str) -> Option<i64> {
    let (whole, fraction) = seconds.split_once('.').unwrap_or((seconds, "0"));
    Some(whole.parse::<i64>().ok()? * 1_000_000 + fraction_to_micros(fraction)?)
}

fn fraction_to_micros(fraction: &str) -> Option<i64> {
    let digits: String = fraction.chars().chain("000000".chars()).take(6).collect();
    digits.parse().ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn parses_rfc3339() {
        assert_eq!(rfc3339_to_micros("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            rfc3339_to_micros("2020-01-01T00:00:00.123456Z"),
            Some(1_577_836_800_123_456)
        );
        assert_eq!(
            epoch_to_micros("1577836800.123456789"),
            Some(1_577_836_800_123_456)
        );
    }
}

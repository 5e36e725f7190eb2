//! Talking to the sensor's health endpoints: a minimal HTTP/1.1 GET over a
//! TCP stream with timeouts (or through `curl` inside a network namespace),
//! and a parser of the Prometheus text format of `/metrics`.
//!
//! Inputs: an address and a path; a `/metrics` body. Outputs: status and
//! body; [`Metrics`] with sums over label filters. It does not retry: the
//! callers poll.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

/// `GET path` on `addr`; Ok((status, body)) or Err(what failed).
pub fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(u16, String), String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| format!("set timeouts: {e}"))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("send to {addr}: {e}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| format!("read from {addr}: {e}"))?;
    parse_response(&response)
}

/// `GET path` on `addr` from inside network namespace `netns`, with curl.
pub fn http_get_in_netns(
    netns: &str,
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<(u16, String), String> {
    let output = Command::new("ip")
        .args(["netns", "exec", netns, "curl", "-s", "-i", "--max-time"])
        .arg(format!("{:.1}", timeout.as_secs_f64()))
        .arg(format!("http://{addr}{path}"))
        .output()
        .map_err(|e| format!("run curl in {netns}: {e}"))?;
    if !output.status.success() {
        return Err(format!("curl in {netns} failed ({})", output.status));
    }
    parse_response(&output.stdout)
}

fn parse_response(response: &[u8]) -> Result<(u16, String), String> {
    let text = String::from_utf8_lossy(response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP response: {:?}", head.lines().next()))?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// One sample of the Prometheus text format.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name.
    pub name: String,
    /// Labels in the order written.
    pub labels: Vec<(String, String)>,
    /// Value.
    pub value: f64,
}

/// The samples of one `/metrics` answer.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// Every sample, in order.
    pub samples: Vec<Sample>,
}

impl Metrics {
    /// Parses the text format (comments and malformed lines are skipped).
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(parse_sample)
            .collect();
        Self { samples }
    }

    /// Sum of `name` over samples whose labels include every `filter` pair.
    pub fn sum(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                filter
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|s| s.value)
            .sum()
    }

    /// True when some sample is called `name`.
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }

    /// `name`'s samples with a non-zero value, as `label=value,... value`.
    pub fn nonzero(&self, name: &str) -> Vec<String> {
        self.samples
            .iter()
            .filter(|s| s.name == name && s.value != 0.0)
            .map(|s| {
                let labels: Vec<String> =
                    s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("{{{}}} {}", labels.join(","), s.value)
            })
            .collect()
    }
}

fn parse_sample(line: &str) -> Option<Sample> {
    let (name_and_labels, rest) = match line.find('{') {
        Some(open) => {
            let close = open + line[open..].find('}')?;
            (&line[..=close], &line[close + 1..])
        }
        None => line.split_at(line.find(char::is_whitespace)?),
    };
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    let (name, labels) = match name_and_labels.split_once('{') {
        Some((name, labels)) => (name, parse_labels(labels.trim_end_matches('}'))),
        None => (name_and_labels, Vec::new()),
    };
    Some(Sample {
        name: name.trim().to_owned(),
        labels,
        value,
    })
}

/// `a="x",b="y"` (values with escaped quotes handled).
fn parse_labels(text: &str) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once('=') {
        let after = after.trim_start();
        let Some(quoted) = after.strip_prefix('"') else {
            break;
        };
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        let mut end = quoted.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(if escaped == 'n' { '\n' } else { escaped });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.push((key.trim().trim_start_matches(',').trim().to_owned(), value));
        rest = &quoted[end..];
    }
    labels
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn parses_prometheus_text() {
        let m = Metrics::parse(
            "# HELP sensor_packets_total Packets.\n# TYPE sensor_packets_total counter\n\
             sensor_packets_total{thread=\"rx0\",role=\"receiver\"} 10\n\
             sensor_packets_total{thread=\"rx1\",role=\"receiver\"} 5\n\
             sensor_packets_total{thread=\"w0\",role=\"worker\"} 15\n\
             sensor_drops_total{thread=\"rx0\",role=\"receiver\",reason=\"kernel_socket_overflow\"} 3\n\
             sensor_flows_active 7\n\
             sensor_batch_latency_seconds_bucket{le=\"+Inf\"} 2\n",
        );
        assert_eq!(m.sum("sensor_packets_total", &[("role", "receiver")]), 15.0);
        assert_eq!(m.sum("sensor_packets_total", &[]), 30.0);
        assert_eq!(
            m.sum(
                "sensor_drops_total",
                &[("reason", "kernel_socket_overflow")]
            ),
            3.0
        );
        assert_eq!(m.sum("sensor_flows_active", &[]), 7.0);
        assert!(m.has("sensor_batch_latency_seconds_bucket"));
        assert_eq!(m.nonzero("sensor_drops_total").len(), 1);
    }

    #[test]
    fn parses_http_responses() {
        let plain = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 8\r\n\r\ndraining";
        assert_eq!(parse_response(plain), Ok((503, "draining".to_owned())));
        let chunked =
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n1\r\n!\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked), Ok((200, "ok!".to_owned())));
        assert!(parse_response(b"garbage").is_err());
    }
}

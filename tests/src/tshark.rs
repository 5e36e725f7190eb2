//! Reference packets from tshark's dissection of a capture; the
//! [`crate::reference`] module groups them into flows.
//!
//! For each frame, tshark's `frame.protocols` names the layers in order
//! (`eth:ethertype:ip:udp:vxlan:eth:ethertype:ip:tcp`). The flow layer is the
//! first IP header after the last tunnel the sensor removes (VXLAN, GENEVE,
//! GRE, ERSPAN; then past any IP-in-IP header). It is not simply the
//! innermost IP header, because an ICMP error quotes the IP header of the
//! packet it reports on, and tshark shows that quote as a further `ip` layer
//! that is not a flow. Frames with no IP after the last tunnel (ARP, a
//! truncated inner frame) are not flows. Field values are taken at the
//! occurrence that matches the layer's position (`-E occurrence=a` gives
//! every occurrence, comma separated, in layer order).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::flow::{Endpoint, epoch_to_micros};

/// The tshark executable: `TSHARK` when set, else `tshark` on `PATH`.
pub fn tshark_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("TSHARK") {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("tshark"))
            .find(|candidate| candidate.is_file())
    })
}

/// The tshark executable; fails the test with how to install it when absent.
pub fn require_tshark() -> PathBuf {
    tshark_path().unwrap_or_else(|| {
        panic!(
            "tshark is required by this test but was not found on PATH (or in $TSHARK). \
             Install it: `apt-get install -y tshark` (the project's test script does this)."
        )
    })
}

/// Runs tshark over `file` and returns, per frame, the raw value of each of
/// `fields` (every occurrence, comma separated; empty when absent).
pub fn frame_fields(file: &Path, fields: &[&str]) -> Vec<Vec<String>> {
    let mut command = Command::new(require_tshark());
    command
        .arg("-n")
        .arg("-r")
        .arg(file)
        .args(["-T", "fields", "-E", "separator=/t", "-E", "occurrence=a"])
        .args(["-E", "aggregator=,"])
        .args(SENSOR_DECODE_AS.iter().flat_map(|rule| ["-d", rule]));
    for field in fields {
        command.args(["-e", field]);
    }
    let output = command.output().expect("tshark runs");
    assert!(
        output.status.success(),
        "tshark failed on {}: {}",
        file.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let mut values: Vec<String> = line.split('\t').map(str::to_owned).collect();
            values.resize(fields.len(), String::new());
            values
        })
        .collect()
}

/// tshark "decode as" rules for the sensor's default tunnel ports that
/// tshark does not decode by default (Linux's VXLAN port 8472).
pub const SENSOR_DECODE_AS: &[&str] = &["udp.port==8472,vxlan"];

/// The tunnel layers the sensor removes, as tshark names them. IP in IP is
/// handled apart: an IP header directly followed by another is skipped.
pub const SENSOR_TUNNELS: &[&str] = &["vxlan", "geneve", "gre", "erspan"];

/// One packet of the reference: its flow-layer 5-tuple and sizes.
#[derive(Debug, Clone)]
pub struct RefPacket {
    /// tshark's frame number (1-based).
    pub frame: u64,
    /// Capture time in microseconds since the epoch.
    pub ts_micros: i64,
    /// IP protocol number of the flow layer's payload.
    pub proto: u8,
    /// Sender (ICMP: type in the port's place).
    pub src: Endpoint,
    /// Receiver (ICMP: counterpart type or code in the port's place).
    pub dst: Endpoint,
    /// IP total length from the header (IPv6: payload length + 40).
    pub ip_bytes: u64,
    /// UDP payload length from the UDP header; TCP segment length.
    pub payload_bytes: Option<u64>,
    /// VNI of the innermost VXLAN/GENEVE header, if any.
    pub vni: Option<u32>,
    /// TCP flags SYN and ACK (both false for other protocols).
    pub syn: bool,
    /// See `syn`.
    pub ack: bool,
}

/// The tshark fields the reference reads, in this order.
const FIELDS: &[&str] = &[
    "frame.number",
    "frame.time_epoch",
    "frame.protocols",
    "ip.src",
    "ip.dst",
    "ip.len",
    "ip.proto",
    "ip.flags.mf",
    "ip.frag_offset",
    "ipv6.src",
    "ipv6.dst",
    "ipv6.plen",
    "ipv6.nxt",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.len",
    "tcp.flags.syn",
    "tcp.flags.ack",
    "udp.srcport",
    "udp.dstport",
    "udp.length",
    "icmp.type",
    "icmp.code",
    "icmpv6.type",
    "icmpv6.code",
    "vxlan.vni",
    "geneve.vni",
];

/// One frame's fields, looked up by name and occurrence.
struct Frame<'a> {
    values: &'a [String],
}

impl Frame<'_> {
    fn all(&self, field: &str) -> Vec<&str> {
        let raw = self.values[field_index(field)].as_str();
        if raw.is_empty() {
            Vec::new()
        } else {
            raw.split(',').collect()
        }
    }

    fn nth(&self, field: &str, occurrence: usize) -> Option<&str> {
        self.all(field).get(occurrence).copied()
    }

    fn number(&self, field: &str, occurrence: usize) -> Option<u64> {
        let raw = self.nth(field, occurrence)?;
        match raw.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => raw.parse().ok(),
        }
    }
}

/// tshark's dissection of one capture: the reference fields of every frame.
#[derive(Debug, Clone)]
pub struct Dissection {
    /// The capture.
    pub file: PathBuf,
    rows: Vec<Vec<String>>,
}

impl Dissection {
    /// Runs tshark over `file` once.
    pub fn of(file: &Path) -> Self {
        Self {
            file: file.to_path_buf(),
            rows: frame_fields(file, FIELDS),
        }
    }

    /// Number of frames.
    pub fn frames(&self) -> usize {
        self.rows.len()
    }

    /// True when tshark decoded any of `protocols` in any frame.
    pub fn contains_protocol(&self, protocols: &[&str]) -> bool {
        let column = field_index("frame.protocols");
        self.rows.iter().any(|row| {
            row[column]
                .split(':')
                .any(|layer| protocols.contains(&layer))
        })
    }

    /// Every flow-layer packet, in capture order, removing the tunnels named
    /// in `tunnels`.
    pub fn packets(&self, tunnels: &[&str]) -> Vec<RefPacket> {
        self.rows
            .iter()
            .filter_map(|values| packet_of(&self.file, &Frame { values }, tunnels))
            .collect()
    }
}

/// Every flow-layer packet of `file`, in capture order, removing the tunnels
/// named in `tunnels`.
pub fn reference_packets(file: &Path, tunnels: &[&str]) -> Vec<RefPacket> {
    Dissection::of(file).packets(tunnels)
}

fn field_index(field: &str) -> usize {
    FIELDS
        .iter()
        .position(|f| *f == field)
        .unwrap_or_else(|| panic!("field {field} is not in FIELDS"))
}

fn packet_of(file: &Path, frame: &Frame<'_>, tunnels: &[&str]) -> Option<RefPacket> {
    let number = frame.number("frame.number", 0)?;
    let protocols = frame.all("frame.protocols").join(",");
    let layers: Vec<&str> = protocols.split(':').collect();
    let last_tunnel = layers.iter().rposition(|l| tunnels.contains(l));
    let start = last_tunnel.map_or(0, |i| i + 1);
    let is_ip = |l: &&str| *l == "ip" || *l == "ipv6";
    let mut ip_at = start + layers[start..].iter().position(is_ip)?;
    // IP in IP: the flow is the inner header (an ICMP error's quoted header
    // follows `icmp`, not an IP header, so it is never taken).
    while let Some(next) = (ip_at + 1..layers.len()).find(|&i| !layers[i].starts_with("ipv6.")) {
        if !is_ip(&layers[next]) {
            break;
        }
        ip_at = next;
    }
    let is_v6 = layers[ip_at] == "ipv6";
    let ip_occurrence = occurrences_before(&layers, ip_at);
    let context = || format!("{} frame {number} ({protocols})", file.display());
    let (src_ip, dst_ip, ip_bytes) = if is_v6 {
        let plen = frame.number("ipv6.plen", ip_occurrence);
        (
            frame.nth("ipv6.src", ip_occurrence),
            frame.nth("ipv6.dst", ip_occurrence),
            plen.map(|p| p + 40),
        )
    } else {
        let more_fragments = frame.number("ip.flags.mf", ip_occurrence).unwrap_or(0);
        let offset = frame.number("ip.frag_offset", ip_occurrence).unwrap_or(0);
        assert!(
            more_fragments == 0 && offset == 0,
            "reference does not model IP fragments: {}",
            context()
        );
        (
            frame.nth("ip.src", ip_occurrence),
            frame.nth("ip.dst", ip_occurrence),
            frame.number("ip.len", ip_occurrence),
        )
    };
    let parse_ip = |raw: Option<&str>| -> IpAddr {
        raw.and_then(|r| r.parse().ok())
            .unwrap_or_else(|| panic!("no address at the flow layer: {}", context()))
    };
    let (src_ip, dst_ip) = (parse_ip(src_ip), parse_ip(dst_ip));
    let ip_bytes = ip_bytes.unwrap_or_else(|| panic!("no IP length: {}", context()));
    // The transport follows the IP header and any IPv6 extension headers.
    let transport_at = (ip_at + 1..layers.len()).find(|&i| !layers[i].starts_with("ipv6."));
    let transport = transport_at.map_or("", |i| layers[i]);
    let occurrence = transport_at.map_or(0, |i| occurrences_before(&layers, i));
    let fragment_header = layers[ip_at + 1..]
        .iter()
        .take_while(|l| l.starts_with("ipv6."))
        .any(|l| *l == "ipv6.fraghdr");
    assert!(
        !fragment_header,
        "reference does not model IPv6 fragments: {}",
        context()
    );
    let port = |field: &str| -> u16 {
        frame
            .number(field, occurrence)
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or_else(|| panic!("no {field}: {}", context()))
    };
    let (mut syn, mut ack) = (false, false);
    let (proto, src_port, dst_port, payload_bytes) = match transport {
        "tcp" => {
            syn = frame.number("tcp.flags.syn", occurrence) == Some(1);
            ack = frame.number("tcp.flags.ack", occurrence) == Some(1);
            let len = frame.number("tcp.len", occurrence);
            (6, port("tcp.srcport"), port("tcp.dstport"), len)
        }
        "udp" => {
            let len = frame
                .number("udp.length", occurrence)
                .map(|l| l.saturating_sub(8));
            (17, port("udp.srcport"), port("udp.dstport"), len)
        }
        "icmp" | "icmpv6" => {
            let prefix = transport;
            let kind = port(&format!("{prefix}.type"));
            let code = port(&format!("{prefix}.code"));
            let (sp, dp) = icmp_ports(transport == "icmpv6", kind, code);
            (if is_v6 { 58 } else { 1 }, sp, dp, None)
        }
        _ => {
            let proto = if is_v6 {
                frame.number("ipv6.nxt", ip_occurrence)
            } else {
                frame.number("ip.proto", ip_occurrence)
            };
            let proto = proto
                .and_then(|p| u8::try_from(p).ok())
                .unwrap_or_else(|| panic!("no IP protocol: {}", context()));
            assert!(
                !matches!(proto, 6 | 17 | 1 | 58 | 0 | 43 | 44 | 60),
                "tshark did not dissect the transport: {}",
                context()
            );
            (proto, 0, 0, None)
        }
    };
    let innermost_vni_layer = layers[..start]
        .iter()
        .rposition(|l| *l == "vxlan" || *l == "geneve");
    let vni = innermost_vni_layer.and_then(|i| {
        let field = format!("{}.vni", layers[i]);
        let occurrence = occurrences_before(&layers, i);
        frame
            .number(&field, occurrence)
            .and_then(|v| u32::try_from(v).ok())
    });
    Some(RefPacket {
        frame: number,
        ts_micros: frame
            .nth("frame.time_epoch", 0)
            .and_then(epoch_to_micros)
            .unwrap_or_else(|| panic!("no frame time: {}", context())),
        proto,
        src: Endpoint {
            ip: src_ip,
            port: src_port,
        },
        dst: Endpoint {
            ip: dst_ip,
            port: dst_port,
        },
        ip_bytes,
        payload_bytes,
        vni,
        syn,
        ack,
    })
}

/// How many layers before `index` have the same name as the one at `index`:
/// that layer's occurrence number for its fields.
fn occurrences_before(layers: &[&str], index: usize) -> usize {
    layers[..index]
        .iter()
        .filter(|l| **l == layers[index])
        .count()
}

/// The port-like values of an ICMP message, as Zeek and Community ID use
/// them: the type, and the counterpart type for request/reply pairs (so a
/// request and its reply share one flow) or else the code.
pub fn icmp_ports(v6: bool, kind: u16, code: u16) -> (u16, u16) {
    const V4_PAIRS: &[(u16, u16)] = &[(8, 0), (13, 14), (15, 16), (10, 9), (17, 18)];
    const V6_PAIRS: &[(u16, u16)] = &[
        (128, 129),
        (133, 134),
        (135, 136),
        (130, 131),
        (139, 140),
        (144, 145),
    ];
    let pairs = if v6 { V6_PAIRS } else { V4_PAIRS };
    let counterpart = pairs.iter().find_map(|&(a, b)| {
        if a == kind {
            Some(b)
        } else if b == kind {
            Some(a)
        } else {
            None
        }
    });
    (kind, counterpart.unwrap_or(code))
}

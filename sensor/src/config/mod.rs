//! Configuration of the sensor: every cap, timeout, port and address, with
//! defaults that run with no file at all.
//!
//! Owns: the typed settings, their defaults, their TOML form and their
//! validation. Inputs: an optional TOML file, `SENSOR_<SECTION>_<KEY>`
//! environment variables and command-line flags, in rising order of
//! precedence ([`load`]). Output: a validated [`SensorConfig`] each stage is
//! built from, and its TOML rendering (`sensor check-config`). Does not: read
//! anything at packet time, bind sockets or open files.
//!
//! The file has one table per section — `[decap]`, `[defrag]`, `[flows]`,
//! `[community_id]`, `[reassembly]`, `[dissect]`, `[live]`, `[health]`, `[output]`, `[enroll]` — whose keys are the
//! field names below; durations are strings such as `"10s"` or `"500ms"`,
//! addresses strings such as `"0.0.0.0:4789"` or `"[::]:4789"`.
//! `deploy/sensor.toml` lists every key with its default.

mod args;
pub mod enroll;
mod forms;
mod live;
pub mod load;
pub mod nucleus;
mod validate;

#[cfg(test)]
mod tests;

pub use args::{CheckConfigArgs, NucleusArgs, RunArgs};
pub use enroll::EnrollConfig;
pub use live::{HealthConfig, LiveConfig, OutputConfig};
pub use load::{ConfigError, check_config};
pub use nucleus::NucleusConfig;
use serde::{Deserialize, Serialize};
use std::time::Duration;
pub use validate::Invalid;

/// Everything the offline and live pipelines are built from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PipelineConfig {
    /// Decapsulation.
    pub decap: DecapConfig,
    /// Fragment reassembly.
    pub defrag: DefragConfig,
    /// Flow tracking.
    pub flows: FlowConfig,
    /// Community ID.
    pub community_id: CommunityIdConfig,
    /// TCP stream reassembly caps.
    pub reassembly: ReassemblyConfig,
    /// Application-layer dissectors.
    pub dissect: DissectConfig,
}

/// Decapsulation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecapConfig {
    /// UDP destination ports that carry VXLAN (AWS: 4789; Linux default 8472).
    pub vxlan_ports: Vec<u16>,
    /// UDP destination ports that carry GENEVE (GWLB: 6081).
    pub geneve_ports: Vec<u16>,
    /// UDP destination ports that carry GRE (RFC 8086: 4754).
    pub gre_udp_ports: Vec<u16>,
    /// UDP ports that carry Teredo (RFC 4380: 3544).
    pub teredo_ports: Vec<u16>,
    /// Also recognise Teredo on other UDP ports (relays use arbitrary ones)
    /// when the payload is an IPv6 packet with a Teredo address.
    pub teredo_any_port: bool,
    /// UDP ports that carry AYIYA (5072).
    pub ayiya_ports: Vec<u16>,
    /// UDP ports that carry GTP-U (2152).
    pub gtp_u_ports: Vec<u16>,
    /// Most layers peeled from one packet (at most 8); deeper packets are
    /// tracked at the layer reached and counted as `tunnel_too_deep`.
    pub max_depth: usize,
}

impl Default for DecapConfig {
    fn default() -> Self {
        Self {
            vxlan_ports: vec![4789, 8472],
            geneve_ports: vec![6081],
            gre_udp_ports: vec![4754],
            teredo_ports: vec![3544],
            teredo_any_port: true,
            ayiya_ports: vec![5072],
            gtp_u_ports: vec![2152],
            max_depth: 8,
        }
    }
}

/// Fragment reassembly caps (per worker).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DefragConfig {
    /// An incomplete datagram is forgotten after this much packet time.
    #[serde(with = "forms::duration")]
    pub timeout: Duration,
    /// Datagrams in progress at once.
    pub max_datagrams: usize,
    /// Datagrams in progress from one source address.
    pub max_datagrams_per_source: u32,
    /// Payload bytes buffered over all datagrams in progress.
    pub max_bytes: usize,
    /// Pieces one datagram may arrive in.
    pub max_fragments_per_datagram: u32,
}

impl Default for DefragConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            max_datagrams: 16_384,
            max_datagrams_per_source: 1_024,
            max_bytes: 64 << 20,
            max_fragments_per_datagram: 128,
        }
    }
}

/// Flow tracking settings (per worker).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlowConfig {
    /// Most flows tracked at once per worker; new flows beyond it are
    /// counted as `flow_table_full` and not tracked.
    pub max_flows: usize,
    /// A TCP flow with no packet for this long ends (Zeek: 5 min).
    #[serde(with = "forms::duration")]
    pub tcp_timeout: Duration,
    /// A TCP flow closed by FIN both ways or RST ends this long after its
    /// last packet (Zeek's `tcp_close_delay`/`tcp_reset_delay`: 5 s).
    #[serde(with = "forms::duration")]
    pub tcp_closed_timeout: Duration,
    /// A TCP connection attempt (SYN or SYN-ACK) with no answer from the other
    /// side ends this long after it started (Zeek's `tcp_attempt_delay`: 5 s);
    /// later packets start a new flow.
    #[serde(with = "forms::duration")]
    pub tcp_attempt_timeout: Duration,
    /// A UDP flow with no packet for this long ends (Zeek: 1 min).
    #[serde(with = "forms::duration")]
    pub udp_timeout: Duration,
    /// An ICMP flow with no packet for this long ends (Zeek: 1 min).
    #[serde(with = "forms::duration")]
    pub icmp_timeout: Duration,
    /// Any other protocol (Zeek: 1 min).
    #[serde(with = "forms::duration")]
    pub other_timeout: Duration,
    /// How often, in packet time, flows are checked for their timeout.
    #[serde(with = "forms::duration")]
    pub sweep_interval: Duration,
    /// Window within which a packet delivered by a second mirror session is
    /// recognised as a copy of one already seen.
    #[serde(with = "forms::duration")]
    pub duplicate_window: Duration,
    /// TCP ports servers usually listen on. When a flow's first packet is
    /// not a SYN and comes from such a port (and, for the originator-side
    /// port, not from another), the receiver is taken as the originator, as
    /// Zeek does with `likely_server_ports`.
    pub likely_server_ports_tcp: Vec<u16>,
    /// UDP ports servers usually listen on: a flow whose first packet comes
    /// from one of them (to a port that is not one) starts with the roles
    /// flipped, marked `^` in the history.
    pub likely_server_ports_udp: Vec<u16>,
}

/// The TCP ports Zeek's base protocol scripts add to `likely_server_ports`
/// (ftp, ssh, smtp, dns, http, krb, dce-rpc, smb, imap, ldap, ssl, modbus,
/// mqtt, rdp, xmpp, postgresql, redis, irc, dnp3), which decide who is the
/// server when the start of a connection was not seen.
pub const DEFAULT_LIKELY_SERVER_PORTS_TCP: &[u16] = &[
    21, 22, 25, 53, 80, 81, 88, 135, 139, 143, 389, 443, 445, 502, 563, 585, 587, 614, 631, 636,
    989, 990, 992, 993, 995, 1080, 1883, 2811, 3128, 3268, 3389, 5222, 5223, 5269, 5432, 6379,
    6666, 6667, 6668, 6669, 8000, 8080, 8888, 20000,
];

/// The UDP ports of the protocols Zeek analyses by default.
pub const DEFAULT_LIKELY_SERVER_PORTS_UDP: &[u16] = &[
    53, 67, 69, 88, 111, 123, 137, 161, 162, 443, 514, 2049, 2123, 2152, 3544, 4789, 5072, 5353,
    5355, 6081, 20000,
];

impl Default for FlowConfig {
    fn default() -> Self {
        Self {
            max_flows: 1_000_000,
            tcp_timeout: Duration::from_secs(300),
            tcp_closed_timeout: Duration::from_secs(5),
            tcp_attempt_timeout: Duration::from_secs(5),
            udp_timeout: Duration::from_secs(60),
            icmp_timeout: Duration::from_secs(60),
            other_timeout: Duration::from_secs(60),
            sweep_interval: Duration::from_secs(1),
            duplicate_window: Duration::from_millis(500),
            likely_server_ports_tcp: DEFAULT_LIKELY_SERVER_PORTS_TCP.to_vec(),
            likely_server_ports_udp: DEFAULT_LIKELY_SERVER_PORTS_UDP.to_vec(),
        }
    }
}

/// TCP stream reassembly caps (per worker). Out-of-order data is held
/// until the hole before it fills; past a cap the hole is given up on and
/// delivered to the dissector as a gap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReassemblyConfig {
    /// Out-of-order bytes held for one direction of one connection.
    pub max_stream_bytes: usize,
    /// Out-of-order segments held for one direction of one connection.
    pub max_stream_segments: usize,
    /// Out-of-order bytes held over all connections of a worker.
    pub max_bytes: usize,
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        Self {
            max_stream_bytes: 256 * 1024,
            max_stream_segments: 512,
            max_bytes: 128 << 20,
        }
    }
}

/// Application-layer dissectors (per worker).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DissectConfig {
    /// Protocols to identify and dissect (names from the registry: `dns`,
    /// `http`, `tls`, `quic`, `ssh`, `dtls`, `stun`, and the STARTTLS
    /// followers `postgres`, `pop3`, `imap`, `smtp`, `ldap`, `xmpp`, `irc`); empty
    /// turns dissection and TCP reassembly off.
    pub protocols: Vec<String>,
    /// Transactions waiting for their other half in one flow (queries
    /// without responses, pipelined requests); beyond it the oldest is
    /// reported incomplete.
    pub max_pending_transactions: usize,
    /// Bytes a dissector may buffer for one flow (a message or header split
    /// across segments).
    pub max_buffered_bytes: usize,
    /// Bytes of each TCP direction kept while the protocol is not yet known;
    /// a flow still unidentified past them is left undissected.
    pub probe_bytes: usize,
    /// UDP datagrams probed per flow before it is left undissected.
    pub probe_datagrams: u32,
    /// Times one TCP flow may change protocol (TLS after STARTTLS, a tunnel
    /// after HTTP CONNECT) and be identified afresh; past it the flow is
    /// left undissected.
    pub max_upgrades: u32,
}

impl Default for DissectConfig {
    fn default() -> Self {
        Self {
            protocols: crate::dissect::REGISTRY
                .iter()
                .map(|p| p.name.to_string())
                .collect(),
            max_pending_transactions: 64,
            max_buffered_bytes: 64 * 1024,
            probe_bytes: 2048,
            probe_datagrams: 4,
            max_upgrades: 4,
        }
    }
}

/// Community ID v1 settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CommunityIdConfig {
    /// The 16-bit seed.
    pub seed: u16,
    /// Base64 (default) or hexadecimal digest.
    pub base64: bool,
}

impl Default for CommunityIdConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            base64: true,
        }
    }
}

/// Everything `sensor run` is built from: the pipeline plus the live
/// appliance's sockets, health endpoints and output.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "load::ConfigFile", into = "load::ConfigFile")]
pub struct SensorConfig {
    /// The packet pipeline (shared with `sensor pcap`).
    pub pipeline: PipelineConfig,
    /// Receive sockets and threads.
    pub live: LiveConfig,
    /// Health, readiness and metrics endpoints.
    pub health: HealthConfig,
    /// Where records go.
    pub output: OutputConfig,
    /// Enrollment of instances in traffic mirroring.
    pub enroll: EnrollConfig,
    /// Export of records to a Nucleus.
    pub nucleus: NucleusConfig,
}

//! Configuration of the pipeline: every cap, timeout and port, with
//! defaults that work with no file at all.
//!
//! Owns: the typed settings and their defaults. Input: command-line flags
//! (and, for the live appliance, a TOML file). Output: values each stage is
//! built from. Does not: read anything at packet time.

use std::time::Duration;

/// Everything the offline and live pipelines are built from.
#[derive(Debug, Clone, Default)]
pub struct PipelineConfig {
    /// Decapsulation.
    pub decap: DecapConfig,
    /// Fragment reassembly.
    pub defrag: DefragConfig,
    /// Flow tracking.
    pub flows: FlowConfig,
    /// Community ID.
    pub community_id: CommunityIdConfig,
}

/// Decapsulation settings.
#[derive(Debug, Clone)]
pub struct DecapConfig {
    /// UDP destination ports that carry VXLAN (AWS: 4789; Linux default 8472).
    pub vxlan_ports: Vec<u16>,
    /// UDP destination ports that carry GENEVE (GWLB: 6081).
    pub geneve_ports: Vec<u16>,
    /// UDP destination ports that carry GRE (RFC 8086: 4754).
    pub gre_udp_ports: Vec<u16>,
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
            max_depth: 8,
        }
    }
}

/// Fragment reassembly caps (per worker).
#[derive(Debug, Clone)]
pub struct DefragConfig {
    /// An incomplete datagram is forgotten after this much packet time.
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
#[derive(Debug, Clone)]
pub struct FlowConfig {
    /// Most flows tracked at once per worker; new flows beyond it are
    /// counted as `flow_table_full` and not tracked.
    pub max_flows: usize,
    /// A TCP flow with no packet for this long ends (Zeek: 5 min).
    pub tcp_timeout: Duration,
    /// A TCP flow closed by FIN both ways or RST ends this long after its
    /// last packet (Zeek's `tcp_close_delay`/`tcp_reset_delay`: 5 s).
    pub tcp_closed_timeout: Duration,
    /// A UDP flow with no packet for this long ends (Zeek: 1 min).
    pub udp_timeout: Duration,
    /// An ICMP flow with no packet for this long ends (Zeek: 1 min).
    pub icmp_timeout: Duration,
    /// Any other protocol (Zeek: 1 min).
    pub other_timeout: Duration,
    /// How often, in packet time, flows are checked for their timeout.
    pub sweep_interval: Duration,
    /// Window within which a packet delivered by a second mirror session is
    /// recognised as a copy of one already seen.
    pub duplicate_window: Duration,
}

impl Default for FlowConfig {
    fn default() -> Self {
        Self {
            max_flows: 1_000_000,
            tcp_timeout: Duration::from_secs(300),
            tcp_closed_timeout: Duration::from_secs(5),
            udp_timeout: Duration::from_secs(60),
            icmp_timeout: Duration::from_secs(60),
            other_timeout: Duration::from_secs(60),
            sweep_interval: Duration::from_secs(1),
            duplicate_window: Duration::from_millis(500),
        }
    }
}

/// Community ID v1 settings.
#[derive(Debug, Clone)]
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

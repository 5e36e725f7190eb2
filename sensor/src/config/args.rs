//! Command-line flags of `sensor run` and `sensor check-config`.
//!
//! Owns: the flag definitions and how each flag maps onto a configuration
//! key. Input: parsed flags. Output: changes to a [`SensorConfig`], each
//! named by the flag that made it. Does not: read the file or the
//! environment, or validate ranges (flags are validated with the rest).
//!
//! A flag that is not given changes nothing, so it never hides a value from
//! the file or the environment: every flag is an `Option` or a list whose
//! emptiness means "not given". The defaults shown in `--help` are those of
//! the configuration.

use super::SensorConfig;
use super::forms::{parse_address, parse_duration};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Command-line arguments of `sensor run` (flags override the environment,
/// which overrides the file).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunArgs {
    /// TOML configuration file (keys: see deploy/sensor.toml); SENSOR_SECTION_KEY
    /// environment variables override it, and flags override both.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// UDP address receiving VXLAN, IPv4 or IPv6 (repeat for several)
    /// [default: 0.0.0.0:4789].
    #[arg(long = "listen-vxlan", value_name = "ADDR", value_parser = parse_address)]
    pub listen_vxlan: Vec<SocketAddr>,
    /// UDP address receiving GENEVE from a GWLB (repeat for several)
    /// [default: 0.0.0.0:6081].
    #[arg(long = "listen-geneve", value_name = "ADDR", value_parser = parse_address)]
    pub listen_geneve: Vec<SocketAddr>,
    /// HTTP address of /healthz, /readyz and /metrics [default: 0.0.0.0:8080].
    #[arg(long, value_name = "ADDR", value_parser = parse_address)]
    pub health: Option<SocketAddr>,
    /// TCP address accepting load-balancer TCP health checks (repeat for
    /// several; replaces health.tcp_listen) [default: the TCP counterparts
    /// of the VXLAN and GENEVE listen addresses].
    #[arg(long = "tcp-health", value_name = "ADDR", value_parser = parse_address)]
    pub tcp_health: Vec<SocketAddr>,
    /// Accept no TCP health checks (health.tcp_listen = []).
    #[arg(long = "no-tcp-health", conflicts_with = "tcp_health")]
    pub no_tcp_health: bool,
    /// Write records as JSON lines to PATH, or `-` for stdout (logs go to
    /// stderr) [default: -].
    #[arg(long, value_name = "PATH|-")]
    pub json: Option<String>,
    /// On SIGTERM/SIGINT, keep receiving this long with readiness failing,
    /// then flush and exit [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub drain: Option<Duration>,
    /// Receive threads (SO_REUSEPORT sockets) per listen address [default:
    /// the number of cores].
    #[arg(long = "rx-threads", value_name = "N")]
    pub rx_threads: Option<usize>,
    /// Flow worker threads [default: the number of cores].
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Requested SO_RCVBUF of each receive socket [default: 33554432].
    #[arg(long, value_name = "BYTES")]
    pub rcvbuf: Option<usize>,
    /// Most flows tracked at once per worker [default: 1000000].
    #[arg(long = "max-flows", value_name = "N")]
    pub max_flows: Option<usize>,
    /// Export to a Nucleus.
    #[command(flatten)]
    pub nucleus: NucleusArgs,
}

/// Flags of the Nucleus exporter, shared by `sensor run` and `sensor pcap`
/// (the `[nucleus]` keys of the same names).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct NucleusArgs {
    /// Send records to the Nucleus at HOST:PORT over TLS (`sensor run` then
    /// writes no JSON unless --json or output.json asks for it).
    #[arg(long, value_name = "HOST:PORT", requires = "nucleus_ca")]
    pub nucleus: Option<String>,
    /// CA certificates (PEM) that the Nucleus's certificate must chain to.
    #[arg(long = "nucleus-ca", value_name = "FILE")]
    pub nucleus_ca: Option<PathBuf>,
    /// This sensor's certificate chain (PEM), for a Nucleus requiring mutual
    /// TLS.
    #[arg(long = "nucleus-cert", value_name = "FILE", requires = "nucleus_key")]
    pub nucleus_cert: Option<PathBuf>,
    /// The private key (PEM) of --nucleus-cert.
    #[arg(long = "nucleus-key", value_name = "FILE", requires = "nucleus_cert")]
    pub nucleus_key: Option<PathBuf>,
    /// Spool directory: batches wait there on disk until the Nucleus
    /// acknowledges them, across outages and restarts [default: memory].
    #[arg(long, value_name = "DIR")]
    pub spool: Option<PathBuf>,
}

impl NucleusArgs {
    /// Applies the given flags to `cfg.nucleus`; `note` records each key.
    pub(crate) fn apply(
        &self,
        cfg: &mut SensorConfig,
        mut note: impl FnMut(&'static str, &'static str, &'static str),
    ) {
        let path = |p: &PathBuf| p.to_string_lossy().into_owned();
        if let Some(a) = &self.nucleus {
            cfg.nucleus.address.clone_from(a);
            note("nucleus", "address", "--nucleus");
        }
        if let Some(p) = &self.nucleus_ca {
            cfg.nucleus.ca = path(p);
            note("nucleus", "ca", "--nucleus-ca");
        }
        if let Some(p) = &self.nucleus_cert {
            cfg.nucleus.cert = path(p);
            note("nucleus", "cert", "--nucleus-cert");
        }
        if let Some(p) = &self.nucleus_key {
            cfg.nucleus.key = path(p);
            note("nucleus", "key", "--nucleus-key");
        }
        if let Some(p) = &self.spool {
            cfg.nucleus.spool = path(p);
            note("nucleus", "spool", "--spool");
        }
    }
}

/// Command-line arguments of `sensor check-config`.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckConfigArgs {
    /// TOML configuration file (SENSOR_SECTION_KEY environment variables
    /// are applied on top, as `sensor run` does).
    pub file: PathBuf,
}

/// A configuration key (`section`, `key`) set by a flag.
pub(crate) struct FlagSetting {
    /// Section of the key.
    pub section: &'static str,
    /// Key within the section.
    pub key: &'static str,
    /// The flag, as typed (`--drain`).
    pub flag: &'static str,
}

impl RunArgs {
    /// Applies the given flags to `cfg`; returns the keys they set.
    pub(crate) fn apply(&self, cfg: &mut SensorConfig) -> Vec<FlagSetting> {
        let mut set = Vec::new();
        let mut note = |section, key, flag| set.push(FlagSetting { section, key, flag });
        if !self.listen_vxlan.is_empty() {
            cfg.live.listen_vxlan.clone_from(&self.listen_vxlan);
            note("live", "listen_vxlan", "--listen-vxlan");
        }
        if !self.listen_geneve.is_empty() {
            cfg.live.listen_geneve.clone_from(&self.listen_geneve);
            note("live", "listen_geneve", "--listen-geneve");
        }
        if let Some(a) = self.health {
            cfg.health.listen = a;
            note("health", "listen", "--health");
        }
        if !self.tcp_health.is_empty() {
            cfg.health.tcp_listen.clone_from(&self.tcp_health);
            note("health", "tcp_listen", "--tcp-health");
        }
        if self.no_tcp_health {
            cfg.health.tcp_listen.clear();
            note("health", "tcp_listen", "--no-tcp-health");
        }
        if let Some(j) = &self.json {
            cfg.output.json.clone_from(j);
            note("output", "json", "--json");
        }
        if let Some(d) = self.drain {
            cfg.live.drain = d;
            note("live", "drain", "--drain");
        }
        if let Some(n) = self.rx_threads {
            cfg.live.rx_threads = n;
            note("live", "rx_threads", "--rx-threads");
        }
        if let Some(n) = self.workers {
            cfg.live.workers = n;
            note("live", "workers", "--workers");
        }
        if let Some(n) = self.rcvbuf {
            cfg.live.rcvbuf_bytes = n;
            note("live", "rcvbuf_bytes", "--rcvbuf");
        }
        if let Some(n) = self.max_flows {
            cfg.pipeline.flows.max_flows = n;
            note("flows", "max_flows", "--max-flows");
        }
        self.nucleus.apply(cfg, &mut note);
        set
    }
}

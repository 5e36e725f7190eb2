//! The `[nucleus]` section: where records are exported, how they are
//! batched, secured and spooled while the Nucleus is away.
//!
//! Owns: the keys of the section, their defaults and their checks. Does
//! not: connect or spool (the `export` module does).

use super::forms;
use super::validate::{Invalid, fail, range, timeout};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How often the spool is forced to disk.
pub const FSYNC_POLICIES: &[&str] = &["always", "interval", "never"];

/// Export to a Nucleus over TLS (off while `address` is empty).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NucleusConfig {
    /// `HOST:PORT` of the Nucleus (`""`: no export).
    pub address: String,
    /// CA certificates (PEM) the Nucleus's certificate must chain to.
    pub ca: String,
    /// This sensor's certificate chain (PEM), for a Nucleus that requires
    /// mutual TLS (`""`: none; set with `key`).
    pub cert: String,
    /// The private key (PEM) of `cert`.
    pub key: String,
    /// Name the Nucleus's certificate must carry (`""`: the host of
    /// `address`, a DNS name or an IP address).
    pub server_name: String,
    /// This sensor's id in the Hello (`""`: the host name).
    pub sensor_id: String,
    /// Spool directory: batches wait there, on disk, for their ack, across
    /// outages and restarts (`""`: in memory only, lost on exit).
    pub spool: String,
    /// Most bytes the spool holds; when full, the oldest batches are dropped
    /// (counted).
    pub spool_max_bytes: u64,
    /// Size at which a spool segment file is closed and a new one started.
    pub spool_segment_bytes: u64,
    /// `always` (before a batch counts as spooled), `interval` (every
    /// `fsync_interval`) or `never` (the kernel decides; survives a crash
    /// of the sensor, not of the machine).
    pub fsync: String,
    /// Period of `fsync = "interval"`.
    #[serde(with = "forms::duration")]
    pub fsync_interval: Duration,
    /// Most bytes of batches held in memory, unacknowledged, without a
    /// spool; when full, the oldest are dropped (counted).
    pub memory_max_bytes: u64,
    /// A batch is sealed when it holds this many records ...
    pub batch_records: usize,
    /// ... or when its oldest record has waited this long.
    #[serde(with = "forms::duration")]
    pub batch_age: Duration,
    /// Largest record block of a batch before compression; a bigger one is
    /// split (the receiver refuses blocks above its own limit, 16 MiB by
    /// default).
    pub batch_max_bytes: u64,
    /// Zstandard level, 1-19 (0: no compression).
    pub compression_level: i32,
    /// Batches sent and not yet acknowledged, at most.
    pub max_in_flight: usize,
    /// One TCP connect and TLS handshake gives up after this long.
    #[serde(with = "forms::duration")]
    pub connect_timeout: Duration,
    /// A batch not acknowledged within this long ends the connection
    /// (its batches are sent again on the next).
    #[serde(with = "forms::duration")]
    pub ack_timeout: Duration,
    /// First wait before reconnecting; doubles per failure (full jitter).
    #[serde(with = "forms::duration")]
    pub reconnect_min: Duration,
    /// Longest wait before reconnecting.
    #[serde(with = "forms::duration")]
    pub reconnect_max: Duration,
    /// At the end of `sensor pcap` and of `sensor run`'s drain: how long to
    /// wait for the last acks (what is left stays in the spool).
    #[serde(with = "forms::duration")]
    pub drain_timeout: Duration,
}

impl Default for NucleusConfig {
    fn default() -> Self {
        Self {
            address: String::new(),
            ca: String::new(),
            cert: String::new(),
            key: String::new(),
            server_name: String::new(),
            sensor_id: String::new(),
            spool: String::new(),
            spool_max_bytes: 1 << 30,
            spool_segment_bytes: 16 << 20,
            fsync: "interval".to_string(),
            fsync_interval: Duration::from_secs(1),
            memory_max_bytes: 256 << 20,
            batch_records: 1000,
            batch_age: Duration::from_secs(1),
            batch_max_bytes: 8 << 20,
            compression_level: nucleus_proto::batch::DEFAULT_ZSTD_LEVEL,
            max_in_flight: 32,
            connect_timeout: Duration::from_secs(10),
            ack_timeout: Duration::from_secs(60),
            reconnect_min: Duration::from_millis(200),
            reconnect_max: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(30),
        }
    }
}

type Check = Result<(), Invalid>;

/// The section's name in errors.
const S: &str = "nucleus";

impl NucleusConfig {
    /// Whether records are exported.
    pub fn enabled(&self) -> bool {
        !self.address.is_empty()
    }

    /// The first broken rule of the section.
    pub fn check(&self) -> Check {
        if self.enabled() {
            if crate::export::split_host_port(&self.address).is_none() {
                return fail(
                    S,
                    "address",
                    format!("{:?} is not HOST:PORT (IPv6: [ADDR]:PORT)", self.address),
                );
            }
            if self.ca.is_empty() {
                return fail(
                    S,
                    "ca",
                    "is empty: the Nucleus's certificate is verified against this CA file \
                     (--nucleus-ca)"
                        .to_string(),
                );
            }
        }
        if self.cert.is_empty() != self.key.is_empty() {
            return fail(
                S,
                if self.cert.is_empty() { "cert" } else { "key" },
                "cert and key go together (--nucleus-cert and --nucleus-key)".to_string(),
            );
        }
        if !FSYNC_POLICIES.contains(&self.fsync.as_str()) {
            let m = format!("{:?}: one of {}", self.fsync, FSYNC_POLICIES.join(", "));
            return fail(S, "fsync", m);
        }
        timeout(
            S,
            "fsync_interval",
            self.fsync_interval,
            false,
            Duration::MAX,
        )?;
        range(
            S,
            "spool_segment_bytes",
            self.spool_segment_bytes,
            64 << 10,
            1 << 30,
        )?;
        if self.spool_max_bytes < self.spool_segment_bytes.saturating_mul(2) {
            return fail(
                S,
                "spool_max_bytes",
                format!(
                    "{} is less than two segments (spool_segment_bytes = {})",
                    self.spool_max_bytes, self.spool_segment_bytes
                ),
            );
        }
        range(
            S,
            "memory_max_bytes",
            self.memory_max_bytes,
            1 << 20,
            u64::MAX,
        )?;
        range(S, "batch_records", self.batch_records as u64, 1, 100_000)?;
        timeout(S, "batch_age", self.batch_age, false, Duration::MAX)?;
        range(
            S,
            "batch_max_bytes",
            self.batch_max_bytes,
            64 << 10,
            16 << 20,
        )?;
        range(
            S,
            "compression_level",
            u64::try_from(self.compression_level).unwrap_or(u64::MAX),
            0,
            19,
        )?;
        range(S, "max_in_flight", self.max_in_flight as u64, 1, 1024)?;
        timeout(
            S,
            "connect_timeout",
            self.connect_timeout,
            false,
            Duration::MAX,
        )?;
        timeout(S, "ack_timeout", self.ack_timeout, false, Duration::MAX)?;
        timeout(S, "reconnect_min", self.reconnect_min, false, Duration::MAX)?;
        if self.reconnect_max < self.reconnect_min {
            return fail(S, "reconnect_max", "is less than reconnect_min".to_string());
        }
        Ok(())
    }
}

//! The Nucleus exporter: records → numbered, compressed batches → a store
//! (disk spool or memory) → a TLS connection to the Nucleus, at least once
//! (nucleus-proto/PROTOCOL.md).
//!
//! Owns: starting the exporter from `[nucleus]` (store, epoch, sender
//! thread) and the state its two sides share. The sides: `sink` (the
//! [`RecordSink`](crate::record::RecordSink) the output stage writes to;
//! seals batches and stores them, never waiting on the network) and
//! `sender` (its own thread: connects, sends every stored batch, removes
//! a batch from the store when its ack arrives, reconnects with backoff and
//! sends again whatever was not acknowledged). `store` keeps batches until
//! their ack: in memory (`memory`) or in a disk spool of checksummed
//! segment files (`spool`) that survives a restart or a kill of the
//! sensor. `tls` is the client configuration, `status` the metrics.
//! Does not: build records or decide their order.

mod memory;
mod sender;
mod sink;
mod spool;
pub mod status;
pub mod store;
pub mod tls;

pub use sink::NucleusSink;

use crate::config::NucleusConfig;
use anyhow::Context;
use nucleus_proto::batch::Compression;
use nucleus_proto::community_id::CommunityId;
use status::ExportStatus;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use store::{FsyncPolicy, SpoolSettings, Store};
use tokio::sync::watch;

/// The exporter's phase, as the sender sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Send as batches come.
    Running,
    /// No more batches will come: deliver what is held until the deadline.
    Draining(Instant),
    /// Stop now (what is held stays in the store).
    Stop,
}

/// What the sink and the sender share.
pub(crate) struct Shared {
    store: Mutex<Store>,
    /// A batch was stored (a permit is kept when the sender is busy).
    pub wake: tokio::sync::Notify,
    pub phase: watch::Sender<Phase>,
    pub status: Arc<ExportStatus>,
}

impl Shared {
    pub fn lock_store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn begin_drain(&self, deadline: Instant) {
        self.phase.send_replace(Phase::Draining(deadline));
        self.wake.notify_one();
    }

    pub fn stop(&self) {
        self.phase.send_replace(Phase::Stop);
        self.wake.notify_one();
    }
}

/// `HOST:PORT` or `[IPv6]:PORT` → host (without brackets) and port.
pub fn split_host_port(address: &str) -> Option<(&str, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = match host.strip_prefix('[') {
        Some(h) => h.strip_suffix(']')?,
        None if host.contains(':') => return None,
        None => host,
    };
    (!host.is_empty()).then_some((host, port))
}

fn sensor_id(cfg: &NucleusConfig) -> String {
    if !cfg.sensor_id.is_empty() {
        return cfg.sensor_id.clone();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "sensor".to_string())
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The exporter `cfg` asks for (`[nucleus]`, with the pipeline's Community
/// ID settings), started; `None` when no Nucleus address is set.
pub fn start_configured(cfg: &crate::config::SensorConfig) -> anyhow::Result<Option<NucleusSink>> {
    if !cfg.nucleus.enabled() {
        return Ok(None);
    }
    let c = &cfg.pipeline.community_id;
    start(&cfg.nucleus, CommunityId::new(c.seed, c.base64)).map(Some)
}

/// Starts the exporter: opens the store (recovering a spool), picks this
/// run's epoch, starts the sender thread. Configuration errors (files,
/// address, a spool in use) are reported here, before any record flows.
pub fn start(cfg: &NucleusConfig, community_id: CommunityId) -> anyhow::Result<NucleusSink> {
    let (host, port) = split_host_port(&cfg.address)
        .with_context(|| format!("nucleus.address {:?} is not HOST:PORT", cfg.address))?;
    let identity =
        (!cfg.cert.is_empty()).then(|| (PathBuf::from(&cfg.cert), PathBuf::from(&cfg.key)));
    let tls = tls::client_config(
        Path::new(&cfg.ca),
        identity.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
    )?;
    let server_name = tls::server_name(&cfg.server_name, host)?;
    let (store, recovered_max_epoch, durable) = if cfg.spool.is_empty() {
        (Store::memory(cfg.memory_max_bytes), None, false)
    } else {
        let settings = SpoolSettings {
            dir: PathBuf::from(&cfg.spool),
            max_bytes: cfg.spool_max_bytes,
            segment_bytes: cfg.spool_segment_bytes,
            fsync: match cfg.fsync.as_str() {
                "always" => FsyncPolicy::Always,
                "never" => FsyncPolicy::Never,
                _ => FsyncPolicy::Interval(cfg.fsync_interval),
            },
        };
        let (store, recovery) = Store::open_disk(&settings)
            .with_context(|| format!("opening the spool {}", cfg.spool))?;
        if recovery.batches > 0 || recovery.corrupt_entries > 0 {
            eprintln!(
                "sensor: spool {}: {} batches ({} records) from an earlier run to send, {} damaged \
                 entries skipped",
                cfg.spool, recovery.batches, recovery.records, recovery.corrupt_entries
            );
        }
        (store, recovery.max_epoch, true)
    };
    // A new epoch at every start, above any in the spool: an identity is
    // never given to other records, even if the clock went back.
    let epoch = now_micros().max(recovered_max_epoch.map_or(0, |e| e.saturating_add(1)));
    let status = Arc::new(ExportStatus::default());
    status.set_store(store.stats());
    let (phase, phase_rx) = watch::channel(Phase::Running);
    let shared = Arc::new(Shared {
        store: Mutex::new(store),
        wake: tokio::sync::Notify::new(),
        phase,
        status,
    });
    let settings = sender::Settings {
        address: cfg.address.clone(),
        host: host.to_string(),
        port,
        server_name,
        tls: Arc::new(tls),
        sensor_id: sensor_id(cfg),
        max_in_flight: cfg.max_in_flight,
        connect_timeout: cfg.connect_timeout,
        ack_timeout: cfg.ack_timeout,
        reconnect_min: cfg.reconnect_min,
        reconnect_max: cfg.reconnect_max,
    };
    let thread_shared = Arc::clone(&shared);
    let sender = std::thread::Builder::new()
        .name("export".into())
        .spawn(move || sender::run(&thread_shared, &settings, phase_rx))
        .context("starting the export thread")?;
    let compression = match cfg.compression_level {
        0 => Compression::None,
        level => Compression::Zstd(level),
    };
    Ok(NucleusSink {
        shared,
        batching: sink::Batching {
            records: cfg.batch_records,
            age: cfg.batch_age,
            max_block_bytes: cfg.batch_max_bytes,
            compression,
            community_id,
        },
        epoch,
        next_sequence: 0,
        pending: Vec::new(),
        first_at: None,
        sender: Some(sender),
        drain_timeout: cfg.drain_timeout,
        describe: cfg.address.clone(),
        durable,
        write_error_logged: false,
    })
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod address_tests {
    use super::split_host_port;

    #[test]
    fn addresses_split_into_host_and_port() {
        assert_eq!(split_host_port("127.0.0.1:7443"), Some(("127.0.0.1", 7443)));
        assert_eq!(
            split_host_port("nucleus.internal:1"),
            Some(("nucleus.internal", 1))
        );
        assert_eq!(split_host_port("[::1]:7443"), Some(("::1", 7443)));
        assert_eq!(split_host_port("::1:7443"), None);
        assert_eq!(split_host_port("host"), None);
        assert_eq!(split_host_port(":7443"), None);
        assert_eq!(split_host_port("host:70000"), None);
    }
}

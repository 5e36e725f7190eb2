//! What the exporter did and holds, for `/metrics`, `/readyz` and `sensor
//! pcap --stats`.
//!
//! Owns: the counters and gauges (atomics written by the sealing side and
//! the sender, read at scrape time), the last connection error, their
//! metric names. Does not: decide anything.

use super::store::StoreStats;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// The exporter's state, shared by its threads and the health endpoints.
#[derive(Debug, Default)]
pub struct ExportStatus {
    /// A session with the Nucleus is up (Hello exchanged).
    pub connected: AtomicBool,
    /// Sessions established.
    pub connects: AtomicU64,
    /// Connection attempts that failed (TCP, TLS, Hello).
    pub connect_failures: AtomicU64,
    /// Sessions that ended in an error after being established.
    pub disconnects: AtomicU64,
    /// Batches sealed (numbered and stored).
    pub batches_sealed: AtomicU64,
    /// Records in those batches.
    pub records_sealed: AtomicU64,
    /// Batches split because their block was above `batch_max_bytes`.
    pub batches_split: AtomicU64,
    /// Batch frames written to a connection, resends included.
    pub batches_sent: AtomicU64,
    /// Of those, sent again after a reconnect.
    pub batches_resent: AtomicU64,
    /// Bytes of batch frames written.
    pub bytes_sent: AtomicU64,
    /// Batches the Nucleus acknowledged.
    pub batches_acked: AtomicU64,
    /// Records in those batches.
    pub records_acked: AtomicU64,
    /// Records that could not be sealed or stored (encoding or write error).
    pub records_lost: AtomicU64,
    store: Mutex<StoreStats>,
    last_error: Mutex<Option<String>>,
}

fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

impl ExportStatus {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Publishes the store's numbers.
    pub fn set_store(&self, s: StoreStats) {
        *self.store.lock().unwrap_or_else(PoisonError::into_inner) = s;
    }

    /// The store's numbers as last published.
    pub fn store(&self) -> StoreStats {
        *self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Remembers why the last connection attempt or session failed
    /// (`None` once a session is up).
    pub fn set_error(&self, e: Option<String>) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = e;
    }

    /// The last failure, while not connected.
    pub fn error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// One line for `/readyz`: the exporter never fails readiness (the
    /// spool absorbs outages), it says how far behind it is.
    pub fn readiness_detail(&self) -> String {
        let s = self.store();
        let held = format!("{} batches ({} records) waiting", s.batches, s.records);
        if self.connected.load(Ordering::Relaxed) {
            return format!("connected; {held}");
        }
        match self.error() {
            Some(e) => format!("degraded: Nucleus unreachable: {e}; {held}"),
            None => format!("connecting; {held}"),
        }
    }

    /// Every value, named without its prefix (`sensor_export_` in
    /// `/metrics`, `export_` in `--stats`), with its help text and whether it
    /// is a gauge (else a counter).
    fn values(&self) -> [(&'static str, &'static str, Kind, u64); 22] {
        use Kind::{Counter, Gauge};
        let st = self.store();
        let connected = u64::from(self.connected.load(Ordering::Relaxed));
        [
            (
                "connected",
                "1 while a session with the Nucleus is up.",
                Gauge,
                connected,
            ),
            (
                "connects",
                "Sessions established with the Nucleus.",
                Counter,
                load(&self.connects),
            ),
            (
                "connect_failures",
                "Connection attempts to the Nucleus that failed (TCP, TLS or Hello).",
                Counter,
                load(&self.connect_failures),
            ),
            (
                "disconnects",
                "Established sessions that ended in an error.",
                Counter,
                load(&self.disconnects),
            ),
            (
                "batches_sealed",
                "Batches sealed.",
                Counter,
                load(&self.batches_sealed),
            ),
            (
                "records_sealed",
                "Records sealed into batches.",
                Counter,
                load(&self.records_sealed),
            ),
            (
                "batches_split",
                "Batches split because their block exceeded nucleus.batch_max_bytes.",
                Counter,
                load(&self.batches_split),
            ),
            (
                "batches_sent",
                "Batch frames written, resends included.",
                Counter,
                load(&self.batches_sent),
            ),
            (
                "batches_resent",
                "Batch frames written again after a reconnect.",
                Counter,
                load(&self.batches_resent),
            ),
            (
                "bytes_sent",
                "Bytes of batch frames written.",
                Counter,
                load(&self.bytes_sent),
            ),
            (
                "batches_acked",
                "Batches the Nucleus acknowledged.",
                Counter,
                load(&self.batches_acked),
            ),
            (
                "records_acked",
                "Records the Nucleus acknowledged.",
                Counter,
                load(&self.records_acked),
            ),
            (
                "records_lost",
                "Records that could not be sealed or stored.",
                Counter,
                load(&self.records_lost),
            ),
            (
                "dropped_batches",
                "Oldest batches dropped because the spool (or memory queue) was full.",
                Counter,
                st.dropped_batches,
            ),
            (
                "dropped_records",
                "Records in the dropped batches.",
                Counter,
                st.dropped_records,
            ),
            (
                "spool_corrupt_entries",
                "Damaged spool entries found and skipped.",
                Counter,
                st.corrupt_entries,
            ),
            (
                "spool_corrupt_bytes",
                "Bytes of damaged spool regions skipped.",
                Counter,
                st.corrupt_bytes,
            ),
            (
                "spool_write_errors",
                "Spool writes that failed.",
                Counter,
                st.write_errors,
            ),
            (
                "held_batches",
                "Batches waiting for their acknowledgement.",
                Gauge,
                st.batches,
            ),
            (
                "held_records",
                "Records in those batches.",
                Gauge,
                st.records,
            ),
            ("held_bytes", "Bytes of those batches.", Gauge, st.bytes),
            ("spool_segments", "Spool segment files.", Gauge, st.segments),
        ]
    }

    /// Lines for `sensor pcap --stats`: `export_<name>: <value>`.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for (name, _, _, v) in self.values() {
            let _ = writeln!(out, "export_{name}: {v}");
        }
        out
    }

    /// The `/metrics` collector of this status.
    pub fn collector(self: &Arc<Self>) -> ExportCollector {
        ExportCollector(Arc::clone(self))
    }
}

/// Encodes [`ExportStatus`] at scrape time.
#[derive(Debug)]
pub struct ExportCollector(Arc<ExportStatus>);

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    ConstCounter::new(v).encode(enc.encode_descriptor(name, help, None, MetricType::Counter)?)
}

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let v = i64::try_from(v).unwrap_or(i64::MAX);
    ConstGauge::new(v).encode(enc.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

/// How a value is exposed.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

impl Collector for ExportCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        for (name, help, kind, v) in self.0.values() {
            let name = format!("sensor_export_{name}");
            match kind {
                Kind::Counter => counter(&mut enc, &name, help, v)?,
                Kind::Gauge => gauge(&mut enc, &name, help, v)?,
            }
        }
        Ok(())
    }
}

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

    /// Lines for `sensor pcap --stats`.
    pub fn summary(&self) -> String {
        let s = self.store();
        let mut out = String::new();
        for (name, v) in [
            ("export_batches_sealed", load(&self.batches_sealed)),
            ("export_records_sealed", load(&self.records_sealed)),
            ("export_batches_sent", load(&self.batches_sent)),
            ("export_batches_resent", load(&self.batches_resent)),
            ("export_bytes_sent", load(&self.bytes_sent)),
            ("export_batches_acked", load(&self.batches_acked)),
            ("export_records_acked", load(&self.records_acked)),
            ("export_records_lost", load(&self.records_lost)),
            ("export_connects", load(&self.connects)),
            ("export_connect_failures", load(&self.connect_failures)),
            ("export_held_batches", s.batches),
            ("export_held_records", s.records),
            ("export_dropped_batches", s.dropped_batches),
            ("export_dropped_records", s.dropped_records),
            ("export_spool_corrupt_entries", s.corrupt_entries),
            ("export_spool_write_errors", s.write_errors),
        ] {
            let _ = writeln!(out, "{name}: {v}");
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

impl Collector for ExportCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let s = &self.0;
        let st = s.store();
        let e = &mut enc;
        let connected = u64::from(s.connected.load(Ordering::Relaxed));
        gauge(
            e,
            "sensor_export_connected",
            "1 while a session with the Nucleus is up.",
            connected,
        )?;
        for (name, help, v) in [
            (
                "sensor_export_connects",
                "Sessions established with the Nucleus.",
                load(&s.connects),
            ),
            (
                "sensor_export_connect_failures",
                "Connection attempts to the Nucleus that failed (TCP, TLS or Hello).",
                load(&s.connect_failures),
            ),
            (
                "sensor_export_disconnects",
                "Established sessions that ended in an error.",
                load(&s.disconnects),
            ),
            (
                "sensor_export_batches_sealed",
                "Batches sealed.",
                load(&s.batches_sealed),
            ),
            (
                "sensor_export_records_sealed",
                "Records sealed into batches.",
                load(&s.records_sealed),
            ),
            (
                "sensor_export_batches_split",
                "Batches split because their block exceeded nucleus.batch_max_bytes.",
                load(&s.batches_split),
            ),
            (
                "sensor_export_batches_sent",
                "Batch frames written, resends included.",
                load(&s.batches_sent),
            ),
            (
                "sensor_export_batches_resent",
                "Batch frames written again after a reconnect.",
                load(&s.batches_resent),
            ),
            (
                "sensor_export_bytes_sent",
                "Bytes of batch frames written.",
                load(&s.bytes_sent),
            ),
            (
                "sensor_export_batches_acked",
                "Batches the Nucleus acknowledged.",
                load(&s.batches_acked),
            ),
            (
                "sensor_export_records_acked",
                "Records the Nucleus acknowledged.",
                load(&s.records_acked),
            ),
            (
                "sensor_export_records_lost",
                "Records that could not be sealed or stored.",
                load(&s.records_lost),
            ),
            (
                "sensor_export_dropped_batches",
                "Oldest batches dropped because the spool (or memory queue) was full.",
                st.dropped_batches,
            ),
            (
                "sensor_export_dropped_records",
                "Records in the dropped batches.",
                st.dropped_records,
            ),
            (
                "sensor_export_spool_corrupt_entries",
                "Damaged spool entries found and skipped.",
                st.corrupt_entries,
            ),
            (
                "sensor_export_spool_corrupt_bytes",
                "Bytes of damaged spool regions skipped.",
                st.corrupt_bytes,
            ),
            (
                "sensor_export_spool_write_errors",
                "Spool writes that failed.",
                st.write_errors,
            ),
        ] {
            counter(e, name, help, v)?;
        }
        for (name, help, v) in [
            (
                "sensor_export_held_batches",
                "Batches waiting for their acknowledgement.",
                st.batches,
            ),
            (
                "sensor_export_held_records",
                "Records in those batches.",
                st.records,
            ),
            (
                "sensor_export_held_bytes",
                "Bytes of those batches.",
                st.bytes,
            ),
            (
                "sensor_export_spool_segments",
                "Spool segment files.",
                st.segments,
            ),
        ] {
            gauge(e, name, help, v)?;
        }
        Ok(())
    }
}

//! The state of the background enrollment loop, as `/metrics` and `/readyz`
//! show it.
//!
//! Owns: the counters and gauges of enrollment (`sensor_enroll_*`), and the
//! one-line readiness detail. Input: what the loop reports after each pass
//! and message. Output: metric families at scrape time, a detail string.
//! Does not: fail readiness — an unreachable AWS API leaves the sensor
//! receiving traffic, so it is reported as degraded, not as not ready.

use super::PassReport;
use super::client::CallStats;
use super::inventory::Inventory;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime};

/// Distinct refusal reasons kept as label values; more are counted as `other`.
const MAX_REASONS: usize = 32;

/// Event outcomes, in label order.
pub const EVENT_KINDS: [&str; 5] = ["launch", "state_change", "finding", "ignored", "malformed"];

/// What the loop has done; shared with the health endpoints.
#[derive(Debug, Default)]
pub struct EnrollStatus {
    /// Passes completed.
    pub passes: AtomicU64,
    /// Passes that could not read AWS.
    pub failed_passes: AtomicU64,
    /// Owned sessions after the last pass.
    pub sessions_owned: AtomicU64,
    /// Sessions created.
    pub created: AtomicU64,
    /// Sessions deleted.
    pub deleted: AtomicU64,
    /// Interfaces remembered as refused.
    pub refused_enis: AtomicU64,
    /// Unix time of the last completed pass (0: none yet).
    pub last_pass_unix: AtomicU64,
    /// Messages by outcome, in [`EVENT_KINDS`] order.
    pub events: [AtomicU64; 5],
    refused: Mutex<BTreeMap<String, u64>>,
    /// The last error reaching AWS; `None` once a call succeeds again.
    last_error: Mutex<Option<String>>,
    calls: OnceLock<Arc<CallStats>>,
    inventory: OnceLock<Arc<Inventory>>,
}

impl EnrollStatus {
    /// Records a finished pass and the size of the remembered refusals.
    pub fn pass_done(&self, report: &PassReport, owned_after: u64, refused_enis: u64) {
        self.passes.fetch_add(1, Ordering::Relaxed);
        self.created
            .fetch_add(report.created as u64, Ordering::Relaxed);
        self.deleted
            .fetch_add(report.deleted as u64, Ordering::Relaxed);
        self.sessions_owned.store(owned_after, Ordering::Relaxed);
        self.refused_enis.store(refused_enis, Ordering::Relaxed);
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.last_pass_unix.store(now, Ordering::Relaxed);
        let mut refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
        for (_, code) in &report.refused {
            let key = if refused.len() < MAX_REASONS || refused.contains_key(code) {
                code.clone()
            } else {
                "other".to_string()
            };
            *refused.entry(key).or_default() += 1;
        }
        drop(refused);
        self.set_error(report.errors.first().cloned());
    }

    /// Records a pass that failed before it could plan.
    pub fn pass_failed(&self, error: String) {
        self.failed_passes.fetch_add(1, Ordering::Relaxed);
        self.set_error(Some(error));
    }

    /// Sets (or clears) the last AWS error.
    pub fn set_error(&self, error: Option<String>) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = error;
    }

    /// Counts a queue message by outcome (an index into [`EVENT_KINDS`]).
    pub fn event(&self, kind: usize) {
        if let Some(c) = self.events.get(kind) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Attaches the AWS client's call counters.
    pub fn attach_calls(&self, calls: Arc<CallStats>) {
        let _ = self.calls.set(calls);
    }

    /// Attaches the inventory that enriches flow records.
    pub fn attach_inventory(&self, inventory: Arc<Inventory>) {
        let _ = self.inventory.set(inventory);
    }

    /// The `/readyz` detail: always a passing check, degraded when AWS is
    /// unreachable.
    pub fn readiness_detail(&self) -> String {
        let error = self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(e) = error {
            return format!("degraded: AWS API unreachable or failing: {e}");
        }
        let last = self.last_pass_unix.load(Ordering::Relaxed);
        if last == 0 {
            return "no pass yet".to_string();
        }
        let ago = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH + Duration::from_secs(last))
            .map_or(0, |d| d.as_secs());
        format!(
            "last pass {ago}s ago: {} sessions owned, {} interfaces refused",
            self.sessions_owned.load(Ordering::Relaxed),
            self.refused_enis.load(Ordering::Relaxed)
        )
    }

    /// The `/metrics` collector of this status.
    pub fn collector(self: &Arc<Self>) -> EnrollCollector {
        EnrollCollector(Arc::clone(self))
    }
}

/// Encodes [`EnrollStatus`] at scrape time.
#[derive(Debug)]
pub struct EnrollCollector(Arc<EnrollStatus>);

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    ConstCounter::new(v).encode(enc.encode_descriptor(name, help, None, MetricType::Counter)?)
}

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    ConstGauge::new(v as i64).encode(enc.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

/// The enrichment inventory's size and lookups (`sensor_enrich_*`).
fn encode_inventory(enc: &mut DescriptorEncoder, inv: &Inventory) -> std::fmt::Result {
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let table = inv.snapshot();
    gauge(
        enc,
        "sensor_enrich_entries",
        "Entries of the inventory that enriches flow records.",
        table.len() as u64,
    )?;
    gauge(
        enc,
        "sensor_enrich_left_out_interfaces",
        "Interfaces the last refresh left out of the inventory (enrich_max_entries).",
        table.left_out(),
    )?;
    counter(
        enc,
        "sensor_enrich_refreshes",
        "Inventory refreshes (one per completed enrollment pass).",
        load(&inv.refreshes),
    )?;
    let mut m = enc.encode_descriptor(
        "sensor_enrich_lookups",
        "Flow records looked up in the inventory, by result: session (outer \
         source and VNI), address (outer source alone), miss.",
        None,
        MetricType::Counter,
    )?;
    for (result, n) in [
        ("session", &inv.hits_session),
        ("address", &inv.hits_address),
        ("miss", &inv.misses),
    ] {
        ConstCounter::new(load(n)).encode(m.encode_family(&[("result", result)])?)?;
    }
    Ok(())
}

impl Collector for EnrollCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let s = &self.0;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let e = &mut enc;
        counter(
            e,
            "sensor_enroll_passes",
            "Reconcile passes completed.",
            load(&s.passes),
        )?;
        counter(
            e,
            "sensor_enroll_failed_passes",
            "Reconcile passes that could not read AWS.",
            load(&s.failed_passes),
        )?;
        gauge(
            e,
            "sensor_enroll_sessions_owned",
            "Mirror sessions carrying the ownership tag after the last pass.",
            load(&s.sessions_owned),
        )?;
        let created = load(&s.created);
        counter(
            e,
            "sensor_enroll_sessions_created",
            "Sessions created.",
            created,
        )?;
        let deleted = load(&s.deleted);
        counter(
            e,
            "sensor_enroll_sessions_deleted",
            "Sessions deleted.",
            deleted,
        )?;
        gauge(
            e,
            "sensor_enroll_refused_enis",
            "Interfaces remembered as refused by AWS or full.",
            load(&s.refused_enis),
        )?;
        gauge(
            e,
            "sensor_enroll_last_pass_timestamp_seconds",
            "Unix time of the last completed pass (0: none yet).",
            load(&s.last_pass_unix),
        )?;
        let refused = s
            .refused
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut m = enc.encode_descriptor(
            "sensor_enroll_refused",
            "Session creates AWS refused, by its error code.",
            None,
            MetricType::Counter,
        )?;
        for (reason, n) in &refused {
            ConstCounter::new(*n).encode(m.encode_family(&[("reason", reason.as_str())])?)?;
        }
        let mut m = enc.encode_descriptor(
            "sensor_enroll_events",
            "Queue messages by outcome.",
            None,
            MetricType::Counter,
        )?;
        for (kind, n) in EVENT_KINDS.iter().zip(&s.events) {
            ConstCounter::new(load(n)).encode(m.encode_family(&[("kind", *kind)])?)?;
        }
        if let Some(inv) = s.inventory.get() {
            encode_inventory(&mut enc, inv)?;
        }
        if let Some(c) = s.calls.get() {
            let e = &mut enc;
            counter(
                e,
                "sensor_enroll_api_requests",
                "AWS API requests sent.",
                load(&c.requests),
            )?;
            let throttled = load(&c.throttled);
            counter(
                e,
                "sensor_enroll_api_throttled",
                "AWS API answers that were throttling.",
                throttled,
            )?;
            counter(
                e,
                "sensor_enroll_api_retries",
                "AWS API calls repeated.",
                load(&c.retries),
            )?;
        }
        Ok(())
    }
}

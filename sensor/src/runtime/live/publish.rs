//! Publication of a live thread's state to [`LiveStats`].
//!
//! Owns: the thread's local batch histograms and the publication rhythm (at
//! most every [`PUBLISH_EVERY`], and whenever idle). Input: the thread's own
//! plain counters. Output: its [`ThreadSnapshot`](crate::metrics::ThreadSnapshot)
//! under one uncontended lock. Does not: count anything itself.

use crate::metrics::Gauges;
use crate::metrics::{Counters, LiveStats, ThreadRole, ThreadSnapshot, ThreadStats};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest time between two publications of a busy thread.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(20);

/// A thread's handle on its published snapshot.
pub struct Publisher {
    stats: Arc<ThreadStats>,
    // Histograms recorded since the last publication (added, then reset, so
    // publishing never allocates).
    local: ThreadSnapshot,
    last: Instant,
}

impl Publisher {
    /// Registers the thread.
    pub fn register(live: &LiveStats, name: String, role: ThreadRole) -> Self {
        Self {
            stats: live.register(name, role),
            local: ThreadSnapshot::new(),
            last: Instant::now(),
        }
    }

    /// Records one batch: its size in items and its processing time.
    pub fn batch(&mut self, items: usize, elapsed: Duration) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.local.batch_size.saturating_record(items as u64);
        self.local.batch_latency_ns.saturating_record(ns.max(1));
    }

    /// Publishes if the last publication is older than [`PUBLISH_EVERY`].
    pub fn maybe_publish(&mut self, counters: &Counters, gauges: Gauges) {
        if self.last.elapsed() >= PUBLISH_EVERY {
            self.publish(counters, gauges);
        }
    }

    /// Publishes now (also the heartbeat of an idle thread).
    pub fn publish(&mut self, counters: &Counters, gauges: Gauges) {
        let now = Instant::now();
        self.last = now;
        // A poisoned lock means a reader panicked holding it; the data is
        // plain counters, so keep publishing.
        let mut s = match self.stats.snapshot.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        s.counters.clone_from(counters);
        s.active_flows = gauges.active_flows;
        s.reassembly_bytes = gauges.reassembly_bytes;
        let _ = s.batch_size.add(&self.local.batch_size);
        let _ = s.batch_latency_ns.add(&self.local.batch_latency_ns);
        s.heartbeat = now;
        drop(s);
        self.local.batch_size.reset();
        self.local.batch_latency_ns.reset();
    }
}

//! Publication of a live thread's state to [`LiveStats`].
//!
//! Owns: the thread's batches not yet published and the publication rhythm (at
//! most every [`PUBLISH_EVERY`], and whenever idle). Input: the thread's own
//! plain counters. Output: its [`ThreadSnapshot`](crate::metrics::ThreadSnapshot)
//! under one uncontended lock. Does not: count anything itself.

use crate::metrics::Gauges;
use crate::metrics::{Counters, LiveStats, ThreadRole, ThreadSnapshot, ThreadStats};
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

/// Longest time between two publications of a busy thread.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(20);

/// Batches remembered between two publications at most: a thread that
/// fills the list records them into its snapshot early (one more lock).
const PENDING_BATCHES: usize = 1024;

/// A thread's handle on its published snapshot.
pub struct Publisher {
    stats: Arc<ThreadStats>,
    /// (items, nanoseconds) of each batch since the last publication,
    /// recorded into the snapshot's histograms when published: the few
    /// hundred batches of a publication period cost less there than adding,
    /// then resetting, two whole local histograms (thousands of buckets
    /// each) every time. Allocated once, never beyond `PENDING_BATCHES`.
    pending: Vec<(u64, u64)>,
    last: Instant,
}

impl Publisher {
    /// Registers the thread.
    pub fn register(live: &LiveStats, name: String, role: ThreadRole) -> Self {
        Self {
            stats: live.register(name, role),
            pending: Vec::with_capacity(PENDING_BATCHES),
            last: Instant::now(),
        }
    }

    /// Records one batch: its size in items and its processing time.
    pub fn batch(&mut self, items: usize, elapsed: Duration) {
        if self.pending.len() >= PENDING_BATCHES {
            record_pending(&mut self.pending, &mut lock(&self.stats));
        }
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.pending.push((items as u64, ns.max(1)));
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
        let mut s = lock(&self.stats);
        s.counters.clone_from(counters);
        s.active_flows = gauges.active_flows;
        s.reassembly_bytes = gauges.reassembly_bytes;
        record_pending(&mut self.pending, &mut s);
        s.heartbeat = now;
    }
}

/// The thread's snapshot, locked. A poisoned lock means a reader panicked
/// holding it; the data is plain counters, so keep publishing.
fn lock(stats: &ThreadStats) -> MutexGuard<'_, ThreadSnapshot> {
    match stats.snapshot.lock() {
        Ok(s) => s,
        Err(p) => p.into_inner(),
    }
}

/// Moves the pending batches into the snapshot's histograms (values beyond
/// a histogram's range count as its highest).
fn record_pending(pending: &mut Vec<(u64, u64)>, s: &mut ThreadSnapshot) {
    for (items, ns) in pending.drain(..) {
        s.batch_size.saturating_record(items);
        s.batch_latency_ns.saturating_record(ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_reach_the_snapshot_at_publication_or_when_the_list_is_full() {
        let live = LiveStats::new();
        let mut p = Publisher::register(&live, "rx-0".into(), ThreadRole::Receiver);
        let stats = Arc::clone(&p.stats);
        let snapshot = || {
            let s = lock(&stats);
            (
                s.batch_size.len(),
                s.batch_size.max(),
                s.batch_latency_ns.len(),
            )
        };
        p.batch(7, Duration::from_micros(3));
        assert_eq!(snapshot(), (0, 0, 0), "nothing shown before publication");
        p.publish(&Counters::default(), Gauges::default());
        assert_eq!(snapshot(), (1, 7, 1));
        // A thread that does not publish for long keeps bounded memory: the
        // full list is recorded, then starts again.
        for _ in 0..PENDING_BATCHES + 3 {
            p.batch(1 << 40, Duration::ZERO);
        }
        let (len, max, _) = snapshot();
        assert_eq!(len, 1 + PENDING_BATCHES as u64);
        // Beyond the histogram's range: counted at its highest value.
        assert!((1 << 20..1 << 40).contains(&max), "max {max}");
        assert!(p.pending.len() <= PENDING_BATCHES);
        p.publish(&Counters::default(), Gauges::default());
        assert_eq!(snapshot().0, 4 + PENDING_BATCHES as u64);
    }
}

//! Readiness: whether a load balancer should send traffic to this sensor,
//! and why not. Inputs: the [`LiveStats`] the live threads publish, the
//! [`HealthConfig`] thresholds, and a short history of traffic totals taken
//! by a 1 s sampler (the drop-ratio window). Output: a [`Readiness`] report,
//! one line per check, that `/readyz` and `sensor_ready` show. It does not
//! serve HTTP and never changes the stats.

use crate::config::HealthConfig;
use crate::metrics::{Drop, LiveStats, ThreadRole, ThreadStats};
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How far back the drop ratio looks.
pub(crate) const DROP_WINDOW: Duration = Duration::from_secs(10);

/// How often the sampler records traffic totals.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Drop reasons that mean a received (or about to be received) datagram was
/// lost before it was accounted in a record.
const LOST_REASONS: [Drop; 3] = [
    Drop::KernelSocketOverflow,
    Drop::WorkerQueueFull,
    Drop::OutputQueueFull,
];

/// Stalled thread names listed in `/readyz` before "and N more".
const MAX_NAMES_SHOWN: usize = 8;

/// Sums over every registered thread, the inputs of the drop ratio.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TrafficTotals {
    /// Datagrams received: the receivers' packet counters (the workers'
    /// when no receiver is registered, so they are never counted twice).
    pub received: u64,
    /// Datagrams the kernel dropped before the sensor could read them.
    pub kernel_dropped: u64,
    /// Every drop in [`LOST_REASONS`], kernel drops included.
    pub lost: u64,
}

impl TrafficTotals {
    /// Current totals of the registered threads.
    pub fn read(stats: &LiveStats) -> Self {
        let mut by_receivers = Self::default();
        let mut worker_packets = 0u64;
        let mut receivers = 0usize;
        for t in threads(stats) {
            let snap = t.snapshot.lock().unwrap_or_else(PoisonError::into_inner);
            let c = &snap.counters;
            match t.role {
                ThreadRole::Receiver => {
                    receivers += 1;
                    by_receivers.received += c.packets;
                }
                ThreadRole::Worker => worker_packets += c.packets,
                ThreadRole::Output => {}
            }
            by_receivers.kernel_dropped += c.drops[Drop::KernelSocketOverflow as usize];
            by_receivers.lost += LOST_REASONS
                .iter()
                .map(|d| c.drops[*d as usize])
                .sum::<u64>();
        }
        if receivers == 0 {
            by_receivers.received = worker_packets;
        }
        by_receivers
    }

    /// Share of datagrams lost between `base` and `self`: lost divided by
    /// received plus kernel drops, 0 when nothing arrived. Counters that
    /// went backwards count as 0.
    pub fn drop_ratio_since(&self, base: &TrafficTotals) -> f64 {
        let lost = self.lost.saturating_sub(base.lost);
        let arrived = self
            .received
            .saturating_sub(base.received)
            .saturating_add(self.kernel_dropped.saturating_sub(base.kernel_dropped));
        if arrived == 0 {
            0.0
        } else {
            lost as f64 / arrived as f64
        }
    }
}

/// Traffic totals of the last [`DROP_WINDOW`], one every [`SAMPLE_EVERY`].
#[derive(Debug, Default)]
pub(crate) struct DropWindow {
    samples: Mutex<VecDeque<(Instant, TrafficTotals)>>,
}

impl DropWindow {
    /// Records a sample and forgets those no longer needed: the base kept is
    /// the newest sample at least [`DROP_WINDOW`] old (or the oldest one).
    pub fn record(&self, at: Instant, totals: TrafficTotals) {
        let mut s = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        s.push_back((at, totals));
        while s.len() > 1
            && s.get(1)
                .is_some_and(|(t, _)| at.saturating_duration_since(*t) >= DROP_WINDOW)
        {
            s.pop_front();
        }
    }

    /// The window's base sample and its age.
    fn base(&self, now: Instant) -> Option<(Duration, TrafficTotals)> {
        let s = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        s.front()
            .map(|(t, tot)| (now.saturating_duration_since(*t), *tot))
    }
}

/// What the endpoints read: the live stats, the thresholds and the drop
/// window the sampler fills.
#[derive(Debug)]
pub(crate) struct Monitor {
    /// Published by the live threads.
    pub stats: Arc<LiveStats>,
    /// Thresholds.
    pub cfg: HealthConfig,
    /// Traffic totals of the last [`DROP_WINDOW`].
    pub window: DropWindow,
}

impl Monitor {
    /// A monitor whose drop window starts with the totals seen now.
    pub fn new(stats: Arc<LiveStats>, cfg: HealthConfig) -> Self {
        let window = DropWindow::default();
        window.record(Instant::now(), TrafficTotals::read(&stats));
        Self { stats, cfg, window }
    }

    /// Takes one drop-window sample.
    pub fn sample(&self) {
        self.window
            .record(Instant::now(), TrafficTotals::read(&self.stats));
    }

    /// Evaluates readiness now.
    pub fn readiness(&self) -> Readiness {
        evaluate(&self.stats, &self.cfg, &self.window, Instant::now())
    }
}

/// One readiness check and its state.
#[derive(Debug, Clone)]
pub struct Check {
    /// Stable name, e.g. `sockets_bound`.
    pub name: &'static str,
    /// Passing.
    pub ok: bool,
    /// What was seen, for the operator.
    pub detail: String,
}

/// Every readiness check; ready when all pass.
#[derive(Debug, Clone)]
pub struct Readiness {
    /// Checks in a fixed order.
    pub checks: Vec<Check>,
}

impl Readiness {
    /// All checks pass.
    pub fn ready(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.ok)
    }

    /// Plain-text body of `/readyz`: a verdict line, then `name: ok|FAIL
    /// (detail)` per check.
    pub fn render(&self) -> String {
        let mut out = String::from(if self.ready() {
            "ready\n"
        } else {
            "not ready\n"
        });
        for c in &self.checks {
            let state = if c.ok { "ok" } else { "FAIL" };
            let _ = writeln!(out, "{}: {} ({})", c.name, state, c.detail);
        }
        out
    }
}

/// Evaluates every check at `now`.
pub(crate) fn evaluate(
    stats: &LiveStats,
    cfg: &HealthConfig,
    window: &DropWindow,
    now: Instant,
) -> Readiness {
    let mut checks = Vec::with_capacity(6);
    let bound = stats
        .sockets_bound
        .load(std::sync::atomic::Ordering::Acquire);
    checks.push(Check {
        name: "sockets_bound",
        ok: bound,
        detail: if bound {
            "every tunnel socket is bound".into()
        } else {
            "tunnel sockets not bound yet".into()
        },
    });
    let draining = stats.draining.load(std::sync::atomic::Ordering::Acquire);
    checks.push(Check {
        name: "not_draining",
        ok: !draining,
        detail: if draining {
            "shutdown started: draining until the load balancer deregisters".into()
        } else {
            "running".into()
        },
    });

    let all = threads(stats);
    let count = |role| all.iter().filter(|t| t.role == role).count();
    let (receivers, workers, outputs) = (
        count(ThreadRole::Receiver),
        count(ThreadRole::Worker),
        count(ThreadRole::Output),
    );
    checks.push(Check {
        name: "threads",
        ok: receivers > 0 && workers > 0 && outputs > 0,
        detail: format!("{receivers} receiver, {workers} worker, {outputs} output registered"),
    });
    let stalled = |roles: &[ThreadRole]| -> Vec<String> {
        let mut v = Vec::new();
        for t in all.iter().filter(|t| roles.contains(&t.role)) {
            let hb = t
                .snapshot
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .heartbeat;
            let age = now.saturating_duration_since(hb);
            if age > cfg.stall_after {
                v.push(format!("{} silent {:.1}s", t.name, age.as_secs_f64()));
            }
        }
        v
    };
    let limit = format!("{:.1}s", cfg.stall_after.as_secs_f64());
    let rx_workers = stalled(&[ThreadRole::Receiver, ThreadRole::Worker]);
    checks.push(stall_check("threads_progressing", &rx_workers, &limit));
    let output = stalled(&[ThreadRole::Output]);
    checks.push(stall_check("output_progressing", &output, &limit));

    let current = TrafficTotals::read(stats);
    let (age, base) = window.base(now).unwrap_or((Duration::ZERO, current));
    let ratio = current.drop_ratio_since(&base);
    checks.push(Check {
        name: "drop_ratio",
        ok: ratio <= cfg.max_drop_ratio,
        detail: format!(
            "{ratio:.4} of datagrams lost over the last {:.0}s, max {}",
            age.as_secs_f64(),
            cfg.max_drop_ratio
        ),
    });
    // Enrollment never fails readiness: without AWS the sensor still
    // receives what is already mirrored to it.
    if let Some(enroll) = stats.enroll.get() {
        checks.push(Check {
            name: "enroll",
            ok: true,
            detail: enroll.readiness_detail(),
        });
    }
    // Nor does the exporter: its spool absorbs an outage of the Nucleus.
    if let Some(export) = stats.export.get() {
        checks.push(Check {
            name: "nucleus",
            ok: true,
            detail: export.readiness_detail(),
        });
    }
    Readiness { checks }
}

fn stall_check(name: &'static str, stalled: &[String], limit: &str) -> Check {
    if stalled.is_empty() {
        return Check {
            name,
            ok: true,
            detail: format!("every heartbeat newer than {limit}"),
        };
    }
    let mut detail = stalled
        .iter()
        .take(MAX_NAMES_SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if stalled.len() > MAX_NAMES_SHOWN {
        let _ = write!(detail, " and {} more", stalled.len() - MAX_NAMES_SHOWN);
    }
    let _ = write!(detail, "; limit {limit}");
    Check {
        name,
        ok: false,
        detail,
    }
}

/// A copy of the registered thread list (the list lock is held only while
/// copying the `Arc`s).
pub(crate) fn threads(stats: &LiveStats) -> Vec<Arc<ThreadStats>> {
    stats
        .threads
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(received: u64, kernel_dropped: u64, lost: u64) -> TrafficTotals {
        TrafficTotals {
            received,
            kernel_dropped,
            lost,
        }
    }

    #[test]
    fn drop_ratio_counts_kernel_drops_as_arrived() {
        let base = totals(100, 0, 0);
        // 900 read, 100 dropped by the kernel, 50 more lost in queues.
        let now = totals(1000, 100, 150);
        assert!((now.drop_ratio_since(&base) - 0.15).abs() < 1e-9);
        assert_eq!(base.drop_ratio_since(&base), 0.0);
        // Counters that went backwards (a thread replaced) never panic.
        assert_eq!(base.drop_ratio_since(&now), 0.0);
    }

    #[test]
    fn window_keeps_newest_sample_at_least_window_old() {
        let w = DropWindow::default();
        let t0 = Instant::now();
        for s in 0..30u64 {
            w.record(t0 + Duration::from_secs(s), totals(s, 0, 0));
        }
        let now = t0 + Duration::from_secs(29);
        let (age, base) = w.base(now).unwrap_or_default();
        assert_eq!(age, DROP_WINDOW);
        assert_eq!(base.received, 19);
    }

    #[test]
    fn receivers_count_received_and_workers_only_without_receivers() {
        let stats = LiveStats::new();
        let w = stats.register("worker-0", ThreadRole::Worker);
        if let Ok(mut s) = w.snapshot.lock() {
            s.counters.packets = 40;
            s.counters.drop_n(Drop::OutputQueueFull, 2);
            s.counters.drop_n(Drop::FlowTableFull, 7);
        }
        assert_eq!(TrafficTotals::read(&stats), totals(40, 0, 2));
        let r = stats.register("rx-vxlan-0", ThreadRole::Receiver);
        if let Ok(mut s) = r.snapshot.lock() {
            s.counters.packets = 50;
            s.counters.drop_n(Drop::KernelSocketOverflow, 3);
            s.counters.drop_n(Drop::WorkerQueueFull, 4);
        }
        assert_eq!(TrafficTotals::read(&stats), totals(50, 3, 9));
    }
}

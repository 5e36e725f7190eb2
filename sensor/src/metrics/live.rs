//! What the live sensor's threads publish for the health endpoints: each
//! thread's role, a snapshot of its counters and gauges and its batch
//! histograms, under an uncontended lock, at most every 100 ms.
//!
//! Owns: [`LiveStats`] (every thread's [`ThreadStats`] plus process-wide
//! state: sockets bound, draining, the granted receive buffer, the
//! enrollment and export status). Input: snapshots from the data threads. Output: what `/metrics` and `/readyz`
//! read. Does not: count on the packet path (threads keep plain
//! [`Counters`] and copy them here).

use super::Counters;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What a thread of the live sensor does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadRole {
    /// Receives datagrams on a tunnel socket, decapsulates and steers.
    Receiver,
    /// Owns a shard of flows.
    Worker,
    /// Writes records.
    Output,
}

impl ThreadRole {
    /// The role's name in metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            ThreadRole::Receiver => "receiver",
            ThreadRole::Worker => "worker",
            ThreadRole::Output => "output",
        }
    }
}

/// A worker's state gauges, published with its counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Flows tracked now.
    pub active_flows: u64,
    /// Out-of-order TCP bytes held now.
    pub reassembly_bytes: u64,
}

/// A thread's published state: copied from its own plain counters every
/// batch or so (one uncontended lock per publication, never per packet).
#[derive(Debug, Clone)]
pub struct ThreadSnapshot {
    /// Counters so far.
    pub counters: Counters,
    /// Flows tracked now (workers).
    pub active_flows: u64,
    /// Out-of-order TCP bytes held now (workers).
    pub reassembly_bytes: u64,
    /// Items per batch (datagrams per receive call; packets per worker batch).
    pub batch_size: hdrhistogram::Histogram<u64>,
    /// Processing time per batch, in nanoseconds.
    pub batch_latency_ns: hdrhistogram::Histogram<u64>,
    /// Last time the thread made progress or idled normally.
    pub heartbeat: Instant,
}

impl ThreadSnapshot {
    /// An empty snapshot; histograms track 1..=1<<20 items and
    /// 1 ns..=60 s with 2 significant digits.
    pub fn new() -> Self {
        Self {
            counters: Counters::default(),
            active_flows: 0,
            reassembly_bytes: 0,
            batch_size: new_histogram(1 << 20),
            batch_latency_ns: new_histogram(60_000_000_000),
            heartbeat: Instant::now(),
        }
    }
}

impl Default for ThreadSnapshot {
    fn default() -> Self {
        Self::new()
    }
}

fn new_histogram(high: u64) -> hdrhistogram::Histogram<u64> {
    // Bounds are constants known to be valid; fall back to an auto-resizing
    // histogram rather than failing.
    hdrhistogram::Histogram::new_with_bounds(1, high, 2)
        .or_else(|_| hdrhistogram::Histogram::new(2))
        .unwrap_or_else(|_| hdrhistogram::Histogram::new(1).unwrap_or_else(|_| unreachable!()))
}

/// One registered thread.
#[derive(Debug)]
pub struct ThreadStats {
    /// Unique name, e.g. `rx-vxlan-0`, `worker-3`, `output`.
    pub name: String,
    /// What it does.
    pub role: ThreadRole,
    /// Its last published state.
    pub snapshot: Mutex<ThreadSnapshot>,
}

/// Everything the health and metrics endpoints read about a running
/// sensor. Threads register at start and publish snapshots; the endpoints
/// only read.
#[derive(Debug)]
pub struct LiveStats {
    /// Registered threads.
    pub threads: Mutex<Vec<Arc<ThreadStats>>>,
    /// Every configured tunnel socket is bound.
    pub sockets_bound: AtomicBool,
    /// Shutdown started: readiness fails, traffic is still processed.
    pub draining: AtomicBool,
    /// When the sensor started.
    pub started: Instant,
    /// Receive buffer size the kernel granted, per socket (bytes; the
    /// smallest seen).
    pub rcvbuf_bytes: AtomicU64,
    /// 1 when the process may use transparent huge pages (`live.huge_pages`,
    /// as the kernel applied it), 0 when they are disabled for it.
    pub huge_pages: AtomicU64,
    /// The enrollment loop's state, when it runs (set before the health
    /// endpoints start).
    pub enroll: std::sync::OnceLock<Arc<crate::enroll::status::EnrollStatus>>,
    /// The Nucleus exporter's state, when it runs.
    pub export: std::sync::OnceLock<Arc<crate::export::status::ExportStatus>>,
}

impl LiveStats {
    /// Empty state at start.
    pub fn new() -> Self {
        Self {
            threads: Mutex::new(Vec::new()),
            sockets_bound: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            started: Instant::now(),
            rcvbuf_bytes: AtomicU64::new(0),
            huge_pages: AtomicU64::new(0),
            enroll: std::sync::OnceLock::new(),
            export: std::sync::OnceLock::new(),
        }
    }

    /// Registers a thread and returns its stats handle.
    pub fn register(&self, name: impl Into<String>, role: ThreadRole) -> Arc<ThreadStats> {
        let t = Arc::new(ThreadStats {
            name: name.into(),
            role,
            snapshot: Mutex::new(ThreadSnapshot::new()),
        });
        if let Ok(mut v) = self.threads.lock() {
            v.push(Arc::clone(&t));
        }
        t
    }
}

impl Default for LiveStats {
    fn default() -> Self {
        Self::new()
    }
}

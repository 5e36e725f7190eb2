//! The sections of the live appliance (`sensor run`): `[live]` (receive
//! sockets, threads, queues, the reorder window, the drain), `[health]`
//! (the endpoints load balancers and Prometheus read) and `[output]` (JSON
//! lines).
//!
//! Owns: the keys of these sections and their defaults. Does not: check
//! them (`validate`), bind sockets or open files (`runtime::live`).

use super::forms;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Receive sockets and threads of the live appliance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiveConfig {
    /// Where VXLAN arrives (NLB listener): UDP, IPv4 or IPv6.
    #[serde(with = "forms::address_list")]
    pub listen_vxlan: Vec<std::net::SocketAddr>,
    /// Where GENEVE arrives (GWLB): UDP, IPv4 or IPv6.
    #[serde(with = "forms::address_list")]
    pub listen_geneve: Vec<std::net::SocketAddr>,
    /// Receive threads (and SO_REUSEPORT sockets) per listen address.
    pub rx_threads: usize,
    /// Flow worker threads.
    pub workers: usize,
    /// Datagrams per receive call (recvmmsg), at least 32.
    pub batch_datagrams: usize,
    /// Bytes per receive buffer, at least 9216 (jumbo mirror packets).
    pub buffer_bytes: usize,
    /// Requested SO_RCVBUF per socket; the kernel may grant less (logged
    /// with the sysctl to raise).
    pub rcvbuf_bytes: usize,
    /// Batches queued per worker before receivers drop (and count). A batch
    /// holds at most 256 packets or 1 MiB, so this bounds each queue's
    /// memory at this many MiB.
    pub worker_queue_batches: usize,
    /// Longest a worker holds a batch to put packets from different receive
    /// threads back in time order (the two directions of a connection often
    /// reach different sockets); a packet goes earlier as soon as no receive
    /// thread can still send an older one. 0 processes packets as they
    /// arrive. Only with several receive threads.
    #[serde(with = "forms::duration")]
    pub reorder_window: Duration,
    /// Most batches a worker holds for reordering; beyond that the oldest
    /// packets go early (counted as `reorder_held_cap`).
    pub reorder_max_batches: usize,
    /// On SIGTERM/SIGINT: keep receiving this long with readiness failing
    /// (the load balancer's deregistration delay), then flush and exit.
    #[serde(with = "forms::duration")]
    pub drain: Duration,
    /// Let the heap use transparent huge pages. Off by default: flows arrive
    /// in bursts and the heap grows with them on the packet path, where a
    /// fresh 2 MiB page costs the receive thread its zeroing at once (and,
    /// on a virtual machine whose host takes back free guest memory, far
    /// more); with 4 KiB pages the live benchmark measured the sensor 17 %
    /// faster on its development VM. Hosts that keep guest memory backed
    /// may do better with it on (fewer TLB misses on a large flow table).
    pub huge_pages: bool,
}

impl Default for LiveConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            listen_vxlan: vec![std::net::SocketAddr::from(([0, 0, 0, 0], 4789))],
            listen_geneve: vec![std::net::SocketAddr::from(([0, 0, 0, 0], 6081))],
            rx_threads: cores,
            workers: cores,
            batch_datagrams: 64,
            buffer_bytes: 9216,
            rcvbuf_bytes: 32 << 20,
            worker_queue_batches: 128,
            reorder_window: Duration::from_millis(20),
            reorder_max_batches: 64,
            drain: Duration::from_secs(10),
            huge_pages: false,
        }
    }
}

/// Health, readiness and metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// HTTP address of `/healthz`, `/readyz` and `/metrics`.
    #[serde(with = "forms::address")]
    pub listen: std::net::SocketAddr,
    /// TCP addresses that accept (and close) connections for load-balancer
    /// TCP health checks: the NLB's default checks the traffic port (4789),
    /// a GWLB's the port configured on its target group.
    #[serde(with = "forms::address_list")]
    pub tcp_listen: Vec<std::net::SocketAddr>,
    /// `/readyz` fails when more than this share of received datagrams was
    /// dropped over the last interval.
    pub max_drop_ratio: f64,
    /// `/readyz` fails when a thread has not made progress for this long.
    #[serde(with = "forms::duration")]
    pub stall_after: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            listen: std::net::SocketAddr::from(([0, 0, 0, 0], 8080)),
            tcp_listen: vec![
                std::net::SocketAddr::from(([0, 0, 0, 0], 4789)),
                std::net::SocketAddr::from(([0, 0, 0, 0], 6081)),
            ],
            max_drop_ratio: 0.01,
            stall_after: Duration::from_secs(5),
        }
    }
}

/// Where records go as JSON lines (the Nucleus exporter is `[nucleus]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputConfig {
    /// `-` for stdout, a file path, or `""` for no JSON (only with
    /// `[nucleus] address`).
    pub json: String,
    /// Rotate the file when it reaches this size (0: never).
    pub rotate_bytes: u64,
    /// Rotated files kept (`PATH.1` newest ... `PATH.N`).
    pub keep_files: usize,
    /// Records queued for the writer before workers drop (and count).
    pub queue_records: usize,
}

impl Default for OutputConfig {
    fn default() -> Self {
        Self {
            json: "-".to_string(),
            rotate_bytes: 256 << 20,
            keep_files: 8,
            queue_records: 1 << 16,
        }
    }
}

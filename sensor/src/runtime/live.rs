//! The live appliance: tunnel sockets → receivers → workers → output, with
//! health endpoints and graceful drain.
//!
//! Threads and queues:
//! - `rx-<tunnel>-<n>`: one per socket (`rx_threads` SO_REUSEPORT sockets
//!   per listen address); receives with `recvmmsg`, decapsulates and
//!   reassembles (its own [`Frontend`](crate::runtime::Frontend)), steers
//!   each inner packet by the symmetric flow hash into per-worker batches,
//!   and hands them over with `try_send` on bounded queues of
//!   `worker_queue_batches`: it never waits (a full queue drops the batch,
//!   counted as `worker_queue_full`).
//! - `worker-<n>`: owns a shard of flows; sends each sweep's records, and
//!   between sweeps every `HANDOFF_RECORDS` (256) records, to the
//!   output queue (bounded by `output.queue_records`), waiting when it is
//!   full, so back-pressure reaches the receivers, where it is counted.
//! - `output`: writes JSON lines to stdout or a rotated file.
//!
//! Every thread publishes to one [`LiveStats`] that the health endpoints
//! read. Shutdown: [`run`] waits for SIGTERM/SIGINT, sets `draining`
//! (readiness fails), keeps receiving for `live.drain`, then stops the
//! receivers; workers end every flow, the output flushes, and it returns.
//! A second signal exits at once.
//!
//! Does not: serve the endpoints (see [`crate::health`]) or parse
//! configuration (see [`crate::config`]).

mod batch;
mod inline;
mod merge;
mod output;
mod publish;
mod receiver;
mod signals;
mod worker;

pub use batch::STEERING_SEED;

use crate::capture::socket::{MAX_WAIT_SOCKETS, TunnelSocket};
use crate::config::SensorConfig;
use crate::decap::{Decoder, UdpTunnel};
use crate::enroll::inventory::Inventory;
use crate::metrics::{LiveStats, ThreadRole};
use anyhow::{Context, bail};
use batch::{Batch, Steer};
use crossbeam_channel::{Sender, bounded};
use publish::Publisher;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Fewest datagrams per receive call and bytes per buffer (AWS mirrors
/// jumbo frames of up to 8947 bytes after the VXLAN header).
const MIN_BATCH_DATAGRAMS: usize = 32;
const MIN_BUFFER_BYTES: usize = 9216;

/// A running live data path: sockets bound, threads started.
pub struct LiveSensor {
    stats: Arc<LiveStats>,
    stop: Arc<AtomicBool>,
    bound: Vec<(UdpTunnel, SocketAddr)>,
    receivers: Vec<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
    output: Option<JoinHandle<()>>,
    inventory: Option<Arc<Inventory>>,
}

fn tunnel_name(t: UdpTunnel) -> &'static str {
    match t {
        UdpTunnel::Vxlan => "vxlan",
        UdpTunnel::Geneve => "geneve",
    }
}

fn spawn<F: FnOnce() + Send + 'static>(name: String, f: F) -> anyhow::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(f)
        .with_context(|| format!("starting thread {name}"))
}

/// Binds `rx_threads` sockets per listen address; fatal errors name the
/// address.
fn bind_all(cfg: &SensorConfig) -> anyhow::Result<Vec<(UdpTunnel, TunnelSocket)>> {
    let live = &cfg.live;
    let mut sockets = Vec::new();
    let addrs = live.listen_vxlan.iter().map(|a| (UdpTunnel::Vxlan, *a));
    for (tunnel, addr) in addrs.chain(live.listen_geneve.iter().map(|a| (UdpTunnel::Geneve, *a))) {
        let bind = |a: SocketAddr| {
            TunnelSocket::bind(a, live.rcvbuf_bytes)
                .with_context(|| format!("binding UDP {a} for {}", tunnel_name(tunnel)))
        };
        let first = bind(addr)?;
        // Port 0 picks a port once; the other threads share it.
        let actual = first.local_addr();
        sockets.push((tunnel, first));
        for _ in 1..live.rx_threads {
            sockets.push((tunnel, bind(actual)?));
        }
    }
    Ok(sockets)
}

/// Allows or disables transparent huge pages for the whole process
/// (`prctl(PR_SET_THP_DISABLE)`, which the kernel applies to every later
/// fault, whatever the allocator asks with `madvise`); returns whether huge
/// pages are allowed afterwards. When the kernel refuses, says so and
/// returns what it reports.
fn apply_huge_pages(enabled: bool) -> bool {
    let disable = libc::c_ulong::from(!enabled);
    // SAFETY: PR_SET_THP_DISABLE takes an integer flag and three zero
    // arguments; it reads and writes no memory of ours.
    let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, disable, 0, 0, 0) };
    if rc != 0 {
        eprintln!(
            "sensor: warning: could not set live.huge_pages = {enabled} \
             (prctl PR_SET_THP_DISABLE: {}); the kernel's setting stays",
            std::io::Error::last_os_error()
        );
    }
    huge_pages_allowed()
}

/// Whether transparent huge pages are allowed for this process
/// (`prctl(PR_GET_THP_DISABLE)` is 0); false when the kernel cannot say.
fn huge_pages_allowed() -> bool {
    // SAFETY: PR_GET_THP_DISABLE takes no pointer; it returns the flag.
    let rc = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
    rc == 0
}

/// Warns once when the kernel granted less receive buffer than asked.
fn check_rcvbuf(requested: usize, granted: usize) {
    if granted >= requested {
        return;
    }
    // Linux doubles the value it accepts (the other half is bookkeeping) and
    // caps what it accepts at net.core.rmem_max.
    let needed = requested.div_ceil(2);
    eprintln!(
        "sensor: warning: the kernel granted SO_RCVBUF {granted} bytes of the {requested} \
         requested (net.core.rmem_max caps it); raise the cap with \
         `sysctl -w net.core.rmem_max={needed}` or lower live.rcvbuf_bytes"
    );
}

impl LiveSensor {
    /// Binds every socket and starts every thread (no health endpoints, no
    /// signal handling: see [`run`]).
    pub fn start(cfg: &SensorConfig) -> anyhow::Result<Self> {
        let live = &cfg.live;
        if live.rx_threads == 0 || live.workers == 0 {
            bail!("live.rx_threads and live.workers must be at least 1");
        }
        if live.batch_datagrams < MIN_BATCH_DATAGRAMS {
            bail!("live.batch_datagrams must be at least {MIN_BATCH_DATAGRAMS}");
        }
        if live.buffer_bytes < MIN_BUFFER_BYTES {
            bail!("live.buffer_bytes must be at least {MIN_BUFFER_BYTES}");
        }
        if live.worker_queue_batches == 0 {
            bail!("live.worker_queue_batches must be at least 1");
        }
        if live.listen_vxlan.is_empty() && live.listen_geneve.is_empty() {
            bail!("no listen address: set live.listen_vxlan or live.listen_geneve");
        }
        let stats = Arc::new(LiveStats::new());
        // Before the threads start, so that their heap follows it.
        let huge = apply_huge_pages(live.huge_pages);
        stats.huge_pages.store(u64::from(huge), Ordering::Relaxed);
        let sockets = bind_all(cfg)?;
        let granted = sockets
            .iter()
            .map(|(_, s)| s.granted_rcvbuf_bytes())
            .min()
            .unwrap_or(0);
        stats.rcvbuf_bytes.store(granted as u64, Ordering::Relaxed);
        check_rcvbuf(live.rcvbuf_bytes, granted);
        // Filled by the enrollment loop, read by the output thread.
        let inventory = (cfg.enroll.enabled && cfg.enroll.enrich_max_entries > 0).then(|| {
            Arc::new(Inventory::new(
                cfg.enroll.enrich_tags.clone(),
                cfg.enroll.enrich_max_entries,
            ))
        });
        let sink = output::open_sink(cfg, &stats, inventory.as_ref())?;

        let stop = Arc::new(AtomicBool::new(false));
        let n = live.workers;
        let chunks = cfg
            .output
            .queue_records
            .div_ceil(worker::RECORD_CHUNK)
            .max(1);
        let (records_tx, records_rx) = bounded(chunks);
        // Queued, held for reordering, being filled, in use.
        let pool_len =
            n * (live.worker_queue_batches + live.reorder_max_batches + 3) + sockets.len() * n;
        let (pool_tx, pool_rx) = bounded::<Batch>(pool_len);

        let publisher = Publisher::register(&stats, "output".into(), ThreadRole::Output);
        let output = spawn("output".into(), move || {
            output::run(&records_rx, sink, publisher)
        })?;

        if n == 1 && live.rx_threads == 1 && sockets.len() <= MAX_WAIT_SOCKETS {
            return Self::start_inline(cfg, stats, stop, sockets, records_tx, output)
                .map(|s| s.with_inventory(inventory));
        }

        let sockets: Vec<(UdpTunnel, Arc<TunnelSocket>)> = sockets
            .into_iter()
            .map(|(tunnel, socket)| (tunnel, Arc::new(socket)))
            .collect();
        let quiet = Arc::new(merge::Quiet::new(sockets.len()));
        let reorder = worker::Reorder {
            quiet: Arc::clone(&quiet),
            sockets: sockets.iter().map(|(_, s)| Arc::clone(s)).collect(),
            window: live.reorder_window,
            max_batches: live.reorder_max_batches,
        };
        let decoder = Decoder::new(cfg.pipeline.decap.clone());
        let mut senders: Vec<Sender<Batch>> = Vec::with_capacity(n);
        let mut workers = Vec::with_capacity(n);
        for i in 0..n {
            let (tx, rx) = bounded(live.worker_queue_batches);
            senders.push(tx);
            let thread = worker::WorkerThread {
                batches: rx,
                pool: pool_tx.clone(),
                records: records_tx.clone(),
                publisher: Publisher::register(&stats, format!("worker-{i}"), ThreadRole::Worker),
                reorder: Some(reorder.clone()),
            };
            let (pipeline, decoder) = (cfg.pipeline.clone(), decoder.clone());
            workers.push(spawn(format!("worker-{i}"), move || {
                thread.run(&pipeline, &decoder)
            })?);
        }
        drop(records_tx);

        let mut bound = Vec::new();
        let mut receivers = Vec::with_capacity(sockets.len());
        let mut per_tunnel = [0usize; 2];
        for (index, (tunnel, socket)) in sockets.into_iter().enumerate() {
            let k = &mut per_tunnel[usize::from(tunnel == UdpTunnel::Geneve)];
            let name = format!("rx-{}-{k}", tunnel_name(tunnel));
            *k += 1;
            if !bound.contains(&(tunnel, socket.local_addr())) {
                bound.push((tunnel, socket.local_addr()));
            }
            let rx = receiver::Receiver {
                socket,
                tunnel,
                steer: Steer::new(index, senders.clone(), pool_rx.clone()),
                quiet: Arc::clone(&quiet),
                publisher: Publisher::register(&stats, name.clone(), ThreadRole::Receiver),
                batch_datagrams: live.batch_datagrams,
                buffer_bytes: live.buffer_bytes,
            };
            let (pipeline, stop_rx) = (cfg.pipeline.clone(), Arc::clone(&stop));
            let started = spawn(name, move || rx.run(&pipeline, &stop_rx));
            match started {
                Ok(h) => receivers.push(h),
                Err(e) => {
                    // Threads already running stop once their inputs close.
                    stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        stats.sockets_bound.store(true, Ordering::Release);
        Ok(Self {
            stats,
            stop,
            bound,
            receivers,
            workers,
            output: Some(output),
            inventory,
        })
    }

    /// One receive thread per address and one worker: a single thread owns
    /// every socket and runs each datagram to completion (no hand-off).
    fn start_inline(
        cfg: &SensorConfig,
        stats: Arc<LiveStats>,
        stop: Arc<AtomicBool>,
        sockets: Vec<(UdpTunnel, TunnelSocket)>,
        records: Sender<Vec<nucleus_proto::Record>>,
        output: JoinHandle<()>,
    ) -> anyhow::Result<Self> {
        let bound = sockets.iter().map(|(t, s)| (*t, s.local_addr())).collect();
        let inline = inline::InlineLoop {
            sockets,
            records,
            rx_publisher: Publisher::register(&stats, "rx-inline".into(), ThreadRole::Receiver),
            worker_publisher: Publisher::register(&stats, "worker-0".into(), ThreadRole::Worker),
            batch_datagrams: cfg.live.batch_datagrams,
            buffer_bytes: cfg.live.buffer_bytes,
        };
        let (pipeline, stop_rx) = (cfg.pipeline.clone(), Arc::clone(&stop));
        let thread = spawn("rx-inline".into(), move || inline.run(&pipeline, &stop_rx))?;
        stats.sockets_bound.store(true, Ordering::Release);
        Ok(Self {
            stats,
            stop,
            bound,
            receivers: vec![thread],
            workers: Vec::new(),
            output: Some(output),
            inventory: None,
        })
    }

    fn with_inventory(mut self, inventory: Option<Arc<Inventory>>) -> Self {
        self.inventory = inventory;
        self
    }

    /// The inventory that enriches flow records, when enrollment runs.
    pub fn inventory(&self) -> Option<Arc<Inventory>> {
        self.inventory.clone()
    }

    /// What the health endpoints read.
    pub fn stats(&self) -> Arc<LiveStats> {
        Arc::clone(&self.stats)
    }

    /// Each bound listen address (one entry per address, whatever the
    /// number of receive threads sharing it).
    pub fn bound_addrs(&self) -> &[(UdpTunnel, SocketAddr)] {
        &self.bound
    }

    /// Starts draining: readiness fails, traffic is still processed.
    pub fn begin_drain(&self) {
        self.stats.draining.store(true, Ordering::Release);
    }

    /// True when a thread ended before shutdown (it panicked).
    pub fn thread_died(&self) -> bool {
        let ended = |h: &JoinHandle<()>| h.is_finished();
        !self.stop.load(Ordering::Relaxed)
            && (self.receivers.iter().any(ended)
                || self.workers.iter().any(ended)
                || self.output.as_ref().is_some_and(ended))
    }

    /// Stops receiving, lets workers end every flow and the output write and
    /// flush every record, and waits for all of it.
    pub fn shutdown(mut self) -> anyhow::Result<()> {
        self.begin_drain();
        self.stop.store(true, Ordering::Relaxed);
        let mut failed = Vec::new();
        for h in self
            .receivers
            .drain(..)
            .chain(self.workers.drain(..))
            .chain(self.output.take())
        {
            let name = h.thread().name().unwrap_or("?").to_string();
            if h.join().is_err() {
                failed.push(name);
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            bail!("threads failed: {}", failed.join(", "))
        }
    }
}

impl Drop for LiveSensor {
    fn drop(&mut self) {
        // Dropped without `shutdown`: stop the receivers, the rest follows.
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Runs the live sensor until SIGTERM/SIGINT and the drain period end.
pub fn run(cfg: SensorConfig) -> anyhow::Result<()> {
    let signals = signals::Signals::install()?;
    let sensor = LiveSensor::start(&cfg)?;
    // Stopped (and joined) when the function returns.
    let _enroll = if cfg.enroll.enabled {
        let status = Arc::new(crate::enroll::status::EnrollStatus::default());
        let _ = sensor.stats().enroll.set(Arc::clone(&status));
        crate::enroll::background::start(&cfg.enroll, status, sensor.inventory())?
    } else {
        None
    };
    // Kept (serving) until the function returns, after the flush.
    let _health = match crate::health::spawn(&cfg.health, sensor.stats()) {
        Ok(h) => h,
        Err(e) => {
            let _ = sensor.shutdown();
            return Err(e.context("starting the health endpoints"));
        }
    };
    for (tunnel, addr) in sensor.bound_addrs() {
        eprintln!("sensor: receiving {} on udp {addr}", tunnel_name(*tunnel));
    }
    let signal = loop {
        if let Some(s) = signals.wait(Duration::from_millis(500)) {
            break s;
        }
        if sensor.thread_died() {
            let _ = sensor.shutdown();
            bail!("a sensor thread stopped unexpectedly");
        }
    };
    sensor.begin_drain();
    eprintln!(
        "sensor: {signal}: readiness failing; receiving for {} more, then flushing",
        humantime::format_duration(cfg.live.drain)
    );
    std::thread::sleep(cfg.live.drain);
    eprintln!("sensor: drain period over: flushing flows and records");
    sensor.shutdown()
}

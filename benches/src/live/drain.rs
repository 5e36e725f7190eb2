//! The ceiling of the live benchmark: a bare `recvmmsg` drain of UDP
//! sockets set up as the sensor sets up its tunnel sockets, counting
//! datagrams and doing nothing else with them.
//!
//! The sockets and the receive call are the sensor's own
//! (`sensor::capture::socket`): `TunnelSocket::bind` (SO_REUSEPORT, one
//! socket per thread on one address, the requested SO_RCVBUF with
//! SO_RCVBUFFORCE, a 100 ms receive timeout, SO_TIMESTAMPNS, SO_RXQ_OVFL,
//! IP_PKTINFO, so the kernel builds the same control messages) and
//! `recv_batch` (`recvmmsg` with MSG_WAITFORONE | MSG_TRUNC into a
//! `RecvBatch` allocated once). The drain only counts what it receives.
//! Input: address, threads, batch, buffer and SO_RCVBUF sizes, CPUs to run
//! on. Output: the running count of datagrams received. It does not decode
//! anything.

use std::mem::size_of;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::quota::{CpuQuota, current_tid};
use anyhow::{Context, Result};
use sensor::capture::socket::{RecvBatch, TunnelSocket};

/// How the drain receives.
#[derive(Debug, Clone)]
pub struct DrainSetup {
    /// Receive threads (one SO_REUSEPORT socket each).
    pub threads: usize,
    /// Datagrams per `recvmmsg`.
    pub batch: usize,
    /// Bytes per receive buffer.
    pub buffer_bytes: usize,
    /// Requested SO_RCVBUF.
    pub rcvbuf_bytes: usize,
    /// CPUs the receive threads may run on (empty: any).
    pub cpus: Vec<usize>,
}

/// Running drain threads.
#[derive(Debug)]
pub struct Drain {
    /// The address every socket is bound to.
    pub addr: SocketAddr,
    /// SO_RCVBUF as read back from the first socket.
    pub granted_rcvbuf_bytes: usize,
    received: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    paused: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// The receive threads' kernel thread ids.
    tids: Vec<u32>,
}

impl Drain {
    /// Binds `setup.threads` sockets to `ip` on one free port and starts a
    /// receive thread on each.
    pub fn start(ip: std::net::IpAddr, setup: &DrainSetup) -> Result<Self> {
        Self::start_with(ip, setup, false)
    }

    /// Like [`Drain::start`], but the threads do not read their sockets
    /// until [`Drain::release`]: datagrams pile up in the socket buffers
    /// (the backlog measure).
    pub fn start_paused(ip: std::net::IpAddr, setup: &DrainSetup) -> Result<Self> {
        Self::start_with(ip, setup, true)
    }

    /// Lets paused threads start reading.
    pub fn release(&self) {
        self.paused.store(false, Ordering::Release);
    }

    fn start_with(ip: std::net::IpAddr, setup: &DrainSetup, paused: bool) -> Result<Self> {
        let first = bind(SocketAddr::new(ip, 0), setup.rcvbuf_bytes)?;
        let addr = first.local_addr();
        let granted_rcvbuf_bytes = first.granted_rcvbuf_bytes();
        let mut sockets = vec![first];
        for _ in 1..setup.threads.max(1) {
            sockets.push(bind(addr, setup.rcvbuf_bytes)?);
        }
        let received = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let paused = Arc::new(AtomicBool::new(paused));
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let threads = sockets
            .into_iter()
            .enumerate()
            .map(|(i, socket)| {
                let (received, stop, setup) = (received.clone(), stop.clone(), setup.clone());
                let paused = paused.clone();
                let tid_tx = tid_tx.clone();
                std::thread::Builder::new()
                    .name(format!("drain-{i}"))
                    .spawn(move || {
                        pin_to(&setup.cpus);
                        let _ = tid_tx.send(current_tid());
                        receive_loop(&socket, &setup, &received, &stop, &paused);
                    })
                    .context("spawn a drain thread")
            })
            .collect::<Result<Vec<_>>>()?;
        drop(tid_tx);
        // Every thread sends its id first thing; the channel ends when the
        // last sender (each thread's clone) is gone or all ids are in.
        let tids = tid_rx.iter().take(threads.len()).collect();
        Ok(Self {
            addr,
            granted_rcvbuf_bytes,
            received,
            stop,
            paused,
            threads,
            tids,
        })
    }

    /// Moves the receive threads into `quota`'s CPU limit.
    pub fn limit(&self, quota: &CpuQuota) -> Result<()> {
        for &tid in &self.tids {
            quota.add_thread(tid)?;
        }
        Ok(())
    }

    /// Makes the threads stop reading before their next receive call (at
    /// most one batch later), until [`Drain::release`].
    pub fn pause(&self) {
        self.paused.store(true, Ordering::Release);
    }

    /// Datagrams received so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Stops and joins the threads (within the 100 ms receive timeout).
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn bind(addr: SocketAddr, rcvbuf_bytes: usize) -> Result<TunnelSocket> {
    TunnelSocket::bind(addr, rcvbuf_bytes).with_context(|| format!("bind {addr}"))
}

/// Restricts the calling thread to `cpus` (no-op when empty).
pub fn pin_to(cpus: &[usize]) {
    if cpus.is_empty() {
        return;
    }
    // SAFETY: cpu_set_t is plain data; zeroed is its empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        // SAFETY: CPU_SET writes a bit inside `set` (ids beyond its size are
        // ignored by the macro's bounds check).
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is the
    // calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        eprintln!("live-bench: warning: pinning a drain thread to {cpus:?} failed");
    }
}

fn receive_loop(
    socket: &TunnelSocket,
    setup: &DrainSetup,
    received: &AtomicU64,
    stop: &AtomicBool,
    paused: &AtomicBool,
) {
    let mut batch = RecvBatch::new(setup.batch.max(1), setup.buffer_bytes);
    while !stop.load(Ordering::Relaxed) {
        if paused.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        // Errors other than the timeout are not expected on loopback; the
        // loop goes on until told to stop, as the sensor's receivers do.
        if let Ok(n) = socket.recv_batch(&mut batch) {
            received.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
}

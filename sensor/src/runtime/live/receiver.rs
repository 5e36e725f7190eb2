//! A receive thread: one tunnel socket → decapsulation and reassembly →
//! steering to workers.
//!
//! Owns: the socket's receive loop, packet time (kernel timestamp, else the
//! wall clock), and the counts made here: packets and bytes received,
//! decapsulation anomalies, fragments, `kernel_socket_overflow` (deltas of
//! the socket's cumulative SO_RXQ_OVFL counter), `worker_queue_full`, and
//! `datagram_truncated` (longer than the buffer: decoded as far as it goes,
//! the flow stage counts the missing bytes). Input: a bound
//! [`TunnelSocket`]. Output: batches to workers. Does not: track flows, or
//! wait for a worker.

use super::batch::{BATCH_MAX_AGE, Steer};
use super::merge::Quiet;
use super::publish::Publisher;
use crate::capture::socket::{Datagram, RecvBatch, TunnelSocket};
use crate::config::PipelineConfig;
use crate::decap::UdpTunnel;
use crate::decap::tunnel::OuterAddrs;
use crate::metrics::Gauges;
use crate::metrics::{Anomaly, Counters, Drop};
use crate::runtime::{Clock, Frontend};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Everything a receive thread runs with.
pub struct Receiver {
    /// The bound socket (workers ask it whether a datagram is queued).
    pub socket: Arc<TunnelSocket>,
    /// What the socket receives.
    pub tunnel: UdpTunnel,
    /// Hand-off to the workers (it knows this receiver's index).
    pub steer: Steer,
    /// Where it says it is quiet (waiting on an empty socket with nothing
    /// held back), for the workers' reorder windows.
    pub quiet: Arc<Quiet>,
    /// Where the thread publishes its state.
    pub publisher: Publisher,
    /// Datagrams per `recvmmsg` call.
    pub batch_datagrams: usize,
    /// Bytes per receive buffer.
    pub buffer_bytes: usize,
}

/// Most receive calls after `stop` (a sender that never pauses cannot keep
/// a receiver alive).
const MAX_DRAIN_CALLS: usize = 1024;

/// Wall-clock time in microseconds since the epoch.
pub fn wall_clock_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

impl Receiver {
    /// Receives until `stop` is set, takes what is still queued on the
    /// socket, then hands every pending batch to the workers (waiting for
    /// room: nothing more arrives by then).
    pub fn run(mut self, cfg: &PipelineConfig, stop: &AtomicBool) {
        let mut fe = Frontend::new(cfg);
        let mut clock = Clock::new(cfg.flows.sweep_interval);
        let mut batch = RecvBatch::new(self.batch_datagrams, self.buffer_bytes);
        let mut kernel_drops_seen = 0u32;
        let mut error_logged = false;
        let local = self.socket.local_addr();
        let mut draining_calls = 0usize;
        // The last receive call left the socket empty.
        let mut drained = false;
        loop {
            let stopping = stop.load(Ordering::Relaxed);
            let received = if stopping {
                draining_calls += 1;
                self.socket.recv_batch_nowait(&mut batch)
            } else {
                match self.steer.oldest_pending().map(|t| t.elapsed()) {
                    None if drained => {
                        // Nothing held back and the socket was empty: what
                        // comes now arrives after this moment.
                        self.quiet.set(self.steer.receiver(), true);
                        let received = self.socket.recv_batch(&mut batch);
                        self.quiet.set(self.steer.receiver(), false);
                        received
                    }
                    None => self.socket.recv_batch(&mut batch),
                    // A partly filled batch waits at most BATCH_MAX_AGE: wait
                    // for more only that long (0 received flushes it below).
                    Some(age) if age >= BATCH_MAX_AGE => Ok(0),
                    Some(age) => match self.socket.wait_readable(BATCH_MAX_AGE - age) {
                        Ok(true) => self.socket.recv_batch_nowait(&mut batch),
                        Ok(false) => Ok(0),
                        Err(e) => Err(e),
                    },
                }
            };
            let n = match received {
                Ok(n) => n,
                Err(e) => {
                    if !error_logged {
                        eprintln!("sensor: warning: receiving on {local}: {e}");
                        error_logged = true;
                    }
                    if !stopping {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    0
                }
            };
            drained = n < self.batch_datagrams;
            if n == 0 {
                if stopping {
                    break;
                }
                note_socket_drops(&self.socket, &mut kernel_drops_seen, &mut fe.counters);
                self.steer.flush(true);
                if let Some(now) = clock.advance(wall_clock_us()) {
                    fe.tick(now);
                }
                self.publisher
                    .maybe_publish(&fe.counters, Gauges::default());
                continue;
            }
            self.process(&batch, n, &mut fe, &mut clock, &mut kernel_drops_seen);
            if draining_calls > MAX_DRAIN_CALLS {
                break;
            }
        }
        self.steer.flush_blocking();
        // Nothing more comes from this thread.
        self.quiet.set(self.steer.receiver(), true);
        let dropped = self.steer.take_dropped();
        fe.counters.drop_n(Drop::WorkerQueueFull, dropped);
        note_socket_drops(&self.socket, &mut kernel_drops_seen, &mut fe.counters);
        self.publisher.publish(&fe.counters, Gauges::default());
    }

    fn process(
        &mut self,
        batch: &RecvBatch,
        n: usize,
        fe: &mut Frontend,
        clock: &mut Clock,
        kernel_drops_seen: &mut u32,
    ) {
        let started = Instant::now();
        let wall_us = wall_clock_us();
        let tunnel = self.tunnel;
        for d in batch.datagrams().take(n) {
            let (ts_us, outer) = account_datagram(&d, wall_us, kernel_drops_seen, &mut fe.counters);
            if let Some(now) = clock.advance(ts_us) {
                fe.tick(now);
            }
            let payload = d.payload;
            let wire_len = u32::try_from(d.len).unwrap_or(u32::MAX);
            let steer = &mut self.steer;
            fe.ingest_datagram(tunnel, outer, payload, wire_len, ts_us, |p, _, origin| {
                steer.push(p, origin, tunnel, outer, payload, ts_us);
            });
        }
        // Full batches go now; partly filled ones wait at most
        // BATCH_MAX_AGE (the receive loop bounds its wait by it). Packets of
        // one connection can reach several sockets (AWS gives each direction
        // its own outer port), so that age bounds how far they can be
        // reordered against each other.
        self.steer.flush(false);
        let dropped = self.steer.take_dropped();
        fe.counters.drop_n(Drop::WorkerQueueFull, dropped);
        self.publisher.batch(n, started.elapsed());
        self.publisher
            .maybe_publish(&fe.counters, Gauges::default());
    }
}

/// What the receive path learns from one datagram before decoding it:
/// counts the socket's kernel-drop delta (its SO_RXQ_OVFL counter is
/// cumulative; `kernel_drops_seen` is the last value) and a truncation, and
/// returns the packet time (kernel timestamp, else `wall_us`) and the outer
/// addresses (peer, and the local address the datagram was sent to).
#[inline]
pub(super) fn account_datagram(
    d: &Datagram<'_>,
    wall_us: i64,
    kernel_drops_seen: &mut u32,
    counters: &mut Counters,
) -> (i64, OuterAddrs) {
    if let Some(total) = d.kernel_drops {
        note_kernel_drops(total, kernel_drops_seen, counters);
    }
    if d.truncated {
        counters.anomaly(Anomaly::DatagramTruncated);
    }
    let outer = OuterAddrs {
        src: d.peer_ip,
        dst: d.local_ip,
    };
    (d.ts_us.unwrap_or(wall_us), outer)
}

/// Counts the kernel drops a socket's cumulative counter `total` shows
/// beyond `seen` (the last value counted), and remembers it. The counter
/// only moves forward, but a datagram queued earlier carries an older value
/// than one read from the socket since: such a value is not a step back.
pub(super) fn note_kernel_drops(total: u32, seen: &mut u32, counters: &mut Counters) {
    let delta = total.wrapping_sub(*seen);
    if delta != 0 && delta < 1 << 31 {
        *seen = total;
        counters.drop_n(Drop::KernelSocketOverflow, u64::from(delta));
    }
}

/// Counts the drops of `socket` not yet carried by a received datagram
/// (those after the last one), from its counter read directly.
pub(super) fn note_socket_drops(socket: &TunnelSocket, seen: &mut u32, counters: &mut Counters) {
    if let Ok(total) = socket.kernel_drops() {
        note_kernel_drops(total, seen, counters);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_drop_counts_only_move_forward() {
        let mut c = Counters::default();
        let mut seen = 0;
        note_kernel_drops(5, &mut seen, &mut c);
        // Read from the socket first, then an older datagram's stamp.
        note_kernel_drops(9, &mut seen, &mut c);
        note_kernel_drops(7, &mut seen, &mut c);
        note_kernel_drops(9, &mut seen, &mut c);
        assert_eq!(c.drops[Drop::KernelSocketOverflow as usize], 9);
        // The 32-bit counter wraps.
        seen = u32::MAX - 1;
        note_kernel_drops(2, &mut seen, &mut c);
        assert_eq!(c.drops[Drop::KernelSocketOverflow as usize], 13);
    }
}

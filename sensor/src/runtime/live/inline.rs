//! The single-thread live pipeline: when the sensor runs one receive thread
//! per address and one worker, one thread owns every socket and runs each
//! datagram to completion (receive → decapsulate → flows), as `sensor pcap
//! --workers 1` does. No hand-off, so no queue and no thread switch per
//! batch: on a small instance, or one core, that is most of the cost.
//!
//! Owns: the sockets' receive loop and the flow shard. Counts what a
//! receiver and a worker count, published under both roles (`rx-inline` and
//! `worker-0`) so metrics and readiness read the same as in the threaded
//! layout. Output: records to the output thread (waiting when it is full:
//! nothing accepted is lost). Does not: steer (there is one shard).

use super::publish::Publisher;
use super::receiver::{account_datagram, note_socket_drops, wall_clock_us};
use super::worker::{IDLE_WAIT, hand_off, send_records};
use crate::capture::socket::{RecvBatch, TunnelSocket, wait_any_readable};
use crate::config::PipelineConfig;
use crate::decap::UdpTunnel;
use crate::metrics::{Counters, Gauges};
use crate::runtime::{Clock, Frontend, Worker};
use crossbeam_channel::Sender;
use nucleus_proto::Record;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Most receive calls after `stop` per socket.
const MAX_DRAIN_CALLS: usize = 1024;

/// Everything the single live thread runs with.
pub struct InlineLoop {
    /// Every bound socket and what it receives.
    pub sockets: Vec<(UdpTunnel, TunnelSocket)>,
    /// Records to the output thread.
    pub records: Sender<Vec<Record>>,
    /// Publication as a receiver.
    pub rx_publisher: Publisher,
    /// Publication as a worker.
    pub worker_publisher: Publisher,
    /// Datagrams per `recvmmsg` call.
    pub batch_datagrams: usize,
    /// Bytes per receive buffer.
    pub buffer_bytes: usize,
}

impl InlineLoop {
    /// Receives until `stop` is set, takes what is still queued, ends every
    /// flow and hands every record to the output.
    pub fn run(mut self, cfg: &PipelineConfig, stop: &AtomicBool) {
        let mut fe = Frontend::new(cfg);
        let mut worker = Worker::new(cfg);
        let mut clock = Clock::new(cfg.flows.sweep_interval);
        let mut batch = RecvBatch::new(self.batch_datagrams, self.buffer_bytes);
        let mut kernel_drops_seen = vec![0u32; self.sockets.len()];
        let fds: Vec<_> = self.sockets.iter().map(|(_, s)| s.raw_fd()).collect();
        let mut last_packet: Option<(i64, Instant)> = None;
        let mut drain_calls = 0usize;
        // Sockets to read without waiting: all of them at first and while
        // stopping; afterwards the ones ppoll reported readable.
        let all = if fds.len() >= 32 {
            u32::MAX
        } else {
            (1u32 << fds.len()) - 1
        };
        let mut ready = all;
        loop {
            let stopping = stop.load(Ordering::Relaxed);
            if stopping {
                ready = all;
            }
            let mut received = 0usize;
            for i in 0..self.sockets.len() {
                if ready & (1 << i) == 0 {
                    continue;
                }
                let n = self.sockets[i].1.recv_batch_nowait(&mut batch).unwrap_or(0);
                if n < self.batch_datagrams {
                    // Emptied: wait for it again.
                    ready &= !(1 << i);
                }
                if n == 0 {
                    continue;
                }
                received += n;
                let started = Instant::now();
                let latest = self.process(
                    i,
                    &batch,
                    n,
                    &mut fe,
                    &mut worker,
                    &mut clock,
                    &mut kernel_drops_seen,
                );
                last_packet = Some((latest, Instant::now()));
                hand_off(&mut worker, &self.records);
                self.rx_publisher.batch(n, started.elapsed());
                self.worker_publisher.batch(n, started.elapsed());
            }
            if received > 0 {
                if stopping {
                    drain_calls += 1;
                    if drain_calls > MAX_DRAIN_CALLS {
                        break;
                    }
                }
                self.rx_publisher
                    .maybe_publish(&fe.counters, Gauges::default());
                let active = worker.gauges();
                self.worker_publisher
                    .maybe_publish(&worker.counters, active);
                if ready != 0 {
                    continue;
                }
            }
            if stopping {
                break;
            }
            // Nothing left queued: wait for any socket; when idle, advance
            // time by the wall clock so flows end on a quiet network.
            ready = wait_any_readable(&fds, IDLE_WAIT).unwrap_or(0);
            if ready == 0 {
                self.note_drops(&mut kernel_drops_seen, &mut fe.counters);
                let now_us = match last_packet {
                    Some((ts, at)) => ts.saturating_add(
                        i64::try_from(at.elapsed().as_micros()).unwrap_or(i64::MAX),
                    ),
                    None => wall_clock_us(),
                };
                if let Some(now) = clock.advance(now_us) {
                    fe.tick(now);
                    let records = worker.tick(now);
                    send_records(&self.records, records, &mut worker.counters);
                }
                self.rx_publisher.publish(&fe.counters, Gauges::default());
                let active = worker.gauges();
                self.worker_publisher.publish(&worker.counters, active);
            }
        }
        let records = worker.finish();
        send_records(&self.records, records, &mut worker.counters);
        self.note_drops(&mut kernel_drops_seen, &mut fe.counters);
        self.rx_publisher.publish(&fe.counters, Gauges::default());
        self.worker_publisher
            .publish(&worker.counters, Gauges::default());
    }

    /// Counts each socket's drops not yet carried by a received datagram.
    fn note_drops(&self, seen: &mut [u32], counters: &mut Counters) {
        for ((_, socket), seen) in self.sockets.iter().zip(seen.iter_mut()) {
            note_socket_drops(socket, seen, counters);
        }
    }

    /// Runs one receive batch to completion; returns the latest packet time.
    /// Out of line: the per-datagram loop keeps its values in registers
    /// instead of sharing them with the whole receive loop's.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn process(
        &mut self,
        socket: usize,
        batch: &RecvBatch,
        n: usize,
        fe: &mut Frontend,
        worker: &mut Worker,
        clock: &mut Clock,
        kernel_drops_seen: &mut [u32],
    ) -> i64 {
        let wall_us = wall_clock_us();
        let tunnel = self.sockets[socket].0;
        let mut latest = i64::MIN;
        let Some(seen) = kernel_drops_seen.get_mut(socket) else {
            return latest;
        };
        for d in batch.datagrams().take(n) {
            let (ts_us, outer) = account_datagram(&d, wall_us, seen, &mut fe.counters);
            latest = latest.max(ts_us);
            if let Some(now) = clock.advance(ts_us) {
                fe.tick(now);
                let records = worker.tick(now);
                send_records(&self.records, records, &mut worker.counters);
            }
            let wire_len = u32::try_from(d.len).unwrap_or(u32::MAX);
            fe.ingest_datagram(tunnel, outer, d.payload, wire_len, ts_us, |p, ctx, _| {
                worker.process(p, ctx, ts_us);
            });
        }
        latest
    }
}

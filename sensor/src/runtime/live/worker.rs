//! A flow worker thread: batches from every receiver → flows of its shard
//! → records to the output thread.
//!
//! Owns: its shard's flows ([`Worker`]), their clock, and, fed by several
//! receivers, its reorder window ([`Merge`]: packets released in time
//! order; `packet_late` counts one processed after a later one). Time is
//! the packets' own; when no batch comes for [`IDLE_WAIT`], time advances
//! by the wall clock elapsed since the last packet, so flows still end on a
//! quiet network. Input: [`Batch`]es. Output: sorted records per sweep, and
//! between sweeps whenever [`HANDOFF_RECORDS`] are held (see [`hand_off`]),
//! in chunks of at most [`RECORD_CHUNK`], sent with a blocking send (nothing accepted
//! is lost; back-pressure reaches the receivers, which drop and count). Does
//! not: count decapsulation anomalies (the receiver did, once).

use super::batch::{Batch, Item, Source, recycle};
use super::merge::{Merge, Quiet, Release};
use super::publish::Publisher;
use super::receiver::wall_clock_us;
use crate::capture::socket::TunnelSocket;
use crate::config::PipelineConfig;
use crate::decap::tunnel::TunnelContext;
use crate::decap::{Decoded, Decoder};
use crate::metrics::Gauges;
use crate::metrics::{Anomaly, Counters, Drop};
use crate::runtime::{Clock, Worker};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use nucleus_proto::Record;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a worker waits for a batch before it counts as idle.
pub const IDLE_WAIT: Duration = Duration::from_millis(100);
/// How often a worker holding packets for reordering looks whether the
/// receivers that hold them back have gone idle.
const IDLE_CHECK: Duration = Duration::from_millis(1);
/// Most records per message to the output thread.
pub const RECORD_CHUNK: usize = 1024;
/// Records a live thread holds before it hands them to the output thread
/// between sweeps (after the receive batch that reached the number).
pub const HANDOFF_RECORDS: usize = 256;

/// A worker's reorder window (see [`merge`](super::merge)).
#[derive(Clone)]
pub struct Reorder {
    /// Which receivers are quiet.
    pub quiet: Arc<Quiet>,
    /// Each receiver's socket, by receiver index (to ask whether a quiet
    /// one holds a datagram).
    pub sockets: Vec<Arc<TunnelSocket>>,
    /// Longest a batch is held.
    pub window: Duration,
    /// Most batches held.
    pub max_batches: usize,
}

/// Channels a worker thread runs with.
pub struct WorkerThread {
    /// Batches from every receiver.
    pub batches: Receiver<Batch>,
    /// Where used batches go back.
    pub pool: Sender<Batch>,
    /// Records to the output thread.
    pub records: Sender<Vec<Record>>,
    /// Where the thread publishes its state.
    pub publisher: Publisher,
    /// Put packets of several receivers back in time order (`None`: as
    /// they arrive).
    pub reorder: Option<Reorder>,
}

/// A worker's flows and the state of its packet loop.
struct Shard<'a> {
    worker: Worker,
    clock: Clock,
    ctx: TunnelContext,
    /// Decapsulation anomalies were counted once by the receiver.
    scratch: Counters,
    /// Latest packet time processed.
    latest_ts: i64,
    /// Latest packet time and when it was processed (for the idle clock).
    last_packet: Option<(i64, Instant)>,
    decoder: &'a Decoder,
    records: &'a Sender<Vec<Record>>,
}

impl Shard<'_> {
    /// Decodes one item's bytes again and runs it through the flows.
    fn process(&mut self, batch: &Batch, item: &Item) {
        if let Some(now) = self.clock.advance(item.ts_us) {
            let records = self.worker.tick(now);
            send_records(self.records, records, &mut self.worker.counters);
        }
        if item.ts_us < self.latest_ts {
            self.worker.counters.anomaly(Anomaly::PacketLate);
        } else {
            self.latest_ts = item.ts_us;
        }
        let bytes = batch.item_bytes(item);
        let decoded = match item.source {
            Source::Tunnel { tunnel, outer } => self.decoder.decode_tunnel_payload(
                tunnel,
                outer,
                bytes,
                &mut self.ctx,
                &mut self.scratch,
            ),
            Source::Reassembled { base } => match batch.bases.get(base as usize) {
                Some(base) => {
                    self.ctx.clone_from(base);
                    self.decoder
                        .decode_ip(bytes, &mut self.ctx, &mut self.scratch)
                }
                None => return,
            },
        };
        if let Decoded::Packet(p) = decoded {
            self.worker.process(&p, &self.ctx, item.ts_us);
        }
    }

    /// After a batch: notes when the latest packet time was reached (for
    /// the idle clock) and hands the records off once enough are held.
    fn mark_processed(&mut self) {
        if self.latest_ts > i64::MIN {
            self.last_packet = Some((self.latest_ts, Instant::now()));
        }
        hand_off(&mut self.worker, self.records);
    }

    /// With no packet for a while, advances time by the wall clock elapsed
    /// since the last one, so flows still end on a quiet network.
    fn idle(&mut self) {
        if let Some((ts, at)) = self.last_packet {
            let idle_us = i64::try_from(at.elapsed().as_micros()).unwrap_or(i64::MAX);
            if let Some(now) = self.clock.advance(ts.saturating_add(idle_us)) {
                let records = self.worker.tick(now);
                send_records(self.records, records, &mut self.worker.counters);
            }
        }
    }
}

impl WorkerThread {
    /// Processes batches until every receiver is gone, then ends every flow
    /// and sends the records.
    pub fn run(self, cfg: &PipelineConfig, decoder: &Decoder) {
        let mut shard = Shard {
            worker: Worker::new(cfg),
            clock: Clock::new(cfg.flows.sweep_interval),
            ctx: TunnelContext::new(),
            scratch: Counters::default(),
            latest_ts: i64::MIN,
            last_packet: None,
            decoder,
            records: &self.records,
        };
        let reorder = self
            .reorder
            .filter(|r| r.sockets.len() > 1 && !r.window.is_zero());
        let mut merge = reorder.map(|r| {
            let merge = Merge::new(r.sockets.len(), r.window, r.max_batches);
            (merge, r.quiet, r.sockets)
        });
        let mut publisher = self.publisher;
        let mut closed = false;
        while !closed {
            // Holding packets, look again at least every IDLE_CHECK: a
            // receiver that holds them back may have gone idle.
            let wait = merge.as_ref().map_or(IDLE_WAIT, |(m, ..)| {
                m.next_expiry().map_or(IDLE_WAIT, |at| {
                    at.saturating_duration_since(Instant::now()).min(IDLE_CHECK)
                })
            });
            match self.batches.recv_timeout(wait) {
                Ok(batch) => match merge.as_mut().map(|(m, ..)| m) {
                    None => {
                        let started = Instant::now();
                        for item in &batch.items {
                            shard.process(&batch, item);
                        }
                        shard.mark_processed();
                        publisher.batch(batch.items.len(), started.elapsed());
                        recycle(batch, &self.pool);
                    }
                    Some(m) => {
                        let now = Instant::now();
                        let mut next = Some(batch);
                        // Take what is queued, but not past the cap, so
                        // releasing keeps up with a queue that never empties.
                        while let Some(b) = next.take() {
                            if let Some(empty) = m.push(b, now) {
                                recycle(empty, &self.pool);
                            }
                            if m.held_batches() <= m.max_batches() {
                                next = self.batches.try_recv().ok();
                            }
                        }
                    }
                },
                Err(RecvTimeoutError::Timeout) => {
                    if merge.as_ref().is_none_or(|(m, ..)| m.is_empty()) {
                        shard.idle();
                        let active = shard.worker.gauges();
                        publisher.publish(&shard.worker.counters, active);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => closed = true,
            }
            if let Some((m, quiet, sockets)) = merge.as_mut() {
                let idle =
                    |r: usize| quiet.get(r) && sockets.get(r).is_some_and(|s| !s.has_queued());
                release(m, idle, closed, &mut shard, &mut publisher, &self.pool);
            }
            let active = shard.worker.gauges();
            publisher.maybe_publish(&shard.worker.counters, active);
        }
        let records = shard.worker.finish();
        send_records(&self.records, records, &mut shard.worker.counters);
        publisher.publish(&shard.worker.counters, Gauges::default());
    }
}

/// Processes every packet the merge lets go at this moment, oldest first.
fn release(
    merge: &mut Merge,
    idle: impl Fn(usize) -> bool,
    closed: bool,
    shard: &mut Shard<'_>,
    publisher: &mut Publisher,
    pool: &Sender<Batch>,
) {
    let started = Instant::now();
    let released = merge.release(
        (started, wall_clock_us()),
        closed,
        idle,
        |batch, item, why| {
            shard.process(batch, item);
            if why == Release::HeldCap {
                shard.worker.counters.anomaly(Anomaly::ReorderHeldCap);
            }
        },
        |done| recycle(done, pool),
    );
    if released > 0 {
        shard.mark_processed();
        publisher.batch(released, started.elapsed());
    }
}

/// Sends the worker's records to the output thread once it holds
/// [`HANDOFF_RECORDS`]: written while still in the cache, and a sweep's worth
/// of records is not held in memory until the sweep (1 s of packet time by
/// default, which at a high record rate is many megabytes).
pub fn hand_off(worker: &mut Worker, tx: &Sender<Vec<Record>>) {
    if let Some(records) = worker.take_at_least(HANDOFF_RECORDS) {
        send_records(tx, records, &mut worker.counters);
    }
}

/// Hands records to the output thread in chunks of [`RECORD_CHUNK`],
/// waiting when its queue is full (nothing accepted is lost); counts them as
/// `output_error` if the output thread is gone.
pub fn send_records(tx: &Sender<Vec<Record>>, records: Vec<Record>, counters: &mut Counters) {
    if records.len() <= RECORD_CHUNK {
        let n = records.len() as u64;
        if n > 0 && tx.send(records).is_err() {
            // The output thread is gone: these records cannot be written.
            counters.drop_n(Drop::OutputError, n);
        }
        return;
    }
    // Taken from the front chunk by chunk, so each record moves once
    // (splitting the tail off again for every chunk would move it each time).
    let mut rest = records.into_iter();
    while rest.len() > 0 {
        let chunk: Vec<Record> = rest.by_ref().take(RECORD_CHUNK).collect();
        let n = chunk.len() as u64;
        if tx.send(chunk).is_err() {
            counters.drop_n(Drop::OutputError, n + rest.len() as u64);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::flow_record;

    fn records(n: usize) -> Vec<Record> {
        (0..n)
            .map(|i| Record::Flow(Box::new(flow_record(u16::try_from(i).unwrap_or(0)))))
            .collect()
    }

    fn ports(batch: &[Record]) -> Vec<u16> {
        batch
            .iter()
            .map(|r| match r {
                Record::Flow(f) => f.src_port,
                _ => u16::MAX,
            })
            .collect()
    }

    #[test]
    fn records_arrive_in_order_in_chunks_of_at_most_record_chunk() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut counters = Counters::default();
        let n = 2 * RECORD_CHUNK + 5;
        send_records(&tx, records(n), &mut counters);
        send_records(&tx, Vec::new(), &mut counters);
        send_records(&tx, records(3), &mut counters);
        drop(tx);
        let batches: Vec<Vec<Record>> = rx.iter().collect();
        let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![RECORD_CHUNK, RECORD_CHUNK, 5, 3]);
        let got: Vec<u16> = batches.iter().flat_map(|b| ports(b)).collect();
        let want: Vec<u16> = (0..n)
            .chain(0..3)
            .map(|i| u16::try_from(i).unwrap_or(0))
            .collect();
        assert_eq!(got, want);
        assert_eq!(counters.drops[Drop::OutputError as usize], 0);
    }

    #[test]
    fn records_for_a_gone_output_thread_are_counted_as_output_errors() {
        let (tx, rx) = crossbeam_channel::bounded::<Vec<Record>>(1);
        drop(rx);
        let mut counters = Counters::default();
        send_records(&tx, records(RECORD_CHUNK + 7), &mut counters);
        send_records(&tx, records(2), &mut counters);
        assert_eq!(
            counters.drops[Drop::OutputError as usize],
            (RECORD_CHUNK + 9) as u64
        );
    }
}

//! A flow worker thread: batches from every receiver → flows of its shard
//! → records to the output thread.
//!
//! Owns: its shard's flows ([`Worker`]) and their clock. Time is the
//! packets' own; when no batch comes for [`IDLE_WAIT`], time advances by the
//! wall clock elapsed since the last packet, so flows still end on a quiet
//! network. Input: [`Batch`]es. Output: sorted records per sweep, in chunks
//! of at most [`RECORD_CHUNK`], sent with a blocking send (nothing accepted
//! is lost; back-pressure reaches the receivers, which drop and count). Does
//! not: count decapsulation anomalies (the receiver did, once).

use super::batch::{Batch, Source, recycle};
use super::publish::Publisher;
use crate::config::PipelineConfig;
use crate::decap::tunnel::TunnelContext;
use crate::decap::{Decoded, Decoder};
use crate::metrics::Gauges;
use crate::metrics::{Counters, Drop};
use crate::runtime::{Clock, Worker};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use nucleus_proto::Record;
use std::time::{Duration, Instant};

/// How long a worker waits for a batch before it counts as idle.
pub const IDLE_WAIT: Duration = Duration::from_millis(100);
/// Most records per message to the output thread.
pub const RECORD_CHUNK: usize = 1024;

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
}

impl WorkerThread {
    /// Processes batches until every receiver is gone, then ends every flow
    /// and sends the records.
    pub fn run(mut self, cfg: &PipelineConfig, decoder: &Decoder) {
        let mut worker = Worker::new(cfg);
        let mut clock = Clock::new(cfg.flows.sweep_interval);
        let mut ctx = TunnelContext::new();
        // Decapsulation anomalies were counted once by the receiver.
        let mut scratch = Counters::default();
        // Latest packet time and when it was processed.
        let mut last_packet: Option<(i64, Instant)> = None;
        loop {
            match self.batches.recv_timeout(IDLE_WAIT) {
                Ok(batch) => {
                    let started = Instant::now();
                    let mut latest = last_packet.map_or(i64::MIN, |(ts, _)| ts);
                    for item in &batch.items {
                        if let Some(now) = clock.advance(item.ts_us) {
                            let records = worker.tick(now);
                            self.send(records, &mut worker.counters);
                        }
                        let bytes = batch.item_bytes(item);
                        let decoded = match item.source {
                            Source::Tunnel { tunnel, outer } => decoder.decode_tunnel_payload(
                                tunnel,
                                outer,
                                bytes,
                                &mut ctx,
                                &mut scratch,
                            ),
                            Source::Reassembled { base } => match batch.bases.get(base as usize) {
                                Some(base) => {
                                    ctx.clone_from(base);
                                    decoder.decode_ip(bytes, &mut ctx, &mut scratch)
                                }
                                None => continue,
                            },
                        };
                        if let Decoded::Packet(p) = decoded {
                            worker.process(&p, &ctx, item.ts_us);
                        }
                        latest = latest.max(item.ts_us);
                    }
                    if !batch.items.is_empty() {
                        last_packet = Some((latest, Instant::now()));
                    }
                    self.publisher.batch(batch.items.len(), started.elapsed());
                    recycle(batch, &self.pool);
                    let active = worker.gauges();
                    self.publisher.maybe_publish(&worker.counters, active);
                }
                Err(RecvTimeoutError::Timeout) => {
                    if let Some((ts, at)) = last_packet {
                        let idle_us = i64::try_from(at.elapsed().as_micros()).unwrap_or(i64::MAX);
                        if let Some(now) = clock.advance(ts.saturating_add(idle_us)) {
                            let records = worker.tick(now);
                            self.send(records, &mut worker.counters);
                        }
                    }
                    let active = worker.gauges();
                    self.publisher.publish(&worker.counters, active);
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        let records = worker.finish();
        self.send(records, &mut worker.counters);
        self.publisher.publish(&worker.counters, Gauges::default());
    }

    fn send(&self, records: Vec<Record>, counters: &mut Counters) {
        send_records(&self.records, records, counters);
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

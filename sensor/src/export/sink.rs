//! The exporter's record side: a [`RecordSink`] that gathers records into
//! batches, seals them (numbered, compressed) and stores them for the
//! sender. It never waits on the network: storing is a local write, and a
//! full store drops its oldest batches (counted) rather than refuse.
//!
//! Owns: batching by count and by age, splitting a batch whose block is
//! too large, the epoch and sequence numbers, and the end of the export
//! (seal the rest, give the sender `drain_timeout` to deliver, report what
//! is left). Input: records in output order. Output: batches in the store.
//! Does not: connect (see `sender`) or lay out the spool (see `store`).

use super::Shared;
use super::status::ExportStatus;
use super::store::{BatchId, BatchMeta};
use crate::record::RecordSink;
use nucleus_proto::Record;
use nucleus_proto::batch::{Compression, seal};
use nucleus_proto::community_id::CommunityId;
use prost::Message;
use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How records become batches.
#[derive(Debug, Clone)]
pub(crate) struct Batching {
    pub records: usize,
    pub age: Duration,
    pub max_block_bytes: u64,
    pub compression: Compression,
    pub community_id: CommunityId,
}

/// Records → sealed batches in the exporter's store.
pub struct NucleusSink {
    pub(crate) shared: Arc<Shared>,
    pub(crate) batching: Batching,
    pub(crate) epoch: u64,
    pub(crate) next_sequence: u64,
    pub(crate) pending: Vec<Record>,
    pub(crate) first_at: Option<Instant>,
    pub(crate) sender: Option<JoinHandle<()>>,
    pub(crate) drain_timeout: Duration,
    pub(crate) describe: String,
    pub(crate) durable: bool,
    pub(crate) write_error_logged: bool,
}

impl NucleusSink {
    /// The exporter's counters and gauges.
    pub fn status(&self) -> Arc<ExportStatus> {
        Arc::clone(&self.shared.status)
    }

    fn take_records(&mut self, records: Vec<Record>) {
        if self.pending.is_empty() {
            self.first_at = Some(Instant::now());
        }
        for r in records {
            self.pending.push(r);
            if self.pending.len() >= self.batching.records {
                self.seal_pending();
            }
        }
    }

    /// Seals everything pending as one batch (or several, when its block is
    /// too large).
    fn seal_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let records = std::mem::take(&mut self.pending);
        self.first_at = None;
        self.seal_split(&records);
        let shared = Arc::clone(&self.shared);
        let mut store = shared.lock_store();
        let ticked = store.tick(Instant::now());
        shared.status.set_store(store.stats());
        drop(store);
        shared.wake.notify_one();
        if let Err(e) = ticked {
            self.log_write_error(&e);
        }
    }

    fn seal_split(&mut self, records: &[Record]) {
        let status = &self.shared.status;
        let id = BatchId {
            epoch: self.epoch,
            sequence: self.next_sequence,
        };
        let sealed = seal(
            id.epoch,
            id.sequence,
            records,
            &self.batching.community_id,
            self.batching.compression,
        );
        let batch = match sealed {
            Ok(b) => b,
            Err(e) => {
                ExportStatus::add(&status.records_lost, records.len() as u64);
                self.log_write_error(&e);
                return;
            }
        };
        if batch.block_bytes > self.batching.max_block_bytes && records.len() > 1 {
            ExportStatus::add(&status.batches_split, 1);
            let (a, b) = records.split_at(records.len() / 2);
            self.seal_split(a);
            self.seal_split(b);
            return;
        }
        let bytes = batch.encode_to_vec();
        let meta = BatchMeta {
            id,
            records: batch.record_count,
            bytes: bytes.len() as u64,
        };
        self.next_sequence += 1;
        let mut store = self.shared.lock_store();
        let appended = store.append(meta, bytes);
        // A failed fsync leaves the batch written and held: only a batch
        // the store does not hold is lost.
        let held = appended.is_ok() || store.holds(id);
        drop(store);
        if held {
            ExportStatus::add(&status.batches_sealed, 1);
            ExportStatus::add(&status.records_sealed, u64::from(meta.records));
        } else {
            ExportStatus::add(&status.records_lost, u64::from(meta.records));
        }
        if let Err(e) = appended {
            self.log_write_error(&e);
        }
    }

    fn log_write_error(&mut self, e: &io::Error) {
        if !self.write_error_logged {
            eprintln!(
                "sensor: error: storing a batch for the Nucleus: {e} (further errors are only \
                 counted: sensor_export_records_lost, sensor_export_spool_write_errors)"
            );
            self.write_error_logged = true;
        }
    }

    /// Seals the batch being gathered when its oldest record has waited
    /// `batch_age`, and lets the store fsync when due. The owner calls it
    /// at least every 100 ms.
    pub fn tick(&mut self) {
        let now = Instant::now();
        if self
            .first_at
            .is_some_and(|t| now.duration_since(t) >= self.batching.age)
        {
            self.seal_pending();
            return;
        }
        let ticked = self.shared.lock_store().tick(now);
        if let Err(e) = ticked {
            self.log_write_error(&e);
        }
    }

    /// Seals what is pending, forces the store to disk, and gives the sender
    /// `drain_timeout` to have every batch acknowledged. What is still held
    /// then stays in the spool (a warning says how much) or, without a
    /// spool, is lost: an error says how much.
    pub fn finish(&mut self) -> io::Result<()> {
        self.seal_pending();
        let synced = self.shared.lock_store().sync();
        if let Err(e) = synced {
            self.log_write_error(&e);
        }
        self.shared.begin_drain(Instant::now() + self.drain_timeout);
        if let Some(h) = self.sender.take() {
            let _ = h.join();
        }
        let held = self.shared.lock_store().stats();
        self.shared.status.set_store(held);
        if held.batches == 0 {
            return Ok(());
        }
        let why = self
            .shared
            .status
            .error()
            .map_or_else(String::new, |e| format!(" (last error: {e})"));
        let what = format!(
            "{} batches ({} records) not acknowledged by the Nucleus at {} within {:?}{why}",
            held.batches, held.records, self.describe, self.drain_timeout
        );
        if self.durable {
            eprintln!(
                "sensor: warning: {what}; they stay in the spool and are sent at the next start"
            );
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "{what}; without a spool (--spool) they are lost"
            )))
        }
    }
}

impl RecordSink for NucleusSink {
    fn write_batch(&mut self, records: &[Record]) -> io::Result<()> {
        self.take_records(records.to_vec());
        Ok(())
    }

    fn write_owned(&mut self, records: Vec<Record>) -> io::Result<()> {
        self.take_records(records);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn tick(&mut self) {
        NucleusSink::tick(self);
    }

    fn close(&mut self) -> io::Result<()> {
        self.finish()
    }
}

impl Drop for NucleusSink {
    fn drop(&mut self) {
        // An exporter dropped without `close` (an error path) stops its
        // sender at once; the spool keeps what was stored.
        if self.sender.is_some() {
            self.shared.stop();
            if let Some(h) = self.sender.take() {
                let _ = h.join();
            }
        }
    }
}

//! The memory store: batches held in RAM until acknowledged, for a sensor
//! without a spool directory.
//!
//! Owns: the held batches' bytes, ordered by id, and the byte cap over
//! them. Inputs: sealed batches, acks. Outputs: batches to (re)send, stats.
//! Does not: survive a restart (the disk spool does), or send.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::store::{BatchId, BatchMeta, StoreStats};

/// Held batches, oldest (smallest id) first.
#[derive(Debug)]
pub(super) struct MemoryStore {
    max_bytes: u64,
    batches: BTreeMap<BatchId, (u32, Vec<u8>)>,
    last_appended: Option<BatchId>,
    stats: StoreStats,
}

impl MemoryStore {
    pub(super) fn new(max_bytes: u64) -> Self {
        Self {
            max_bytes,
            batches: BTreeMap::new(),
            last_appended: None,
            stats: StoreStats::default(),
        }
    }

    pub(super) fn append(&mut self, meta: BatchMeta, batch: Vec<u8>) -> std::io::Result<()> {
        super::store::check_order(self.last_appended, meta.id)?;
        self.last_appended = Some(meta.id);
        let len = batch.len() as u64;
        if len > self.max_bytes {
            self.stats.dropped_batches += 1;
            self.stats.dropped_records += u64::from(meta.records);
            return Ok(());
        }
        while self.stats.bytes + len > self.max_bytes {
            let Some((_, (records, b))) = self.batches.pop_first() else {
                break;
            };
            self.forget(records, b.len());
            self.stats.dropped_batches += 1;
            self.stats.dropped_records += u64::from(records);
        }
        self.stats.batches += 1;
        self.stats.records += u64::from(meta.records);
        self.stats.bytes += len;
        self.batches.insert(meta.id, (meta.records, batch));
        Ok(())
    }

    fn forget(&mut self, records: u32, len: usize) {
        self.stats.batches -= 1;
        self.stats.records -= u64::from(records);
        self.stats.bytes -= len as u64;
    }

    pub(super) fn holds(&self, id: BatchId) -> bool {
        self.batches.contains_key(&id)
    }

    pub(super) fn next_after(&self, after: Option<BatchId>) -> Option<BatchMeta> {
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.batches
            .range((from, Bound::Unbounded))
            .next()
            .map(|(&id, (records, b))| BatchMeta {
                id,
                records: *records,
                bytes: b.len() as u64,
            })
    }

    pub(super) fn read(&self, id: BatchId) -> Option<Vec<u8>> {
        self.batches.get(&id).map(|(_, b)| b.clone())
    }

    pub(super) fn ack(&mut self, id: BatchId) -> bool {
        match self.batches.remove(&id) {
            Some((records, b)) => {
                self.forget(records, b.len());
                true
            }
            None => false,
        }
    }

    pub(super) fn stats(&self) -> StoreStats {
        self.stats
    }

    pub(super) fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }
}

//! DEV PLACEHOLDER (replaced by the spool branch at merge; not committed).
#![allow(missing_docs)]
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BatchId {
    pub epoch: u64,
    pub sequence: u64,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    pub id: BatchId,
    pub records: u32,
    pub bytes: u64,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    Always,
    Interval(Duration),
    Never,
}
#[derive(Debug, Clone)]
pub struct SpoolSettings {
    pub dir: PathBuf,
    pub max_bytes: u64,
    pub segment_bytes: u64,
    pub fsync: FsyncPolicy,
}
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub batches: u64,
    pub records: u64,
    pub bytes: u64,
    pub segments: u64,
    pub dropped_batches: u64,
    pub dropped_records: u64,
    pub corrupt_entries: u64,
    pub corrupt_bytes: u64,
    pub write_errors: u64,
}
pub struct Recovery {
    pub batches: u64,
    pub records: u64,
    pub corrupt_entries: u64,
    pub max_epoch: Option<u64>,
}
pub struct Store {
    max: u64,
    held: BTreeMap<BatchId, (BatchMeta, Vec<u8>)>,
    stats: StoreStats,
}
impl Store {
    pub fn memory(max_bytes: u64) -> Store {
        Store {
            max: max_bytes,
            held: BTreeMap::new(),
            stats: StoreStats::default(),
        }
    }
    pub fn open_disk(_s: &SpoolSettings) -> std::io::Result<(Store, Recovery)> {
        Err(std::io::Error::other("dev"))
    }
    pub fn append(&mut self, meta: BatchMeta, batch: Vec<u8>) -> std::io::Result<()> {
        self.held.insert(meta.id, (meta, batch));
        self.stats.batches += 1;
        self.stats.records += u64::from(meta.records);
        self.stats.bytes += meta.bytes;
        while self.stats.bytes > self.max {
            let Some((_, (m, _))) = self.held.pop_first() else {
                break;
            };
            self.forget(m);
            self.stats.dropped_batches += 1;
            self.stats.dropped_records += u64::from(m.records);
        }
        Ok(())
    }
    fn forget(&mut self, m: BatchMeta) {
        self.stats.batches -= 1;
        self.stats.records -= u64::from(m.records);
        self.stats.bytes -= m.bytes;
    }
    pub fn next_after(&self, after: Option<BatchId>) -> Option<BatchMeta> {
        match after {
            None => self.held.values().next().map(|v| v.0),
            Some(a) => self
                .held
                .range((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded))
                .next()
                .map(|v| v.1.0),
        }
    }
    pub fn read(&mut self, id: BatchId) -> std::io::Result<Option<Vec<u8>>> {
        Ok(self.held.get(&id).map(|v| v.1.clone()))
    }
    pub fn ack(&mut self, id: BatchId) -> bool {
        match self.held.remove(&id) {
            Some((m, _)) => {
                self.forget(m);
                true
            }
            None => false,
        }
    }
    pub fn tick(&mut self, _now: Instant) -> std::io::Result<()> {
        Ok(())
    }
    pub fn sync(&mut self) -> std::io::Result<()> {
        Ok(())
    }
    pub fn stats(&self) -> StoreStats {
        self.stats
    }
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

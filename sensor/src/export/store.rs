//! The exporter's batch store: every sealed batch is held here from the
//! moment it is made until the Nucleus acknowledges it.
//!
//! Owns: the held batches and their order (by [`BatchId`]; ids are
//! appended in increasing order), the byte cap (the oldest batches are
//! dropped, and counted, to make room), and the counters of what was
//! dropped, damaged or failed. Two kinds behind one type: in memory, or a
//! disk spool of checksummed segment files (format in
//! `nucleus_proto::spool`) that survives a restart or a kill. Inputs:
//! sealed batches (the encoded `pb::Batch`) and acks. Outputs: the batches
//! to send or resend, in id order, and [`StoreStats`]. Does not: seal,
//! send, choose epochs, or log (it returns counts and errors; its owner
//! logs).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::memory::MemoryStore;
use super::spool::DiskSpool;

/// A batch's identity on the wire: (epoch, sequence). Ordered as a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BatchId {
    /// The sensor's epoch when it sealed the batch.
    pub epoch: u64,
    /// The batch's number within its epoch.
    pub sequence: u64,
}

/// What the store knows of a held batch without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    /// Its identity.
    pub id: BatchId,
    /// Records in it.
    pub records: u32,
    /// Bytes of the encoded batch (the store sets it from the bytes it is
    /// given; the caller's value is not used).
    pub bytes: u64,
}

/// When the disk spool makes its writes durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Before `append` returns: a batch survives a power cut once appended.
    Always,
    /// In `tick`, at most this long after a write: a power cut loses at most
    /// this much (a kill of the sensor loses nothing: the kernel has it).
    Interval(Duration),
    /// Never: the kernel writes back when it likes.
    Never,
}

/// Settings of the disk spool.
#[derive(Debug, Clone)]
pub struct SpoolSettings {
    /// The directory of the segment files (created if missing); one sensor
    /// at a time (a `LOCK` file).
    pub dir: PathBuf,
    /// Most bytes of segment files on disk; the oldest whole segments are
    /// deleted, and their unacknowledged batches counted as dropped, to
    /// stay under it. At least `segment_bytes`.
    pub max_bytes: u64,
    /// A segment is closed and the next one started when an entry would
    /// take it past this size (a single larger entry gets a segment of its
    /// own).
    pub segment_bytes: u64,
    /// When writes are made durable.
    pub fsync: FsyncPolicy,
}

/// Gauges (what is held now), then counters (since the store was made).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Batches held.
    pub batches: u64,
    /// Records in them.
    pub records: u64,
    /// Bytes held: the batches' bytes in memory; the segment files' bytes
    /// (headers and damaged bytes included) on disk. This is what the cap
    /// bounds.
    pub bytes: u64,
    /// Segment files (0 in memory).
    pub segments: u64,
    /// Batches dropped unsent: the oldest, to stay under the cap, or one
    /// larger than the cap on its own.
    pub dropped_batches: u64,
    /// Records in them.
    pub dropped_records: u64,
    /// Damaged entries (or regions) found, at open or on read.
    pub corrupt_entries: u64,
    /// Bytes in them.
    pub corrupt_bytes: u64,
    /// Failed writes, fsyncs and deletions.
    pub write_errors: u64,
}

/// What opening a disk spool found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovery {
    /// Unacknowledged batches found, to be sent.
    pub batches: u64,
    /// Records in them.
    pub records: u64,
    /// Damaged entries (or regions) found and skipped.
    pub corrupt_entries: u64,
    /// The largest epoch in the spool (entries and segment names): the
    /// sensor's new epoch must be greater.
    pub max_epoch: Option<u64>,
}

/// Held batches, in memory or in a disk spool.
#[derive(Debug)]
pub struct Store {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Memory(MemoryStore),
    Disk(Box<DiskSpool>),
}

impl Store {
    /// A store in memory holding at most `max_bytes` of batches.
    pub fn memory(max_bytes: u64) -> Store {
        Store {
            kind: Kind::Memory(MemoryStore::new(max_bytes)),
        }
    }

    /// Locks the directory (a LOCK file, so a second sensor on the same
    /// directory gets an error naming it), scans every segment (checksums),
    /// and builds the index of unacknowledged batches. Segments found are
    /// never appended to: new batches go to new segments.
    pub fn open_disk(s: &SpoolSettings) -> std::io::Result<(Store, Recovery)> {
        let (disk, recovery) = DiskSpool::open(s)?;
        let store = Store {
            kind: Kind::Disk(Box::new(disk)),
        };
        Ok((store, recovery))
    }

    /// Holds `batch` (the encoded `pb::Batch`) under `meta.id`, which must
    /// be greater than every id appended before (else `InvalidInput`).
    /// Drops the oldest batches (on disk: whole oldest segments) to stay
    /// within the cap, counted; a batch larger than the cap on its own is
    /// dropped and counted. A failed write is counted and returned, and the
    /// batch is not held; a failed fsync (`FsyncPolicy::Always`) is counted
    /// and returned, and the batch, written, stays held.
    pub fn append(&mut self, meta: BatchMeta, batch: Vec<u8>) -> std::io::Result<()> {
        match &mut self.kind {
            Kind::Memory(m) => m.append(meta, batch),
            Kind::Disk(d) => d.append(meta, &batch),
        }
    }

    /// The oldest held batch with an id greater than `after` (`None`: from
    /// the start): the sender's cursor.
    pub fn next_after(&self, after: Option<BatchId>) -> Option<BatchMeta> {
        match &self.kind {
            Kind::Memory(m) => m.next_after(after),
            Kind::Disk(d) => d.next_after(after),
        }
    }

    /// Whether batch `id` is held (after an append that failed to fsync,
    /// it is).
    pub fn holds(&self, id: BatchId) -> bool {
        match &self.kind {
            Kind::Memory(m) => m.holds(id),
            Kind::Disk(d) => d.holds(id),
        }
    }

    /// The batch's bytes, checksum verified on disk. `None` if it is no
    /// longer held, or is damaged (then counted and forgotten).
    pub fn read(&mut self, id: BatchId) -> std::io::Result<Option<Vec<u8>>> {
        match &mut self.kind {
            Kind::Memory(m) => Ok(m.read(id)),
            Kind::Disk(d) => d.read(id),
        }
    }

    /// Forgets a delivered batch; a segment all of whose batches are
    /// acknowledged is deleted (the one being written too). Unknown ids
    /// are ignored (false).
    pub fn ack(&mut self, id: BatchId) -> bool {
        match &mut self.kind {
            Kind::Memory(m) => m.ack(id),
            Kind::Disk(d) => d.ack(id),
        }
    }

    /// Makes writes durable when the `Interval` policy says so; the owner
    /// calls it at least every 100 ms.
    pub fn tick(&mut self, now: Instant) -> std::io::Result<()> {
        match &mut self.kind {
            Kind::Memory(_) => Ok(()),
            Kind::Disk(d) => d.tick(now),
        }
    }

    /// Makes every write so far durable (on shutdown).
    pub fn sync(&mut self) -> std::io::Result<()> {
        match &mut self.kind {
            Kind::Memory(_) => Ok(()),
            Kind::Disk(d) => d.sync(),
        }
    }

    /// Gauges and counters.
    pub fn stats(&self) -> StoreStats {
        match &self.kind {
            Kind::Memory(m) => m.stats(),
            Kind::Disk(d) => d.stats(),
        }
    }

    /// No batch is held.
    pub fn is_empty(&self) -> bool {
        match &self.kind {
            Kind::Memory(m) => m.is_empty(),
            Kind::Disk(d) => d.is_empty(),
        }
    }
}

/// Ids are appended in increasing order, so id order is append order and
/// the oldest batch is the smallest id.
pub(super) fn check_order(last: Option<BatchId>, id: BatchId) -> std::io::Result<()> {
    match last {
        Some(last) if id <= last => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "batch ({}, {}) appended after ({}, {}): ids must increase",
                id.epoch, id.sequence, last.epoch, last.sequence
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

    /// A directory under the system's temp dir, removed on drop.
    pub(crate) struct TempDir(pub(crate) PathBuf);

    impl TempDir {
        pub(crate) fn new(tag: &str) -> Self {
            let d = std::env::temp_dir().join(format!(
                "sensor-spool-{}-{tag}-{}",
                std::process::id(),
                NEXT_DIR.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&d);
            TempDir(d)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    pub(crate) fn id(epoch: u64, sequence: u64) -> BatchId {
        BatchId { epoch, sequence }
    }

    /// A batch whose bytes tell which it is.
    pub(crate) fn batch(id: BatchId, len: usize) -> Vec<u8> {
        let tag = (id.epoch * 1000 + id.sequence).to_be_bytes();
        (0..len).map(|i| tag[i % 8] ^ (i as u8)).collect()
    }

    pub(crate) fn meta(id: BatchId, records: u32) -> BatchMeta {
        BatchMeta {
            id,
            records,
            bytes: 0,
        }
    }

    pub(crate) fn settings(dir: &TempDir, max_bytes: u64, segment_bytes: u64) -> SpoolSettings {
        SpoolSettings {
            dir: dir.0.clone(),
            max_bytes,
            segment_bytes,
            fsync: FsyncPolicy::Never,
        }
    }

    /// Every held id, in the sender's order.
    pub(crate) fn held(store: &Store) -> Vec<BatchId> {
        let mut out = Vec::new();
        let mut cursor = None;
        while let Some(m) = store.next_after(cursor) {
            out.push(m.id);
            cursor = Some(m.id);
        }
        out
    }

    fn ordering_and_acks(mut store: Store) {
        assert!(store.is_empty());
        for seq in 0..6 {
            let i = id(7, seq);
            store
                .append(meta(i, 10 + seq as u32), batch(i, 100))
                .unwrap();
        }
        assert_eq!(held(&store), (0..6).map(|s| id(7, s)).collect::<Vec<_>>());
        let m = store.next_after(Some(id(7, 2))).unwrap();
        assert_eq!(
            m,
            BatchMeta {
                id: id(7, 3),
                records: 13,
                bytes: 100
            }
        );
        assert!(store.holds(id(7, 3)));
        assert!(store.ack(id(7, 3)));
        assert!(!store.holds(id(7, 3)));
        assert!(!store.holds(id(9, 0)));
        assert!(!store.ack(id(7, 3)), "a second ack of the same id");
        assert!(!store.ack(id(9, 0)), "an unknown id");
        assert_eq!(store.next_after(Some(id(7, 2))).unwrap().id, id(7, 4));
        assert_eq!(store.read(id(7, 4)).unwrap().unwrap(), batch(id(7, 4), 100));
        assert_eq!(store.read(id(7, 3)).unwrap(), None);
        let s = store.stats();
        assert_eq!((s.batches, s.records), (5, 10 + 11 + 12 + 14 + 15));
        // Ids must grow: an older one is refused, not held.
        let err = store
            .append(meta(id(7, 1), 1), batch(id(7, 1), 10))
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        store
            .append(meta(id(8, 0), 1), batch(id(8, 0), 10))
            .unwrap();
        assert_eq!(store.next_after(Some(id(7, 5))).unwrap().id, id(8, 0));
        for i in held(&store) {
            assert!(store.ack(i));
        }
        assert!(store.is_empty());
        assert_eq!(store.stats().batches, 0);
    }

    #[test]
    fn memory_store_orders_by_id_and_forgets_acked_batches() {
        ordering_and_acks(Store::memory(1 << 20));
    }

    #[test]
    fn disk_store_orders_by_id_and_forgets_acked_batches() {
        let dir = TempDir::new("order");
        let (store, rec) = Store::open_disk(&settings(&dir, 1 << 20, 300)).unwrap();
        assert_eq!((rec.batches, rec.max_epoch), (0, None));
        ordering_and_acks(store);
        let left: Vec<_> = std::fs::read_dir(&dir.0)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["LOCK"], "every segment was acknowledged and deleted");
    }

    #[test]
    fn memory_cap_drops_the_oldest_and_counts_them() {
        let mut store = Store::memory(1000);
        for seq in 0..10 {
            store
                .append(meta(id(1, seq), 2), batch(id(1, seq), 300))
                .unwrap();
        }
        assert_eq!(held(&store), [id(1, 7), id(1, 8), id(1, 9)]);
        let s = store.stats();
        assert_eq!(
            (s.bytes, s.dropped_batches, s.dropped_records),
            (900, 7, 14)
        );
        // Larger than the cap on its own: dropped, nothing else is.
        store
            .append(meta(id(1, 10), 5), batch(id(1, 10), 1001))
            .unwrap();
        assert_eq!(held(&store).len(), 3);
        assert_eq!(store.stats().dropped_batches, 8);
        assert_eq!(store.stats().dropped_records, 19);
    }
}

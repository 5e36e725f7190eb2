//! The disk spool: held batches in segment files under one directory, so
//! they survive an outage of the Nucleus, a restart, or a kill of the
//! sensor.
//!
//! Owns: the directory and its `LOCK`, the segment files (named
//! `{epoch:020}-{sequence:020}.nspool` after their first batch, so names
//! sort in append order; layout in `nucleus_proto::spool`), a small index
//! entry per held batch (its segment, offset, length and record count:
//! never its bytes), the byte cap (whole oldest segments are deleted), and
//! the fsync policy. Inputs: batches, acks, ticks. Outputs: batches read
//! back and checksum-verified, counters. Does not: append to a segment it
//! found at open (new batches go to a new segment), delete files it does
//! not recognise, or persist acks (a partly acknowledged segment is sent
//! again after a restart; the receiver drops the duplicates).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Error, ErrorKind, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::Instant;

use nucleus_proto::spool as format;

use super::store::{BatchId, BatchMeta, FsyncPolicy, StoreStats};

mod recover;

const LOCK_FILE: &str = "LOCK";
const SUFFIX: &str = ".nspool";
const HEADER_LEN: u64 = format::SEGMENT_HEADER_LEN as u64;

/// A segment file.
#[derive(Debug)]
struct Segment {
    path: PathBuf,
    /// Its size on disk.
    bytes: u64,
    /// Its batches not yet acknowledged (nor dropped, nor found damaged).
    live: u64,
}

/// Where a held batch's entry is.
#[derive(Debug, Clone, Copy)]
struct Held {
    /// The key of its segment.
    segment: BatchId,
    offset: u64,
    /// The entry's bytes on disk.
    len: u32,
    records: u32,
}

/// The segment being appended to.
#[derive(Debug)]
struct Active {
    key: BatchId,
    file: File,
}

/// Held batches in segment files.
#[derive(Debug)]
pub(super) struct DiskSpool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    fsync: FsyncPolicy,
    max_body: u32,
    /// Held (locked) for the spool's life; the lock goes with the handle.
    _lock: File,
    segments: BTreeMap<BatchId, Segment>,
    index: BTreeMap<BatchId, Held>,
    active: Option<Active>,
    /// The last segment read from, kept open: the sender reads in order.
    reader: Option<(BatchId, File)>,
    last_appended: Option<BatchId>,
    unsynced: bool,
    dir_unsynced: bool,
    last_sync: Instant,
    stats: StoreStats,
}

impl DiskSpool {
    pub(super) fn append(&mut self, meta: BatchMeta, batch: &[u8]) -> std::io::Result<()> {
        super::store::check_order(self.last_appended, meta.id)?;
        self.last_appended = Some(meta.id);
        let entry_len = format::entry_len(batch.len()) as u64;
        let body_fits = batch.len() + format::ENTRY_FIXED_LEN <= self.max_body as usize;
        if !body_fits || HEADER_LEN + entry_len > self.max_bytes {
            self.stats.dropped_batches += 1;
            self.stats.dropped_records += u64::from(meta.records);
            return Ok(());
        }
        if let Some(a) = &self.active {
            let bytes = self.segments.get(&a.key).map_or(0, |s| s.bytes);
            if bytes + entry_len > self.segment_bytes {
                self.seal_active();
            }
        }
        loop {
            let header = if self.active.is_none() { HEADER_LEN } else { 0 };
            if self.stats.bytes + header + entry_len <= self.max_bytes || !self.drop_oldest() {
                break;
            }
        }
        let mut buf = Vec::with_capacity(format::SEGMENT_HEADER_LEN + entry_len as usize);
        if self.active.is_none() {
            buf.extend(format::encode_header(meta.id.epoch));
        }
        format::encode_entry(
            meta.id.epoch,
            meta.id.sequence,
            meta.records,
            batch,
            self.max_body,
            &mut buf,
        )
        .map_err(|e| Error::new(ErrorKind::InvalidInput, e))?;
        let key = match &self.active {
            Some(a) => a.key,
            None => self.start_segment(meta.id)?,
        };
        let Some(seg) = self.segments.get_mut(&key) else {
            return Err(Error::other("spool: the active segment is not indexed"));
        };
        let offset = seg.bytes + (buf.len() as u64 - entry_len);
        let written = match &mut self.active {
            Some(a) => a.file.write_all(&buf),
            None => Err(Error::other("spool: no active segment")),
        };
        if let Err(e) = written {
            self.write_failed(key, buf.len() as u64);
            return Err(e);
        }
        seg.bytes += buf.len() as u64;
        seg.live += 1;
        self.stats.bytes += buf.len() as u64;
        self.stats.batches += 1;
        self.stats.records += u64::from(meta.records);
        self.index.insert(
            meta.id,
            Held {
                segment: key,
                offset,
                len: entry_len as u32,
                records: meta.records,
            },
        );
        self.unsynced = true;
        if self.fsync == FsyncPolicy::Always {
            self.sync()?;
        }
        Ok(())
    }

    /// Creates the segment that `first` opens; its header goes out with
    /// the first entry, in the same write.
    fn start_segment(&mut self, first: BatchId) -> std::io::Result<BatchId> {
        let path = self.dir.join(segment_name(first));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| {
                self.stats.write_errors += 1;
                Error::new(e.kind(), format!("{}: {e}", path.display()))
            })?;
        self.segments.insert(
            first,
            Segment {
                path,
                bytes: 0,
                live: 0,
            },
        );
        self.stats.segments += 1;
        self.active = Some(Active { key: first, file });
        self.dir_unsynced = true;
        Ok(first)
    }

    /// After a failed write the segment's tail is unknown: it is closed
    /// (what it holds is still read, checksums tell good from cut), and the
    /// next batch starts a new one.
    fn write_failed(&mut self, key: BatchId, attempted: u64) {
        self.stats.write_errors += 1;
        self.active = None;
        if let Some(seg) = self.segments.get_mut(&key) {
            let size = std::fs::metadata(&seg.path).map_or(seg.bytes + attempted, |m| m.len());
            self.stats.bytes = self.stats.bytes - seg.bytes + size;
            seg.bytes = size;
            if seg.live == 0 {
                self.delete_segment(key);
            }
        }
    }

    /// Closes the active segment, durable first unless the policy is
    /// `Never` (a failed fsync is counted; its batches stay held).
    fn seal_active(&mut self) {
        if let Some(a) = self.active.take() {
            if self.unsynced && self.fsync != FsyncPolicy::Never && a.file.sync_data().is_err() {
                self.stats.write_errors += 1;
            }
            self.unsynced = false;
        }
    }

    /// Deletes the oldest segment to make room; its held batches are
    /// counted as dropped. False when there is none.
    fn drop_oldest(&mut self) -> bool {
        let Some(&key) = self.segments.keys().next() else {
            return false;
        };
        let (mut batches, mut records) = (0, 0);
        self.index.retain(|_, h| {
            let keep = h.segment != key;
            if !keep {
                batches += 1;
                records += u64::from(h.records);
            }
            keep
        });
        self.stats.batches -= batches;
        self.stats.records -= records;
        self.stats.dropped_batches += batches;
        self.stats.dropped_records += records;
        self.delete_segment(key);
        true
    }

    /// Forgets a segment and removes its file. A file that will not go is
    /// counted; it is found again at the next open.
    fn delete_segment(&mut self, key: BatchId) {
        let Some(seg) = self.segments.remove(&key) else {
            return;
        };
        if self.active.as_ref().is_some_and(|a| a.key == key) {
            self.active = None;
            self.unsynced = false;
        }
        if self.reader.as_ref().is_some_and(|r| r.0 == key) {
            self.reader = None;
        }
        self.stats.bytes -= seg.bytes;
        self.stats.segments -= 1;
        if std::fs::remove_file(&seg.path).is_err() {
            self.stats.write_errors += 1;
        }
    }

    pub(super) fn holds(&self, id: BatchId) -> bool {
        self.index.contains_key(&id)
    }

    pub(super) fn next_after(&self, after: Option<BatchId>) -> Option<BatchMeta> {
        let from = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        let (&id, h) = self
            .index
            .range((from, std::ops::Bound::Unbounded))
            .next()?;
        Some(BatchMeta {
            id,
            records: h.records,
            bytes: u64::from(h.len) - format::ENTRY_OVERHEAD as u64,
        })
    }

    pub(super) fn read(&mut self, id: BatchId) -> std::io::Result<Option<Vec<u8>>> {
        let Some(h) = self.index.get(&id).copied() else {
            return Ok(None);
        };
        if self.reader.as_ref().is_none_or(|r| r.0 != h.segment) {
            self.reader = None;
            let Some(seg) = self.segments.get(&h.segment) else {
                return Ok(None);
            };
            match File::open(&seg.path) {
                Ok(f) => self.reader = Some((h.segment, f)),
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(self.damaged(id, h)),
                Err(e) => return Err(Error::new(e.kind(), format!("{}: {e}", seg.path.display()))),
            }
        }
        let Some((_, file)) = &self.reader else {
            return Ok(None);
        };
        let mut buf = vec![0u8; h.len as usize];
        match file.read_exact_at(&mut buf, h.offset) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(self.damaged(id, h)),
            Err(e) => return Err(e),
        }
        let intact = format::decode_entry(&buf, h.offset, self.max_body)
            .is_some_and(|e| e.epoch == id.epoch && e.sequence == id.sequence);
        if !intact {
            return Ok(self.damaged(id, h));
        }
        buf.drain(..format::ENTRY_OVERHEAD);
        Ok(Some(buf))
    }

    /// An entry that no longer reads back as written: counted, forgotten.
    fn damaged(&mut self, id: BatchId, h: Held) -> Option<Vec<u8>> {
        self.stats.corrupt_entries += 1;
        self.stats.corrupt_bytes += u64::from(h.len);
        self.ack(id);
        None
    }

    pub(super) fn ack(&mut self, id: BatchId) -> bool {
        let Some(h) = self.index.remove(&id) else {
            return false;
        };
        self.stats.batches -= 1;
        self.stats.records -= u64::from(h.records);
        if let Some(seg) = self.segments.get_mut(&h.segment) {
            seg.live -= 1;
            if seg.live == 0 {
                self.delete_segment(h.segment);
            }
        }
        true
    }

    pub(super) fn tick(&mut self, now: Instant) -> std::io::Result<()> {
        match self.fsync {
            FsyncPolicy::Interval(every)
                if (self.unsynced || self.dir_unsynced)
                    && now.saturating_duration_since(self.last_sync) >= every =>
            {
                self.sync()
            }
            _ => Ok(()),
        }
    }

    pub(super) fn sync(&mut self) -> std::io::Result<()> {
        if self.unsynced {
            if let Some(a) = &self.active {
                a.file
                    .sync_data()
                    .inspect_err(|_| self.stats.write_errors += 1)?;
            }
            self.unsynced = false;
        }
        if self.dir_unsynced {
            // The new segments' directory entries.
            File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .inspect_err(|_| self.stats.write_errors += 1)?;
            self.dir_unsynced = false;
        }
        self.last_sync = Instant::now();
        Ok(())
    }

    pub(super) fn stats(&self) -> StoreStats {
        self.stats
    }

    pub(super) fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
}

fn segment_name(first: BatchId) -> String {
    format!("{:020}-{:020}{SUFFIX}", first.epoch, first.sequence)
}

#[cfg(test)]
mod tests;

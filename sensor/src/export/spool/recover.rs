//! Opening a spool directory: its lock, and the recovery of the segments
//! found in it into the index (checksums verified, damage counted).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Error, ErrorKind};
use std::path::{Path, PathBuf};
use std::time::Instant;

use nucleus_proto::spool::{self as format, ScanItem};

use super::super::store::{BatchId, Recovery, SpoolSettings, StoreStats};
use super::{DiskSpool, Held, LOCK_FILE, SUFFIX, Segment};

impl DiskSpool {
    pub(in crate::export) fn open(s: &SpoolSettings) -> std::io::Result<(Self, Recovery)> {
        if s.segment_bytes == 0 || s.max_bytes < s.segment_bytes {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "spool: max_bytes ({}) must be at least segment_bytes ({}), which must not be 0",
                    s.max_bytes, s.segment_bytes
                ),
            ));
        }
        let dir = s.dir.clone();
        let ctx =
            |e: Error| Error::new(e.kind(), format!("spool directory {}: {e}", dir.display()));
        std::fs::create_dir_all(&dir).map_err(ctx)?;
        let lock = lock_dir(&dir)?;
        let mut spool = DiskSpool {
            dir: dir.clone(),
            max_bytes: s.max_bytes,
            segment_bytes: s.segment_bytes,
            fsync: s.fsync,
            max_body: format::DEFAULT_MAX_BODY_BYTES,
            _lock: lock,
            segments: BTreeMap::new(),
            index: BTreeMap::new(),
            active: None,
            reader: None,
            last_appended: None,
            unsynced: false,
            dir_unsynced: false,
            last_sync: Instant::now(),
            stats: StoreStats::default(),
        };
        let mut names = BTreeMap::new();
        for entry in std::fs::read_dir(&dir).map_err(ctx)? {
            let entry = entry.map_err(ctx)?;
            let is_file = entry.file_type().is_ok_and(|t| t.is_file());
            let key = entry.file_name().to_str().and_then(parse_name);
            if let Some(key) = key.filter(|_| is_file) {
                names.insert(key, entry.path());
            }
        }
        let mut max_epoch = names.keys().map(|k| k.epoch).max();
        for (key, path) in names {
            spool.recover_segment(key, path);
            spool.last_appended = spool.last_appended.max(Some(key));
        }
        let last_held = spool.index.last_key_value().map(|(&id, _)| id);
        spool.last_appended = spool.last_appended.max(last_held);
        max_epoch = max_epoch.max(last_held.map(|id| id.epoch));
        // A spool found over a smaller cap is cut to it, oldest first.
        while spool.stats.bytes > spool.max_bytes && spool.drop_oldest() {}
        let recovery = Recovery {
            batches: spool.stats.batches,
            records: spool.stats.records,
            corrupt_entries: spool.stats.corrupt_entries,
            max_epoch,
        };
        Ok((spool, recovery))
    }

    /// Scans one segment found at open into the index. A segment with no
    /// good entry is deleted; one this build cannot read (another format
    /// version, a read error) is left alone and counted as damaged.
    fn recover_segment(&mut self, key: BatchId, path: PathBuf) {
        let mut found = Vec::new();
        let (mut corrupt, mut corrupt_bytes) = (0u64, 0u64);
        let scanned = File::open(&path).and_then(|f| {
            format::scan_segment(f, self.max_body, |item| match item {
                ScanItem::Entry(e) => found.push((
                    BatchId {
                        epoch: e.epoch,
                        sequence: e.sequence,
                    },
                    Held {
                        segment: key,
                        offset: e.offset,
                        len: e.len,
                        records: e.record_count,
                    },
                )),
                ScanItem::Damaged { len, .. } | ScanItem::TruncatedTail { len, .. } => {
                    corrupt += 1;
                    corrupt_bytes += len;
                }
                ScanItem::NeedMore { .. } => {}
            })
        });
        let summary = match scanned {
            Ok(summary) => summary,
            Err(_) => {
                self.stats.corrupt_entries += 1;
                self.stats.corrupt_bytes += std::fs::metadata(&path).map_or(0, |m| m.len());
                return;
            }
        };
        let mut live = 0;
        for (id, held) in found {
            if self.index.contains_key(&id) {
                // The same id twice: only the first is the batch.
                corrupt += 1;
                corrupt_bytes += u64::from(held.len);
                continue;
            }
            self.index.insert(id, held);
            live += 1;
            self.stats.batches += 1;
            self.stats.records += u64::from(held.records);
        }
        self.stats.corrupt_entries += corrupt;
        self.stats.corrupt_bytes += corrupt_bytes;
        self.segments.insert(
            key,
            Segment {
                path,
                bytes: summary.bytes,
                live,
            },
        );
        self.stats.bytes += summary.bytes;
        self.stats.segments += 1;
        if live == 0 {
            self.delete_segment(key);
        }
    }
}

/// Takes the directory's lock, or says who holds it.
fn lock_dir(dir: &Path) -> std::io::Result<File> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::new(
            ErrorKind::ResourceBusy,
            format!(
                "spool directory {} is in use: another process (a second sensor?) holds its LOCK",
                dir.display()
            ),
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::new(
            e.kind(),
            format!("locking {}: {e}", path.display()),
        )),
    }
}

/// The first batch id a segment's file name carries; `None` for any other
/// file (left alone).
fn parse_name(name: &str) -> Option<BatchId> {
    let (epoch, sequence) = name.strip_suffix(SUFFIX)?.split_once('-')?;
    let digits = |s: &str| s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(epoch) || !digits(sequence) {
        return None;
    }
    Some(BatchId {
        epoch: epoch.parse().ok()?,
        sequence: sequence.parse().ok()?,
    })
}

//! The receiver's output: `<record type>.jsonl` files and the ledger of
//! batches written (`.nucleus-ledger.jsonl`), in one directory.
//!
//! A batch is written once: its identity (sensor id, epoch, sequence) is
//! looked up in the ledger first; a new batch's records are appended to
//! their files and fsynced, then a ledger line with the identity and the
//! size of every file after the batch is appended and fsynced. Only then is
//! the batch acknowledged. On start, the ledger is read back and every
//! output file is cut to the size its last line records, so a batch
//! interrupted by a crash leaves nothing behind and is written whole when
//! the sensor sends it again.
//!
//! Bounded: per (sensor, epoch) only the last [`WINDOW`] sequences are
//! remembered one by one ([`Seen`]); a sequence further below the highest
//! one seen is a duplicate (a sensor sends in order with at most 1024
//! batches unacknowledged, so nothing new ever arrives that far behind).
//! The ledger is rewritten with just those lines once it holds more than
//! twice as many (at start, and every [`COMPACT_EVERY`] lines written).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result};
use nucleus_proto::Record;
use serde::{Deserialize, Serialize};

const LEDGER: &str = ".nucleus-ledger.jsonl";
/// The record types, as the JSON view's `type` and the output file names.
const TYPES: [&str; 6] = ["flow", "dns", "http", "tls", "quic", "ssh"];

/// Sequences remembered one by one below the highest of an epoch.
const WINDOW: u64 = 4096;
/// Ledger lines written between two looks at whether to compact it.
const COMPACT_EVERY: u64 = 1 << 20;

/// The batches written, per (sensor, epoch): the highest sequence and the
/// sequences within [`WINDOW`] of it.
#[derive(Debug)]
struct Seen {
    window: u64,
    by_epoch: HashMap<(String, u64), BTreeSet<u64>>,
}

impl Seen {
    fn new(window: u64) -> Self {
        Self {
            window,
            by_epoch: HashMap::new(),
        }
    }

    fn contains(&self, sensor: &str, epoch: u64, sequence: u64) -> bool {
        let Some(recent) = self.by_epoch.get(&(sensor.to_string(), epoch)) else {
            return false;
        };
        let max = recent.last().copied().unwrap_or(0);
        sequence.saturating_add(self.window) <= max || recent.contains(&sequence)
    }

    fn insert(&mut self, sensor: &str, epoch: u64, sequence: u64) {
        let recent = self
            .by_epoch
            .entry((sensor.to_string(), epoch))
            .or_default();
        recent.insert(sequence);
        let max = recent.last().copied().unwrap_or(0);
        while recent
            .first()
            .is_some_and(|&s| s.saturating_add(self.window) <= max)
        {
            recent.pop_first();
        }
    }

    /// Identities remembered one by one.
    fn len(&self) -> u64 {
        self.by_epoch.values().map(|r| r.len() as u64).sum()
    }
}

/// One line of the ledger.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    sensor: String,
    epoch: u64,
    sequence: u64,
    /// Size of each output file once this batch was written.
    sizes: BTreeMap<String, u64>,
}

/// What became of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Its records were written.
    Written,
    /// It had been written before; nothing was written.
    Duplicate,
}

struct Inner {
    dir: PathBuf,
    ledger: File,
    sizes: BTreeMap<String, u64>,
    seen: Seen,
    /// Lines in the ledger file.
    lines: u64,
    /// Lines written since the last look at compaction.
    since_compaction: u64,
}

/// The output directory, shared by every connection.
pub struct Store {
    inner: Mutex<Inner>,
}

fn record_type(r: &Record) -> &'static str {
    match r {
        Record::Flow(_) => TYPES[0],
        Record::Dns(_) => TYPES[1],
        Record::Http(_) => TYPES[2],
        Record::Tls(_) => TYPES[3],
        Record::Quic(_) => TYPES[4],
        Record::Ssh(_) => TYPES[5],
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("{}: fsync", dir.display()))
}

impl Store {
    /// Opens (or creates) `dir`, reads its ledger and cuts the output files
    /// back to the last batch the ledger records.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with_window(dir, WINDOW)
    }

    fn open_with_window(dir: &Path, window: u64) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
        let path = dir.join(LEDGER);
        let mut seen = Seen::new(window);
        let mut lines = 0u64;
        let mut sizes = BTreeMap::new();
        let mut good_len = 0u64;
        if let Ok(f) = File::open(&path) {
            let mut r = BufReader::new(f);
            let mut line = String::new();
            loop {
                line.clear();
                let n = r
                    .read_line(&mut line)
                    .with_context(|| format!("{}", path.display()))?;
                // A line cut by a crash (no newline, or not an entry) ends
                // the ledger: its batch was never acknowledged.
                let Some(text) = line.strip_suffix('\n') else {
                    break;
                };
                let Ok(e) = serde_json::from_str::<Entry>(text) else {
                    break;
                };
                good_len += n as u64;
                lines += 1;
                seen.insert(&e.sensor, e.epoch, e.sequence);
                sizes = e.sizes;
            }
        }
        let ledger = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("{}", path.display()))?;
        ledger
            .set_len(good_len)
            .with_context(|| format!("{}", path.display()))?;
        for t in TYPES {
            let p = dir.join(format!("{t}.jsonl"));
            let keep = sizes.get(t).copied().unwrap_or(0);
            if let Ok(f) = OpenOptions::new().write(true).open(&p) {
                let len = f.metadata().map(|m| m.len()).unwrap_or(0);
                if len > keep {
                    eprintln!(
                        "nucleus: {}: cutting {} bytes of an unacknowledged batch",
                        p.display(),
                        len - keep
                    );
                    f.set_len(keep)
                        .and_then(|()| f.sync_all())
                        .with_context(|| format!("{}", p.display()))?;
                }
            }
        }
        sync_dir(dir)?;
        let mut inner = Inner {
            dir: dir.to_path_buf(),
            ledger,
            sizes,
            seen,
            lines,
            since_compaction: 0,
        };
        inner.maybe_compact()?;
        Ok(Self {
            inner: Mutex::new(inner),
        })
    }

    /// Writes a batch's records durably, once.
    pub fn write(
        &self,
        sensor: &str,
        epoch: u64,
        sequence: u64,
        records: &[Record],
    ) -> Result<Outcome> {
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| anyhow::anyhow!("the store failed in another connection"))?;
        if inner.seen.contains(sensor, epoch, sequence) {
            return Ok(Outcome::Duplicate);
        }
        let mut by_type: BTreeMap<&'static str, Vec<u8>> = BTreeMap::new();
        for r in records {
            let buf = by_type.entry(record_type(r)).or_default();
            serde_json::to_writer(&mut *buf, r)?;
            buf.push(b'\n');
        }
        let mut created = false;
        for (t, bytes) in &by_type {
            let p = inner.dir.join(format!("{t}.jsonl"));
            created |= !p.exists();
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&p)
                .with_context(|| format!("{}", p.display()))?;
            f.write_all(bytes)
                .and_then(|()| f.sync_data())
                .with_context(|| format!("{}: writing", p.display()))?;
            *inner.sizes.entry((*t).to_string()).or_default() += bytes.len() as u64;
        }
        if created {
            sync_dir(&inner.dir)?;
        }
        let entry = Entry {
            sensor: sensor.to_string(),
            epoch,
            sequence,
            sizes: inner.sizes.clone(),
        };
        let mut line = serde_json::to_vec(&entry)?;
        line.push(b'\n');
        inner
            .ledger
            .write_all(&line)
            .and_then(|()| inner.ledger.sync_data())
            .context("writing the ledger")?;
        inner.seen.insert(sensor, epoch, sequence);
        inner.lines += 1;
        inner.since_compaction += 1;
        if inner.since_compaction >= COMPACT_EVERY {
            inner.since_compaction = 0;
            inner.maybe_compact()?;
        }
        Ok(Outcome::Written)
    }
}

impl Inner {
    /// Rewrites the ledger with one line per remembered identity (all with
    /// the current sizes, which only the last line's matter for) when it
    /// holds more than twice as many lines: through a temporary file,
    /// fsynced and renamed over the ledger, so a crash leaves one or the
    /// other whole.
    fn maybe_compact(&mut self) -> Result<()> {
        let keep = self.seen.len();
        if self.lines <= keep.saturating_mul(2).max(1024) {
            return Ok(());
        }
        let path = self.dir.join(LEDGER);
        let tmp = self.dir.join(format!("{LEDGER}.tmp"));
        let mut out = std::io::BufWriter::new(
            File::create(&tmp).with_context(|| format!("{}", tmp.display()))?,
        );
        let mut ids: Vec<(&(String, u64), &BTreeSet<u64>)> = self.seen.by_epoch.iter().collect();
        ids.sort();
        for ((sensor, epoch), recent) in ids {
            for &sequence in recent {
                let entry = Entry {
                    sensor: sensor.clone(),
                    epoch: *epoch,
                    sequence,
                    sizes: self.sizes.clone(),
                };
                serde_json::to_writer(&mut out, &entry)?;
                out.write_all(b"\n")?;
            }
        }
        let file = out
            .into_inner()
            .map_err(|e| anyhow::anyhow!("{}: {}", tmp.display(), e.error()))?;
        file.sync_all()
            .with_context(|| format!("{}: fsync", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("{}", path.display()))?;
        sync_dir(&self.dir)?;
        self.ledger = OpenOptions::new()
            .append(true)
            .open(&path)
            .with_context(|| format!("{}", path.display()))?;
        eprintln!(
            "nucleus: ledger compacted from {} to {keep} lines",
            self.lines
        );
        self.lines = keep;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_remembers_recent_sequences_and_treats_older_ones_as_seen() {
        let mut seen = Seen::new(WINDOW);
        assert!(!seen.contains("s", 1, 0));
        for q in [0, 1, 2, 5] {
            seen.insert("s", 1, q);
        }
        assert!(seen.contains("s", 1, 2) && seen.contains("s", 1, 5));
        assert!(!seen.contains("s", 1, 3), "a gap is not a duplicate");
        assert!(!seen.contains("s", 2, 0) && !seen.contains("t", 1, 0));
        seen.insert("s", 1, 10_000);
        // Far below the highest: a duplicate, and no longer stored.
        assert!(seen.contains("s", 1, 3));
        assert_eq!(seen.len(), 1);
        assert!(!seen.contains("s", 1, 10_000 - WINDOW + 1));
    }

    #[test]
    fn a_long_ledger_is_compacted_and_still_deduplicates_after_a_restart() {
        let dir = std::env::temp_dir().join(format!("nucleus-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let window = 64;
        let open = |d: &Path| Store::open_with_window(d, window).unwrap();
        let store = open(&dir);
        let n = 1100;
        for q in 0..n {
            assert_eq!(store.write("s", 7, q, &[]).unwrap(), Outcome::Written);
        }
        drop(store);
        let ledger_lines = |d: &Path| {
            std::fs::read_to_string(d.join(LEDGER))
                .unwrap()
                .lines()
                .count()
        };
        assert_eq!(ledger_lines(&dir) as u64, n);
        // Reopening compacts (1100 lines, 64 remembered).
        let store = open(&dir);
        assert_eq!(ledger_lines(&dir) as u64, window);
        for q in [0, n / 2, n - 1] {
            assert_eq!(store.write("s", 7, q, &[]).unwrap(), Outcome::Duplicate);
        }
        assert_eq!(store.write("s", 7, n, &[]).unwrap(), Outcome::Written);
        drop(store);
        let store = open(&dir);
        assert_eq!(store.write("s", 7, n, &[]).unwrap(), Outcome::Duplicate);
        assert_eq!(store.write("s", 8, 0, &[]).unwrap(), Outcome::Written);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

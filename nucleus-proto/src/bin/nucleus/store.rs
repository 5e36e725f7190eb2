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

use std::collections::{BTreeMap, HashSet};
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
    seen: HashSet<(String, u64, u64)>,
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
        std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
        let path = dir.join(LEDGER);
        let mut seen = HashSet::new();
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
                seen.insert((e.sensor, e.epoch, e.sequence));
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
        Ok(Self {
            inner: Mutex::new(Inner {
                dir: dir.to_path_buf(),
                ledger,
                sizes,
                seen,
            }),
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
        let id = (sensor.to_string(), epoch, sequence);
        if inner.seen.contains(&id) {
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
        inner.seen.insert(id);
        Ok(Outcome::Written)
    }
}

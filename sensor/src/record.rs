//! Record output: where finished records go, in a deterministic order.
//!
//! Owns: the JSON-lines view and the order records are written in (by start
//! time, then uid, within each sweep of the packet clock). Input: records
//! from the flow stage. Output: bytes to a file or stdout, or (through
//! [`TeeSink`]) those and the Nucleus exporter (`export::NucleusSink`).
//! Does not: build records.

use nucleus_proto::Record;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Somewhere finished records go.
pub trait RecordSink {
    /// Writes a batch of records (already in output order).
    fn write_batch(&mut self, records: &[Record]) -> io::Result<()>;
    /// Writes a batch the caller gives away: a sink that changes or keeps
    /// records (enrichment, an exporter's queue) overrides it to save a
    /// copy.
    fn write_owned(&mut self, records: Vec<Record>) -> io::Result<()> {
        self.write_batch(&records)
    }
    /// Flushes buffered output.
    fn flush(&mut self) -> io::Result<()>;
    /// Lets time-driven work happen (a batch sealed by age); the owner
    /// calls it at least every 100 ms while records may be pending.
    fn tick(&mut self) {}
    /// Ends the output: flushes, and delivers or reports what is pending.
    fn close(&mut self) -> io::Result<()> {
        self.flush()
    }
}

/// Two sinks fed the same records: JSON lines and the Nucleus exporter.
/// A failure of one does not keep records from the other; the first
/// error is returned.
pub struct TeeSink {
    /// Gets each batch by reference.
    pub first: Box<dyn RecordSink + Send>,
    /// Gets each batch by value, after `first`.
    pub second: Box<dyn RecordSink + Send>,
}

/// `first` and `second` as one sink: both through a [`TeeSink`], the one
/// that is there, or none.
pub fn tee(
    first: Option<Box<dyn RecordSink + Send>>,
    second: Option<Box<dyn RecordSink + Send>>,
) -> Option<Box<dyn RecordSink + Send>> {
    match (first, second) {
        (Some(first), Some(second)) => Some(Box::new(TeeSink { first, second })),
        (one, other) => one.or(other),
    }
}

impl RecordSink for TeeSink {
    fn write_batch(&mut self, records: &[Record]) -> io::Result<()> {
        let a = self.first.write_batch(records);
        let b = self.second.write_batch(records);
        a.and(b)
    }

    fn write_owned(&mut self, records: Vec<Record>) -> io::Result<()> {
        let a = self.first.write_batch(&records);
        let b = self.second.write_owned(records);
        a.and(b)
    }

    fn flush(&mut self) -> io::Result<()> {
        let a = self.first.flush();
        let b = self.second.flush();
        a.and(b)
    }

    fn tick(&mut self) {
        self.first.tick();
        self.second.tick();
    }

    fn close(&mut self) -> io::Result<()> {
        let a = self.first.close();
        let b = self.second.close();
        a.and(b)
    }
}

/// Sorts one sweep's records into output order: start time, then uid (then
/// kind and position in the flow, see [`Record::sort_key`]); equal keys keep
/// their input order.
///
/// Each record's start time, uid head and index are packed into one `u128`
/// and those integers are sorted instead of the records: comparing records
/// directly follows two boxes and rebuilds two keys per comparison, and an
/// integer comparison costs a fraction of a tuple's. The index in the low
/// bits makes every key distinct, so the unstable sort gives the stable
/// order of the packed part. Records that tie on it (mostly a flow and its
/// own transactions) are then put in the order of their whole keys,
/// stably, and the records are moved into the sorted order.
pub fn sort_records(records: &mut [Record]) {
    if u32::try_from(records.len()).is_err() {
        // More records than a packed key can index (no sweep comes near):
        // the whole keys, stably.
        records.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        return;
    }
    let mut keys: Vec<u128> = records
        .iter()
        .enumerate()
        .map(|(at, r)| {
            let (ts, uid, _, _) = r.sort_key();
            packed_key(ts, uid) | at as u128
        })
        .collect();
    keys.sort_unstable();
    let mut order: Vec<usize> = keys.iter().map(|&k| (k & INDEX_MASK) as usize).collect();
    // A run that ties on time and uid head is in ascending index order
    // (input order) now; a stable sort by the whole keys finishes it.
    let mut start = 0;
    while let Some(&first) = keys.get(start) {
        let tied = keys[start + 1..]
            .iter()
            .take_while(|&&k| (k ^ first) & !INDEX_MASK == 0)
            .count();
        let end = start + 1 + tied;
        if tied > 0 {
            order[start..end].sort_by(|&a, &b| records[a].sort_key().cmp(&records[b].sort_key()));
        }
        start = end;
    }
    apply_order(records, order);
}

/// The packed key's index bits (its low 32).
const INDEX_MASK: u128 = u32::MAX as u128;

/// The start time (offset to order as an unsigned number) in the high 64
/// bits, the uid's first 4 bytes (zero-padded, big-endian) in the next 32,
/// the low 32 bits zero (for the index). When two heads differ they order
/// as their strings do (the strings first differ there, or the shorter is
/// a prefix of the longer); equal heads leave the order to the whole keys.
fn packed_key(ts: i64, uid: &str) -> u128 {
    let mut head = [0u8; 4];
    let n = uid.len().min(4);
    head[..n].copy_from_slice(&uid.as_bytes()[..n]);
    let ts = (ts as u64) ^ (1 << 63);
    (u128::from(ts) << 64) | u128::from(u32::from_be_bytes(head)) << 32
}

/// Moves the records so that position i takes the record at `order[i]`:
/// each cycle of the permutation is followed once, marking a position done
/// by pointing it at itself.
fn apply_order(records: &mut [Record], mut order: Vec<usize>) {
    for start in 0..order.len() {
        let mut at = start;
        while order[at] != at {
            let from = order[at];
            order[at] = at;
            if from == start {
                break;
            }
            records.swap(at, from);
            at = from;
        }
    }
}

/// One JSON object per line.
pub struct JsonLinesSink<W: Write> {
    out: io::BufWriter<W>,
}

impl<W: Write> JsonLinesSink<W> {
    /// Writes to `w` through a buffer.
    pub fn new(w: W) -> Self {
        Self {
            out: io::BufWriter::with_capacity(1 << 16, w),
        }
    }
}

impl<W: Write> RecordSink for JsonLinesSink<W> {
    fn write_batch(&mut self, records: &[Record]) -> io::Result<()> {
        for r in records {
            serde_json::to_writer(&mut self.out, r).map_err(io::Error::other)?;
            self.out.write_all(b"\n")?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// JSON lines appended to a file that is rotated by size: when writing a
/// record would take the file past `rotate_bytes`, `PATH.N-1` becomes
/// `PATH.N` (the oldest, `PATH.keep_files`, is overwritten), ..., `PATH`
/// becomes `PATH.1`, and a new `PATH` is started. A file is never left
/// empty by a rotation (one record larger than the limit gets a file of its
/// own). An existing `PATH` is appended to, so a restart loses nothing.
pub struct RotatingFileSink {
    path: PathBuf,
    rotate_bytes: u64,
    keep_files: usize,
    out: io::BufWriter<File>,
    written: u64,
    line: Vec<u8>,
}

impl RotatingFileSink {
    /// Opens (or creates) `path` for appending. `rotate_bytes == 0` never
    /// rotates; `keep_files == 0` keeps no rotated file.
    pub fn open(
        path: impl Into<PathBuf>,
        rotate_bytes: u64,
        keep_files: usize,
    ) -> io::Result<Self> {
        let path = path.into();
        let file = open_append(&path)?;
        let written = file.metadata()?.len();
        Ok(Self {
            path,
            rotate_bytes,
            keep_files,
            out: io::BufWriter::with_capacity(1 << 16, file),
            written,
            line: Vec::with_capacity(1024),
        })
    }

    fn rotated(&self, n: usize) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.out.flush()?;
        if self.keep_files == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            for n in (1..self.keep_files).rev() {
                let from = self.rotated(n);
                if from.exists() {
                    std::fs::rename(&from, self.rotated(n + 1))?;
                }
            }
            std::fs::rename(&self.path, self.rotated(1))?;
        }
        self.out = io::BufWriter::with_capacity(1 << 16, open_append(&self.path)?);
        self.written = 0;
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl RecordSink for RotatingFileSink {
    fn write_batch(&mut self, records: &[Record]) -> io::Result<()> {
        for r in records {
            self.line.clear();
            serde_json::to_writer(&mut self.line, r).map_err(io::Error::other)?;
            self.line.push(b'\n');
            let len = self.line.len() as u64;
            if self.rotate_bytes > 0 && self.written > 0 && self.written + len > self.rotate_bytes {
                self.rotate()?;
            }
            self.out.write_all(&self.line)?;
            self.written += len;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Discards records (they are still counted by the pipeline): for
/// benchmarks and `--stats` runs without output.
#[derive(Debug, Default)]
pub struct DiscardSink;

impl RecordSink for DiscardSink {
    fn write_batch(&mut self, _records: &[Record]) -> io::Result<()> {
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A one-packet UDP flow from 10.0.0.1:`src_port` to 10.0.0.2:53, for
/// tests of what handles records; each test changes what it needs.
#[cfg(test)]
pub(crate) fn flow_record(src_port: u16) -> nucleus_proto::FlowRecord {
    use nucleus_proto::{FlowRecord, Proto, TimestampMicros};
    FlowRecord {
        ts: TimestampMicros(0),
        end_ts: TimestampMicros(0),
        uid: "C0".into(),
        community_id: String::new(),
        proto: Proto(17),
        src_ip: [10, 0, 0, 1].into(),
        src_port,
        dst_ip: [10, 0, 0, 2].into(),
        dst_port: 53,
        orig_pkts: 1,
        orig_bytes: 0,
        orig_ip_bytes: 0,
        resp_pkts: 0,
        resp_bytes: 0,
        resp_ip_bytes: 0,
        orig_tcp_flags: None,
        resp_tcp_flags: None,
        conn_state: "S0".into(),
        history: "D".into(),
        missed_bytes: 0,
        truncated_bytes: 0,
        duration: 0.0,
        service: None,
        tunnel: Vec::new(),
        vantages: 1,
        duplicate_pkts: 0,
        vantage: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(port: u16) -> Record {
        Record::Flow(Box::new(flow_record(port)))
    }

    /// Times on both sides of zero and at the ends of the range: the packed
    /// key must order them as signed numbers.
    const TIMES: [i64; 6] = [i64::MIN, -1, 0, 1, 1_700_000_000_000_000, i64::MAX];

    /// Uids that tie on the packed key's 4-byte head, differ inside it,
    /// are prefixes of one another, or hold a zero byte.
    const UIDS: [&str; 9] = [
        "C",
        "C\0",
        "C0",
        "CAAB",
        "CAAAAA",
        "CAAAAA\0",
        "CAAAAAB",
        "CAAAAAAAAAAAAAAAAAB",
        "CAAAAB",
    ];

    /// A flow record (kind 0) or an HTTP record (kind 1) of `uid` at `ts`;
    /// `tag` (the source port) tells equal keys apart.
    fn keyed(kind: u8, ts: i64, uid: &str, seq: u64, tag: u16) -> Record {
        let mut flow = flow_record(tag);
        flow.ts = nucleus_proto::TimestampMicros(ts);
        flow.uid = uid.into();
        if kind == 0 {
            return Record::Flow(Box::new(flow));
        }
        Record::Http(Box::new(nucleus_proto::AppRecord {
            ts: flow.ts,
            flow: nucleus_proto::FlowRef {
                uid: uid.into(),
                community_id: String::new(),
                proto: flow.proto,
                src_ip: flow.src_ip,
                src_port: tag,
                dst_ip: flow.dst_ip,
                dst_port: flow.dst_port,
            },
            seq,
            body: nucleus_proto::HttpRecord::default(),
        }))
    }

    proptest::proptest! {
        #[test]
        fn the_sort_gives_the_stable_order_of_the_whole_keys(
            specs in proptest::collection::vec(
                (0u8..2, 0..TIMES.len(), 0..UIDS.len(), 0u64..3),
                0..80,
            )
        ) {
            let records: Vec<Record> = specs
                .iter()
                .enumerate()
                .map(|(tag, &(kind, ts, uid, seq))| keyed(kind, TIMES[ts], UIDS[uid], seq, tag as u16))
                .collect();
            let mut expected = records.clone();
            expected.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
            let mut packed = records;
            sort_records(&mut packed);
            proptest::prop_assert_eq!(&packed, &expected);
        }
    }

    fn lines(p: &Path) -> Vec<String> {
        std::fs::read_to_string(p)
            .map(|s| s.lines().map(str::to_string).collect())
            .unwrap_or_default()
    }

    #[test]
    fn rotation_keeps_every_record_in_order_within_the_size_limit() {
        let dir = tempdir();
        let path = dir.join("records.json");
        let one_line = serde_json::to_vec(&record(1)).unwrap().len() as u64 + 1;
        // Three records per file.
        let mut sink = RotatingFileSink::open(&path, one_line * 3, 2).unwrap();
        let recs: Vec<Record> = (1..=8).map(record).collect();
        sink.write_batch(&recs[..5]).unwrap();
        sink.write_batch(&recs[5..]).unwrap();
        sink.flush().unwrap();
        let ports = |p: &Path| -> Vec<u64> {
            lines(p)
                .iter()
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l).unwrap()["src_port"]
                        .as_u64()
                        .unwrap()
                })
                .collect()
        };
        // Files hold 1-3, 4-6, 7-8; the newest is PATH.
        assert_eq!(ports(&path), vec![7, 8]);
        assert_eq!(ports(&dir.join("records.json.1")), vec![4, 5, 6]);
        assert_eq!(ports(&dir.join("records.json.2")), vec![1, 2, 3]);
        assert!(!dir.join("records.json.3").exists());
        // One more rotation drops the oldest file.
        sink.write_batch(&[record(9), record(10)]).unwrap();
        sink.flush().unwrap();
        assert_eq!(ports(&path), vec![10]);
        assert_eq!(ports(&dir.join("records.json.1")), vec![7, 8, 9]);
        assert_eq!(ports(&dir.join("records.json.2")), vec![4, 5, 6]);
        assert!(!dir.join("records.json.3").exists());
        for p in [
            path.clone(),
            dir.join("records.json.1"),
            dir.join("records.json.2"),
        ] {
            assert!(std::fs::metadata(&p).unwrap().len() <= one_line * 3);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn reopening_appends_and_zero_never_rotates() {
        let dir = tempdir();
        let path = dir.join("r.json");
        let mut a = RotatingFileSink::open(&path, 0, 3).unwrap();
        a.write_batch(&[record(1), record(2)]).unwrap();
        a.flush().unwrap();
        drop(a);
        let mut b = RotatingFileSink::open(&path, 0, 3).unwrap();
        b.write_batch(&[record(3)]).unwrap();
        b.flush().unwrap();
        assert_eq!(lines(&path).len(), 3);
        assert!(!dir.join("r.json.1").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn keep_zero_discards_the_full_file() {
        let dir = tempdir();
        let path = dir.join("r.json");
        let mut s = RotatingFileSink::open(&path, 1, 0).unwrap();
        s.write_batch(&[record(1), record(2)]).unwrap();
        s.flush().unwrap();
        assert_eq!(lines(&path).len(), 1);
        assert!(!dir.join("r.json.1").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempdir() -> PathBuf {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let d = std::env::temp_dir().join(format!(
            "sensor-record-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}

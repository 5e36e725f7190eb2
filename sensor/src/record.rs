//! Record output: where finished records go, in a deterministic order.
//!
//! Owns: the JSON-lines view and the order records are written in (by start
//! time, then uid, within each sweep of the packet clock). Input: records
//! from the flow stage. Output: bytes to a file or stdout (the Nucleus
//! exporter plugs in here later). Does not: build records.

use nucleus_proto::Record;
use std::io::{self, Write};

/// Somewhere finished records go.
pub trait RecordSink {
    /// Writes a batch of records (already in output order).
    fn write_batch(&mut self, records: &[Record]) -> io::Result<()>;
    /// Flushes buffered output.
    fn flush(&mut self) -> io::Result<()>;
}

/// Sorts one sweep's records into output order: start time, then uid.
pub fn sort_records(records: &mut [Record]) {
    records.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
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

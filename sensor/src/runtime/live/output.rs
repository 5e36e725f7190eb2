//! The output thread: records from every worker → one [`RecordSink`].
//!
//! Owns: the sink (stdout or a size-rotated file, and/or the Nucleus
//! exporter, behind enrichment of flow records when enrollment runs),
//! ticking it (batches sealed by age), flushing at least every
//! [`FLUSH_EVERY`], and the `output_error` count (records a failed write
//! lost; the first error is logged). Input: record chunks on a bounded
//! channel. Output: JSON lines. Does not: order records across workers
//! (each worker's sweep is sorted; live output has no global order).

use super::publish::Publisher;
use crate::config::{OutputConfig, SensorConfig};
use crate::enroll::enrich::EnrichingSink;
use crate::enroll::inventory::Inventory;
use crate::metrics::{Counters, Drop};
use crate::metrics::{Gauges, LiveStats};
use crate::record::{JsonLinesSink, RecordSink, RotatingFileSink, tee};
use anyhow::Context;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use nucleus_proto::Record;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest time a written record stays in a buffer.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// How long the thread waits for records before it publishes as idle.
const IDLE_WAIT: Duration = Duration::from_millis(100);

/// Opens the configured sinks: JSON lines (`-` for stdout, else a rotated
/// file; none when `output.json` is empty) and the Nucleus exporter when
/// `[nucleus] address` is set, whose status goes into `stats`; flow
/// records are enriched first when there is an `inventory`.
pub fn open_sink(
    cfg: &SensorConfig,
    stats: &LiveStats,
    inventory: Option<&Arc<Inventory>>,
) -> anyhow::Result<Box<dyn RecordSink + Send>> {
    let json = open_json(&cfg.output)?;
    let exporter = crate::export::start_configured(cfg)?;
    if let Some(e) = &exporter {
        let _ = stats.export.set(e.status());
    }
    let exporter = exporter.map(|e| Box::new(e) as Box<dyn RecordSink + Send>);
    let sink = tee(json, exporter)
        .context("no output: output.json is empty and no [nucleus] address is set")?;
    Ok(match inventory {
        Some(inventory) => Box::new(EnrichingSink::new(sink, Arc::clone(inventory))),
        None => sink,
    })
}

fn open_json(cfg: &OutputConfig) -> anyhow::Result<Option<Box<dyn RecordSink + Send>>> {
    if cfg.json.is_empty() {
        return Ok(None);
    }
    if cfg.json == "-" {
        return Ok(Some(Box::new(JsonLinesSink::new(std::io::stdout()))));
    }
    let sink = RotatingFileSink::open(&cfg.json, cfg.rotate_bytes, cfg.keep_files)
        .with_context(|| format!("opening the record file {}", cfg.json))?;
    Ok(Some(Box::new(sink)))
}

/// Writes every record received until all workers are gone, then flushes.
pub fn run(
    records: &Receiver<Vec<Record>>,
    mut sink: Box<dyn RecordSink + Send>,
    mut publisher: Publisher,
) {
    let mut counters = Counters::default();
    let mut error_logged = false;
    let mut dirty = false;
    let mut last_flush = Instant::now();
    let mut report = |e: std::io::Error, counters: &mut Counters, lost: u64| {
        counters.drop_n(Drop::OutputError, lost);
        if !error_logged {
            eprintln!("sensor: error: writing records: {e} (further errors are only counted)");
            error_logged = true;
        }
    };
    loop {
        match records.recv_timeout(IDLE_WAIT) {
            Ok(chunk) => {
                let started = Instant::now();
                let n = chunk.len();
                if let Err(e) = sink.write_owned(chunk) {
                    report(e, &mut counters, n as u64);
                }
                dirty = true;
                publisher.batch(n, started.elapsed());
                publisher.maybe_publish(&counters, Gauges::default());
            }
            Err(RecvTimeoutError::Timeout) => publisher.publish(&counters, Gauges::default()),
            Err(RecvTimeoutError::Disconnected) => break,
        }
        sink.tick();
        if dirty && last_flush.elapsed() >= FLUSH_EVERY {
            if let Err(e) = sink.flush() {
                report(e, &mut counters, 0);
            }
            dirty = false;
            last_flush = Instant::now();
        }
    }
    if let Err(e) = sink.close() {
        report(e, &mut counters, 0);
    }
    publisher.publish(&counters, Gauges::default());
}

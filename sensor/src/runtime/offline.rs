//! The offline pipeline: capture files through the same stages as the live
//! sensor, on the calling thread (`workers = 1`) or with a dispatcher and
//! worker threads (`workers > 1`), giving byte-identical output either way.

use super::{Clock, Frontend, Origin, Worker};
use crate::capture::{CaptureError, RawFrame, read_capture};
use crate::config::PipelineConfig;
use crate::decap::tunnel::TunnelContext;
use crate::decap::{Decoded, LinkType};
use crate::flow::key::{PacketTuple, steering_hash};
use crate::metrics::Counters;
use crate::record::RecordSink;
use crossbeam_channel::{Receiver, Sender, bounded};
use foldhash::fast::FixedState;
use nucleus_proto::Record;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Frames per batch handed to a worker.
const BATCH_FRAMES: usize = 256;
/// Batches queued per worker (the dispatcher waits beyond it: offline input
/// can always wait; nothing is dropped).
const QUEUE_BATCHES: usize = 16;

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Everything counted, summed over stages and workers.
    pub counters: Counters,
    /// Wall-clock time of the run.
    pub elapsed: Duration,
    /// Files that could not be read, with the reason.
    pub file_errors: Vec<String>,
}

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Writing records failed.
    #[error("writing records")]
    Output(#[from] std::io::Error),
    /// A worker thread died.
    #[error("worker thread failed: {0}")]
    Worker(String),
}

/// Runs `files` in order through the pipeline, writing records to `sink`.
/// Unreadable files are reported in the summary and skipped.
pub fn run_files(
    files: &[PathBuf],
    cfg: &PipelineConfig,
    workers: usize,
    sink: &mut (dyn RecordSink + Send),
) -> Result<RunSummary, RunError> {
    let start = Instant::now();
    let (counters, file_errors) = if workers <= 1 {
        run_inline(files, cfg, sink)?
    } else {
        run_threaded(files, cfg, workers, sink)?
    };
    sink.close()?;
    Ok(RunSummary {
        counters,
        elapsed: start.elapsed(),
        file_errors,
    })
}

fn read_all(
    files: &[PathBuf],
    capture_counters: &mut Counters,
    on_frame: &mut dyn FnMut(RawFrame<'_>, &mut Counters),
) -> Vec<String> {
    let mut errors = Vec::new();
    for f in files {
        if let Err(e) = read_capture(f, capture_counters, on_frame) {
            errors.push(match e {
                CaptureError::Io { .. } | CaptureError::NotACapture { .. } => e.to_string(),
            });
        }
    }
    errors
}

fn run_inline(
    files: &[PathBuf],
    cfg: &PipelineConfig,
    sink: &mut (dyn RecordSink + Send),
) -> Result<(Counters, Vec<String>), RunError> {
    let mut fe = Frontend::new(cfg);
    let mut worker = Worker::new(cfg);
    let mut clock = Clock::new(cfg.flows.sweep_interval);
    let mut capture_counters = Counters::default();
    let mut out_err: Option<std::io::Error> = None;
    let errors = read_all(files, &mut capture_counters, &mut |frame, _| {
        if let Some(now) = clock.advance(frame.ts_us) {
            fe.tick(now);
            let recs = worker.tick(now);
            if let Err(e) = sink.write_owned(recs) {
                out_err.get_or_insert(e);
            }
        }
        let ts = frame.ts_us;
        fe.ingest(&frame, |p, ctx, _| worker.process(p, ctx, ts));
    });
    if let Some(e) = out_err {
        return Err(e.into());
    }
    let recs = worker.finish();
    sink.write_owned(recs)?;
    let mut total = capture_counters;
    total.merge(&fe.counters);
    total.merge(&worker.counters);
    Ok((total, errors))
}

/// One frame (or rebuilt datagram) owned by a batch.
struct Item {
    ts_us: i64,
    link: LinkType,
    start: usize,
    end: usize,
    /// Layers outside a rebuilt datagram; `None` for a whole frame.
    base: Option<TunnelContext>,
}

#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    items: Vec<Item>,
    /// After the items: sweep at this packet time and report.
    tick: Option<i64>,
    /// After the items: end of input.
    end: bool,
}

struct EpochRecords {
    /// Which sweep of the worker this is (0, 1, ...).
    sweep: u64,
    records: Vec<Record>,
    last: bool,
}

fn run_threaded(
    files: &[PathBuf],
    cfg: &PipelineConfig,
    n: usize,
    sink: &mut (dyn RecordSink + Send),
) -> Result<(Counters, Vec<String>), RunError> {
    let mut fe = Frontend::new(cfg);
    let steer = FixedState::with_seed(super::live::STEERING_SEED);
    let (rec_tx, rec_rx) = bounded::<EpochRecords>(n * 4);
    let (recycle_tx, recycle_rx) = bounded::<Batch>(n * (QUEUE_BATCHES + 2));
    let mut senders: Vec<Sender<Batch>> = Vec::with_capacity(n);
    let mut handles = Vec::with_capacity(n);
    for _ in 0..n {
        let (tx, rx) = bounded::<Batch>(QUEUE_BATCHES);
        senders.push(tx);
        let cfg = cfg.clone();
        let decoder = fe.decoder().clone();
        let rec_tx = rec_tx.clone();
        let recycle_tx = recycle_tx.clone();
        handles.push(std::thread::spawn(move || {
            worker_loop(&cfg, &decoder, &rx, &rec_tx, &recycle_tx)
        }));
    }
    drop(rec_tx);
    drop(recycle_tx);

    std::thread::scope(|scope| -> Result<(Counters, Vec<String>), RunError> {
        let writer = scope.spawn(move || writer_loop(n, &rec_rx, sink));
        let mut batches: Vec<Batch> = (0..n).map(|_| Batch::default()).collect();
        let mut clock = Clock::new(cfg.flows.sweep_interval);
        let mut capture_counters = Counters::default();
        let send = |i: usize, b: Batch| senders[i].send(b).is_ok();
        let fresh = |rx: &Receiver<Batch>| {
            let mut b = rx.try_recv().unwrap_or_default();
            b.bytes.clear();
            b.items.clear();
            b.tick = None;
            b.end = false;
            b
        };
        let errors = read_all(files, &mut capture_counters, &mut |frame, _| {
            if let Some(now) = clock.advance(frame.ts_us) {
                fe.tick(now);
                for (i, slot) in batches.iter_mut().enumerate() {
                    let mut b = std::mem::replace(slot, fresh(&recycle_rx));
                    b.tick = Some(now);
                    send(i, b);
                }
            }
            let ts = frame.ts_us;
            let mut full: Option<usize> = None;
            fe.ingest(&frame, |p, _ctx, origin| {
                let i = (steering_hash(&PacketTuple::of(p), &steer) % n as u64) as usize;
                let b = &mut batches[i];
                let start = b.bytes.len();
                let (link, base) = match origin {
                    Origin::Frame => {
                        b.bytes.extend_from_slice(frame.data);
                        (frame.link, None)
                    }
                    Origin::Reassembled { bytes, base } => {
                        b.bytes.extend_from_slice(bytes);
                        (LinkType::RawIp, Some(base.clone()))
                    }
                };
                b.items.push(Item {
                    ts_us: ts,
                    link,
                    start,
                    end: b.bytes.len(),
                    base,
                });
                if b.items.len() >= BATCH_FRAMES {
                    full = Some(i);
                }
            });
            if let Some(i) = full {
                let b = std::mem::replace(&mut batches[i], fresh(&recycle_rx));
                send(i, b);
            }
        });
        for (i, slot) in batches.iter_mut().enumerate() {
            let mut b = std::mem::take(slot);
            b.end = true;
            send(i, b);
        }
        drop(senders);
        let mut total = capture_counters;
        total.merge(&fe.counters);
        for h in handles {
            match h.join() {
                Ok(c) => total.merge(&c),
                Err(_) => return Err(RunError::Worker("a worker panicked".into())),
            }
        }
        match writer.join() {
            Ok(r) => r?,
            Err(_) => return Err(RunError::Worker("the writer panicked".into())),
        }
        Ok((total, errors))
    })
}

fn worker_loop(
    cfg: &PipelineConfig,
    decoder: &crate::decap::Decoder,
    rx: &Receiver<Batch>,
    rec_tx: &Sender<EpochRecords>,
    recycle_tx: &Sender<Batch>,
) -> Counters {
    let mut worker = Worker::new(cfg);
    let mut ctx = TunnelContext::new();
    // Decapsulation anomalies were counted once by the frontend.
    let mut scratch = Counters::default();
    let mut sweep = 0u64;
    while let Ok(batch) = rx.recv() {
        for item in &batch.items {
            let bytes = &batch.bytes[item.start..item.end];
            let decoded = match &item.base {
                None => decoder.decode(item.link, bytes, &mut ctx, &mut scratch),
                Some(base) => {
                    ctx.clone_from(base);
                    decoder.decode_ip(bytes, &mut ctx, &mut scratch)
                }
            };
            if let Decoded::Packet(p) = decoded {
                worker.process(&p, &ctx, item.ts_us);
            }
        }
        if let Some(now) = batch.tick {
            let records = worker.tick(now);
            let _ = rec_tx.send(EpochRecords {
                sweep,
                records,
                last: false,
            });
            sweep += 1;
        }
        if batch.end {
            let records = worker.finish();
            let _ = rec_tx.send(EpochRecords {
                sweep,
                records,
                last: true,
            });
            break;
        }
        let _ = recycle_tx.try_send(batch);
    }
    worker.counters
}

/// Collects each sweep's records from every worker and writes them merged
/// in order. Every worker reports every sweep exactly once and in order, so
/// sweep k is complete once `n` reports of it have arrived, and sweeps
/// complete in order.
fn writer_loop(
    n: usize,
    rx: &Receiver<EpochRecords>,
    sink: &mut (dyn RecordSink + Send),
) -> Result<(), RunError> {
    let mut per_sweep: BTreeMap<u64, (usize, Vec<Record>)> = BTreeMap::new();
    let mut next_to_write = 0u64;
    let mut finished = 0usize;
    let mut result = Ok(());
    while finished < n {
        let Ok(msg) = rx.recv() else { break };
        if msg.last {
            finished += 1;
        }
        let entry = per_sweep.entry(msg.sweep).or_default();
        entry.0 += 1;
        entry.1.extend(msg.records);
        while let Some((count, _)) = per_sweep.get(&next_to_write) {
            if *count < n {
                break;
            }
            if let Some((_, mut records)) = per_sweep.remove(&next_to_write) {
                crate::record::sort_records(&mut records);
                if result.is_ok() {
                    // Keep draining after an error so workers never block.
                    result = sink.write_owned(records).map_err(RunError::from);
                }
            }
            next_to_write += 1;
        }
    }
    result
}

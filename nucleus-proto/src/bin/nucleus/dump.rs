//! `nucleus dump FILE`: the records of a file of Nucleus frames (a
//! preamble, then frames, byte for byte as on the wire) or of a sensor's
//! spool segment (recognised by its magic, `NSPL`) as JSON lines on
//! stdout, the same view `nucleus serve` writes; a summary on stderr.
//!
//! A segment is read through `nucleus_proto::spool::scan_segment`: every
//! good entry's records are printed, each damaged region is named on
//! stderr and skipped, and the dump fails at the end if there was any.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use nucleus_proto::batch::{BatchLimits, open};
use nucleus_proto::frame::{Frame, FrameReader};
use nucleus_proto::pb;
use nucleus_proto::spool::{self, ScanItem};
use prost::Message;

/// Prints every record of every batch in `file`.
pub fn dump(file: &Path, max_frame_bytes: u32, limits: &BatchLimits) -> Result<()> {
    let mut magic = [0u8; 4];
    let n = std::fs::File::open(file)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut magic))
        .with_context(|| format!("{}", file.display()))?;
    if magic[..n] == spool::SEGMENT_MAGIC[..] {
        return dump_segment(file, max_frame_bytes, limits);
    }
    let bytes = std::fs::read(file).with_context(|| format!("{}", file.display()))?;
    let mut reader = FrameReader::new(max_frame_bytes);
    reader.push(&bytes);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let (mut batches, mut records) = (0u64, 0u64);
    while let Some(frame) = reader
        .next_frame()
        .with_context(|| format!("{}: frame after {batches} batches", file.display()))?
    {
        if let Frame::Batch(b) = frame {
            let recs = open(&b, limits).with_context(|| {
                format!(
                    "{}: batch (epoch {}, sequence {})",
                    file.display(),
                    b.epoch,
                    b.sequence
                )
            })?;
            for r in &recs {
                serde_json::to_writer(&mut out, r)?;
                out.write_all(b"\n")?;
            }
            batches += 1;
            records += recs.len() as u64;
        }
    }
    out.flush()?;
    anyhow::ensure!(
        reader.buffered() == 0,
        "{}: {} bytes of a cut-off frame at the end",
        file.display(),
        reader.buffered()
    );
    eprintln!(
        "nucleus: {}: {batches} batches, {records} records",
        file.display()
    );
    Ok(())
}

/// Prints the records of every good entry of a spool segment, names each
/// damaged region, and fails at the end if any entry was damaged or did
/// not hold a batch that opens.
fn dump_segment(file: &Path, max_frame_bytes: u32, limits: &BatchLimits) -> Result<()> {
    let name = file.display();
    let reader = std::fs::File::open(file).with_context(|| format!("{name}"))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let (mut batches, mut records, mut unreadable) = (0u64, 0u64, 0u64);
    let mut failure: Option<anyhow::Error> = None;
    let max_body = max_frame_bytes.saturating_add(spool::ENTRY_FIXED_LEN as u32);
    let summary = spool::scan_segment(reader, max_body, |item| match item {
        ScanItem::Entry(e) => {
            let opened = pb::Batch::decode(e.batch)
                .map_err(anyhow::Error::from)
                .and_then(|b| Ok(open(&b, limits)?));
            match opened {
                Ok(recs) => {
                    batches += 1;
                    records += recs.len() as u64;
                    for r in &recs {
                        let written = serde_json::to_writer(&mut out, r)
                            .map_err(anyhow::Error::from)
                            .and_then(|()| Ok(out.write_all(b"\n")?));
                        if let Err(err) = written {
                            failure.get_or_insert(err);
                        }
                    }
                }
                Err(err) => {
                    unreadable += 1;
                    eprintln!(
                        "nucleus: {name}: the entry at byte {} (epoch {}, sequence {}) is intact \
                         but its batch does not open: {err:#}",
                        e.offset, e.epoch, e.sequence
                    );
                }
            }
        }
        ScanItem::Damaged { offset, len } => {
            eprintln!(
                "nucleus: {name}: bytes {offset}..{} damaged, skipped",
                offset + len
            );
        }
        ScanItem::TruncatedTail { offset, len } => eprintln!(
            "nucleus: {name}: bytes {offset}..{} damaged (an entry cut off at the end), skipped",
            offset + len
        ),
        ScanItem::NeedMore { .. } => {}
    })
    .with_context(|| format!("{name}"))?;
    out.flush()?;
    if let Some(err) = failure {
        return Err(err.context("writing the records"));
    }
    eprintln!(
        "nucleus: {name}: spool segment, {batches} batches, {records} records; \
         {} damaged regions ({} bytes) skipped",
        summary.damaged_regions, summary.damaged_bytes
    );
    anyhow::ensure!(
        summary.damaged_regions == 0 && unreadable == 0,
        "{name}: damaged: {} regions ({} bytes) skipped, {unreadable} entries whose batch does not open",
        summary.damaged_regions,
        summary.damaged_bytes
    );
    Ok(())
}

//! `nucleus dump FILE`: the records of a file of Nucleus frames (a
//! preamble, then frames, byte for byte as on the wire) as JSON lines on
//! stdout, the same view `nucleus serve` writes; a summary on stderr.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use nucleus_proto::batch::{BatchLimits, open};
use nucleus_proto::frame::{Frame, FrameReader};

/// Prints every record of every batch in `file`.
pub fn dump(file: &Path, max_frame_bytes: u32, limits: &BatchLimits) -> Result<()> {
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

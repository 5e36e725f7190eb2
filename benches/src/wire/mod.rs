//! Wire-size measurement for the Nucleus protocol: seals records into
//! framed batches the way the exporter does and counts the bytes, checking
//! on the way that each batch opens to the same JSON view.
//!
//! Owns: the comparison between compressions. Inputs: domain records.
//! Outputs: byte counts. Does not: run the pipeline (the `wire-size` bin
//! does).

use anyhow::{Result, bail};
use nucleus_proto::Record;
use nucleus_proto::batch::{BatchLimits, Compression, block, open, seal};
use nucleus_proto::community_id::CommunityId;
use nucleus_proto::frame::{Frame, HEADER_LEN, encode};
use prost::Message;

/// Bytes for a number of records.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Measurement {
    /// Total bytes.
    pub bytes: u64,
    /// Records.
    pub records: u64,
    /// Time spent sealing (building, encoding and compressing) batches.
    pub seal_time: std::time::Duration,
}

impl Measurement {
    /// Mean bytes per record.
    pub fn per_record(&self) -> f64 {
        self.bytes as f64 / self.records.max(1) as f64
    }

    /// Records sealed per second of one core.
    pub fn records_per_second(&self) -> f64 {
        self.records as f64 / self.seal_time.as_secs_f64().max(1e-9)
    }

    /// The size of `records` as JSON lines (the sensor's `--json` output).
    pub fn json_lines(records: &[Record]) -> Result<Self> {
        let mut bytes = 0u64;
        for r in records {
            bytes += serde_json::to_vec(r)?.len() as u64 + 1;
        }
        Ok(Self {
            bytes,
            records: records.len() as u64,
            seal_time: std::time::Duration::ZERO,
        })
    }
}

/// A way to compress a record block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Variant {
    /// As the protocol sends it.
    Protocol(Compression),
    /// LZ4 (lz4_flex, block format) of the same block, for comparison only:
    /// the protocol does not offer it (PROTOCOL.md says why).
    Lz4,
}

impl Variant {
    /// Every variant worth printing, with the exporter's level first.
    pub fn all(default_level: i32) -> Vec<Variant> {
        let mut v = vec![Variant::Protocol(Compression::Zstd(default_level))];
        for level in [1, 3, 6, 9, 12, 15, 19] {
            if level != default_level {
                v.push(Variant::Protocol(Compression::Zstd(level)));
            }
        }
        v.push(Variant::Lz4);
        v.push(Variant::Protocol(Compression::None));
        v
    }
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Variant::Protocol(Compression::Zstd(l)) => write!(f, "zstd level {l}"),
            Variant::Protocol(Compression::None) => write!(f, "uncompressed"),
            Variant::Lz4 => write!(f, "lz4 (comparison)"),
        }
    }
}

/// Frames `records` in batches of `per_batch` and counts the bytes of the
/// Batch frames (header included). Every protocol batch is opened again
/// and must give the same JSON lines.
pub fn measure(
    records: &[Record],
    per_batch: usize,
    cid: &CommunityId,
    variant: Variant,
) -> Result<Measurement> {
    let mut bytes = 0u64;
    let mut seal_time = std::time::Duration::ZERO;
    let limits = BatchLimits::default();
    for (seq, chunk) in records.chunks(per_batch.max(1)).enumerate() {
        match variant {
            Variant::Protocol(c) => {
                let t = std::time::Instant::now();
                let batch = seal(1, seq as u64, chunk, cid, c)?;
                seal_time += t.elapsed();
                let mut out = Vec::new();
                encode(&Frame::Batch(batch.clone()), u32::MAX, &mut out)?;
                bytes += out.len() as u64;
                let back = open(&batch, &limits)?;
                for (a, b) in chunk.iter().zip(&back) {
                    if serde_json::to_vec(a)? != serde_json::to_vec(b)? {
                        bail!(
                            "batch {seq}: a record's JSON changed on the wire:\n{}",
                            serde_json::to_string(a)?
                        );
                    }
                }
                if back.len() != chunk.len() {
                    bail!(
                        "batch {seq}: {} records sent, {} back",
                        chunk.len(),
                        back.len()
                    );
                }
            }
            Variant::Lz4 => {
                let t = std::time::Instant::now();
                let raw = block(chunk, cid).encode_to_vec();
                let packed = lz4_flex::block::compress_prepend_size(&raw);
                seal_time += t.elapsed();
                // The same Batch fields around it as for zstd.
                let header = seal(1, seq as u64, &[], cid, Compression::None)?.encoded_len();
                bytes += (HEADER_LEN + header + packed.len() + 4) as u64;
            }
        }
    }
    Ok(Measurement {
        bytes,
        records: records.len() as u64,
        seal_time,
    })
}

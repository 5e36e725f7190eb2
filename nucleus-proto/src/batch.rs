//! Record blocks and batches: many domain records as one compressed,
//! numbered unit of delivery.
//!
//! Owns: building a `pb::RecordBlock` from records, compressing it into a
//! `pb::Batch` (seal), and the reverse (open) under limits that hold on
//! hostile input: the declared block size is checked before anything is
//! decompressed, the decompressed size is checked against the declaration,
//! and the records are counted before they are decoded. Inputs: records and
//! the sensor's Community ID settings; or a received `pb::Batch`. Outputs: a
//! `pb::Batch`; or the records. Does not: frame, send, or deduplicate.

use crate::community_id::CommunityId;
use crate::convert::columns::{from_columns, to_columns};
use crate::convert::{ConvertError, Decoder, Encoder, WireRecord};
use crate::{Record, pb};
use prost::Message;
use prost::bytes::Buf;
use prost::encoding::{DecodeContext, WireType, decode_key, decode_varint, skip_field};

/// How a sealed batch is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Not compressed.
    None,
    /// Zstandard at this level (1 to 22; 3 is zstd's default).
    Zstd(i32),
}

/// The exporter's default Zstandard level (measured with `wire-size`:
/// see PROTOCOL.md).
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

/// Limits on what [`open`] accepts: each refuses a batch before the memory
/// it would cost is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Largest RecordBlock, in bytes before compression.
    pub max_block_bytes: u64,
    /// Most records in one batch.
    pub max_records: u32,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self {
            max_block_bytes: 16 << 20,
            max_records: 100_000,
        }
    }
}

/// Why a batch was not opened.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The declared or actual block size is above the limit.
    #[error("record block of {bytes} bytes is over the limit of {limit}")]
    BlockTooLarge {
        /// The size.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// More records than the limit.
    #[error("more than {limit} records in one batch")]
    TooManyRecords {
        /// The limit.
        limit: u32,
    },
    /// A compression this build does not know.
    #[error("unknown compression {0}")]
    UnknownCompression(i32),
    /// The payload does not decompress, or not to the declared size.
    #[error("payload does not decompress to its declared {declared} bytes: {detail}")]
    Decompress {
        /// The declared size.
        declared: u64,
        /// What went wrong.
        detail: String,
    },
    /// The block or a record is not valid protobuf.
    #[error("record block: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// A record does not make a domain record.
    #[error("record {index}: {source}")]
    Record {
        /// Position in the block.
        index: usize,
        /// Why.
        source: ConvertError,
    },
    /// The block's Community ID seed is not 16 bits.
    #[error("community_id_seed {0} is not 16 bits")]
    BadSeed(u64),
    /// A byte of `kinds` that names no record type.
    #[error("record kind {0} is unknown")]
    UnknownKind(u8),
    /// `kinds` and the per-type lists disagree.
    #[error("kinds names {kinds} records, the lists hold {listed} (or of other types)")]
    KindsMismatch {
        /// Length of `kinds`.
        kinds: usize,
        /// Records in the lists.
        listed: usize,
    },
    /// A tunnel stack does not make tunnel layers.
    #[error("tunnel stack: {0}")]
    TunnelStack(ConvertError),
    /// A record's declared length runs past the end of the block.
    #[error("a record runs past the end of the block")]
    RecordPastEnd,
    /// The number of records differs from the batch's record_count.
    #[error("record_count says {declared}, the block holds {actual}")]
    CountMismatch {
        /// record_count.
        declared: u32,
        /// Records in the block.
        actual: usize,
    },
}

/// The block of `records`: its base time is the first record's.
pub fn block(records: &[Record], community_id: &CommunityId) -> pb::RecordBlock {
    let base_ts_us = records.first().map_or(0, |r| r.sort_key().0);
    let mut enc = Encoder::new(community_id.clone(), base_ts_us);
    let mut b = pb::RecordBlock {
        base_ts_us,
        community_id_seed: u32::from(community_id.seed()),
        community_id_hex: !community_id.base64(),
        ..Default::default()
    };
    let mut flows = Vec::new();
    for r in records {
        let w = enc.record(r);
        b.kinds.push(w.kind() as u8);
        match w {
            WireRecord::Flow(m) => flows.push(m),
            WireRecord::Dns(m) => b.dns.push(m),
            WireRecord::Http(m) => b.http.push(m),
            WireRecord::Tls(m) => b.tls.push(m),
            WireRecord::Quic(m) => b.quic.push(m),
            WireRecord::Ssh(m) => b.ssh.push(m),
        }
    }
    if !flows.is_empty() {
        b.flows = Some(to_columns(&flows));
    }
    b.instances = enc.instances();
    b.tunnel_stacks = enc.into_tunnel_stacks();
    b
}

/// A batch of `records`, numbered (epoch, sequence), compressed.
pub fn seal(
    epoch: u64,
    sequence: u64,
    records: &[Record],
    community_id: &CommunityId,
    compression: Compression,
) -> Result<pb::Batch, std::io::Error> {
    let raw = block(records, community_id).encode_to_vec();
    let (code, payload) = match compression {
        Compression::None => (pb::Compression::None, raw.clone()),
        Compression::Zstd(level) => (pb::Compression::Zstd, zstd::bulk::compress(&raw, level)?),
    };
    Ok(pb::Batch {
        epoch,
        sequence,
        compression: code as i32,
        record_count: u32::try_from(records.len()).unwrap_or(u32::MAX),
        block_bytes: raw.len() as u64,
        payload,
    })
}

/// The records of a batch.
pub fn open(batch: &pb::Batch, limits: &BatchLimits) -> Result<Vec<Record>, BatchError> {
    if batch.block_bytes > limits.max_block_bytes {
        return Err(BatchError::BlockTooLarge {
            bytes: batch.block_bytes,
            limit: limits.max_block_bytes,
        });
    }
    if batch.record_count > limits.max_records {
        return Err(BatchError::TooManyRecords {
            limit: limits.max_records,
        });
    }
    let declared = batch.block_bytes;
    let raw: std::borrow::Cow<'_, [u8]> = match pb::Compression::try_from(batch.compression) {
        Ok(pb::Compression::None) => batch.payload.as_slice().into(),
        Ok(pb::Compression::Zstd) => {
            // The capacity is the checked declaration: zstd never writes
            // past it, so a decompression bomb stops there.
            let capacity = usize::try_from(declared).unwrap_or(usize::MAX);
            zstd::bulk::decompress(&batch.payload, capacity)
                .map_err(|e| BatchError::Decompress {
                    declared,
                    detail: e.to_string(),
                })?
                .into()
        }
        Err(_) => return Err(BatchError::UnknownCompression(batch.compression)),
    };
    if raw.len() as u64 != declared {
        return Err(BatchError::Decompress {
            declared,
            detail: format!("{} bytes", raw.len()),
        });
    }
    let records = decode_block(&raw, limits.max_records)?;
    if records.len() != batch.record_count as usize {
        return Err(BatchError::CountMismatch {
            declared: batch.record_count,
            actual: records.len(),
        });
    }
    Ok(records)
}

/// Field numbers of RecordBlock's per-type lists, in `RecordKind` order
/// (kind 1, flows, is field 5: one FlowColumns message rather than a list).
const FIRST_LIST_FIELD: u32 = 5;
const FLOW_COLUMNS_FIELD: u32 = 5;
const KINDS: usize = 6;
const TUNNEL_STACKS_FIELD: u32 = 11;
const INSTANCES_FIELD: u32 = 12;

/// Where each part of a block is, found without decoding any record.
#[derive(Default)]
struct Layout<'a> {
    base_ts_us: i64,
    seed: u64,
    hex: bool,
    kinds: &'a [u8],
    lists: [Vec<(usize, usize)>; KINDS],
    flow_columns: Vec<(usize, usize)>,
    stacks: Vec<(usize, usize)>,
    instances: Vec<(usize, usize)>,
}

/// Finds the parts of a block (wherever the fields are, as protobuf
/// allows), counting every list element against `max_records` before any
/// is decoded.
fn layout(bytes: &[u8], max_records: u32) -> Result<Layout<'_>, BatchError> {
    let mut buf = bytes;
    let mut l = Layout::default();
    let mut elements = 0usize;
    while buf.has_remaining() {
        let (tag, wire_type) = decode_key(&mut buf)?;
        match (tag, wire_type) {
            // int64 travels as its two's complement in a varint.
            (1, WireType::Varint) => l.base_ts_us = decode_varint(&mut buf)? as i64,
            (2, WireType::Varint) => l.seed = decode_varint(&mut buf)?,
            (3, WireType::Varint) => l.hex = decode_varint(&mut buf)? != 0,
            (4.., WireType::LengthDelimited) => {
                let len = usize::try_from(decode_varint(&mut buf)?)
                    .ok()
                    .filter(|&n| n <= buf.remaining())
                    .ok_or(BatchError::RecordPastEnd)?;
                let start = bytes.len() - buf.remaining();
                let span = (start, start + len);
                buf.advance(len);
                let list = match tag {
                    4 => {
                        l.kinds = bytes.get(start..start + len).unwrap_or_default();
                        continue;
                    }
                    TUNNEL_STACKS_FIELD => &mut l.stacks,
                    INSTANCES_FIELD => &mut l.instances,
                    FLOW_COLUMNS_FIELD => {
                        l.flow_columns.push(span);
                        continue;
                    }
                    t => match l.lists.get_mut((t - FIRST_LIST_FIELD) as usize) {
                        Some(list) => list,
                        None => continue,
                    },
                };
                elements += 1;
                if elements > max_records as usize {
                    return Err(BatchError::TooManyRecords { limit: max_records });
                }
                list.push(span);
            }
            _ => skip_field(wire_type, tag, &mut buf, DecodeContext::default())?,
        }
    }
    Ok(l)
}

/// Decodes a RecordBlock into domain records, in `kinds` order.
pub fn decode_block(bytes: &[u8], max_records: u32) -> Result<Vec<Record>, BatchError> {
    let l = layout(bytes, max_records)?;
    if l.kinds.len() > max_records as usize {
        return Err(BatchError::TooManyRecords { limit: max_records });
    }
    let listed: usize = l.lists.iter().map(Vec::len).sum();
    let mut named = [0usize; KINDS];
    for &k in l.kinds {
        let slot = usize::from(k)
            .checked_sub(1)
            .and_then(|i| named.get_mut(i))
            .ok_or(BatchError::UnknownKind(k))?;
        *slot += 1;
    }
    // Flows (kind 1) are counted by their columns, below.
    if named
        .iter()
        .zip(&l.lists)
        .skip(1)
        .any(|(n, list)| *n != list.len())
    {
        return Err(BatchError::KindsMismatch {
            kinds: l.kinds.len(),
            listed,
        });
    }
    let seed = u16::try_from(l.seed).map_err(|_| BatchError::BadSeed(l.seed))?;
    let part = |(start, end): (usize, usize)| bytes.get(start..end).unwrap_or_default();
    // Several occurrences of the columns merge, as protobuf says.
    let mut columns = pb::FlowColumns::default();
    for &span in &l.flow_columns {
        columns.merge(part(span))?;
    }
    let mut flows = from_columns(columns, named[0])
        .map_err(|source| BatchError::Record { index: 0, source })?
        .into_iter();
    let stacks = l
        .stacks
        .iter()
        .map(|&s| pb::TunnelStack::decode(part(s)))
        .collect::<Result<_, _>>()?;
    let instances = l
        .instances
        .iter()
        .map(|&s| pb::Instance::decode(part(s)))
        .collect::<Result<_, _>>()?;
    let mut dec = Decoder::new(CommunityId::new(seed, !l.hex), l.base_ts_us, stacks)
        .map_err(BatchError::TunnelStack)?
        .with_instances(instances);
    let mut next = [0usize; KINDS];
    let mut out = Vec::with_capacity(l.kinds.len());
    for (index, &k) in l.kinds.iter().enumerate() {
        let i = usize::from(k) - 1;
        let w = if i == 0 {
            // There are exactly named[0] rows.
            WireRecord::Flow(flows.next().unwrap_or_default())
        } else {
            let span = part(l.lists[i][next[i]]);
            next[i] += 1;
            match i {
                1 => WireRecord::Dns(pb::Dns::decode(span)?),
                2 => WireRecord::Http(pb::Http::decode(span)?),
                3 => WireRecord::Tls(pb::Tls::decode(span)?),
                4 => WireRecord::Quic(pb::Quic::decode(span)?),
                _ => WireRecord::Ssh(pb::Ssh::decode(span)?),
            }
        };
        out.push(
            dec.record(w)
                .map_err(|source| BatchError::Record { index, source })?,
        );
    }
    Ok(out)
}

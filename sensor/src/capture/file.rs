//! pcap and pcapng files, memory-mapped (or decompressed, for `.gz`).

use super::RawFrame;
use crate::decap::LinkType;
use crate::metrics::{Anomaly, Counters};
use pcap_file::pcap::PcapParser;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgParser};
use pcap_file::{PcapError, TsResolution};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest decompressed size accepted from a `.gz` capture.
const MAX_GZ_BYTES: u64 = 4 << 30;

/// Why a capture file could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is neither pcap nor pcapng.
    #[error("{path}: not a pcap or pcapng capture ({reason})")]
    NotACapture {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
}

enum Bytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Bytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

fn load(path: &Path) -> Result<Bytes, CaptureError> {
    let io = |source| CaptureError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut magic = [0u8; 2];
    if len >= 2 {
        (&file).read_exact(&mut magic).map_err(io)?;
    }
    if magic == [0x1f, 0x8b] {
        let f = File::open(path).map_err(io)?;
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(f)
            .take(MAX_GZ_BYTES)
            .read_to_end(&mut out)
            .map_err(io)?;
        return Ok(Bytes::Owned(out));
    }
    if len == 0 {
        return Ok(Bytes::Owned(Vec::new()));
    }
    // SAFETY: mmap is a system call with no Rust-visible preconditions; the
    // mapping is read-only and private to this process. A capture file
    // truncated by another process while mapped would fault (SIGBUS), as it
    // would for any reader; captures are not written while being replayed.
    // `populate` maps the pages up front in one pass (MAP_POPULATE) instead
    // of one fault per page while reading.
    let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) }.map_err(io)?;
    let _ = map.advise(memmap2::Advice::Sequential);
    Ok(Bytes::Mapped(map))
}

/// Reads every frame of a pcap or pcapng file (optionally gzip-compressed)
/// and hands it to `on_frame`. Returns the number of frames read.
pub fn read_capture(
    path: &Path,
    counters: &mut Counters,
    on_frame: &mut dyn FnMut(RawFrame<'_>, &mut Counters),
) -> Result<u64, CaptureError> {
    let bytes = load(path)?;
    let data = bytes.as_slice();
    let not = |reason: &str| CaptureError::NotACapture {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    match data.get(..4) {
        Some([0x0a, 0x0d, 0x0d, 0x0a]) => {
            read_pcapng(data, counters, on_frame).map_err(|e| not(&e.to_string()))
        }
        Some(_) => match PcapParser::new(data) {
            Ok((rest, parser)) => Ok(read_pcap(rest, &parser, counters, on_frame)),
            Err(e) => Err(not(&e.to_string())),
        },
        None => Err(not("file shorter than any capture header")),
    }
}

fn read_pcap(
    mut rest: &[u8],
    parser: &PcapParser,
    counters: &mut Counters,
    on_frame: &mut dyn FnMut(RawFrame<'_>, &mut Counters),
) -> u64 {
    let header = parser.header();
    let link = LinkType::from_pcap(u32::from(header.datalink));
    let frac_to_us: fn(u32) -> i64 = match header.ts_resolution {
        TsResolution::MicroSecond => |f| i64::from(f),
        TsResolution::NanoSecond => |f| i64::from(f / 1000),
    };
    let mut n = 0;
    while !rest.is_empty() {
        match parser.next_raw_packet(rest) {
            Ok((r, pkt)) => {
                rest = r;
                let data: &[u8] = &pkt.data;
                let ts_us = i64::from(pkt.ts_sec) * 1_000_000 + frac_to_us(pkt.ts_frac);
                let orig_len = pkt.orig_len.max(pkt.incl_len);
                n += 1;
                on_frame(
                    RawFrame {
                        ts_us,
                        link,
                        data,
                        orig_len,
                    },
                    counters,
                );
            }
            Err(_) => {
                // A record cut short or with an impossible length ends the file.
                counters.anomaly(Anomaly::CaptureRecordMalformed);
                break;
            }
        }
    }
    n
}

#[derive(Clone, Copy)]
struct Interface {
    link: LinkType,
    /// Timestamp units per second.
    units_per_sec: u64,
}

fn units_per_sec(tsresol: u8) -> u64 {
    let exp = u32::from(tsresol & 0x7f);
    if tsresol & 0x80 == 0 {
        10u64.checked_pow(exp).unwrap_or(u64::MAX)
    } else {
        2u64.checked_pow(exp).unwrap_or(u64::MAX)
    }
}

fn to_micros(raw: u64, units: u64) -> i64 {
    if units == 0 {
        return 0;
    }
    let us = u128::from(raw) * 1_000_000 / u128::from(units);
    i64::try_from(us).unwrap_or(i64::MAX)
}

fn read_pcapng(
    data: &[u8],
    counters: &mut Counters,
    on_frame: &mut dyn FnMut(RawFrame<'_>, &mut Counters),
) -> Result<u64, PcapError> {
    let (mut rest, mut parser) = PcapNgParser::new(data)?;
    let mut interfaces: Vec<Interface> = Vec::new();
    let mut last_ts_us = 0i64;
    let mut n = 0;
    while !rest.is_empty() {
        let (r, block) = match parser.next_block(rest) {
            Ok(v) => v,
            Err(_) => {
                counters.anomaly(Anomaly::CaptureRecordMalformed);
                break;
            }
        };
        rest = r;
        let (iface, raw_ts, data, orig_len) = match block {
            Block::SectionHeader(_) => {
                interfaces.clear();
                continue;
            }
            Block::InterfaceDescription(idb) => {
                let mut tsresol = 6u8;
                for opt in &idb.options {
                    if let InterfaceDescriptionOption::IfTsResol(v) = opt {
                        tsresol = *v;
                    }
                }
                // Bounded by the file: each description is a block of its own.
                interfaces.push(Interface {
                    link: LinkType::from_pcap(u32::from(idb.linktype)),
                    units_per_sec: units_per_sec(tsresol),
                });
                continue;
            }
            Block::EnhancedPacket(epb) => (
                epb.interface_id as usize,
                Some(epb.timestamp.as_nanos() as u64),
                epb.data,
                epb.original_len,
            ),
            Block::SimplePacket(spb) => (0, None, spb.data, spb.original_len),
            Block::Packet(pb) => (
                usize::from(pb.interface_id),
                Some(pb.timestamp),
                pb.data,
                pb.original_len,
            ),
            _ => continue,
        };
        let Some(ifc) = interfaces.get(iface).copied() else {
            counters.anomaly(Anomaly::CaptureRecordMalformed);
            continue;
        };
        let ts_us = match raw_ts {
            Some(raw) => to_micros(raw, ifc.units_per_sec),
            None => last_ts_us,
        };
        last_ts_us = ts_us;
        n += 1;
        let data: &[u8] = &data;
        on_frame(
            RawFrame {
                ts_us,
                link: ifc.link,
                data,
                orig_len: orig_len.max(data.len() as u32),
            },
            counters,
        );
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_resolutions() {
        assert_eq!(units_per_sec(6), 1_000_000);
        assert_eq!(units_per_sec(9), 1_000_000_000);
        assert_eq!(units_per_sec(0x80 | 10), 1024);
        assert_eq!(to_micros(1_500_000_000, 1_000_000_000), 1_500_000);
        assert_eq!(to_micros(u64::MAX, 1), i64::MAX);
        assert_eq!(to_micros(5, 0), 0);
    }
}

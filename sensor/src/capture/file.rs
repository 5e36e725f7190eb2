//! pcap and pcapng files (optionally gzip-compressed), read in order
//! through one reused buffer.

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

/// Size of the buffer a capture is read through: large enough that a
/// read call costs little per packet, small enough to stay in the CPU's
/// cache while its packets are processed (a memory map of a large file
/// costs a TLB miss and a cache miss on every page instead).
const CHUNK_BYTES: usize = 1 << 20;

/// Largest record (pcap packet record or pcapng block) the reader grows
/// its buffer for; a longer one is malformed (real captures stay far below:
/// the pcap snapshot length tops out at 256 KiB).
const MAX_RECORD_BYTES: usize = 64 << 20;

/// A capture's bytes, read in order into one reused buffer.
struct Chunks {
    reader: Box<dyn Read>,
    buf: Vec<u8>,
    /// Start of the bytes not consumed yet.
    start: usize,
    /// End of the bytes read.
    end: usize,
}

/// What [`Chunks::more`] could do.
#[derive(Debug, PartialEq, Eq)]
enum More {
    /// More bytes are available.
    Read,
    /// The input ended.
    End,
    /// The pending record would need more than [`MAX_RECORD_BYTES`].
    TooLarge,
}

impl Chunks {
    fn new(reader: Box<dyn Read>) -> Self {
        Self {
            reader,
            buf: vec![0; CHUNK_BYTES],
            start: 0,
            end: 0,
        }
    }

    /// The bytes read and not consumed yet.
    fn available(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or_default()
    }

    /// Marks `n` available bytes as consumed.
    fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
    }

    /// Reads more input after what is available, moving the unconsumed
    /// bytes to the front first and growing the buffer when they fill it.
    fn more(&mut self) -> std::io::Result<More> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            if self.buf.len() >= MAX_RECORD_BYTES {
                return Ok(More::TooLarge);
            }
            self.buf.resize(self.buf.len() * 2, 0);
        }
        loop {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => return Ok(More::End),
                Ok(n) => {
                    self.end += n;
                    return Ok(More::Read);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

fn open(path: &Path) -> Result<Chunks, CaptureError> {
    let io = |source| CaptureError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let mut magic = [0u8; 2];
    let gz = match file.read_exact(&mut magic) {
        Ok(()) => magic == [0x1f, 0x8b],
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => false,
        Err(e) => return Err(io(e)),
    };
    let file = File::open(path).map_err(io)?;
    let reader: Box<dyn Read> = if gz {
        Box::new(flate2::read::MultiGzDecoder::new(file).take(MAX_GZ_BYTES))
    } else {
        Box::new(file)
    };
    Ok(Chunks::new(reader))
}

/// Reads every frame of a pcap or pcapng file (optionally gzip-compressed)
/// and hands it to `on_frame`. Returns the number of frames read.
pub fn read_capture(
    path: &Path,
    counters: &mut Counters,
    on_frame: &mut dyn FnMut(RawFrame<'_>, &mut Counters),
) -> Result<u64, CaptureError> {
    let mut chunks = open(path)?;
    let io = |source| CaptureError::Io {
        path: path.to_path_buf(),
        source,
    };
    let not = |reason: &str| CaptureError::NotACapture {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    // The file header (pcap: 24 bytes; pcapng: the first section header
    // block) must be complete before the format is known.
    loop {
        let data = chunks.available();
        let header = match data.get(..4) {
            Some([0x0a, 0x0d, 0x0d, 0x0a]) => match PcapNgParser::new(data) {
                Ok((rest, parser)) => Ok(Format::PcapNg(parser, data.len() - rest.len())),
                Err(e) => Err(e),
            },
            Some(_) => match PcapParser::new(data) {
                Ok((rest, parser)) => Ok(Format::Pcap(parser, data.len() - rest.len())),
                Err(e) => Err(e),
            },
            None => Err(PcapError::IncompleteBuffer),
        };
        match header {
            Ok(Format::Pcap(parser, used)) => {
                chunks.consume(used);
                return read_pcap(&mut chunks, &parser, counters, on_frame).map_err(io);
            }
            Ok(Format::PcapNg(parser, used)) => {
                chunks.consume(used);
                return read_pcapng(&mut chunks, parser, counters, on_frame).map_err(io);
            }
            Err(PcapError::IncompleteBuffer) => match chunks.more().map_err(io)? {
                More::Read => {}
                More::End if chunks.available().len() < 4 => {
                    return Err(not("file shorter than any capture header"));
                }
                More::End | More::TooLarge => return Err(not("file header cut short")),
            },
            Err(e) => return Err(not(&e.to_string())),
        }
    }
}

enum Format {
    Pcap(PcapParser, usize),
    PcapNg(PcapNgParser, usize),
}

/// After a parser asked for more bytes: reads them, or counts the record
/// cut short (or impossibly long) that ends the file. False at the end.
fn need_more(chunks: &mut Chunks, counters: &mut Counters) -> std::io::Result<bool> {
    match chunks.more()? {
        More::Read => Ok(true),
        More::End if chunks.available().is_empty() => Ok(false),
        More::End | More::TooLarge => {
            counters.anomaly(Anomaly::CaptureRecordMalformed);
            Ok(false)
        }
    }
}

fn read_pcap(
    chunks: &mut Chunks,
    parser: &PcapParser,
    counters: &mut Counters,
    on_frame: &mut dyn FnMut(RawFrame<'_>, &mut Counters),
) -> std::io::Result<u64> {
    let header = parser.header();
    let link = LinkType::from_pcap(u32::from(header.datalink));
    let frac_to_us: fn(u32) -> i64 = match header.ts_resolution {
        TsResolution::MicroSecond => |f| i64::from(f),
        TsResolution::NanoSecond => |f| i64::from(f / 1000),
    };
    let mut n = 0;
    loop {
        let rest = chunks.available();
        if rest.is_empty() {
            if need_more(chunks, counters)? {
                continue;
            }
            break;
        }
        match parser.next_raw_packet(rest) {
            Ok((r, pkt)) => {
                let used = rest.len() - r.len();
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
                chunks.consume(used);
            }
            Err(PcapError::IncompleteBuffer) => {
                if !need_more(chunks, counters)? {
                    break;
                }
            }
            Err(_) => {
                // A record with an impossible length ends the file.
                counters.anomaly(Anomaly::CaptureRecordMalformed);
                break;
            }
        }
    }
    Ok(n)
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
    chunks: &mut Chunks,
    mut parser: PcapNgParser,
    counters: &mut Counters,
    on_frame: &mut dyn FnMut(RawFrame<'_>, &mut Counters),
) -> std::io::Result<u64> {
    let mut interfaces: Vec<Interface> = Vec::new();
    let mut last_ts_us = 0i64;
    let mut n = 0;
    loop {
        let rest = chunks.available();
        if rest.is_empty() {
            if need_more(chunks, counters)? {
                continue;
            }
            break;
        }
        let (used, block) = match parser.next_block(rest) {
            Ok((r, block)) => (rest.len() - r.len(), block),
            Err(PcapError::IncompleteBuffer) => {
                if need_more(chunks, counters)? {
                    continue;
                }
                break;
            }
            Err(_) => {
                counters.anomaly(Anomaly::CaptureRecordMalformed);
                break;
            }
        };
        let (iface, raw_ts, data, orig_len) = match block {
            Block::SectionHeader(_) => {
                interfaces.clear();
                chunks.consume(used);
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
                chunks.consume(used);
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
            _ => {
                chunks.consume(used);
                continue;
            }
        };
        let Some(ifc) = interfaces.get(iface).copied() else {
            counters.anomaly(Anomaly::CaptureRecordMalformed);
            chunks.consume(used);
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
        chunks.consume(used);
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

    /// A classic pcap (microseconds, Ethernet) with one record per length.
    fn pcap_bytes(lens: &[usize], cut_last_by: usize) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&4u16.to_le_bytes());
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&(8u32 << 20).to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        for (i, &len) in lens.iter().enumerate() {
            out.extend_from_slice(&(i as u32).to_le_bytes());
            out.extend_from_slice(&7u32.to_le_bytes());
            out.extend_from_slice(&(len as u32).to_le_bytes());
            out.extend_from_slice(&(len as u32).to_le_bytes());
            out.extend((0..len).map(|b| (b + i) as u8));
        }
        out.truncate(out.len() - cut_last_by);
        out
    }

    /// Reads `bytes` as a capture file; the frames' (time, length, checksum).
    fn read(name: &str, bytes: &[u8]) -> (Vec<(i64, usize, u64)>, Counters) {
        let path = std::env::temp_dir().join(format!("sensor-file-{}-{name}", std::process::id()));
        std::fs::write(&path, bytes).expect("write capture");
        let mut counters = Counters::default();
        let mut frames = Vec::new();
        let result = read_capture(&path, &mut counters, &mut |f, _| {
            let sum = f.data.iter().map(|&b| u64::from(b)).sum();
            frames.push((f.ts_us, f.data.len(), sum));
        });
        let _ = std::fs::remove_file(&path);
        result.expect("read capture");
        (frames, counters)
    }

    fn expected(lens: &[usize]) -> Vec<(i64, usize, u64)> {
        lens.iter()
            .enumerate()
            .map(|(i, &len)| {
                let sum = (0..len).map(|b| u64::from((b + i) as u8)).sum();
                (i as i64 * 1_000_000 + 7, len, sum)
            })
            .collect()
    }

    #[test]
    fn records_across_chunk_boundaries_and_larger_than_a_chunk_are_read_whole() {
        // Odd sizes so that records straddle every chunk boundary, and two
        // records longer than the buffer itself.
        let mut lens: Vec<usize> = (0..3000).map(|i| 60 + (i * 37) % 1400).collect();
        lens.insert(1000, CHUNK_BYTES + 12_345);
        lens.push(3 * CHUNK_BYTES);
        let (frames, counters) = read("chunks.pcap", &pcap_bytes(&lens, 0));
        assert_eq!(frames, expected(&lens));
        assert_eq!(
            counters.anomalies[Anomaly::CaptureRecordMalformed as usize],
            0
        );
    }

    #[test]
    fn a_record_cut_short_ends_the_file_and_is_counted() {
        let lens = [100, 200, 300];
        let (frames, counters) = read("cut.pcap", &pcap_bytes(&lens, 10));
        assert_eq!(frames, expected(&lens[..2]));
        assert_eq!(
            counters.anomalies[Anomaly::CaptureRecordMalformed as usize],
            1
        );
    }

    #[test]
    fn gzip_captures_read_like_plain_ones() {
        use std::io::Write;
        let lens: Vec<usize> = (0..500).map(|i| 40 + i * 5).collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&pcap_bytes(&lens, 0)).expect("compress");
        let (frames, _) = read("capture.pcap.gz", &gz.finish().expect("compress"));
        assert_eq!(frames, expected(&lens));
    }

    #[test]
    fn short_and_foreign_files_are_refused() {
        for (name, bytes) in [
            ("empty", &b""[..]),
            ("short", b"\xd4\xc3"),
            ("text", b"hello world, not a capture at all"),
        ] {
            let path =
                std::env::temp_dir().join(format!("sensor-file-{}-{name}", std::process::id()));
            std::fs::write(&path, bytes).expect("write");
            let mut counters = Counters::default();
            let r = read_capture(&path, &mut counters, &mut |_, _| {});
            let _ = std::fs::remove_file(&path);
            assert!(
                matches!(r, Err(CaptureError::NotACapture { .. })),
                "{name}: {r:?}"
            );
        }
    }
}

//! Helpers shared by the library's integration tests: building mirrored
//! frames and running them through the pipeline stages directly.
#![allow(
    dead_code,
    clippy::too_many_arguments,
    clippy::expect_used,
    clippy::unwrap_used
)]

use etherparse::PacketBuilder;
use nucleus_proto::{FlowRecord, Record};
use sensor::capture::RawFrame;
use sensor::config::PipelineConfig;
use sensor::decap::LinkType;
use sensor::runtime::{Clock, Frontend, Worker};

/// A frame and its time.
pub struct Frame {
    pub ts_us: i64,
    pub link: LinkType,
    pub data: Vec<u8>,
}

impl Frame {
    /// The frame as the capture readers hand it on.
    pub fn raw(&self) -> RawFrame<'_> {
        RawFrame {
            ts_us: self.ts_us,
            link: self.link,
            data: &self.data,
            orig_len: self.data.len() as u32,
        }
    }
}

/// An Ethernet frame captured at `ts_us`.
pub fn ethernet_frame(ts_us: i64, data: Vec<u8>) -> Frame {
    Frame {
        ts_us,
        link: LinkType::Ethernet,
        data,
    }
}

/// An inner TCP/IPv4 Ethernet frame.
pub fn tcp_frame(
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    seq: u32,
    ack: u32,
    flags: &str,
    ip_id: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(src, dst, 64)
        .tcp(sport, dport, seq, 65000);
    for c in flags.chars() {
        b = match c {
            'S' => b.syn(),
            'A' => b.ack(ack),
            'F' => b.fin(),
            'R' => b.rst(),
            'P' => b.psh(),
            _ => b,
        };
    }
    let mut out = Vec::new();
    b.write(&mut out, payload).expect("building a tcp frame");
    // Set the IPv4 identification (bytes 18..20 of the frame); the checksum is
    // not verified by the sensor.
    out[18..20].copy_from_slice(&ip_id.to_be_bytes());
    out
}

/// Wraps an inner Ethernet frame in VXLAN as AWS Traffic Mirroring does.
pub fn vxlan(
    inner: &[u8],
    outer_src: [u8; 4],
    outer_dst: [u8; 4],
    outer_sport: u16,
    vni: u32,
) -> Vec<u8> {
    let mut payload = vec![0x08, 0, 0, 0];
    payload.extend_from_slice(&vni.to_be_bytes()[1..]);
    payload.push(0);
    payload.extend_from_slice(inner);
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 1, 1], [2, 0, 0, 0, 1, 2])
        .ipv4(outer_src, outer_dst, 64)
        .udp(outer_sport, 4789);
    let mut out = Vec::new();
    b.write(&mut out, &payload).expect("building a vxlan frame");
    out
}

/// Runs frames through one frontend and one worker, as `sensor pcap
/// --workers 1` does, and returns every record.
pub fn run(cfg: &PipelineConfig, frames: &[Frame]) -> Vec<Record> {
    let (mut out, at_end) = run_split(cfg, frames, None);
    out.extend(at_end);
    out
}

/// [`run`], with the records split: those out before the end of input
/// (after one more clock tick at `tick_at`, if given), and those the end of
/// input flushes.
pub fn run_split(
    cfg: &PipelineConfig,
    frames: &[Frame],
    tick_at: Option<i64>,
) -> (Vec<Record>, Vec<Record>) {
    let mut fe = Frontend::new(cfg);
    let mut w = Worker::new(cfg);
    let mut clock = Clock::new(cfg.flows.sweep_interval);
    let mut out = Vec::new();
    for f in frames {
        if let Some(now) = clock.advance(f.ts_us) {
            fe.tick(now);
            out.extend(w.tick(now));
        }
        fe.ingest(&f.raw(), |p, ctx, _| w.process(p, ctx, f.ts_us));
    }
    if let Some(now) = tick_at.and_then(|t| clock.advance(t)) {
        fe.tick(now);
        out.extend(w.tick(now));
    }
    (out, w.finish())
}

/// The flow records among `records`.
pub fn flows(records: &[Record]) -> Vec<&FlowRecord> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Flow(f) => Some(&**f),
            _ => None,
        })
        .collect()
}

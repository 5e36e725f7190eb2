//! Every input is hostile. Random bytes and mutated real packets (cut,
//! bit-flipped, duplicated, reordered) go through the whole pipeline without
//! a panic, and the flow table and fragment reassembly never exceed their
//! configured caps, with what was refused counted by reason. The seeds
//! include the corpus's DNS and HTTP captures, so the dissectors get
//! mutated input too.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{Frame, tcp_frame, vxlan};
use proptest::prelude::*;
use proptest::sample::Index;
use sensor::capture::{RawFrame, read_capture};
use sensor::config::PipelineConfig;
use sensor::decap::LinkType;
use sensor::metrics::{Counters, Drop};
use sensor::runtime::{Clock, Frontend, Worker};
use std::path::PathBuf;
use std::sync::OnceLock;

const MAX_FLOWS: usize = 64;
const MAX_DATAGRAMS: usize = 16;
const MAX_FRAG_BYTES: usize = 64 * 1024;

fn small_caps() -> PipelineConfig {
    let mut cfg = PipelineConfig::default();
    cfg.flows.max_flows = MAX_FLOWS;
    cfg.defrag.max_datagrams = MAX_DATAGRAMS;
    cfg.defrag.max_datagrams_per_source = 8;
    cfg.defrag.max_bytes = MAX_FRAG_BYTES;
    cfg.defrag.max_fragments_per_datagram = 16;
    cfg
}

/// Frames of the corpus's encapsulation, fragment and TCP captures (the
/// trickiest decoding paths), or a few synthetic ones without a corpus.
fn seed_frames() -> &'static Vec<(LinkType, Vec<u8>)> {
    static FRAMES: OnceLock<Vec<(LinkType, Vec<u8>)>> = OnceLock::new();
    FRAMES.get_or_init(|| {
        let dir = std::env::var_os("SENSOR_CORPUS")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus")
            });
        let mut out = Vec::new();
        if let Ok(manifest) = std::fs::read_to_string(dir.join("MANIFEST.tsv")) {
            for line in manifest.lines().skip(1) {
                let cols: Vec<&str> = line.split('\t').collect();
                if cols.len() < 5
                    || !matches!(cols[0], "encap" | "frag" | "tcp-reasm" | "dns" | "http")
                {
                    continue;
                }
                let path = dir.join("pcaps").join(cols[3]).join(cols[4]);
                let _ = read_capture(
                    &path,
                    &mut Counters::default(),
                    &mut |f: RawFrame<'_>, _| {
                        if out.len() < 20_000 {
                            out.push((f.link, f.data.to_vec()));
                        }
                    },
                );
            }
        }
        if out.is_empty() {
            println!("corpus not found: mutating synthetic frames only");
            let inner = tcp_frame([10, 0, 0, 1], 1234, [10, 0, 0, 2], 80, 1, 0, "S", 7, b"");
            out.push((
                LinkType::Ethernet,
                vxlan(&inner, [10, 0, 0, 1], [10, 9, 9, 9], 5000, 42),
            ));
            out.push((LinkType::Ethernet, inner));
        }
        out
    })
}

fn run_checked(cfg: &PipelineConfig, frames: &[Frame]) -> Counters {
    let mut fe = Frontend::new(cfg);
    let mut w = Worker::new(cfg);
    let mut clock = Clock::new(cfg.flows.sweep_interval);
    let mut emitted = 0usize;
    for f in frames {
        if let Some(now) = clock.advance(f.ts_us) {
            fe.tick(now);
            emitted += w.tick(now).len();
        }
        fe.ingest(&f.raw(), |p, ctx, _| w.process(p, ctx, f.ts_us));
        assert!(w.active_flows() <= cfg.flows.max_flows);
        let (datagrams, bytes) = fe.defrag_usage();
        assert!(datagrams <= cfg.defrag.max_datagrams);
        assert!(bytes <= cfg.defrag.max_bytes);
    }
    emitted += w.finish().len();
    assert_eq!(w.active_flows(), 0);
    let mut c = fe.counters.clone();
    c.merge(&w.counters);
    assert_eq!(c.records as usize, emitted);
    assert_eq!(c.flows_created, c.flows_expired);
    c
}

#[derive(Debug, Clone)]
enum Mutation {
    Cut(Index),
    Flip(Index, u8),
    Duplicate,
    Keep,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<Index>().prop_map(Mutation::Cut),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        Just(Mutation::Duplicate),
        Just(Mutation::Keep),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(
        frames in prop::collection::vec((0u32..300, prop::collection::vec(any::<u8>(), 0..200), 0i64..5_000_000), 1..64)
    ) {
        let frames: Vec<Frame> = frames
            .into_iter()
            .map(|(link, data, ts)| Frame { ts_us: ts, link: LinkType::from_pcap([1, 101, 113, 276, 0, 108, 228, 229, 147][link as usize % 9]), data })
            .collect();
        run_checked(&small_caps(), &frames);
    }

    #[test]
    fn mutated_corpus_packets_never_panic(
        picks in prop::collection::vec((any::<Index>(), prop::collection::vec(mutation(), 1..4), -2_000_000i64..2_000_000), 1..96)
    ) {
        let seeds = seed_frames();
        let mut frames = Vec::new();
        let mut t = 1_600_000_000_000_000i64;
        for (pick, muts, jitter) in picks {
            let (link, base) = &seeds[pick.index(seeds.len())];
            let mut data = base.clone();
            let mut copies = 1;
            for m in muts {
                match m {
                    Mutation::Cut(i) => data.truncate(i.index(data.len() + 1)),
                    Mutation::Flip(i, bits) if !data.is_empty() => {
                        let at = i.index(data.len());
                        data[at] ^= bits;
                    }
                    Mutation::Duplicate => copies += 1,
                    _ => {}
                }
            }
            // Time wanders back and forth, as reordered input does.
            t += jitter.abs() / 4;
            for _ in 0..copies {
                frames.push(Frame { ts_us: t + jitter, link: *link, data: data.clone() });
            }
        }
        run_checked(&small_caps(), &frames);
    }
}

#[test]
fn a_flood_of_new_flows_stays_within_the_cap_and_is_counted() {
    let mut frames = Vec::new();
    for i in 0..5_000u32 {
        let inner = tcp_frame(
            [10, 0, (i >> 8) as u8, i as u8],
            1024 + (i % 50000) as u16,
            [10, 9, 0, 1],
            80,
            i,
            0,
            "S",
            1,
            b"",
        );
        frames.push(Frame {
            ts_us: 1_000_000 + i64::from(i),
            link: LinkType::Ethernet,
            data: inner,
        });
    }
    let c = run_checked(&small_caps(), &frames);
    assert_eq!(c.flows_created as usize, MAX_FLOWS);
    assert_eq!(
        c.drops[Drop::FlowTableFull as usize],
        5_000 - MAX_FLOWS as u64
    );
}

#[test]
fn a_flood_of_fragments_stays_within_the_caps_and_is_counted() {
    let mut frames = Vec::new();
    for i in 0..2_000u16 {
        // First fragments (MF set) of datagrams that never complete.
        let mut f = tcp_frame(
            [10, 0, 0, (i % 7) as u8],
            1000,
            [10, 9, 0, 1],
            80,
            1,
            0,
            "S",
            i,
            &[0u8; 64],
        );
        f[20] = 0x20; // MF
        frames.push(Frame {
            ts_us: 1_000_000 + i64::from(i),
            link: LinkType::Ethernet,
            data: f,
        });
    }
    let c = run_checked(&small_caps(), &frames);
    let refused = c.drops[Drop::DefragTableFull as usize]
        + c.drops[Drop::DefragPerSourceCap as usize]
        + c.drops[Drop::DefragBytesCap as usize];
    assert!(refused >= 2_000 - MAX_DATAGRAMS as u64, "{refused}");
    assert_eq!(c.fragments, 2_000);
}

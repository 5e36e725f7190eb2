//! Community ID equals the reference implementation (pycommunityid, as
//! published by corelight/community-id-spec) for every packet of the spec's
//! own capture, in all three published configurations. Users pivot between
//! the sensor, Zeek and Suricata on this value, so it must match exactly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use sensor::capture::read_capture;
use sensor::config::DecapConfig;
use sensor::decap::tunnel::TunnelContext;
use sensor::decap::{Decoded, Decoder, Transport};
use sensor::flow::community_id::{CommunityId, icmp_ports};
use sensor::metrics::Counters;
use std::path::PathBuf;

fn corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("SENSOR_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"));
    if dir.join("MANIFEST.tsv").exists() {
        Some(dir)
    } else {
        println!("skipping: corpus not found at {}", dir.display());
        None
    }
}

/// The distinct (src, dst, proto, sport, dport) of the packets the decoder
/// turns into flow packets, in order of first appearance: the baseline's
/// form (community-id-pcap lists each directed tuple once, ICMP types
/// mapped to ports as the spec maps them).
fn tuples(path: &std::path::Path) -> Vec<(String, String, u8, u16, u16)> {
    let decoder = Decoder::new(DecapConfig::default());
    let mut ctx = TunnelContext::new();
    let mut out = Vec::new();
    let mut seen = Vec::new();
    let mut counters = Counters::default();
    read_capture(path, &mut Counters::default(), &mut |frame, _| {
        if let Decoded::Packet(p) = decoder.decode(frame.link, frame.data, &mut ctx, &mut counters)
        {
            let (sp, dp) = match p.transport {
                // SCTP ports are the first four bytes of its header.
                Transport::Other { .. } if p.proto == 132 => match p.l4_bytes.get(..4) {
                    Some(b) => (
                        u16::from_be_bytes([b[0], b[1]]),
                        u16::from_be_bytes([b[2], b[3]]),
                    ),
                    None => (0, 0),
                },
                other => other.ports(),
            };
            let key = (p.src.to_string(), p.dst.to_string(), p.proto, sp, dp);
            let mapped = match p.proto {
                1 | 58 => {
                    let (a, b, _) = icmp_ports(p.proto, sp as u8, dp as u8);
                    (key.0.clone(), key.1.clone(), key.2, a, b)
                }
                _ => key.clone(),
            };
            if !seen.contains(&mapped) {
                seen.push(mapped);
                out.push(key);
            }
        }
    })
    .expect("reading the spec capture");
    out
}

#[test]
fn every_packet_matches_all_three_baselines() {
    let Some(corpus) = corpus() else { return };
    let pcap = corpus.join("pcaps/corelight+community-id-spec/pcaps/combined.pcap.gz");
    let packets = tuples(&pcap);
    for (file, seed, base64) in [
        ("baseline_deflt.json", 0u16, true),
        ("baseline_nob64.json", 0, false),
        ("baseline_seed1.json", 1, true),
    ] {
        let path = corpus
            .join("expected/corelight+community-id-spec/baseline")
            .join(file);
        let text = std::fs::read_to_string(&path).expect("baseline");
        let expected: Vec<serde_json::Value> = serde_json::from_str(&text).expect("baseline json");
        assert_eq!(packets.len(), expected.len(), "{file}: packet count");
        let cid = CommunityId::new(seed, base64);
        for (i, ((src, dst, proto, sp, dp), want)) in packets.iter().zip(&expected).enumerate() {
            assert_eq!(want["saddr"].as_str(), Some(src.as_str()), "{file} #{i}");
            assert_eq!(want["daddr"].as_str(), Some(dst.as_str()), "{file} #{i}");
            let got = cid.compute(src.parse().unwrap(), dst.parse().unwrap(), *proto, *sp, *dp);
            assert_eq!(
                want["communityid"].as_str(),
                Some(got.as_str()),
                "{file} #{i} {src} {dst} {proto} {sp} {dp}"
            );
        }
    }
}

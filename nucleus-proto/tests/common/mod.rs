//! Known records and frames shared by the frame tests and the fuzz seed
//! corpus: a DNS transaction and its flow, as the sensor writes them.

#![allow(dead_code)]

use nucleus_proto::batch::{Compression, seal};
use nucleus_proto::community_id::CommunityId;
use nucleus_proto::dns_names::{opcode, rcode, rtype};
use nucleus_proto::frame::{self, Frame};
use nucleus_proto::*;

/// The seed corpus directory of the fuzz target `target`.
pub fn fuzz_corpus_dir(target: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

/// Every seed of the fuzz target `target`: (file name, bytes), by name.
pub fn fuzz_seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = fuzz_corpus_dir(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

pub fn frame_bytes(f: &Frame) -> Vec<u8> {
    let mut out = Vec::new();
    frame::encode(f, frame::DEFAULT_MAX_FRAME_BYTES, &mut out).unwrap();
    out
}

pub fn cid() -> CommunityId {
    CommunityId::new(0, true)
}

/// A flow and a DNS record as the sensor writes them.
pub fn sample_records() -> Vec<Record> {
    let c = cid();
    let (src, dst) = ("10.0.10.11".parse().unwrap(), "10.0.0.2".parse().unwrap());
    let flow_ref = FlowRef {
        uid: "CLKjbUVniUC9HSQMp3r".into(),
        community_id: c.compute(src, dst, 17, 56595, 53),
        proto: Proto(17),
        src_ip: src,
        src_port: 56595,
        dst_ip: dst,
        dst_port: 53,
    };
    let dns = Record::Dns(Box::new(AppRecord {
        ts: TimestampMicros(1_717_243_200_000_317),
        flow: flow_ref.clone(),
        seq: 0,
        body: DnsRecord {
            trans_id: 31001,
            rtt: Some(0.000333),
            query: Some("cdn.example.org".into()),
            qclass: Some(1),
            qtype: Some(rtype(1)),
            opcode: opcode(0),
            rcode: Some(rcode(0)),
            aa: false,
            tc: false,
            rd: true,
            ra: true,
            answers: vec![DnsAnswer {
                name: "cdn.example.org".into(),
                rtype: rtype(1),
                ttl: 245,
                data: "203.0.113.101".into(),
            }],
            unanswered: false,
            unsolicited: false,
        },
    }));
    let flow = Record::Flow(Box::new(FlowRecord {
        ts: TimestampMicros(1_717_243_200_000_317),
        end_ts: TimestampMicros(1_717_243_200_000_650),
        uid: flow_ref.uid.clone(),
        community_id: flow_ref.community_id.clone(),
        proto: Proto(17),
        src_ip: src,
        src_port: 56595,
        dst_ip: dst,
        dst_port: 53,
        orig_pkts: 1,
        orig_bytes: 33,
        orig_ip_bytes: 61,
        resp_pkts: 1,
        resp_bytes: 49,
        resp_ip_bytes: 77,
        orig_tcp_flags: None,
        resp_tcp_flags: None,
        conn_state: "SF".into(),
        history: "Dd".into(),
        missed_bytes: 0,
        truncated_bytes: 0,
        duration: 0.000333,
        service: Some("dns".into()),
        tunnel: vec![TunnelLayer::Vxlan {
            vni: 4_890_627,
            outer_src: "10.0.10.11".parse().unwrap(),
            outer_dst: "10.0.200.10".parse().unwrap(),
        }],
        vantages: 1,
        duplicate_pkts: 0,
        vantage: None,
    }));
    vec![flow, dns]
}

pub fn sample_frames() -> Vec<(&'static str, Frame)> {
    vec![
        (
            "hello.bin",
            Frame::Hello(pb::Hello {
                sensor_id: "sensor-a".into(),
                schema_version: SCHEMA_VERSION,
                software_version: "0.1.0".into(),
            }),
        ),
        (
            "batch.bin",
            Frame::Batch(
                seal(
                    1_717_243_000_000_000,
                    41,
                    &sample_records(),
                    &cid(),
                    Compression::None,
                )
                .unwrap(),
            ),
        ),
        (
            "ack.bin",
            Frame::Ack(pb::Ack {
                epoch: 1_717_243_000_000_000,
                sequence: 41,
            }),
        ),
        (
            "error.bin",
            Frame::Error(pb::Error {
                code: pb::ErrorCode::TooLarge as i32,
                message: "frame of 20000000 bytes is over the limit of 16777216".into(),
            }),
        ),
    ]
}

//! The framed protocol's bytes: golden files for every frame type (any
//! change to the encoding fails here), the incremental decoder on pieces of
//! any size, and the limits that hold on hostile input.
//!
//! To change the golden files deliberately (a new field, a new frame), run
//! `NUCLEUS_GOLDEN_WRITE=1 cargo test -p nucleus-proto --test frames`, then
//! review the diff of `nucleus-proto/tests/golden/` and say why in the
//! commit: a change to existing bytes breaks deployed receivers.

// Test code: a failed expectation must stop the test with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{cid, frame_bytes, sample_frames, sample_records};
use nucleus_proto::batch::{BatchError, BatchLimits, Compression, open, seal};
use nucleus_proto::frame::{self, Frame, FrameError, FrameReader, FrameType};
use nucleus_proto::pb;
use std::path::PathBuf;

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// Compares `bytes` with the golden file, or writes it when asked to.
fn golden(name: &str, bytes: &[u8]) {
    let path = golden_path(name);
    if std::env::var_os("NUCLEUS_GOLDEN_WRITE").is_some() {
        std::fs::write(&path, bytes).unwrap();
        return;
    }
    let want = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        want == bytes,
        "{name} changed:\n want {want:02x?}\n got  {bytes:02x?}"
    );
}

#[test]
fn golden_bytes_of_every_frame_type() {
    golden("preamble.bin", &frame::preamble());
    for (name, f) in sample_frames() {
        let bytes = frame_bytes(&f);
        golden(name, &bytes);
        let (back, used) = frame::decode(&bytes, frame::DEFAULT_MAX_FRAME_BYTES)
            .unwrap()
            .unwrap();
        assert_eq!((back, used), (f, bytes.len()), "{name}");
    }
}

/// The batch golden file opens to the records, with the sensor's JSON.
#[test]
fn golden_batch_opens_to_the_records() {
    let bytes = std::fs::read(golden_path("batch.bin")).unwrap();
    let (f, _) = frame::decode(&bytes, frame::DEFAULT_MAX_FRAME_BYTES)
        .unwrap()
        .unwrap();
    let Frame::Batch(b) = f else {
        panic!("not a batch")
    };
    assert_eq!(
        (b.epoch, b.sequence, b.record_count),
        (1_717_243_000_000_000, 41, 2)
    );
    let records = open(&b, &BatchLimits::default()).unwrap();
    assert_eq!(records, sample_records());
    let dns = serde_json::to_string(&records[1]).unwrap();
    assert_eq!(
        dns,
        r#"{"type":"dns","ts":"2024-06-01T12:00:00.000317Z","uid":"CLKjbUVniUC9HSQMp3r","community_id":"1:wLq/oJ8n7ldP2RIHZ+Ke/8TPi/Q=","proto":"udp","src_ip":"10.0.10.11","src_port":56595,"dst_ip":"10.0.0.2","dst_port":53,"trans_id":31001,"rtt":0.000333,"query":"cdn.example.org","qclass":1,"qtype":"A","opcode":"QUERY","rcode":"NOERROR","aa":false,"tc":false,"rd":true,"ra":true,"answers":[{"name":"cdn.example.org","type":"A","ttl":245,"data":"203.0.113.101"}]}"#
    );
}

/// A zstd batch: compressed bytes may differ between zstd releases, so
/// this golden file is checked by opening it, not byte for byte.
#[test]
fn golden_zstd_batch_opens() {
    let batch = seal(9, 0, &sample_records(), &cid(), Compression::Zstd(3)).unwrap();
    if std::env::var_os("NUCLEUS_GOLDEN_WRITE").is_some() {
        std::fs::write(
            golden_path("batch_zstd.bin"),
            frame_bytes(&Frame::Batch(batch)),
        )
        .unwrap();
    }
    let bytes = std::fs::read(golden_path("batch_zstd.bin")).unwrap();
    let (Frame::Batch(b), _) = frame::decode(&bytes, frame::DEFAULT_MAX_FRAME_BYTES)
        .unwrap()
        .unwrap()
    else {
        panic!("not a batch")
    };
    assert_eq!(b.compression, pb::Compression::Zstd as i32);
    assert_eq!(open(&b, &BatchLimits::default()).unwrap(), sample_records());
}

fn stream() -> Vec<u8> {
    let mut s = frame::preamble().to_vec();
    for (_, f) in sample_frames() {
        s.extend(frame_bytes(&f));
    }
    s
}

#[test]
fn reader_takes_pieces_of_any_size() {
    let want: Vec<Frame> = sample_frames().into_iter().map(|(_, f)| f).collect();
    let s = stream();
    for piece in [1, 2, 3, 5, 8, 13, 64, s.len()] {
        let mut r = FrameReader::new(frame::DEFAULT_MAX_FRAME_BYTES);
        let mut got = Vec::new();
        for chunk in s.chunks(piece) {
            r.push(chunk);
            while let Some(f) = r.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, want, "pieces of {piece}");
        assert_eq!(r.buffered(), 0);
    }
}

#[test]
fn oversized_frame_is_refused_from_its_header() {
    let mut r = FrameReader::new(1000);
    r.push(&frame::preamble());
    // Only the header of a 1001-byte frame: refused before its payload.
    r.push(&1001u32.to_be_bytes());
    r.push(&[FrameType::Batch as u8]);
    assert_eq!(
        r.next_frame(),
        Err(FrameError::TooLarge {
            len: 1001,
            max: 1000
        })
    );
    assert_eq!(r.next_frame(), Err(FrameError::AfterError));
    let big = Frame::Hello(pb::Hello {
        sensor_id: "x".repeat(2000),
        ..Default::default()
    });
    assert!(matches!(
        frame::encode(&big, 1000, &mut Vec::new()),
        Err(FrameError::TooLarge { .. })
    ));
}

#[test]
fn bad_preambles_and_types_are_typed_errors() {
    assert_eq!(frame::read_preamble(b"NU"), Ok(None));
    assert_eq!(frame::read_preamble(b"HTTP/1.1"), Err(FrameError::BadMagic));
    assert_eq!(
        frame::read_preamble(b"NUCL\x00\x02\x00\x00"),
        Err(FrameError::UnsupportedVersion(2))
    );
    assert_eq!(frame::read_preamble(b"NUCL\x00\x01\x00\x07"), Ok(Some(8)));
    assert_eq!(
        frame::decode(&[0, 0, 0, 0, 9], 100),
        Err(FrameError::UnknownType(9))
    );
    assert!(matches!(
        frame::decode(&[0, 0, 0, 2, 3, 0xff, 0xff], 100),
        Err(FrameError::Malformed {
            frame_type: FrameType::Ack,
            ..
        })
    ));
    // A partial frame waits for the rest.
    assert_eq!(frame::decode(&[0, 0, 0, 9, 1, 0x0a], 100), Ok(None));
}

#[test]
fn batch_limits_hold_before_the_memory_is_spent() {
    let records = sample_records();
    let tight = BatchLimits {
        max_block_bytes: 64,
        max_records: 100,
    };
    let b = seal(1, 0, &records, &cid(), Compression::Zstd(3)).unwrap();
    assert!(matches!(
        open(&b, &tight),
        Err(BatchError::BlockTooLarge { .. })
    ));
    let few = BatchLimits {
        max_block_bytes: 1 << 20,
        max_records: 1,
    };
    assert!(matches!(
        open(&b, &few),
        Err(BatchError::TooManyRecords { .. })
    ));
    // A payload that decompresses past its declared size (a bomb) stops
    // at the declaration.
    let mut bomb = seal(1, 0, &records, &cid(), Compression::Zstd(3)).unwrap();
    bomb.block_bytes -= 1;
    assert!(matches!(
        open(&bomb, &BatchLimits::default()),
        Err(BatchError::Decompress { .. })
    ));
    let mut lying = seal(1, 0, &records, &cid(), Compression::None).unwrap();
    lying.record_count = 3;
    assert!(matches!(
        open(&lying, &BatchLimits::default()),
        Err(BatchError::CountMismatch { .. })
    ));
    let mut unknown = lying.clone();
    unknown.compression = 7;
    assert!(matches!(
        open(&unknown, &BatchLimits::default()),
        Err(BatchError::UnknownCompression(7))
    ));
}

#[test]
fn a_batch_sent_from_its_stored_bytes_is_the_same_frame() {
    use prost::Message;
    let batch = seal(7, 3, &sample_records(), &cid(), Compression::Zstd(3)).unwrap();
    let mut decoded = Vec::new();
    frame::encode(&Frame::Batch(batch.clone()), u32::MAX, &mut decoded).unwrap();
    let mut raw = Vec::new();
    frame::encode_raw(FrameType::Batch, &batch.encode_to_vec(), u32::MAX, &mut raw).unwrap();
    assert_eq!(raw, decoded);
    let small = u32::try_from(batch.encoded_len() - 1).unwrap();
    assert!(matches!(
        frame::encode_raw(
            FrameType::Batch,
            &batch.encode_to_vec(),
            small,
            &mut Vec::new()
        ),
        Err(FrameError::TooLarge { .. })
    ));
}

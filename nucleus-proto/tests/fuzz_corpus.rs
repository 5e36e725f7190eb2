//! Replays the seed corpus of the frame decoder's fuzz target
//! (`nucleus-proto/fuzz/corpus/frame_decoder/`) through the function the
//! target calls, so every seed, and every crash input added to it, stays a
//! regression test on stable Rust. A seed named `ok_N_*` is a valid stream
//! that must give exactly N frames; every seed is also replayed cut short.
//!
//! The seeds are made by this file's ignored test `write_seeds`:
//! `cargo test -p nucleus-proto --test fuzz_corpus -- --ignored write_seeds`.

// Test code: a failed expectation must stop the test with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{cid, frame_bytes, sample_frames, sample_records};
use nucleus_proto::batch::{Compression, seal};
use nucleus_proto::frame::{self, Frame, fuzz_input};
use std::path::PathBuf;

fn corpus_dir() -> PathBuf {
    common::fuzz_corpus_dir("frame_decoder")
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    common::fuzz_seeds("frame_decoder")
}

#[test]
fn frame_decoder_seeds_replay() {
    let seeds = seeds();
    assert!(seeds.len() >= 6, "the frame_decoder seed corpus is missing");
    for (name, data) in &seeds {
        let frames = fuzz_input(data);
        if let Some(n) = name.strip_prefix("ok_").and_then(|r| r.split('_').next()) {
            assert_eq!(frames, n.parse::<usize>().unwrap(), "{name}");
        }
        for n in (0..data.len()).step_by(7) {
            assert!(
                fuzz_input(&data[..n]) <= frames.max(1) + 4,
                "{name} cut at {n}"
            );
        }
    }
}

/// A stream: a piece-size byte, the preamble, then frames.
fn stream(piece: u8, frames: &[Frame]) -> Vec<u8> {
    let mut s = vec![piece];
    s.extend(frame::preamble());
    for f in frames {
        s.extend(frame_bytes(f));
    }
    s
}

#[test]
#[ignore = "writes the seed corpus; run by hand after changing the formats"]
fn write_seeds() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, data: &[u8]| std::fs::write(dir.join(name), data).unwrap();
    let all: Vec<Frame> = sample_frames().into_iter().map(|(_, f)| f).collect();
    write("ok_4_stream_whole", &stream(63, &all));
    write("ok_4_stream_bytewise", &stream(0, &all));
    let zstd = Frame::Batch(seal(3, 7, &sample_records(), &cid(), Compression::Zstd(3)).unwrap());
    write("ok_1_zstd_batch", &stream(10, &[zstd]));
    write("bad_magic", b"\x05GET / HTTP/1.1\r\n\r\n");
    let mut over = stream(4, &[]);
    over.extend((frame::DEFAULT_MAX_FRAME_BYTES + 1).to_be_bytes());
    over.push(2);
    write("oversized_header", &over);
    let mut unknown = stream(4, &all[..1]);
    unknown.extend([0, 0, 0, 1, 77, 0]);
    write("unknown_type_after_hello", &unknown);
    let mut cut = stream(7, &all);
    cut.truncate(cut.len() - 3);
    write("truncated_last_frame", &cut);
}

//! Spool segments from outside the crate: the seed corpus of the spool
//! scanner's fuzz target (`nucleus-proto/fuzz/corpus/spool_scanner/`)
//! replayed through the function the target calls, so every seed, and
//! every crash input added to it, stays a regression test on stable Rust
//! (a seed named `ok_N_*` must give exactly N good entries; every seed is
//! also replayed cut short); and `nucleus dump` run on segments.
//!
//! The seeds are made by this file's ignored test `write_seeds`:
//! `cargo test -p nucleus-proto --test spool -- --ignored write_seeds`.

// Test code: a failed expectation must stop the test with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{cid, sample_records};
use nucleus_proto::Record;
use nucleus_proto::batch::{Compression, seal};
use nucleus_proto::spool::{self, encode_entry, encode_header, fuzz_input};
use prost::Message;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn corpus_dir() -> PathBuf {
    common::fuzz_corpus_dir("spool_scanner")
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    common::fuzz_seeds("spool_scanner")
}

#[test]
fn spool_scanner_seeds_replay() {
    let seeds = seeds();
    assert!(seeds.len() >= 8, "the spool_scanner seed corpus is missing");
    for (name, data) in &seeds {
        let entries = fuzz_input(data);
        if let Some(n) = name.strip_prefix("ok_").and_then(|r| r.split('_').next()) {
            assert_eq!(entries, n.parse::<u64>().unwrap(), "{name}");
        }
        for n in (0..data.len()).step_by(5) {
            assert!(fuzz_input(&data[..n]) <= entries, "{name} cut at {n}");
        }
    }
}

/// An entry holding a sealed batch of `records`, numbered (9, seq).
fn batch_entry(seq: u64, records: &[Record]) -> Vec<u8> {
    let b = seal(9, seq, records, &cid(), Compression::Zstd(3)).unwrap();
    let mut out = Vec::new();
    let n = records.len() as u32;
    encode_entry(
        9,
        seq,
        n,
        &b.encode_to_vec(),
        spool::DEFAULT_MAX_BODY_BYTES,
        &mut out,
    )
    .unwrap();
    out
}

/// An entry whose batch is just these bytes (the scanner does not open it).
fn raw_entry(seq: u64, batch: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_entry(1, seq, 1, batch, 4096, &mut out).unwrap();
    out
}

fn segment(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut s = encode_header(9).to_vec();
    for e in entries {
        s.extend(e);
    }
    s
}

#[test]
#[ignore = "writes the seed corpus; run by hand after changing the format"]
fn write_seeds() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, piece: u8, data: &[u8]| {
        let mut seed = vec![piece];
        seed.extend(data);
        std::fs::write(dir.join(name), seed).unwrap();
    };
    let records = sample_records();
    let three = [
        raw_entry(0, b"first"),
        raw_entry(1, b"second"),
        raw_entry(2, b""),
    ];
    write("ok_3_clean", 63, &segment(&three));
    write("ok_3_clean_bytewise", 0, &segment(&three));
    write(
        "ok_2_sealed_batches",
        20,
        &segment(&[batch_entry(0, &records), batch_entry(1, &records[..1])]),
    );
    let mut flipped = segment(&three);
    flipped[16 + 12 + 3] ^= 0x10;
    write("ok_2_flipped_first_entry", 7, &flipped);
    let mut cut = segment(&three);
    cut.truncate(cut.len() - 3);
    write("ok_2_truncated_tail", 9, &cut);
    let mut junk = encode_header(1).to_vec();
    junk.extend(b"NSPE\x00\x00\x00\x20junkNSP");
    junk.extend(raw_entry(0, b"a"));
    junk.extend(b"NSPE\xff\xff\xff\xff");
    junk.extend(raw_entry(1, b"b"));
    write("ok_2_garbage_between", 3, &junk);
    let mut bad_header = segment(&three[..1]);
    bad_header[..4].copy_from_slice(b"XXXX");
    write("ok_1_bad_header", 11, &bad_header);
    let mut other_version = segment(&three);
    other_version[5] = 9;
    write("other_version", 5, &other_version);
    write(
        "garbage_only",
        1,
        b"NSPLNSPENSPE\x00\x00\x00\x14garbage garbage",
    );
}

fn dump(path: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nucleus"))
        .arg("dump")
        .arg(path)
        .output()
        .unwrap()
}

fn json_lines(records: &[Record]) -> String {
    records
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect()
}

/// A file under the temp dir, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str, bytes: &[u8]) -> Self {
        let p = std::env::temp_dir().join(format!("nucleus-spool-{}-{tag}", std::process::id()));
        std::fs::write(&p, bytes).unwrap();
        TempFile(p)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn dump_prints_the_records_of_a_spool_segment() {
    let records = sample_records();
    let seg = segment(&[batch_entry(0, &records), batch_entry(1, &records[..1])]);
    let file = TempFile::new("clean", &seg);
    let o = dump(&file.0);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    let mut want = json_lines(&records);
    want.push_str(&json_lines(&records[..1]));
    assert_eq!(String::from_utf8(o.stdout).unwrap(), want);
    assert!(stderr.contains("2 batches, 3 records"), "{stderr}");
}

#[test]
fn dump_names_damaged_regions_prints_the_rest_and_fails() {
    let records = sample_records();
    let (a, b, c) = (
        batch_entry(0, &records[..1]),
        batch_entry(1, &records),
        batch_entry(2, &records[1..]),
    );
    let mut seg = segment(&[a.clone(), b.clone(), c.clone()]);
    let b_at = 16 + a.len();
    seg[b_at + 40] ^= 0xff;
    seg.truncate(seg.len() - 7);
    let file = TempFile::new("damaged", &seg);
    let o = dump(&file.0);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{stderr}");
    let name = file.0.display();
    let b_end = b_at + b.len();
    assert!(
        stderr.contains(&format!("{name}: bytes {b_at}..{b_end} damaged, skipped")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{name}: bytes {b_end}..{} damaged", seg.len())),
        "{stderr}"
    );
    assert!(stderr.contains("2 damaged regions"), "{stderr}");
    // The intact first entry is still printed.
    assert_eq!(
        String::from_utf8(o.stdout).unwrap(),
        json_lines(&records[..1])
    );
}

#[test]
fn dump_help_says_damage_fails_the_dump() {
    let o = Command::new(env!("CARGO_BIN_EXE_nucleus"))
        .args(["dump", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(help.contains("spool segment"), "{help}");
    assert!(help.contains("non-zero"), "{help}");
}

//! Replays the seed corpora of the TLS fuzz targets (`sensor/fuzz/corpus/
//! tls_hello/` and `tls_records/`) through the functions the targets call,
//! so every seed, and every crash input added to them, stays a regression
//! test on stable Rust.

use std::path::Path;

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            (p.display().to_string(), std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn tls_hello_seeds_replay() {
    let seeds = seeds("tls_hello");
    assert!(seeds.len() >= 5, "the tls_hello seed corpus is missing");
    for (name, data) in &seeds {
        sensor::dissect::tls::fuzz_input(data);
        // Truncations too: the fuzzer's first mutations.
        for n in (0..data.len()).step_by(13) {
            sensor::dissect::tls::fuzz_input(&data[..n]);
        }
        assert!(!data.is_empty(), "{name}");
    }
}

#[test]
fn tls_records_seeds_replay() {
    let seeds = seeds("tls_records");
    assert!(seeds.len() >= 3, "the tls_records seed corpus is missing");
    for (name, data) in &seeds {
        // Every seed is a handshake the dissector reports.
        assert_eq!(sensor::dissect::tls::fuzz_records(data), 1, "{name}");
        for n in (0..data.len()).step_by(11) {
            let _ = sensor::dissect::tls::fuzz_records(&data[..n]);
        }
    }
}

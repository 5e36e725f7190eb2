//! Users rely on the sensor never crashing on real traffic: every capture in
//! the corpus (real captures from four projects, malformed and truncated
//! ones included) goes through `sensor pcap` with exit code 0 and no panic;
//! a file that is not a capture at all ends with a clean, one-line error.

// Test code: a failed expectation must stop the test with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use sensor_tests::corpus::corpus_or_skip;
use sensor_tests::sensor::{SensorRun, run_pcap};

/// Captures per `sensor pcap` invocation.
const BATCH: usize = 40;

#[test]
fn every_corpus_capture_runs_without_panic() {
    let Some(corpus) = corpus_or_skip() else {
        return;
    };
    let files: Vec<PathBuf> = corpus
        .entries
        .iter()
        .map(|e| corpus.entry_path(e))
        .collect();
    assert!(
        files.len() > 500,
        "the manifest lists {} captures",
        files.len()
    );
    let batches: Vec<&[PathBuf]> = files.chunks(BATCH).collect();
    let failures: Vec<String> = sensor_tests::parallel_map(&batches, 2, |batch| {
        let paths: Vec<&Path> = batch.iter().map(PathBuf::as_path).collect();
        let run = run_pcap(&paths, &[]);
        if run.status.success() && !run.panicked() {
            return Vec::new();
        }
        // Name the culprits: rerun each file of the failed batch alone.
        batch
            .iter()
            .filter_map(|file| {
                verdict(file, &run_pcap(&[file.as_path()], &[]))
                    .map(|problem| format!("{}: {problem}", corpus.relative(file)))
            })
            .collect()
    })
    .into_iter()
    .flatten()
    .collect();
    assert!(
        failures.is_empty(),
        "{} of {} captures fail:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

/// `None` when the run of one file is acceptable, else what is wrong.
fn verdict(file: &Path, run: &SensorRun) -> Option<String> {
    if run.panicked() {
        return Some(format!("panicked ({}):\n{}", run.status, run.stderr));
    }
    if run.status.success() {
        return None;
    }
    if run.status.code().is_none() {
        return Some(format!("killed by a signal ({})", run.status));
    }
    if is_capture(file) {
        return Some(format!("exit {} on a capture:\n{}", run.status, run.stderr));
    }
    let lines = run.stderr.trim().lines().count();
    (lines != 1).then(|| {
        format!(
            "not a capture: expected a one-line error, got {lines} lines ({}):\n{}",
            run.status, run.stderr
        )
    })
}

/// True when the file starts with a pcap or pcapng magic number.
fn is_capture(file: &Path) -> bool {
    let bytes = std::fs::read(file).unwrap_or_default();
    matches!(
        bytes.get(..4),
        Some(
            [0xd4, 0xc3, 0xb2, 0xa1]
                | [0xa1, 0xb2, 0xc3, 0xd4]
                | [0x4d, 0x3c, 0xb2, 0xa1]
                | [0xa1, 0xb2, 0x3c, 0x4d]
                | [0x0a, 0x0d, 0x0d, 0x0a]
        )
    )
}

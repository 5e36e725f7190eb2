//! Users rely on the sensor being deterministic: the same capture gives
//! byte-identical records whether one worker or four process it, and run
//! after run. Replays, golden tests and record diffs depend on it.

// Test code: a failed expectation must stop the test with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::PathBuf;

use sensor_tests::corpus::corpus_or_skip;
use sensor_tests::sensor::run_pcap;

#[test]
fn same_records_with_one_or_four_workers_and_across_runs() {
    let Some(corpus) = corpus_or_skip() else {
        return;
    };
    let files: Vec<PathBuf> = corpus
        .entries
        .iter()
        .map(|e| corpus.entry_path(e))
        .collect();
    let failures: Vec<String> = sensor_tests::parallel_map(&files, 2, |file| {
        let name = corpus.relative(file).into_owned();
        let run = |workers: &str| {
            let run = run_pcap(&[file.as_path()], &["--workers", workers]);
            if run.panicked() {
                Err(format!(
                    "{name}: --workers {workers} panicked:\n{}",
                    run.stderr
                ))
            } else {
                Ok((run.status.code(), run.stdout))
            }
        };
        let outcome = (|| {
            let one = run("1")?;
            let four = run("4")?;
            let four_again = run("4")?;
            if one != four {
                return Err(format!(
                    "{name}: --workers 1 and --workers 4 differ{}",
                    first_difference(&one.1, &four.1)
                ));
            }
            if four != four_again {
                return Err(format!(
                    "{name}: two runs with --workers 4 differ{}",
                    first_difference(&four.1, &four_again.1)
                ));
            }
            Ok(())
        })();
        outcome.err()
    })
    .into_iter()
    .flatten()
    .collect();
    assert!(
        failures.is_empty(),
        "{} of {} captures give different records:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

/// `: line N: "a" vs "b"` for the first line that differs.
fn first_difference(a: &str, b: &str) -> String {
    let mut left = a.lines();
    let mut right = b.lines();
    for n in 1.. {
        match (left.next(), right.next()) {
            (None, None) => return " (exit status only)".to_owned(),
            (l, r) if l != r => {
                return format!(
                    ": line {n}:\n  {}\n  {}",
                    l.unwrap_or("<end>"),
                    r.unwrap_or("<end>")
                );
            }
            _ => {}
        }
    }
    unreachable!("the loop returns at the first difference or at the end")
}

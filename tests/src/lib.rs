//! Shared helpers for the end-to-end tests: find the corpus and the real
//! `sensor` binary, run `sensor pcap`, parse its JSON flow records, and
//! compute reference flows from tshark and from Zeek's `conn.log` baselines.
//!
//! The tests in `tests/` are thin: each one states what a user relies on and
//! uses these helpers to check it. Nothing here links the sensor library; the
//! binary is the unit under test.
//!
//! Running: `cargo test -p sensor-tests`. Environment:
//! - `SENSOR_BIN`: the binary to test; else `<target>/release/sensor`
//!   (`CARGO_TARGET_DIR` or the workspace's `target/`), built once when
//!   missing. An existing binary is not rebuilt: run `cargo build --release
//!   -p sensor` first when the sensor changed.
//! - `SENSOR_CORPUS`: the corpus; else `../shared/corpus` from the workspace
//!   root. Without it every test prints one "skipping" line and passes.
//! - `TSHARK`: tshark, else `tshark` on `PATH` (needed by `encap_vs_tshark`).
//!
//! `cargo run -p sensor-tests --example reference_flows -- FILE...` prints the
//! tshark reference flows of captures, to debug a difference.
//!
//! The deployment tests (`deploy_*`) also use `packer`, `systemd-analyze`,
//! `curl` and `python3` with cfn-lint; `scripts/test` installs them.

// Test support: a failed expectation must stop the test with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

pub mod aws_proxy;
pub mod boot_config;
pub mod cfn;
pub mod corpus;
pub mod expectations;
pub mod flow;
pub mod imds;
pub mod jsonl;
pub mod live;
pub mod moto;
pub mod netns;
pub mod nucleus;
pub mod packets;
pub mod probe;
pub mod records;
pub mod reference;
pub mod replay;
pub mod sensor;
pub mod suricata;
pub mod tshark;
pub mod zeek;

use std::path::{Path, PathBuf};

/// The workspace root: the parent of this package's directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests package lives inside the workspace")
        .to_path_buf()
}

/// Applies `work` to every item on `threads` threads and returns the results
/// in the items' order. Used to run external tools over many captures.
pub fn parallel_map<T, R, F>(items: &[T], threads: usize, work: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<Option<R>>> =
        std::sync::Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(item) = items.get(index) else { break };
                    let result = work(item);
                    results.lock().expect("no worker panicked")[index] = Some(result);
                }
            });
        }
    });
    results
        .into_inner()
        .expect("no worker panicked")
        .into_iter()
        .map(|r| r.expect("every item was processed"))
        .collect()
}

//! Finding, building and running the real `sensor` binary.
//!
//! The binary is `SENSOR_BIN` when set, else `<target>/release/sensor` where
//! `<target>` is `CARGO_TARGET_DIR` or the workspace's `target/`. When that
//! file is missing it is built once (`cargo build --release -p sensor --bin
//! sensor`); a `OnceLock` makes parallel tests share one build.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::flow::{Flow, parse_flows};
use crate::workspace_root;

/// How long one `sensor` run may take before the test kills it and fails.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// The `sensor` binary under test, built on first use when missing.
pub fn sensor_bin() -> &'static Path {
    // The outcome, failure included, is kept so that a failed build is not
    // retried by every test thread.
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BIN.get_or_init(locate_or_build) {
        Ok(bin) => bin,
        Err(problem) => panic!("{problem}"),
    }
}

/// The cargo target directory: `CARGO_TARGET_DIR` (relative to the
/// workspace root when relative), else the workspace's `target/`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        None => workspace_root().join("target"),
    }
}

fn locate_or_build() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("SENSOR_BIN") {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!("SENSOR_BIN={} is not a file", bin.display()))
        };
    }
    let bin = target_dir().join("release").join("sensor");
    if !bin.is_file() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        eprintln!(
            "building {} (cargo build --release -p sensor)",
            bin.display()
        );
        let status = Command::new(cargo)
            .args(["build", "--release", "-p", "sensor", "--bin", "sensor"])
            .current_dir(workspace_root())
            .env("CARGO_TARGET_DIR", target_dir())
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !status.success() {
            return Err(format!("cargo build --release -p sensor failed ({status})"));
        }
    }
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!("sensor binary missing at {}", bin.display()))
    }
}

/// What one `sensor` run produced.
#[derive(Debug)]
pub struct SensorRun {
    /// Exit status of the process.
    pub status: ExitStatus,
    /// Everything written to stdout (the JSON lines with `--json -`).
    pub stdout: String,
    /// Everything written to stderr.
    pub stderr: String,
}

impl SensorRun {
    /// The flow records in stdout (other record types are ignored).
    pub fn flows(&self) -> Vec<Flow> {
        parse_flows(&self.stdout)
    }

    /// True when stderr reports a panic.
    pub fn panicked(&self) -> bool {
        self.stderr.contains("panicked")
    }
}

/// Runs `sensor pcap FILES... --json - ARGS...` and returns its output.
/// Fails the test when the process does not end within [`RUN_TIMEOUT`].
pub fn run_pcap(files: &[&Path], args: &[&str]) -> SensorRun {
    let mut command = Command::new(sensor_bin());
    command
        .arg("pcap")
        .args(files)
        .args(["--json", "-"])
        .args(args);
    run_with_timeout(command)
}

/// Runs `sensor pcap FILE --json - ARGS...`, asserts a clean exit without a
/// panic, and returns the flow records.
pub fn flows_of(file: &Path, args: &[&str]) -> Vec<Flow> {
    let run = run_pcap(&[file], args);
    assert!(
        run.status.success() && !run.panicked(),
        "sensor pcap {} {args:?} failed ({}):\n{}",
        file.display(),
        run.status,
        run.stderr
    );
    run.flows()
}

fn run_with_timeout(mut command: Command) -> SensorRun {
    let description = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {description}: {e}"));
    let mut stdout_pipe = child.stdout.take().expect("stdout is piped");
    let mut stderr_pipe = child.stderr.take().expect("stderr is piped");
    let stdout_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        stdout_pipe.read_to_end(&mut buf).map(|_| buf)
    });
    let stderr_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        stderr_pipe.read_to_end(&mut buf).map(|_| buf)
    });
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting on sensor") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{description} did not finish within {RUN_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout = stdout_reader
        .join()
        .expect("reader thread")
        .expect("read stdout");
    let stderr = stderr_reader
        .join()
        .expect("reader thread")
        .expect("read stderr");
    SensorRun {
        status,
        stdout: String::from_utf8(stdout)
            .unwrap_or_else(|e| panic!("{description} wrote non-UTF-8 to stdout: {e}")),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

//! The Nucleus side of the export tests: development certificates (made by
//! `scripts/nucleus-dev-certs`, so the script users run is the one tested),
//! the reference receiver `nucleus serve` as a child process on loopback,
//! its output read back per record type, `nucleus dump` of spool segments,
//! and `sensor pcap` runs that export instead of writing JSON.
//!
//! Inputs: certificate directories, output and spool directories, capture
//! files. Outputs: [`Receiver`] handles, JSON lines grouped by record type,
//! command results. Like [`crate::live`], it only signals and kills the
//! processes it started, by PID, and every wait is bounded.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::jsonl::lines_by_type;
use crate::replay::{ReplayRun, run_bounded};
use crate::sensor::{sensor_bin, target_dir};
use crate::workspace_root;

/// How long `nucleus serve` may take to listen, and to exit after SIGTERM.
pub const RECEIVER_TIMEOUT: Duration = Duration::from_secs(20);

/// The `nucleus` binary: `NUCLEUS_BIN` when set, else next to the sensor
/// under test (`<target>/release/nucleus`), built once when missing. An
/// existing binary is not rebuilt (`scripts/test` builds both first).
pub fn nucleus_bin() -> &'static Path {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BIN.get_or_init(locate_or_build) {
        Ok(bin) => bin,
        Err(problem) => panic!("{problem}"),
    }
}

fn locate_or_build() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("NUCLEUS_BIN") {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!("NUCLEUS_BIN={} is not a file", bin.display()))
        };
    }
    let beside = sensor_bin().with_file_name("nucleus");
    if beside.is_file() {
        return Ok(beside);
    }
    let bin = target_dir().join("release").join("nucleus");
    if !bin.is_file() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        eprintln!(
            "building {} (cargo build --release -p nucleus-proto)",
            bin.display()
        );
        let status = Command::new(cargo)
            .args([
                "build",
                "--release",
                "-p",
                "nucleus-proto",
                "--bin",
                "nucleus",
            ])
            .current_dir(workspace_root())
            .env("CARGO_TARGET_DIR", target_dir())
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !status.success() {
            return Err(format!(
                "cargo build --release -p nucleus-proto failed ({status})"
            ));
        }
    }
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!("nucleus binary missing at {}", bin.display()))
    }
}

/// A CA with a receiver certificate and a sensor certificate it signed, as
/// `scripts/nucleus-dev-certs` writes them.
#[derive(Debug, Clone)]
pub struct DevCerts {
    /// The directory holding the files.
    pub dir: PathBuf,
}

impl DevCerts {
    /// Runs `scripts/nucleus-dev-certs DIR HOST`; fails the test when the
    /// script fails or leaves a file out.
    pub fn make(dir: &Path, host: &str) -> Self {
        let script = workspace_root().join("scripts/nucleus-dev-certs");
        let mut command = Command::new(&script);
        command.arg(dir).arg(host);
        let run = run_bounded(command, Duration::from_secs(60));
        run.assert_success();
        let certs = Self {
            dir: dir.to_path_buf(),
        };
        for file in [
            certs.ca(),
            certs.server_cert(),
            certs.server_key(),
            certs.client_cert(),
            certs.client_key(),
        ] {
            assert!(
                file.is_file(),
                "{} did not write {}",
                script.display(),
                file.display()
            );
        }
        certs
    }

    /// The CA certificate (`--nucleus-ca`, `--client-ca`).
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The receiver's certificate (`--tls-cert`).
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }

    /// The receiver's key (`--tls-key`).
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }

    /// The sensor's certificate (`--nucleus-cert`).
    pub fn client_cert(&self) -> PathBuf {
        self.dir.join("client.pem")
    }

    /// The sensor's key (`--nucleus-key`).
    pub fn client_key(&self) -> PathBuf {
        self.dir.join("client.key")
    }
}

/// How to start `nucleus serve`.
#[derive(Debug, Clone)]
pub struct ReceiverOptions {
    /// `--tls-cert` and `--tls-key` come from these certificates.
    pub certs: DevCerts,
    /// `--client-ca`: require sensor certificates from this CA.
    pub client_ca: Option<PathBuf>,
    /// `--out`.
    pub out: PathBuf,
    /// `--listen` (port 0: the receiver picks one and logs it).
    pub listen: SocketAddr,
}

/// A running `nucleus serve` child.
#[derive(Debug)]
pub struct Receiver {
    child: Child,
    /// Where it listens (read from its log line).
    pub addr: SocketAddr,
    /// Its output directory.
    pub out: PathBuf,
    stderr_path: PathBuf,
    exit: Option<ExitStatus>,
    command_line: String,
}

impl Receiver {
    /// Starts `nucleus serve` with its stderr in `stderr_path` and waits
    /// until it logs `listening on ADDR`; fails the test otherwise.
    pub fn start(options: &ReceiverOptions, stderr_path: &Path) -> Self {
        let mut command = Command::new(nucleus_bin());
        command
            .arg("serve")
            .arg("--listen")
            .arg(options.listen.to_string())
            .arg("--tls-cert")
            .arg(options.certs.server_cert())
            .arg("--tls-key")
            .arg(options.certs.server_key())
            .arg("--out")
            .arg(&options.out);
        if let Some(ca) = &options.client_ca {
            command.arg("--client-ca").arg(ca);
        }
        let command_line = format!("{command:?}");
        let already = listening_lines(stderr_path).len();
        // Appended, so a restarted receiver's log follows the first one's.
        let stderr = File::options()
            .create(true)
            .append(true)
            .open(stderr_path)
            .expect("open the receiver's stderr file");
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command_line}: {e}"));
        let mut receiver = Self {
            child,
            addr: options.listen,
            out: options.out.clone(),
            stderr_path: stderr_path.to_path_buf(),
            exit: None,
            command_line,
        };
        let deadline = Instant::now() + RECEIVER_TIMEOUT;
        loop {
            let lines = listening_lines(&receiver.stderr_path);
            if let Some(addr) = lines.get(already) {
                receiver.addr = addr.parse().unwrap_or_else(|e| {
                    panic!("nucleus logged an unreadable address {addr:?}: {e}")
                });
                return receiver;
            }
            if let Ok(Some(status)) = receiver.child.try_wait() {
                panic!(
                    "{} exited ({status}) before listening:\n{}",
                    receiver.command_line,
                    receiver.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} not listening within {RECEIVER_TIMEOUT:?}:\n{}",
                receiver.command_line,
                receiver.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM by PID, then a bounded wait; fails the test unless it exits 0.
    pub fn stop(&mut self) {
        let status = Command::new("kill")
            .args(["-s", "TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s TERM {} failed", self.pid());
        let deadline = Instant::now() + RECEIVER_TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait on nucleus") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "nucleus still running {RECEIVER_TIMEOUT:?} after SIGTERM:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        self.exit = Some(status);
        assert!(
            status.success(),
            "nucleus exited with {status} after SIGTERM:\n{}",
            self.stderr()
        );
    }

    /// Everything the receiver (and earlier ones logging to the same file)
    /// wrote to stderr.
    pub fn stderr(&self) -> String {
        std::fs::read(&self.stderr_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The records written so far: `<type>.jsonl` → its lines.
    pub fn records(&self) -> BTreeMap<String, Vec<String>> {
        output_records(&self.out)
    }

    /// How many records are written so far, all types.
    pub fn record_count(&self) -> usize {
        self.records().values().map(Vec::len).sum()
    }
}

/// The addresses of the `listening on` lines in a receiver's log so far.
fn listening_lines(stderr_path: &Path) -> Vec<String> {
    let text = std::fs::read(stderr_path).unwrap_or_default();
    String::from_utf8_lossy(&text)
        .lines()
        .filter_map(|l| l.strip_prefix("nucleus: listening on "))
        .map(|a| a.trim().to_owned())
        .collect()
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if self.exit.is_none() && self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("nucleus stderr ({}):\n{}", self.command_line, self.stderr());
        }
    }
}

/// The records in a receiver's output directory: each `<type>.jsonl` (not
/// the hidden ledger) → its lines, sorted (a multiset).
pub fn output_records(out: &Path) -> BTreeMap<String, Vec<String>> {
    let mut by_type = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(out) else {
        return by_type;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(kind) = name.strip_suffix(".jsonl") else {
            continue;
        };
        if kind.starts_with('.') {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        lines.sort();
        by_type.insert(kind.to_owned(), lines);
    }
    by_type.retain(|_, lines| !lines.is_empty());
    by_type
}

/// Runs `sensor ARGS...` (such as `pcap FILE --nucleus ...`) with only the
/// `SENSOR_*` variables of `env` (the test runner's own are removed),
/// killed and failed after `timeout`.
pub fn sensor_command(args: &[String], env: &[(&str, &str)], timeout: Duration) -> ReplayRun {
    let mut command = Command::new(sensor_bin());
    command.args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SENSOR_") {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied());
    run_bounded(command, timeout)
}

/// `nucleus dump FILE`, whatever its outcome (it fails on a damaged
/// segment, after printing the records of the intact entries).
pub fn dump_run(file: &Path) -> ReplayRun {
    let mut command = Command::new(nucleus_bin());
    command.arg("dump").arg(file);
    run_bounded(command, Duration::from_secs(60))
}

/// `nucleus dump FILE`: its JSON lines grouped by type; fails the test when
/// it fails.
pub fn dump(file: &Path) -> BTreeMap<String, Vec<String>> {
    let run = dump_run(file);
    run.assert_success();
    lines_by_type(&run.stdout)
}

/// The spool segment files (`*.nspool`) in `dir`, sorted by name.
pub fn spool_segments(dir: &Path) -> Vec<PathBuf> {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "nspool"))
                .collect()
        })
        .unwrap_or_default();
    segments.sort();
    segments
}

/// The number on the `NAME: N` line of `--stats` output, if any.
pub fn stats_value(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (key, value) = l.split_once(':')?;
        (key.trim() == name).then(|| value.trim().parse().ok())?
    })
}

/// Polls `ready` every 50 ms until it holds (true) or `timeout` passes
/// (false).
pub fn wait_until(timeout: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if ready() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn stats_lines_are_read() {
        let stats = "packets: 10\nexport_spool_corrupt_entries: 2\n";
        assert_eq!(stats_value(stats, "export_spool_corrupt_entries"), Some(2));
        assert_eq!(stats_value(stats, "export_records_acked"), None);
    }
}

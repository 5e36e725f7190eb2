//! Running the live appliance (`sensor run`) as a child process for a test:
//! loopback ports nobody else uses, records into a temporary file, waiting
//! for readiness with a bounded wait, signals by PID, and a bounded wait
//! for the exit.
//!
//! Inputs: [`LiveOptions`] (threads, drain, config file, extra flags, and
//! optionally a network namespace to run in). Output: a [`LiveSensor`]
//! handle; its records, stderr, metrics and memory. It never touches a
//! process it did not start: the child is killed by PID when the handle is
//! dropped while it still runs. It does not send traffic (see
//! [`crate::replay`]).

use std::fs::File;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::probe::{self, Metrics};
use crate::sensor::sensor_bin;

/// How long a sensor may take to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A directory under the system temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// A new empty directory named after `label`, this process and a counter.
    pub fn new(label: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("sensor-e2e-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        Self { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("SENSOR_E2E_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A loopback UDP port that was free a moment ago (the kernel picked it).
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral UDP port on loopback")
}

/// A loopback TCP port that was free a moment ago (the kernel picked it).
pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral TCP port on loopback")
}

/// How to start `sensor run`.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// `--rx-threads`; `None` leaves the default (one per core).
    pub rx_threads: Option<usize>,
    /// `--workers`; `None` leaves the default.
    pub workers: Option<usize>,
    /// `--drain`.
    pub drain: Duration,
    /// `--config FILE`.
    pub config: Option<PathBuf>,
    /// The address every listener binds to (loopback unless in a netns).
    pub bind_ip: std::net::IpAddr,
    /// The VXLAN port; `None`: a free loopback port.
    pub vxlan_port: Option<u16>,
    /// Run inside this network namespace (`ip netns exec NAME`, which execs
    /// in place, so the child's PID is the sensor's).
    pub netns: Option<String>,
    /// More flags, appended last.
    pub extra_args: Vec<String>,
    /// Environment variables for the sensor (such as `SENSOR_NUCLEUS_*`
    /// settings), set after the runner's own `SENSOR_*` are removed.
    pub env: Vec<(String, String)>,
}

impl Default for LiveOptions {
    fn default() -> Self {
        Self {
            rx_threads: Some(1),
            workers: Some(2),
            drain: Duration::from_millis(500),
            config: None,
            bind_ip: std::net::Ipv4Addr::LOCALHOST.into(),
            vxlan_port: None,
            netns: None,
            extra_args: Vec::new(),
            env: Vec::new(),
        }
    }
}

/// A running `sensor run` child and where it listens.
#[derive(Debug)]
pub struct LiveSensor {
    child: Child,
    /// Where VXLAN is received.
    pub vxlan: SocketAddr,
    /// Where GENEVE is received.
    pub geneve: SocketAddr,
    /// The HTTP health and metrics address.
    pub health: SocketAddr,
    /// The TCP health-check address.
    pub tcp_health: SocketAddr,
    /// The JSON lines record file.
    pub json: PathBuf,
    stderr_path: PathBuf,
    netns: Option<String>,
    exit: Option<ExitStatus>,
    /// The command line, for messages.
    pub command_line: String,
}

impl LiveSensor {
    /// Starts `sensor run` with records and stderr in `dir`. Does not wait
    /// for readiness (see [`LiveSensor::wait_ready`]).
    pub fn start(dir: &TempDir, options: &LiveOptions) -> Self {
        let ip = options.bind_ip;
        let port = |p: Option<u16>, free: fn() -> u16| p.unwrap_or_else(free);
        let vxlan = SocketAddr::new(ip, port(options.vxlan_port, free_udp_port));
        let geneve = SocketAddr::new(ip, free_udp_port());
        let health = SocketAddr::new(ip, free_tcp_port());
        let tcp_health = SocketAddr::new(ip, free_tcp_port());
        let json = dir.join("records.json");
        let stderr_path = dir.join("sensor.stderr");
        let mut args: Vec<String> = vec!["run".into()];
        if let Some(config) = &options.config {
            args.extend(["--config".into(), config.display().to_string()]);
        }
        let flags = [
            ("--listen-vxlan", vxlan.to_string()),
            ("--listen-geneve", geneve.to_string()),
            ("--health", health.to_string()),
            ("--tcp-health", tcp_health.to_string()),
            ("--json", json.display().to_string()),
            ("--drain", format!("{}ms", options.drain.as_millis())),
        ];
        for (flag, value) in flags {
            args.extend([flag.to_string(), value]);
        }
        if let Some(n) = options.rx_threads {
            args.extend(["--rx-threads".into(), n.to_string()]);
        }
        if let Some(n) = options.workers {
            args.extend(["--workers".into(), n.to_string()]);
        }
        args.extend(options.extra_args.iter().cloned());
        let mut command = match &options.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(sensor_bin());
                c
            }
            None => Command::new(sensor_bin()),
        };
        command.args(&args);
        // The configuration reads SENSOR_* variables; the test runner's own
        // (SENSOR_BIN, SENSOR_CORPUS) are not meant for it.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SENSOR_") {
                command.env_remove(key);
            }
        }
        command.envs(options.env.iter().map(|(k, v)| (k, v)));
        let command_line = format!("{} {}", sensor_bin().display(), args.join(" "));
        let stderr = File::create(&stderr_path).expect("create the stderr file");
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command_line}: {e}"));
        Self {
            child,
            vxlan,
            geneve,
            health,
            tcp_health,
            json,
            stderr_path,
            netns: options.netns.clone(),
            exit: None,
            command_line,
        }
    }

    /// Starts the sensor and waits until `/readyz` answers 200; fails the
    /// test with the sensor's stderr when it exits or is not ready in time.
    pub fn start_ready(dir: &TempDir, options: &LiveOptions) -> Self {
        let mut sensor = Self::start(dir, options);
        if let Err(problem) = sensor.wait_ready(READY_TIMEOUT) {
            panic!(
                "{problem}\ncommand: {}\nstderr:\n{}",
                sensor.command_line,
                sensor.stderr()
            );
        }
        sensor
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Polls `/readyz` every 50 ms until it answers 200 (Ok), the process
    /// exits or `timeout` passes (Err with what happened).
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit() {
                return Err(format!("sensor run exited ({status}) before it was ready"));
            }
            let last = match self.get("/readyz") {
                Ok((200, _)) => return Ok(()),
                Ok((code, body)) => format!("HTTP {code}: {body}"),
                Err(e) => e,
            };
            if Instant::now() > deadline {
                return Err(format!(
                    "sensor run not ready within {timeout:?}; last /readyz: {last}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `GET path` on the health address: (status, body).
    pub fn get(&self, path: &str) -> Result<(u16, String), String> {
        match &self.netns {
            Some(ns) => probe::http_get_in_netns(ns, self.health, path, Duration::from_secs(2)),
            None => probe::http_get(self.health, path, Duration::from_secs(2)),
        }
    }

    /// The current `/metrics`, parsed; fails the test when unavailable.
    pub fn metrics(&self) -> Metrics {
        match self.get("/metrics") {
            Ok((200, body)) => Metrics::parse(&body),
            Ok((code, body)) => panic!("/metrics answered {code}: {body}"),
            Err(e) => panic!("/metrics failed: {e}\nstderr:\n{}", self.stderr()),
        }
    }

    /// Sends `signal` (a `kill -s` name such as `TERM`) to the child by PID.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {signal} {} failed", self.pid());
    }

    /// The exit status if the child has exited.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }

    /// Waits up to `timeout` for the child to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, then waits up to the drain plus `margin` for a clean exit;
    /// fails the test unless it exits 0.
    pub fn stop(&mut self, drain: Duration, margin: Duration) {
        self.signal("TERM");
        match self.wait_exit(drain + margin) {
            Some(status) if status.success() => {}
            Some(status) => panic!(
                "sensor run exited with {status} after SIGTERM\nstderr:\n{}",
                self.stderr()
            ),
            None => panic!(
                "sensor run still running {:?} after SIGTERM (drain {drain:?})\nstderr:\n{}",
                drain + margin,
                self.stderr()
            ),
        }
    }

    /// Everything the child wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read(&self.stderr_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Every record written so far, as JSON objects (all types).
    pub fn records(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.json).unwrap_or_default();
        crate::records::parse_lines(&text)
    }

    /// The flow records written so far.
    pub fn flow_records(&self) -> Vec<Value> {
        crate::records::flows_only(self.records())
    }

    /// Resident memory of the child in KiB (`VmRSS` of /proc/PID/status).
    pub fn rss_kib(&self) -> Option<u64> {
        self.status_field("VmRSS")
    }

    /// A numeric field of the child's /proc/PID/status (a size without its
    /// `kB` unit); None when the process or the field is gone.
    pub fn status_field(&self, name: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

impl Drop for LiveSensor {
    fn drop(&mut self) {
        if self.try_exit().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "sensor run stderr ({}):\n{}",
                self.command_line,
                self.stderr()
            );
        }
    }
}

//! An AWS emulator for the enrollment tests: `moto` in server mode on a free
//! loopback port, set up and inspected through boto3, and `sensor enroll`
//! runs pointed at it.
//!
//! moto (PyPI `moto[server]`, at least 5.2.5 for traffic mirror sessions)
//! is installed by `scripts/test`; [`MotoServer::start`] installs it with pip
//! when `python3` cannot import it. The server is a child process killed by
//! PID when the handle drops. Nothing here talks to anything but loopback.

use serde_json::Value;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The boto3 driver run by [`MotoServer::boto`].
const DRIVER: &str = include_str!("aws_driver.py");
/// How long moto may take to answer after starting.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running moto server; killed on drop.
pub struct MotoServer {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// Its address.
    pub addr: SocketAddr,
    dir: PathBuf,
}

fn ensure_moto() {
    let importable = |what: &str| {
        Command::new("python3")
            .args(["-c", what])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let check = "import moto.server, boto3; from moto.ec2.models.traffic_mirrors import TrafficMirrorSession";
    if importable(check) {
        return;
    }
    eprintln!("installing moto[server] with pip");
    let status = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "moto[server]>=5.2.5"])
        .status()
        .expect("python3 -m pip runs");
    assert!(
        status.success() && importable(check),
        "moto[server] could not be installed"
    );
}

/// A free loopback TCP port (bound and released; the child binds it next).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    l.local_addr().expect("local address").port()
}

impl MotoServer {
    /// Starts moto on a free loopback port and waits until it answers.
    pub fn start() -> Self {
        ensure_moto();
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("moto-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let log = std::fs::File::create(dir.join("moto.log")).expect("log file");
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("python3 -m moto.server starts");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let server = Self {
            child,
            endpoint: format!("http://{addr}"),
            addr,
            dir,
        };
        let started = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                started.elapsed() < START_TIMEOUT,
                "moto did not answer on {addr} within {START_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    /// A scratch directory that lives as long as the server.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs boto3 calls (`[{"service", "method", "args"}]`) in order against
    /// `endpoint` (this server, or a proxy in front of it); returns their
    /// responses.
    pub fn boto_at(endpoint: &str, calls: &Value) -> Vec<Value> {
        let mut child = Command::new("python3")
            .args(["-c", DRIVER, endpoint])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(calls.to_string().as_bytes())
            .expect("write calls");
        let out = child.wait_with_output().expect("driver ends");
        assert!(
            out.status.success(),
            "boto3 calls failed: {}\n{calls}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("driver prints JSON")
    }

    /// [`Self::boto_at`] this server.
    pub fn boto(&self, calls: &Value) -> Vec<Value> {
        Self::boto_at(&self.endpoint, calls)
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The outcome of one `sensor enroll` run.
#[derive(Debug)]
pub struct EnrollRun {
    /// Exit code.
    pub code: Option<i32>,
    /// Standard output (the table).
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `sensor enroll <command> --config <config>` with test credentials
/// in the environment (unless `env` says otherwise: pairs whose value is
/// `None` are removed).
pub fn enroll(command: &str, config: &Path, env: &[(&str, Option<&str>)]) -> EnrollRun {
    let mut cmd = Command::new(crate::sensor::sensor_bin());
    cmd.args(["enroll", command, "--config"])
        .arg(config)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_SESSION_TOKEN");
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let out = cmd.output().expect("sensor runs");
    EnrollRun {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

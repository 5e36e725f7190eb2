//! What the live benchmark sends to, and how it counts what arrived: the
//! in-process [`Drain`] (its own counter) or a `sensor run` child (the sum
//! of `sensor_packets_total{role="receiver"}` in its `/metrics`, and its
//! drops by reason). Also the one replay step both are measured with.
//!
//! Inputs: the sensor binary, CPUs, thread counts. Outputs: received and
//! dropped counts; [`ReplayStep`] results. Every child is started here and
//! ended here by PID.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::drain::Drain;

/// A receiver under test.
pub enum Target {
    /// The bare recvmmsg drain.
    Drain(Drain),
    /// The sensor.
    Sensor(SensorProcess),
}

impl Target {
    /// Where to send: for the sensor its VXLAN port, or its GENEVE port
    /// when the traffic comes as a GWLB delivers it (`gwlb`).
    pub fn addr(&self, gwlb: bool) -> SocketAddr {
        match self {
            Target::Drain(d) => d.addr,
            Target::Sensor(s) => s.traffic_addr(gwlb),
        }
    }

    /// Datagrams received so far.
    pub fn received(&self) -> Result<u64> {
        match self {
            Target::Drain(d) => Ok(d.received()),
            Target::Sensor(s) => {
                Ok(s.metric_sum("sensor_packets_total", Some(("role", "receiver")))? as u64)
            }
        }
    }

    /// Drops the target counted itself, by reason (the drain counts none).
    pub fn drops(&self) -> Result<Vec<(String, u64)>> {
        match self {
            Target::Drain(_) => Ok(Vec::new()),
            Target::Sensor(s) => s.drops_by_reason(),
        }
    }

    /// Stops the target.
    pub fn stop(self) -> Result<()> {
        match self {
            Target::Drain(d) => {
                d.stop();
                Ok(())
            }
            Target::Sensor(s) => s.stop(),
        }
    }
}

/// A `sensor run` child pinned with taskset.
pub struct SensorProcess {
    child: Child,
    /// Its VXLAN address.
    pub vxlan: SocketAddr,
    /// Its GENEVE address (GWLB traffic).
    pub geneve: SocketAddr,
    health: SocketAddr,
    dir: PathBuf,
    /// The command line, for the report.
    pub command_line: String,
}

fn free_port(udp: bool) -> Result<u16> {
    Ok(if udp {
        UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port()
    } else {
        TcpListener::bind("127.0.0.1:0")?.local_addr()?.port()
    })
}

impl SensorProcess {
    /// Where its traffic goes: the VXLAN port, or the GENEVE port for
    /// GWLB traffic.
    pub fn traffic_addr(&self, gwlb: bool) -> SocketAddr {
        if gwlb { self.geneve } else { self.vxlan }
    }

    /// Starts `taskset -c CPUS sensor run [--config FILE]` on loopback with
    /// records in a temporary directory, and waits until `/readyz` answers
    /// 200.
    pub fn start(
        taskset: &Path,
        cpus: &str,
        sensor: &Path,
        rx_threads: usize,
        workers: usize,
        rcvbuf_bytes: usize,
        config: Option<&Path>,
    ) -> Result<Self> {
        let vxlan: SocketAddr = ([127, 0, 0, 1], free_port(true)?).into();
        let geneve: SocketAddr = ([127, 0, 0, 1], free_port(true)?).into();
        let health: SocketAddr = ([127, 0, 0, 1], free_port(false)?).into();
        // Records go to a file in memory (/dev/shm) when there is one: on a
        // disk, kernel threads write them back outside the sensor's CPU time
        // and outside a --receiver-quota limit, work the drain does not get
        // to leave to others.
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!(
            "live-bench-{}-{}",
            std::process::id(),
            vxlan.port()
        ));
        std::fs::create_dir_all(&dir)?;
        let mut args: Vec<String> = vec![
            "-c".into(),
            cpus.into(),
            sensor.display().to_string(),
            "run".into(),
            "--listen-vxlan".into(),
            vxlan.to_string(),
            "--listen-geneve".into(),
            geneve.to_string(),
            "--health".into(),
            health.to_string(),
            "--no-tcp-health".into(),
            "--json".into(),
            dir.join("records.json").display().to_string(),
            "--drain".into(),
            "100ms".into(),
            "--rx-threads".into(),
            rx_threads.to_string(),
            "--workers".into(),
            workers.to_string(),
            "--rcvbuf".into(),
            rcvbuf_bytes.to_string(),
        ];
        if let Some(config) = config {
            args.extend(["--config".into(), config.display().to_string()]);
        }
        let command_line = format!("{} {}", taskset.display(), args.join(" "));
        let mut command = Command::new(taskset);
        command
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        command.stderr(std::fs::File::create(dir.join("sensor.stderr"))?);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SENSOR_") {
                command.env_remove(key);
            }
        }
        let child = command
            .spawn()
            .with_context(|| format!("start {command_line}"))?;
        let mut sensor = Self {
            child,
            vxlan,
            geneve,
            health,
            dir,
            command_line,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = sensor.child.try_wait()? {
                let stderr =
                    std::fs::read_to_string(sensor.dir.join("sensor.stderr")).unwrap_or_default();
                bail!("sensor run exited ({status}) before it was ready:\n{stderr}");
            }
            if matches!(http_get(sensor.health, "/readyz"), Ok((200, _))) {
                return Ok(sensor);
            }
            if Instant::now() > deadline {
                let _ = sensor.child.kill();
                bail!("sensor run not ready within 20 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sum of a metric's samples, optionally only those with one label value.
    pub fn metric_sum(&self, name: &str, label: Option<(&str, &str)>) -> Result<f64> {
        let (code, body) = http_get(self.health, "/metrics")?;
        if code != 200 {
            bail!("/metrics answered {code}");
        }
        Ok(samples(&body, name)
            .filter(|(labels, _)| {
                label.is_none_or(|(k, v)| labels.contains(&format!("{k}=\"{v}\"")))
            })
            .map(|(_, value)| value)
            .sum())
    }

    fn drops_by_reason(&self) -> Result<Vec<(String, u64)>> {
        let (_, body) = http_get(self.health, "/metrics")?;
        let mut by_reason: Vec<(String, u64)> = Vec::new();
        for (labels, value) in samples(&body, "sensor_drops_total") {
            let reason = labels
                .split("reason=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or("?")
                .to_owned();
            match by_reason.iter_mut().find(|(r, _)| *r == reason) {
                Some((_, n)) => *n += value as u64,
                None => by_reason.push((reason, value as u64)),
            }
        }
        by_reason.retain(|(_, n)| *n > 0);
        Ok(by_reason)
    }

    /// Moves every thread of the sensor (all started by the time it is
    /// ready) into `quota`'s CPU limit.
    pub fn limit(&self, quota: &super::quota::CpuQuota) -> Result<()> {
        quota.add_process(self.pid())
    }

    /// The sensor's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (by name, as `kill -s` takes it) to the sensor, by its
    /// PID: `STOP` and `CONT` pause and resume it for the backlog measure.
    pub fn signal(&self, name: &str) -> Result<()> {
        let status = Command::new("kill")
            .args(["-s", name, &self.child.id().to_string()])
            .status()
            .context("run kill")?;
        if !status.success() {
            bail!("kill -s {name} failed");
        }
        Ok(())
    }

    /// SIGTERM by PID, then waits up to 30 s (SIGKILL after).
    pub fn stop(mut self) -> Result<()> {
        let _ = Command::new("kill")
            .args(["-s", "TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(())
    }
}

/// `(labels text, value)` of every sample of `name` in a Prometheus text.
fn samples<'a>(body: &'a str, name: &'a str) -> impl Iterator<Item = (&'a str, f64)> + 'a {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(move |line| {
            let rest = line.strip_prefix(name)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(r) => r.split_once('}')?,
                None if rest.starts_with(' ') => ("", rest),
                None => return None,
            };
            Some((labels, value.split_whitespace().next()?.parse().ok()?))
        })
}

fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("not an HTTP response")?;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok((code, body.to_owned()))
}

/// What one `sensor replay` run said about itself.
#[derive(Debug, Clone, Copy)]
pub struct ReplayStep {
    /// `packets_sent`.
    pub sent: u64,
    /// `send_errors`.
    pub send_errors: u64,
    /// `pps` (achieved).
    pub pps: f64,
}

/// Runs `taskset -c CPUS sensor replay CAPTURE --to TO --encap ENCAP
/// --source-ports 1 --batch 256 RATE --loop LOOPS --unique-ip
/// --unique-ip-start FIRST_PASS` and reads its summary (ENCAP: `none` for
/// a VXLAN capture, `gwlb` for a plain one sent as a GWLB delivers it). Every pass has its
/// own inner addresses, so each is traffic the receiver has not seen: a
/// pass of connections the sensor already tracks would be skipped as
/// retransmissions, which is cheaper than real traffic. Callers number the
/// passes they send to one receiver from 0 on.
#[allow(clippy::too_many_arguments)]
pub fn replay(
    taskset: &Path,
    cpus: &str,
    sensor: &Path,
    capture: &Path,
    to: SocketAddr,
    rate: &[String],
    loops: u64,
    first_pass: u64,
    gwlb: bool,
) -> Result<ReplayStep> {
    let output = Command::new(taskset)
        .args(["-c", cpus])
        .arg(sensor)
        .arg("replay")
        .arg(capture)
        .args([
            "--to",
            &to.to_string(),
            "--encap",
            if gwlb { "gwlb" } else { "none" },
            // One source socket: every sendmmsg call carries a full batch,
            // so the sender (on its own CPU) is as cheap as it can be and the
            // receiver, not the sender, sets the loss-free rate.
            "--source-ports",
            "1",
            "--batch",
            "256",
            "--loop",
            &loops.to_string(),
            "--unique-ip",
            "--unique-ip-start",
            &first_pass.to_string(),
        ])
        .args(rate)
        .stdin(Stdio::null())
        .output()
        .context("run sensor replay")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() {
        bail!("sensor replay failed ({}):\n{text}", output.status);
    }
    let field = |key: &str| -> Result<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':')?.trim().parse().ok())
            .with_context(|| format!("no `{key}:` in the replay summary:\n{text}"))
    };
    Ok(ReplayStep {
        sent: field("packets_sent")? as u64,
        send_errors: field("send_errors")? as u64,
        pps: field("pps")?,
    })
}

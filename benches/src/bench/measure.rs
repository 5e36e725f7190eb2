//! One timed run of each program, pinned to one CPU, and what it said
//! about itself.
//!
//! Both programs are timed the same way, with a monotonic clock around the
//! child process (start to exit, setup and teardown included), so their
//! rates compare. Each program's own throughput figure is read too, as a
//! secondary number.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// One run of one program.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// Packets the program says it read.
    pub packets: u64,
    /// Wall time of the child process.
    pub wall: Duration,
    /// The packet rate the program reports itself, if it does.
    pub self_reported_pps: Option<f64>,
    /// Extra facts worth printing (flows, detected protocols, drops...).
    pub notes: Vec<String>,
}

impl RunResult {
    /// Packets per second of wall time.
    pub fn wall_pps(&self) -> f64 {
        self.packets as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

/// The command lines, for printing.
pub fn sensor_command(taskset: &Path, core: usize, sensor: &Path, capture: &Path) -> Vec<String> {
    vec![
        taskset.display().to_string(),
        "-c".into(),
        core.to_string(),
        sensor.display().to_string(),
        "pcap".into(),
        capture.display().to_string(),
        "--stats".into(),
        "--workers".into(),
        "1".into(),
    ]
}

/// See [`sensor_command`]. ndpiReader reads a pcap file with one thread;
/// without `-v` it prints a summary only, no per-flow dump.
pub fn ndpi_command(
    taskset: &Path,
    core: usize,
    ndpi_reader: &Path,
    capture: &Path,
) -> Vec<String> {
    vec![
        taskset.display().to_string(),
        "-c".into(),
        core.to_string(),
        ndpi_reader.display().to_string(),
        "-i".into(),
        capture.display().to_string(),
    ]
}

/// Runs `command`; returns its stdout, its stderr and its wall time.
fn timed(command: &[String], keep_stdout: bool) -> Result<(String, String, Duration)> {
    let (program, args) = command.split_first().context("empty command")?;
    let mut child = Command::new(program);
    child.args(args).stdin(Stdio::null()).stderr(Stdio::piped());
    child.stdout(if keep_stdout {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let started = Instant::now();
    let output = child.output().with_context(|| format!("run {program}"))?;
    let wall = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if !output.status.success() {
        bail!(
            "`{}` failed ({}):\n{stderr}{stdout}",
            command.join(" "),
            output.status
        );
    }
    Ok((stdout, stderr, wall))
}

/// The value of a `key: value` line.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        (name.trim() == key).then_some(value.trim())
    })
}

/// Runs the sensor and reads its `--stats` lines from stderr: `packets`
/// and `pps` are required; `flows`, `drops` and `anomalies_by_reason` are
/// shown when present; unknown lines are ignored.
pub fn run_sensor(command: &[String]) -> Result<RunResult> {
    let (_, stderr, wall) = timed(command, false)?;
    let packets = field(&stderr, "packets")
        .and_then(|value| value.parse().ok())
        .with_context(|| {
            format!("no `packets: <n>` line in the sensor's --stats output:\n{stderr}")
        })?;
    let self_reported_pps = field(&stderr, "pps").and_then(|value| value.parse().ok());
    let notes = [
        "flows",
        "records",
        "drops",
        "drops_by_reason",
        "anomalies_by_reason",
    ]
    .iter()
    .filter_map(|key| field(&stderr, key).map(|value| format!("{key}: {value}")))
    .collect();
    Ok(RunResult {
        packets,
        wall,
        self_reported_pps,
        notes,
    })
}

/// Runs ndpiReader and reads its summary: packets from "IP packets: N of M
/// packets total" (M), its own rate from "nDPI throughput: X K pps / ...",
/// and the protocols it detected.
pub fn run_ndpi(command: &[String]) -> Result<RunResult> {
    let (stdout, stderr, wall) = timed(command, true)?;
    let packets = field(&stdout, "IP packets")
        .and_then(|value| value.split_whitespace().nth(2))
        .and_then(|total| total.parse().ok())
        .with_context(|| {
            format!("no `IP packets: N of M packets total` line from ndpiReader:\n{stdout}{stderr}")
        })?;
    let self_reported_pps = field(&stdout, "nDPI throughput").and_then(parse_ndpi_rate);
    let mut notes = Vec::new();
    if let Some(threads) = stdout.lines().find(|line| line.contains("thread(s)")) {
        notes.push(threads.trim().to_string());
    }
    for key in ["Unique flows", "Packet Processing Time", "Setup Time"] {
        if let Some(value) = field(&stdout, key) {
            notes.push(format!("{key}: {value}"));
        }
    }
    let detected: Vec<String> = stdout
        .split("Detected protocols:")
        .nth(1)
        .map(|section| {
            section
                .lines()
                .skip(1)
                .take_while(|line| !line.trim().is_empty())
                .filter_map(|line| {
                    let mut words = line.split_whitespace();
                    let name = words.next()?;
                    let flows = line.split("flows:").nth(1)?.trim();
                    Some(format!("{name} {flows}"))
                })
                .collect()
        })
        .unwrap_or_default();
    if !detected.is_empty() {
        notes.push(format!("detected flows: {}", detected.join(", ")));
    }
    Ok(RunResult {
        packets,
        wall,
        self_reported_pps,
        notes,
    })
}

/// "685.17 K pps / 4.43 Gb/sec" → 685170.
fn parse_ndpi_rate(value: &str) -> Option<f64> {
    let before = value.split("pps").next()?.trim();
    let mut parts = before.split_whitespace();
    let number: f64 = parts.next()?.parse().ok()?;
    let scale = match parts.next() {
        None => 1.0,
        Some("K") => 1e3,
        Some("M") => 1e6,
        Some("G") => 1e9,
        Some(_) => return None,
    };
    Some(number * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ndpi_rate_units() {
        assert_eq!(
            parse_ndpi_rate("685.17 K pps / 4.43 Gb/sec"),
            Some(685_170.0)
        );
        assert_eq!(
            parse_ndpi_rate("1.76 M pps / 14.42 Gb/sec"),
            Some(1_760_000.0)
        );
        assert_eq!(parse_ndpi_rate("512.00 pps / 1.00 Mb/sec"), Some(512.0));
    }

    #[test]
    fn field_finds_key_value_lines() {
        let text = "packets: 12\nbytes: 34\n\tIP packets:  5  of 7 packets total\n";
        assert_eq!(field(text, "packets"), Some("12"));
        assert_eq!(field(text, "IP packets"), Some("5  of 7 packets total"));
        assert_eq!(field(text, "missing"), None);
    }
}

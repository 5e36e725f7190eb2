//! What a replay tells its user: a progress line about once a second and a
//! final summary.
//!
//! Owns: [`ReplaySummary`], [`SkipCounts`], the progress line. Input: the
//! sender's counts. Output: text on stderr. Does not: count anything itself.

use super::encap::SkipReason;
use super::sender::{SendErrors, SendStats};
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Frames not sent, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SkipCounts {
    counts: [u64; SkipReason::ALL.len()],
}

impl SkipCounts {
    fn slot(reason: SkipReason) -> usize {
        SkipReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0)
    }

    pub(super) fn add(&mut self, reason: SkipReason) {
        self.counts[Self::slot(reason)] += 1;
    }

    /// Frames skipped for `reason`.
    pub fn get(&self, reason: SkipReason) -> u64 {
        self.counts[Self::slot(reason)]
    }

    /// Frames skipped for any reason.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// The outcome of a replay.
#[derive(Debug, Clone)]
pub struct ReplaySummary {
    /// Where the datagrams went.
    pub destination: SocketAddr,
    /// The outer UDP source ports used.
    pub source_ports: Vec<u16>,
    /// True when the outer UDP checksum was 0 (IPv4 with `SO_NO_CHECK`).
    pub checksum_zero: bool,
    /// Frames read from the files (every loop).
    pub frames_read: u64,
    /// Datagrams sent.
    pub packets_sent: u64,
    /// UDP payload bytes sent.
    pub bytes_sent: u64,
    /// From the first frame to the last send.
    pub elapsed: Duration,
    /// Datagrams that failed, by reason.
    pub send_errors: SendErrors,
    /// Frames not sent, by reason.
    pub skipped: SkipCounts,
    /// With `--unique-ip`: datagrams of passes after the first sent with
    /// their addresses unchanged (no IP header found inside the tunnel).
    pub unique_ip_unchanged: Option<u64>,
}

impl ReplaySummary {
    /// The summary as `key: value` lines, like `sensor pcap --stats`.
    pub fn render(&self) -> String {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let mut s = String::new();
        let _ = writeln!(s, "destination: {}", self.destination);
        let _ = writeln!(s, "source_ports: {}", self.source_ports.len());
        let _ = writeln!(s, "outer_checksum_zero: {}", self.checksum_zero);
        let _ = writeln!(s, "frames_read: {}", self.frames_read);
        let _ = writeln!(s, "packets_sent: {}", self.packets_sent);
        let _ = writeln!(s, "bytes_sent: {}", self.bytes_sent);
        let _ = writeln!(s, "elapsed_s: {secs:.6}");
        let _ = writeln!(s, "pps: {:.1}", self.packets_sent as f64 / secs);
        let _ = writeln!(s, "mbps: {:.3}", self.bytes_sent as f64 * 8.0 / secs / 1e6);
        let _ = writeln!(s, "send_errors: {}", self.send_errors.total());
        let reasons: Vec<String> = self
            .send_errors
            .by_reason()
            .map(|(r, n)| format!("{r}={n}"))
            .collect();
        let _ = writeln!(s, "send_errors_by_reason: {}", reasons.join(" "));
        let _ = writeln!(s, "skipped: {}", self.skipped.total());
        let skipped: Vec<String> = SkipReason::ALL
            .iter()
            .filter(|r| self.skipped.get(**r) > 0)
            .map(|r| format!("{}={}", r.name(), self.skipped.get(*r)))
            .collect();
        let _ = writeln!(s, "skipped_by_reason: {}", skipped.join(" "));
        if let Some(n) = self.unique_ip_unchanged {
            let _ = writeln!(s, "unique_ip_unchanged: {n}");
        }
        s
    }
}

/// The once-a-second progress line: rewritten in place on a terminal, one
/// line each otherwise (`--progress`).
pub(super) struct Progress {
    enabled: bool,
    terminal: bool,
    last: Instant,
    last_packets: u64,
    last_bytes: u64,
    printed: bool,
}

impl Progress {
    pub(super) fn new(forced: bool) -> Self {
        let terminal = std::io::stderr().is_terminal();
        Self {
            enabled: forced || terminal,
            terminal,
            last: Instant::now(),
            last_packets: 0,
            last_bytes: 0,
            printed: false,
        }
    }

    pub(super) fn tick(&mut self, stats: &SendStats) {
        if !self.enabled {
            return;
        }
        let since = self.last.elapsed();
        if since < Duration::from_secs(1) {
            return;
        }
        let secs = since.as_secs_f64();
        let pps = (stats.packets - self.last_packets) as f64 / secs;
        let mbps = (stats.bytes - self.last_bytes) as f64 * 8.0 / secs / 1e6;
        let line = format!(
            "replay: {} packets, {mbps:.1} Mbit/s, {pps:.0} pps, {} send errors",
            stats.packets,
            stats.errors.total()
        );
        let mut e = std::io::stderr().lock();
        let _ = if self.terminal {
            write!(e, "\r{line}\x1b[K")
        } else {
            writeln!(e, "{line}")
        };
        self.last = Instant::now();
        self.last_packets = stats.packets;
        self.last_bytes = stats.bytes;
        self.printed = true;
    }

    /// Ends the in-place line so the summary starts on its own line.
    pub(super) fn finish(&mut self) {
        if self.printed && self.terminal {
            let _ = writeln!(std::io::stderr());
        }
    }
}

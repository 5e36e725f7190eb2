//! Running `sensor replay` for a test: captures sent to a loopback (or
//! test-namespace) address, bounded in time, with its summary read back.
//!
//! Inputs: capture files, a destination and the replay's flags. Output: a
//! [`ReplayRun`] with the exit status, both streams and the packets the
//! replay says it sent. It never sends anywhere but the address given, and
//! the tests only give loopback addresses.

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::sensor::sensor_bin;

/// What one `sensor replay` run did.
#[derive(Debug)]
pub struct ReplayRun {
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error (progress lines, summary, errors).
    pub stderr: String,
    /// The command line, for messages.
    pub command_line: String,
}

impl ReplayRun {
    /// Fails the test unless the replay exited 0.
    pub fn assert_success(&self) {
        assert!(
            self.status.success(),
            "{} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            self.command_line,
            self.status,
            self.stdout,
            self.stderr
        );
    }

    /// The packets the summary says were sent (the number next to
    /// `packets_sent`, else `packets`, on the last line that has one), if it says.
    pub fn sent_packets(&self) -> Option<u64> {
        let text = format!("{}\n{}", self.stderr, self.stdout);
        ["packets_sent", "packets"]
            .iter()
            .find_map(|word| text.lines().rev().find_map(|line| number_by(line, word)))
    }
}

/// The integer next to `word` in `line`: after it when a `:` or `=`
/// follows the word (`packets: 12`, `packets=12`), else before it
/// (`12 packets`), else after it (`packets 12`).
pub fn number_by(line: &str, word: &str) -> Option<u64> {
    let lower = line.to_ascii_lowercase();
    let at = lower.find(&word.to_ascii_lowercase())?;
    let (before, after) = (&line[..at], &line[at + word.len()..]);
    let first_number = |text: &str| -> Option<u64> {
        let token = text
            .split(|c: char| c.is_whitespace() || c == ',' || c == '=' || c == ':')
            .find(|t| !t.is_empty())?;
        token.replace('_', "").parse().ok()
    };
    let last_number = |text: &str| -> Option<u64> {
        let token = text
            .split(|c: char| c.is_whitespace() || c == ',')
            .rfind(|t| !t.is_empty())?;
        token.replace('_', "").parse().ok()
    };
    if after.trim_start().starts_with([':', '=']) {
        first_number(after)
    } else {
        last_number(before).or_else(|| first_number(after))
    }
}

/// Runs `sensor replay FILES --to TO ARGS...`, killed (and the test failed)
/// after `timeout`.
pub fn replay(files: &[&Path], to: SocketAddr, args: &[&str], timeout: Duration) -> ReplayRun {
    let mut command = Command::new(sensor_bin());
    command
        .arg("replay")
        .args(files)
        .arg("--to")
        .arg(to.to_string())
        .args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SENSOR_") {
            command.env_remove(key);
        }
    }
    run_bounded(command, timeout)
}

/// Runs `command` to its end with both streams captured, killing it by PID
/// after `timeout` (then failing the test).
pub fn run_bounded(mut command: Command, timeout: Duration) -> ReplayRun {
    let command_line = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command_line}: {e}"));
    let mut out = child.stdout.take().expect("stdout is piped");
    let mut err = child.stderr.take().expect("stderr is piped");
    let out_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait on child") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command_line} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    ReplayRun {
        status,
        stdout: text(out_reader.join().unwrap_or_default()),
        stderr: text(err_reader.join().unwrap_or_default()),
        command_line,
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn finds_the_packet_count() {
        assert_eq!(
            number_by("sent packets: 1172, bytes: 9", "packets"),
            Some(1172)
        );
        assert_eq!(
            number_by("1172 packets 981473 bytes", "packets"),
            Some(1172)
        );
        assert_eq!(number_by("packets=12 errors=0", "packets"), Some(12));
        assert_eq!(number_by("no number here", "packets"), None);
        assert_eq!(
            number_by("packets_sent: 117200", "packets_sent"),
            Some(117_200)
        );
    }
}

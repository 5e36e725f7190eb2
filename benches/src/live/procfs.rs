//! Readings from /proc about a receiver: CPU time (exact, and by thread),
//! page faults, and the bytes queued on a UDP socket. Owns nothing; every
//! function reads the kernel's view at the moment it is called.

use anyhow::Result;
use std::collections::BTreeMap;

/// CPU seconds a process has used so far: the sum of its threads' run
/// time from /proc/PID/task/*/schedstat (nanoseconds, kept by the
/// scheduler, not sampled at the 10 ms clock tick as /proc/PID/stat's
/// utime and stime are).
pub fn process_cpu_seconds(pid: u32) -> Result<f64> {
    let mut ns = 0u64;
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let Ok(text) = std::fs::read_to_string(entry?.path().join("schedstat")) else {
            continue;
        };
        ns += text
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Ok(ns as f64 / 1e9)
}

/// The fields of a /proc/PID/stat line after the command name (which may
/// hold spaces and parentheses): the state is field 0, minor faults 7,
/// utime 11 and stime 12.
fn stat_fields(stat: &str) -> Vec<&str> {
    stat.rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect()
}

/// CPU seconds (user, system) each thread of a process has used, by thread
/// name, from /proc/PID/task/*/stat (threads of one name summed).
fn thread_cpu_seconds(pid: u32) -> Result<BTreeMap<String, (f64, f64)>> {
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let Ok(stat) = std::fs::read_to_string(entry?.path().join("stat")) else {
            continue;
        };
        let name = stat
            .split_once('(')
            .and_then(|(_, r)| r.rsplit_once(')'))
            .map_or("?", |(n, _)| n)
            .to_owned();
        let f = stat_fields(&stat);
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        let e = out.entry(name).or_insert((0.0, 0.0));
        e.0 += ticks(11) / hz.max(1.0);
        e.1 += ticks(12) / hz.max(1.0);
    }
    Ok(out)
}

/// Minor page faults of a process so far (/proc/PID/stat).
fn minor_faults(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat_fields(&stat).get(7).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// Resident anonymous memory of process `pid` in KiB (`RssAnon` of
/// /proc/PID/status; 0 when it cannot be read): its heap, as the pages the
/// kernel has had to zero for it.
fn rss_anon_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status.lines().find_map(|l| {
                l.strip_prefix("RssAnon:")
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

/// Bytes queued on the IPv4 UDP sockets bound to `port`, from
/// /proc/net/udp (None when no such socket is listed). Reading it costs the
/// receiver nothing: the kernel answers on the reader's CPU.
pub fn udp_rx_queue(port: u16) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/udp").ok()?;
    let mut found = None;
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(queues)) = (f.get(1), f.get(4)) else {
            continue;
        };
        let Some((_, p)) = local.split_once(':') else {
            continue;
        };
        if u16::from_str_radix(p, 16).ok() != Some(port) {
            continue;
        }
        let rx = queues
            .split_once(':')
            .and_then(|(_, rx)| u64::from_str_radix(rx, 16).ok())
            .unwrap_or(0);
        *found.get_or_insert(0) += rx;
    }
    found
}

/// What a process had used at one moment: exact CPU time, CPU time by
/// thread name, minor page faults, resident anonymous memory.
pub struct Usage {
    cpu: f64,
    threads: BTreeMap<String, (f64, f64)>,
    faults: u64,
    rss_anon_kib: u64,
}

impl Usage {
    /// Reads process `pid` now.
    pub fn of(pid: u32) -> Result<Self> {
        Ok(Self {
            cpu: process_cpu_seconds(pid)?,
            threads: thread_cpu_seconds(pid)?,
            faults: minor_faults(pid),
            rss_anon_kib: rss_anon_kib(pid),
        })
    }

    /// CPU seconds used since `before`.
    pub fn cpu_since(&self, before: &Usage) -> f64 {
        self.cpu - before.cpu
    }

    /// One line: each thread's user and system seconds since `before`
    /// (threads of one name summed, idle ones left out) and the minor page
    /// faults and the growth of resident anonymous memory since `before`
    /// (with transparent huge pages one fault can bring 2 MiB, so the fault
    /// count alone hides how much fresh memory the kernel zeroed).
    pub fn report_since(&self, before: &Usage) -> String {
        let threads: Vec<String> = self
            .threads
            .iter()
            .map(|(name, t)| {
                let b = before.threads.get(name).copied().unwrap_or((0.0, 0.0));
                (name, t.0 - b.0, t.1 - b.1)
            })
            .filter(|(_, user, sys)| user + sys > 0.0)
            .map(|(name, user, sys)| format!("{name} user {user:.2} sys {sys:.2}"))
            .collect();
        format!(
            "{}; minor page faults {}; anonymous memory {:+.1} MB (now {:.1} MB)",
            threads.join(", "),
            self.faults.saturating_sub(before.faults),
            (self.rss_anon_kib as f64 - before.rss_anon_kib as f64) * 1024.0 / 1e6,
            self.rss_anon_kib as f64 * 1024.0 / 1e6
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn anonymous_memory_grows_by_the_pages_a_process_touches() {
        let me = std::process::id();
        let before = rss_anon_kib(me);
        assert!(before > 0);
        // 64 MiB written: every page is fresh, so resident memory grows
        // by about that much whatever the allocator and the page size.
        let touched = vec![1u8; 64 << 20];
        let after = rss_anon_kib(me);
        assert!(
            after >= before + (48 << 10),
            "RssAnon {before} -> {after} KiB after touching 64 MiB"
        );
        assert_eq!(touched.iter().map(|&b| b as usize).sum::<usize>(), 64 << 20);
    }

    #[test]
    fn rx_queue_shows_queued_bytes_until_they_are_read() {
        let rx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = rx.local_addr().expect("addr").port();
        assert_eq!(udp_rx_queue(port), Some(0));
        let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        for _ in 0..3 {
            tx.send_to(&[7u8; 100], ("127.0.0.1", port)).expect("send");
        }
        // Loopback delivery is synchronous: the datagrams are queued now.
        assert!(udp_rx_queue(port).is_some_and(|q| q >= 300));
        let mut buf = [0u8; 200];
        for _ in 0..3 {
            rx.recv(&mut buf).expect("recv");
        }
        assert_eq!(udp_rx_queue(port), Some(0));
        drop(rx);
        assert_eq!(udp_rx_queue(port), None);
    }

    #[test]
    fn cpu_time_of_this_process_grows_with_work() {
        let pid = std::process::id();
        let before = Usage::of(pid).expect("usage");
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
        }
        std::hint::black_box(x);
        let after = Usage::of(pid).expect("usage");
        assert!(after.cpu_since(&before) > 0.0);
    }
}

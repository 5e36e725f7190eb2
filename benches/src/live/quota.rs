//! A CPU limit for the receivers, so the sender can outrun them. On a
//! 2-CPU machine the replay (one CPU, which also runs the kernel's loopback
//! delivery) sends about a quarter of what a bare drain takes, so neither
//! receiver ever loses anything and the loss-free ceiling cannot be found.
//! Limiting each receiver in turn to the same share of a CPU (a cgroup v1
//! `cpu` group with a CFS quota, a short period so a throttled receiver's
//! socket queue stays far below its buffer) scales both ceilings down
//! alike, under the sender's rate: their ratio is the ratio of what each
//! costs per datagram, measured by loss as the issue defines it.
//!
//! Owns: the group's directory (created with a unique name, removed on
//! drop after moving its threads back). Input: the share; thread ids to
//! move. Does not: pin CPUs (taskset and `sched_setaffinity` still do).

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// The cgroup v1 `cpu` hierarchy.
const CPU_HIERARCHY: &str = "/sys/fs/cgroup/cpu";
/// Default CFS period. Each time a receiver resumes after being held off
/// it finds its caches taken by others, a cost that grows with its working
/// set (the sensor's flow table, not the drain's few lines) and with how
/// often it happens: 1 ms in every 10 ms cost the sensor about a quarter
/// of its rate on a busy machine, against the drain. A deployed sensor is
/// never held off, so the period is long: at 10 % of 100 ms a receiver runs
/// 10 ms at a time, and the 90 ms it waits queue about 9,000 datagrams at
/// 100,000 per second (about 20 MB of socket memory, within the 64 MB the
/// kernel grants for the benchmark's 32 MB request).
pub const DEFAULT_PERIOD_US: u64 = 100_000;

/// A cgroup limiting its threads to a share of one CPU.
#[derive(Debug)]
pub struct CpuQuota {
    dir: PathBuf,
    /// Percent of one CPU.
    pub percent: u32,
    /// CFS period, microseconds.
    pub period_us: u64,
}

impl CpuQuota {
    /// The quota in microseconds for `percent` % of one CPU (1 to 100) in
    /// every `period_us` (10 ms to 1 s); an error for values the kernel
    /// cannot apply (a quota under 1 ms).
    pub fn quota_us(percent: u32, period_us: u64) -> Result<u64> {
        if !(1..=100).contains(&percent) {
            bail!("--receiver-quota {percent}: give 1 to 100 (% of one CPU), or 0 for no limit");
        }
        if !(10_000..=1_000_000).contains(&period_us) {
            bail!("--quota-period-ms {}: give 10 to 1000", period_us / 1000);
        }
        let quota_us = period_us * u64::from(percent) / 100;
        if quota_us < 1000 {
            bail!(
                "--receiver-quota {percent} of a {} ms period is under the kernel's least \
                 quota of 1 ms: raise either",
                period_us / 1000
            );
        }
        Ok(quota_us)
    }

    /// Creates the group (see [`CpuQuota::quota_us`] for the values).
    pub fn create(percent: u32, period_us: u64) -> Result<Self> {
        let quota_us = Self::quota_us(percent, period_us)?;
        let root = Path::new(CPU_HIERARCHY);
        if !root.join("cpu.cfs_quota_us").exists() {
            bail!("no cgroup v1 cpu controller at {CPU_HIERARCHY} (needed by --receiver-quota)");
        }
        static GROUPS: AtomicU32 = AtomicU32::new(0);
        let n = GROUPS.fetch_add(1, Ordering::Relaxed);
        let dir = root.join(format!("live-bench-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("create {} (--receiver-quota needs root)", dir.display()))?;
        let quota = Self {
            dir,
            percent,
            period_us,
        };
        quota.write("cpu.cfs_period_us", &period_us.to_string())?;
        quota.write("cpu.cfs_quota_us", &quota_us.to_string())?;
        Ok(quota)
    }

    /// Moves one thread (or a process's main thread) into the group.
    pub fn add_thread(&self, tid: u32) -> Result<()> {
        self.write("tasks", &tid.to_string())
    }

    /// Moves every thread of process `pid` into the group.
    pub fn add_process(&self, pid: u32) -> Result<()> {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
            .with_context(|| format!("list the threads of process {pid}"))?;
        for task in tasks {
            let name = task?.file_name();
            if let Ok(tid) = name.to_string_lossy().parse::<u32>() {
                self.add_thread(tid)?;
            }
        }
        Ok(())
    }

    /// Thread ids in the group now.
    pub fn threads(&self) -> Vec<u32> {
        std::fs::read_to_string(self.dir.join("tasks"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Times the group was held off, and for how long (ns), from cpu.stat.
    pub fn throttled(&self) -> (u64, u64) {
        let stat = std::fs::read_to_string(self.dir.join("cpu.stat")).unwrap_or_default();
        let field = |name: &str| {
            stat.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
                .unwrap_or(0)
        };
        (field("nr_throttled"), field("throttled_time"))
    }

    fn write(&self, file: &str, value: &str) -> Result<()> {
        let path = self.dir.join(file);
        std::fs::write(&path, value).with_context(|| format!("write {value} to {}", path.display()))
    }
}

impl Drop for CpuQuota {
    fn drop(&mut self) {
        // A group with threads in it cannot be removed: hand any left back
        // to the root group first.
        let root_tasks = Path::new(CPU_HIERARCHY).join("tasks");
        for tid in self.threads() {
            let _ = std::fs::write(&root_tasks, tid.to_string());
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// The calling thread's id.
pub fn current_tid() -> u32 {
    // SAFETY: gettid has no arguments and cannot fail.
    let tid = unsafe { libc::gettid() };
    u32::try_from(tid).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, mpsc};

    #[test]
    fn refuses_shares_and_periods_the_kernel_cannot_apply() {
        for (percent, period_us) in [(0, 100_000), (101, 100_000), (10, 5_000), (5, 10_000)] {
            let e = CpuQuota::create(percent, period_us).unwrap_err();
            assert!(e.to_string().contains("--"), "{percent}/{period_us}: {e}");
        }
    }

    #[test]
    fn holds_a_thread_and_lets_it_go() {
        let quota = match CpuQuota::create(50, 20_000) {
            Ok(q) => q,
            Err(e) => {
                eprintln!("skipped: no cgroup v1 cpu group can be made here: {e:#}");
                return;
            }
        };
        let dir = quota.dir.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let spinner = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let _ = tx.send(current_tid());
                while !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        };
        let tid = rx.recv().unwrap();
        quota.add_thread(tid).unwrap();
        assert_eq!(quota.threads(), vec![tid]);
        // A thread spinning at half of one CPU is held off within a few
        // 20 ms periods.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while quota.throttled().0 == 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(quota.throttled().0 > 0, "never throttled");
        drop(quota);
        assert!(!dir.exists(), "the group outlived its owner");
        stop.store(true, Ordering::Relaxed);
        spinner.join().unwrap();
    }
}

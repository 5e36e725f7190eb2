//! One receiver's loss-free ceiling: a `--max` probe of the sender's
//! speed, then a binary search on `--pps`, each step a replay of about
//! `step` with the count the receiver took meanwhile.
//!
//! Input: the options and a started [`Target`]. Output: a [`SearchResult`]
//! with every step (printed as it runs). Does not: start or limit the
//! receiver (`mod.rs`, `quota.rs`).

use super::target::{Target, replay};
use super::{LiveBenchOptions, parse_cpu_list};
use anyhow::Result;
use std::time::{Duration, Instant};

/// One measured step.
#[derive(Debug, Clone)]
pub struct StepResult {
    /// `--pps` asked (None: `--max`).
    pub asked_pps: Option<u64>,
    /// What the replay achieved.
    pub sent_pps: f64,
    /// Datagrams sent.
    pub sent: u64,
    /// Datagrams the receiver counted.
    pub received: u64,
    /// 1 - received / sent (0 when more arrived).
    pub loss: f64,
    /// Share of the receiver CPUs' time spent busy while the replay ran
    /// (from /proc/stat), if readable.
    pub receiver_busy: Option<f64>,
}

impl StepResult {
    /// The rate the receiver would take with its CPUs fully busy, projected
    /// from this step: received rate / busy share.
    pub fn projected_pps(&self) -> Option<f64> {
        let busy = self.receiver_busy.filter(|b| *b > 0.01)?;
        Some(self.sent_pps * (1.0 - self.loss) / busy)
    }
}

/// (busy, total) jiffies of `cpus` from /proc/stat.
fn cpu_jiffies(cpus: &[usize]) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let (mut busy, mut total) = (0, 0);
    for cpu in cpus {
        let line = stat
            .lines()
            .find(|l| l.starts_with(&format!("cpu{cpu} ")))?;
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        let all: u64 = v.iter().take(8).sum();
        let idle = v.get(3)? + v.get(4)?;
        busy += all - idle;
        total += all;
    }
    Some((busy, total))
}

/// The outcome for one receiver.
#[derive(Debug, Clone)]
pub struct SearchResult {
    /// The highest passing step's achieved rate (0 if none passed).
    pub best_pps: f64,
    /// True when nothing was lost at the sender's full speed.
    pub sender_bound: bool,
    /// Every step, in order.
    pub steps: Vec<StepResult>,
}

/// The `--max` probe, then the binary search, against `target`.
pub fn search(o: &LiveBenchOptions, target: &Target) -> Result<SearchResult> {
    // One pass to learn the capture's packet count and a first rate.
    // Passes sent to this receiver so far: each step's go on from there.
    let mut passes = 0;
    let first = measure(o, target, None, 1, &mut passes)?;
    let per_loop = first.sent.max(1);
    let loops_for = |pps: f64| {
        ((pps * o.step.as_secs_f64()) / per_loop as f64)
            .ceil()
            .max(1.0) as u64
    };
    let max = measure(o, target, None, loops_for(first.sent_pps), &mut passes)?;
    let mut steps = vec![first, max.clone()];
    if max.loss < o.max_loss {
        return Ok(SearchResult {
            best_pps: max.sent_pps,
            sender_bound: true,
            steps,
        });
    }
    // A receiver that loses datagrams at full speed is working flat out:
    // what it took then is about its ceiling, so the search need not look
    // far above it (a finer search for the same number of steps).
    let took_pps = max.sent_pps * (1.0 - max.loss);
    let (mut lo, mut hi) = (0.0_f64, f64::min(max.sent_pps, took_pps * 1.25));
    let mut best_pps = 0.0;
    for _ in 0..o.iterations {
        let mid = (lo + hi) / 2.0;
        let step = measure(o, target, Some(mid as u64), loops_for(mid), &mut passes)?;
        if step.loss < o.max_loss {
            lo = mid;
            best_pps = f64::max(best_pps, step.sent_pps);
        } else {
            hi = mid;
        }
        steps.push(step);
    }
    Ok(SearchResult {
        best_pps,
        sender_bound: false,
        steps,
    })
}

/// One replay step and what the target received meanwhile.
fn measure(
    o: &LiveBenchOptions,
    target: &Target,
    pps: Option<u64>,
    loops: u64,
    passes: &mut u64,
) -> Result<StepResult> {
    let before = settled(target)?;
    let rate = match pps {
        Some(p) => vec!["--pps".to_owned(), p.max(1).to_string()],
        None => vec!["--max".to_owned()],
    };
    let cpus = parse_cpu_list(&o.receiver_cpus)?;
    let jiffies_before = cpu_jiffies(&cpus);
    let sent = replay(
        &o.taskset,
        &o.sender_cpus,
        &o.sensor,
        &o.capture,
        target.addr(o.gwlb),
        &rate,
        loops,
        *passes,
        o.gwlb,
    )?;
    *passes += loops;
    let receiver_busy = match (jiffies_before, cpu_jiffies(&cpus)) {
        (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => Some((b1 - b0) as f64 / (t1 - t0) as f64),
        _ => None,
    };
    let received = settled(target)?.saturating_sub(before);
    let loss = if sent.sent == 0 {
        0.0
    } else {
        (1.0 - received as f64 / sent.sent as f64).max(0.0)
    };
    let step = StepResult {
        asked_pps: pps,
        sent_pps: sent.pps,
        sent: sent.sent,
        received,
        loss,
        receiver_busy,
    };
    println!(
        "  {:>12} x{loops:<4} sent {:>9} at {:>9.0} pps, received {:>9}, loss {:>7.3} %, \
         receiver CPUs busy {}{}",
        pps.map_or("--max".to_owned(), |p| format!("--pps {p}")),
        step.sent,
        step.sent_pps,
        step.received,
        step.loss * 100.0,
        step.receiver_busy
            .map_or("?".to_owned(), |b| format!("{:.0} %", b * 100.0)),
        if sent.send_errors > 0 {
            format!(", {} send errors", sent.send_errors)
        } else {
            String::new()
        }
    );
    Ok(step)
}

/// The target's received count once it stops changing (two reads 250 ms
/// apart agree; at most 5 s).
fn settled(target: &Target) -> Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = target.received()?;
    loop {
        std::thread::sleep(Duration::from_millis(250));
        let now = target.received()?;
        if now == last || Instant::now() > deadline {
            return Ok(now);
        }
        last = now;
    }
}

//! The live benchmark: the highest replay rate a receiver takes with under
//! 0.1 % loss, for a bare `recvmmsg` drain of the sensor's socket setup (the
//! ceiling on this machine) and for `sensor run`, in the same run, and
//! their ratio (target: at least 80 %).
//!
//! Method: `sensor replay CAPTURE --encap none` sends over loopback, pinned
//! with taskset to the sender CPUs; the receiver runs on the receiver CPUs
//! (the drain threads by sched_setaffinity, the sensor by taskset). A first
//! `--max` step measures the sender's own ceiling; if the receiver loses
//! nothing there, the result is that rate (sender-bound). Otherwise a binary
//! search on `--pps` between 0 and it, each step about `step` long (the
//! capture repeated with `--loop`): a step passes when the share of sent
//! datagrams not received is under `max_loss`. Received: the drain's
//! counter, or the sensor's
//! `sensor_packets_total{role="receiver"}`, read before a step and after the
//! count settles.
//!
//! Inputs: [`LiveBenchOptions`]. Output: a report on stdout and a
//! [`LiveSummary`]. It sends only to 127.0.0.1.

pub mod backlog;
pub mod drain;
pub mod procfs;
pub mod stats;
pub mod target;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use drain::{Drain, DrainSetup};
use target::{SensorProcess, Target, replay};

/// The sensor's rate must reach this share of the drain's.
pub const TARGET_RATIO: f64 = 0.8;

/// How to run the live benchmark.
#[derive(Debug, Clone)]
pub struct LiveBenchOptions {
    /// The sensor binary (replay and run).
    pub sensor: PathBuf,
    /// taskset.
    pub taskset: PathBuf,
    /// The VXLAN capture replayed with `--encap none`.
    pub capture: PathBuf,
    /// Receive threads of both receivers (sensor: per listen address).
    pub rx_threads: usize,
    /// Sensor worker threads.
    pub workers: usize,
    /// CPUs of the receiver (taskset list, such as `1` or `2-3`).
    pub receiver_cpus: String,
    /// CPUs of the sender.
    pub sender_cpus: String,
    /// Requested SO_RCVBUF of every receive socket.
    pub rcvbuf_bytes: usize,
    /// Aimed-at length of one step.
    pub step: Duration,
    /// Binary-search steps after the `--max` probe.
    pub iterations: usize,
    /// Loss allowed for a pass (0.001 = 0.1 %).
    pub max_loss: f64,
    /// Pairs of backlog measures (see `backlog`).
    pub backlog_pairs: usize,
    /// Unmeasured backlogs before each measured one (see `backlog`).
    pub warmup_backlogs: usize,
    /// Print every backlog's CPU time by thread and its page faults.
    pub show_threads: bool,
}

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

/// Both results and their ratio.
#[derive(Debug, Clone)]
pub struct LiveSummary {
    /// The bare drain.
    pub drain: SearchResult,
    /// The sensor.
    pub sensor: SearchResult,
    /// sensor / drain.
    pub ratio: f64,
    /// The backlog measure (first: the drain, second: the sensor), when it
    /// ran.
    pub backlog: Option<backlog::Pooled>,
    /// ratio >= [`TARGET_RATIO`], or the sensor lost nothing at the sender's
    /// full speed.
    pub meets_target: bool,
}

/// The drain's socket setup: the sensor's defaults (batches of 64 into
/// 9216-byte buffers), the options' threads, CPUs and `rcvbuf_bytes`.
pub fn drain_setup(o: &LiveBenchOptions, rcvbuf_bytes: usize) -> Result<DrainSetup> {
    Ok(DrainSetup {
        threads: o.rx_threads,
        batch: 64,
        buffer_bytes: 9216,
        rcvbuf_bytes,
        cpus: parse_cpu_list(&o.receiver_cpus)?,
    })
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

/// Parses a taskset CPU list (`1`, `0,2`, `2-3`).
pub fn parse_cpu_list(list: &str) -> Result<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => cpus.extend(a.parse::<usize>()?..=b.parse::<usize>()?),
            None => cpus.push(part.parse()?),
        }
    }
    if cpus.is_empty() {
        bail!("empty CPU list {list:?}");
    }
    Ok(cpus)
}

/// Runs both searches and prints the report.
pub fn run(o: &LiveBenchOptions) -> Result<LiveSummary> {
    println!("machine:   {}", crate::bench::tools::machine_description());
    if let Some(warning) = crate::bench::tools::busy_machine_warning() {
        println!("warning:   {warning}");
    }
    println!(
        "pinning:   receiver on CPUs {} (drain threads: sched_setaffinity; sensor: taskset -c {}), \
         sender on CPUs {} (taskset -c {} sensor replay)",
        o.receiver_cpus, o.receiver_cpus, o.sender_cpus, o.sender_cpus
    );
    println!("capture:   {} (--encap none)", o.capture.display());
    println!(
        "receivers: {} receive thread(s), batch 64, 9216-byte buffers, SO_RCVBUF {} requested; \
         sensor workers {}",
        o.rx_threads, o.rcvbuf_bytes, o.workers
    );
    println!(
        "pass:      loss < {:.2} % over a step of ~{:?}",
        o.max_loss * 100.0,
        o.step
    );

    let setup = drain_setup(o, o.rcvbuf_bytes)?;
    let drain = Drain::start(std::net::Ipv4Addr::LOCALHOST.into(), &setup)?;
    println!(
        "\nceiling: bare recvmmsg drain on {} (SO_RCVBUF granted {} bytes)",
        drain.addr, drain.granted_rcvbuf_bytes
    );
    let drain = Target::Drain(drain);
    let drain_result = search(o, &drain);
    drain.stop()?;
    let drain_result = drain_result?;

    let sensor = SensorProcess::start(
        &o.taskset,
        &o.receiver_cpus,
        &o.sensor,
        o.rx_threads,
        o.workers,
        o.rcvbuf_bytes,
    )?;
    println!("\nsensor: {}", sensor.command_line);
    let sensor = Target::Sensor(sensor);
    let sensor_result = search(o, &sensor);
    if let Ok(drops) = sensor.drops() {
        println!("sensor drops by reason over the whole search: {drops:?}");
    }
    sensor.stop()?;
    let sensor_result = sensor_result?;

    let ratio = if drain_result.best_pps > 0.0 {
        sensor_result.best_pps / drain_result.best_pps
    } else {
        0.0
    };
    // When the sender cannot outrun the drain, the searches cannot find the
    // ceiling: measure both receivers emptying a backlog instead.
    let backlog = if drain_result.sender_bound {
        println!(
            "\nbacklog: each receiver paused, {} passes of the capture queued, then resumed \
             alone on its CPU",
            backlog::BACKLOG_LOOPS
        );
        match backlog::measure(o) {
            Ok(pooled) => Some(pooled),
            Err(e) => {
                println!("  backlog measure failed: {e:#}");
                None
            }
        }
    } else {
        None
    };
    let backlog_ratio = backlog.map(|b| b.ratio());
    let summary = LiveSummary {
        meets_target: match backlog_ratio {
            Some(r) => r >= TARGET_RATIO,
            None => ratio >= TARGET_RATIO,
        },
        drain: drain_result,
        sensor: sensor_result,
        ratio: backlog_ratio.unwrap_or(ratio),
        backlog,
    };
    let bound = |r: &SearchResult| {
        if r.sender_bound {
            " (sender-bound: no loss at the replay's full speed)"
        } else {
            ""
        }
    };
    println!(
        "\nresult (highest rate with loss < {:.2} %):",
        o.max_loss * 100.0
    );
    println!(
        "  bare recvmmsg drain: {:>10.0} pps{}",
        summary.drain.best_pps,
        bound(&summary.drain)
    );
    println!(
        "  sensor run:          {:>10.0} pps{}",
        summary.sensor.best_pps,
        bound(&summary.sensor)
    );
    if summary.drain.sender_bound {
        println!(
            "  ratio: undetermined: the drain lost nothing at the replay's full speed, so the \
             ceiling is above what the sender CPUs produce ({:.0} pps); give the sender more \
             CPUs (--sender-cpus) to measure it",
            summary.drain.best_pps
        );
        if summary.sensor.sender_bound {
            println!("  the sensor too lost nothing at the sender's full speed");
        }
        // Secondary figure: what each would take with its CPUs fully busy,
        // projected from its CPU use in the full-speed step.
        let projected = |r: &SearchResult| r.steps.get(1).and_then(StepResult::projected_pps);
        if let (Some(d), Some(s)) = (projected(&summary.drain), projected(&summary.sensor)) {
            println!(
                "  projected from receiver CPU use at full speed (secondary figure): drain {d:.0} pps, \
                 sensor {s:.0} pps, ratio {:.1} %",
                s / d * 100.0
            );
        }
        if let Some(b) = summary.backlog {
            let (d, s) = (b.first, b.second);
            println!(
                "  ceiling from the backlog measure: drain {:.0} pps, sensor {:.0} pps: \
                 ratio {:.1} % (target {:.0} %: {})",
                d.pps(),
                s.pps(),
                summary.ratio * 100.0,
                TARGET_RATIO * 100.0,
                verdict(summary.meets_target)
            );
            if let Some(interval) = b.interval {
                println!(
                    "  95 % bootstrap interval of the ratio over the {} pairs: {:.1} % to {:.1} % \
                     ({})",
                    o.backlog_pairs.max(1),
                    interval.0 * 100.0,
                    interval.1 * 100.0,
                    stats::against(TARGET_RATIO, interval)
                );
            }
            if s.received < s.queued || d.received < d.queued {
                println!(
                    "  warning: a receiver got fewer datagrams than were queued (the socket \
                     buffer overflowed): the backlog figures are upper bounds"
                );
            }
        }
    } else {
        println!(
            "  ratio: {:.1} % of the ceiling (target {:.0} %: {})",
            summary.ratio * 100.0,
            TARGET_RATIO * 100.0,
            verdict(summary.meets_target)
        );
    }
    Ok(summary)
}

/// The `--max` probe, then the binary search, against `target`.
fn search(o: &LiveBenchOptions, target: &Target) -> Result<SearchResult> {
    // One pass to learn the capture's packet count and a first rate.
    let first = measure(o, target, None, 1)?;
    let per_loop = first.sent.max(1);
    let loops_for = |pps: f64| {
        ((pps * o.step.as_secs_f64()) / per_loop as f64)
            .ceil()
            .max(1.0) as u64
    };
    let max = measure(o, target, None, loops_for(first.sent_pps))?;
    let mut steps = vec![first, max.clone()];
    if max.loss < o.max_loss {
        return Ok(SearchResult {
            best_pps: max.sent_pps,
            sender_bound: true,
            steps,
        });
    }
    let (mut lo, mut hi) = (0.0_f64, max.sent_pps);
    let mut best_pps = 0.0;
    for _ in 0..o.iterations {
        let mid = (lo + hi) / 2.0;
        let step = measure(o, target, Some(mid as u64), loops_for(mid))?;
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
        target.addr(),
        &rate,
        loops,
    )?;
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

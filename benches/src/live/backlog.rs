//! The backlog measure: how fast a receiver empties a socket backlog it
//! did not keep up with. The receiver is paused (the drain's threads wait;
//! the sensor gets SIGSTOP), the sender queues a burst into the socket
//! buffer, then the receiver resumes alone on its CPU, with the sender idle,
//! and the time until everything is received gives its rate. That is its
//! loss-free ceiling measured without needing a sender faster than the
//! receiver, which a 2-CPU machine does not have: on loopback the sender's
//! CPU also runs the kernel's delivery into the receiving socket, so the
//! replay saturates before either receiver loses anything.
//!
//! Each receiver first empties `--warmup-backlogs` unmeasured backlogs (one
//! by default), so the measured one finds it in its steady state: a freshly
//! started sensor spends its first backlog growing its heap and flow table,
//! and on this VM every fresh page is expensive (a page fault that zeroes
//! it, often a fault in the hypervisor too). The drain gets the same rounds.
//! Completion is watched from outside the receiver: the drain's counter, and
//! for the sensor the socket's queue in /proc/net/udp (a /metrics scrape
//! would run on the sensor's CPU while it is being timed); the CPU time is
//! read then, and only afterwards one scrape asks the sensor for its count.

use super::drain::Drain;
use super::procfs::{Usage, udp_rx_queue};
use super::stats;
use super::target::{SensorProcess, Target, replay};
use super::{LiveBenchOptions, parse_cpu_list};
use anyhow::{Result, bail};
use std::time::{Duration, Instant};

/// SO_RCVBUF asked for the backlog (the kernel doubles it; root may exceed
/// `net.core.rmem_max` with SO_RCVBUFFORCE, which both receivers try).
pub const BACKLOG_RCVBUF_BYTES: usize = 1 << 30;
/// Passes over the backlog capture queued at once by default: one, so that
/// every connection is new to the receiver. (Until 2026-11-23 the backlog
/// was 24 passes of the 20 MB search capture; from the second pass on the
/// sensor saw its connections' sequence numbers again and skipped their
/// payload as retransmissions, which flattered it by about 15 points.)
pub const BACKLOG_LOOPS: u64 = 1;
/// Longest wait for a backlog to be received.
const BACKLOG_TIMEOUT: Duration = Duration::from_secs(60);

/// One backlog measure.
#[derive(Debug, Clone, Copy)]
pub struct BacklogRate {
    /// Datagrams queued (sent).
    pub queued: u64,
    /// Datagrams received.
    pub received: u64,
    /// CPU seconds the receiver's process spent from its release until
    /// every datagram was received (run time of every thread, as the
    /// scheduler counts it in /proc/PID/task/*/schedstat).
    pub seconds: f64,
    /// Wall-clock seconds from the release until a poll (the drain's counter
    /// every 10 ms, the sensor's socket queue every 5 ms) saw the end: an
    /// upper bound, shown beside the CPU time.
    pub wall_seconds: f64,
}

impl BacklogRate {
    /// A measure of `received` datagrams, all queued, in `seconds` of CPU
    /// and of wall time.
    #[cfg(test)]
    pub(super) fn for_test(received: u64, seconds: f64) -> Self {
        Self {
            queued: received,
            received,
            seconds,
            wall_seconds: seconds,
        }
    }

    /// Datagrams per second.
    pub fn pps(&self) -> f64 {
        self.received as f64 / self.seconds.max(1e-9)
    }
}

/// Waits until the sensor's socket backlog on `port` is empty, watching
/// the kernel's socket table (a /metrics scrape would run on the sensor's
/// CPU while it is being timed); returns then, with the sensor's usage read
/// at that moment (after 2 ms for the last batch taken from the socket to
/// be handled), before anything else asks the sensor for its count.
fn wait_for_sensor(port: u16, pid: u32) -> Result<(Instant, Usage)> {
    let deadline = Instant::now() + BACKLOG_TIMEOUT;
    while udp_rx_queue(port).unwrap_or(0) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let end = Instant::now();
    std::thread::sleep(Duration::from_millis(2));
    Ok((end, Usage::of(pid)?))
}

/// Polls `target`'s count every `poll` until it is `want` above `before`
/// or `limit` has passed; returns the count above `before` and when it was
/// read.
fn wait_for(
    target: &Target,
    before: u64,
    want: u64,
    poll: Duration,
    limit: Duration,
) -> Result<(u64, Instant)> {
    let deadline = Instant::now() + limit;
    loop {
        let got = target.received()?.saturating_sub(before);
        if got >= want {
            return Ok((got, Instant::now()));
        }
        if Instant::now() > deadline {
            return Ok((got, Instant::now()));
        }
        std::thread::sleep(poll);
    }
}

/// Pairs (drain and sensor, or baseline and candidate) measured by default
/// (`--backlog-pairs`).
pub const BACKLOG_REPETITIONS: usize = 9;

/// The backlog measure's result.
#[derive(Debug, Clone, Copy)]
pub struct Pooled {
    /// The first receiver's pooled rate (the drain, or the baseline build).
    pub first: BacklogRate,
    /// The second's (the sensor, or the candidate build).
    pub second: BacklogRate,
    /// The 95 % bootstrap interval of second/first (see `stats`); None
    /// with a single pair.
    pub interval: Option<(f64, f64)>,
}

impl Pooled {
    /// The pooled rates of pairs measured by [`alternate`], and the
    /// interval of their ratio.
    fn from_pairs(first: &[BacklogRate], second: &[BacklogRate]) -> Self {
        Self {
            first: pooled(first),
            second: pooled(second),
            interval: stats::ratio_interval(first, second),
        }
    }

    /// second / first.
    pub fn ratio(&self) -> f64 {
        self.second.pps() / self.first.pps().max(1e-9)
    }

    /// The interval in the report's words.
    fn interval_text(&self) -> String {
        match self.interval {
            Some((low, high)) => format!(
                "95 % bootstrap interval {:.1} % to {:.1} %",
                low * 100.0,
                high * 100.0
            ),
            None => "no interval from one pair".to_owned(),
        }
    }
}

/// Measures the bare drain and the sensor `o.backlog_pairs` times,
/// alternating, each time with fresh sockets of [`BACKLOG_RCVBUF_BYTES`],
/// printing every pair; returns each receiver's pooled rate (all datagrams
/// received over all CPU seconds spent) and how sure their ratio is.
/// Single passes swing by tens of percent on a shared 2-CPU virtual
/// machine (other tenants, the kernel's own threads on the receiver CPU);
/// pooling weighs every pass by its work and, unlike a median of ratios,
/// uses every measurement.
pub fn measure(o: &LiveBenchOptions) -> Result<Pooled> {
    let (drains, sensors) = alternate(
        o,
        || drain_once(o),
        || sensor_once(o, &o.sensor),
        |i, d, s| {
            println!(
                "  #{}: drain {:>9.0} pps ({} in {:.3} CPU s, {:.2} s wall), sensor {:>9.0} pps \
             ({} in {:.3} CPU s, {:.2} s wall): {:.1} %",
                i,
                d.pps(),
                d.received,
                d.seconds,
                d.wall_seconds,
                s.pps(),
                s.received,
                s.seconds,
                s.wall_seconds,
                s.pps() / d.pps().max(1e-9) * 100.0
            );
        },
    )?;
    let mut ratios: Vec<f64> = drains
        .iter()
        .zip(&sensors)
        .map(|(d, s)| s.pps() / d.pps().max(1e-9))
        .collect();
    ratios.sort_by(f64::total_cmp);
    let result = Pooled::from_pairs(&drains, &sensors);
    println!(
        "  pooled: drain {:.0} pps, sensor {:.0} pps ({:.1} %, {}); pair ratios from {:.1} % to {:.1} %, median {:.1} %",
        result.first.pps(),
        result.second.pps(),
        result.ratio() * 100.0,
        result.interval_text(),
        ratios.first().copied().unwrap_or(0.0) * 100.0,
        ratios.last().copied().unwrap_or(0.0) * 100.0,
        ratios.get(ratios.len() / 2).copied().unwrap_or(0.0) * 100.0,
    );
    println!("  {}", budget_text(&result.first, &result.second));
    Ok(result)
}

/// The pooled figures as CPU time per datagram, and what the target leaves
/// for the sensor's own work: the drain's time is the kernel's receive
/// path, which the sensor pays too, so 80 % of the drain's rate allows the
/// sensor a quarter of the drain's time on top of it.
pub fn budget_text(drain: &BacklogRate, sensor: &BacklogRate) -> String {
    let per = |r: &BacklogRate| r.seconds / (r.received.max(1) as f64) * 1e9;
    let (d, s) = (per(drain), per(sensor));
    let allowed = d / (super::TARGET_RATIO) - d;
    format!(
        "CPU per datagram: drain {d:.0} ns, sensor {s:.0} ns; the sensor's own work beyond the drain's {:.0} ns, \
         where {:.0} % of the drain's rate allows {allowed:.0} ns",
        s - d,
        super::TARGET_RATIO * 100.0
    )
}

/// Compares two sensor builds by the same measure: `baseline` and then
/// `o.sensor`, alternating, `o.backlog_pairs` times; prints every
/// pair and returns each build's pooled rate (baseline first) with the
/// interval of their ratio. Both are timed alike, so their ratio shows what
/// a change to the per-packet path is worth in CPU time, which instruction
/// counts alone do not (cache misses, page faults, system calls).
pub fn compare(o: &LiveBenchOptions, baseline: &std::path::Path) -> Result<Pooled> {
    let (bases, candidates) = alternate(
        o,
        || sensor_once(o, baseline),
        || sensor_once(o, &o.sensor),
        |i, b, c| {
            println!(
                "  #{}: baseline {:>9.0} pps ({:.3} CPU s), candidate {:>9.0} pps ({:.3} CPU s): {:.1} %",
                i,
                b.pps(),
                b.seconds,
                c.pps(),
                c.seconds,
                c.pps() / b.pps().max(1e-9) * 100.0
            );
        },
    )?;
    let result = Pooled::from_pairs(&bases, &candidates);
    println!(
        "  pooled: baseline {:.0} pps, candidate {:.0} pps: candidate/baseline {:.1} % ({})",
        result.first.pps(),
        result.second.pps(),
        result.ratio() * 100.0,
        result.interval_text(),
    );
    Ok(result)
}

/// Runs `first` then `second`, `o.backlog_pairs` times, showing each pair
/// with `show` (its number from 1); returns every measure of each. This
/// thread polls the receivers, so it is kept off their CPUs.
fn alternate(
    o: &LiveBenchOptions,
    first: impl Fn() -> Result<BacklogRate>,
    second: impl Fn() -> Result<BacklogRate>,
    show: impl Fn(usize, &BacklogRate, &BacklogRate),
) -> Result<(Vec<BacklogRate>, Vec<BacklogRate>)> {
    super::drain::pin_to(&parse_cpu_list(&o.sender_cpus)?);
    let mut firsts = Vec::new();
    let mut seconds = Vec::new();
    for i in 0..o.backlog_pairs.max(1) {
        let a = first()?;
        let b = second()?;
        show(i + 1, &a, &b);
        firsts.push(a);
        seconds.push(b);
    }
    Ok((firsts, seconds))
}

/// The sum of several measures: every datagram over every second.
pub(super) fn pooled<'a>(v: impl IntoIterator<Item = &'a BacklogRate>) -> BacklogRate {
    v.into_iter().fold(
        BacklogRate {
            queued: 0,
            received: 0,
            seconds: 0.0,
            wall_seconds: 0.0,
        },
        |a, r| BacklogRate {
            queued: a.queued + r.queued,
            received: a.received + r.received,
            seconds: a.seconds + r.seconds,
            wall_seconds: a.wall_seconds + r.wall_seconds,
        },
    )
}

fn drain_once(o: &LiveBenchOptions) -> Result<BacklogRate> {
    let setup = super::drain_setup(o, BACKLOG_RCVBUF_BYTES)?;
    let drain = Drain::start_paused(std::net::Ipv4Addr::LOCALHOST.into(), &setup)?;
    let addr = drain.addr;
    let drain = Target::Drain(drain);
    let Target::Drain(d) = &drain else {
        bail!("not a drain");
    };
    let pid = std::process::id();
    let mut measured = None;
    for round in 0..=o.warmup_backlogs {
        let before = drain.received()?;
        d.pause();
        // The threads see the pause before their next receive call.
        std::thread::sleep(Duration::from_millis(20));
        let sent = queue_backlog(o, addr, round, round < o.warmup_backlogs)?;
        let usage = Usage::of(pid)?;
        let start = Instant::now();
        d.release();
        let (got, end) = wait_for(
            &drain,
            before,
            sent,
            Duration::from_millis(10),
            BACKLOG_TIMEOUT,
        )?;
        let after = Usage::of(pid)?;
        let rate = finish_round(o, "drain", round, (&usage, &after), sent, got, (start, end));
        measured = Some(rate);
    }
    drain.stop()?;
    measured.ok_or_else(|| anyhow::anyhow!("no backlog measured"))
}

fn sensor_once(o: &LiveBenchOptions, binary: &std::path::Path) -> Result<BacklogRate> {
    let sensor = SensorProcess::start(
        &o.taskset,
        &o.receiver_cpus,
        binary,
        o.rx_threads,
        o.workers,
        BACKLOG_RCVBUF_BYTES,
        o.sensor_config.as_deref(),
    )?;
    let target = Target::Sensor(sensor);
    let result = (|| {
        let Target::Sensor(s) = &target else {
            bail!("not a sensor");
        };
        let mut measured = None;
        for round in 0..=o.warmup_backlogs {
            let before = target.received()?;
            s.signal("STOP")?;
            let sent = queue_backlog(o, s.traffic_addr(o.gwlb), round, round < o.warmup_backlogs);
            let usage = Usage::of(s.pid())?;
            let start = Instant::now();
            s.signal("CONT")?;
            let sent = sent?;
            let (end, after) = wait_for_sensor(s.traffic_addr(o.gwlb).port(), s.pid())?;
            // The sensor publishes its counters about every 100 ms: give the
            // count time to catch up (after the CPU time was read; a count
            // still short after that is loss).
            let (got, _) = wait_for(
                &target,
                before,
                sent,
                Duration::from_millis(50),
                Duration::from_secs(2),
            )?;
            let rate = finish_round(
                o,
                "sensor",
                round,
                (&usage, &after),
                sent,
                got,
                (start, end),
            );
            measured = Some(rate);
        }
        measured.ok_or_else(|| anyhow::anyhow!("no backlog measured"))
    })();
    target.stop()?;
    result
}

/// Queues `o.backlog_loops` passes of the backlog capture (the warm-up
/// capture for a warm-up round) at `to` at the sender's full speed; returns
/// the datagrams sent. Round `round`'s passes are numbered after the earlier
/// rounds' (see [`replay`]), so warm-up rounds of one capture are new too.
fn queue_backlog(
    o: &LiveBenchOptions,
    to: std::net::SocketAddr,
    round: usize,
    warmup: bool,
) -> Result<u64> {
    let first_pass = round as u64 * o.backlog_loops;
    let rate = ["--max".to_owned()];
    let capture = if warmup {
        &o.warmup_capture
    } else {
        &o.backlog_capture
    };
    let sent = replay(
        &o.taskset,
        &o.sender_cpus,
        &o.sensor,
        capture,
        to,
        &rate,
        o.backlog_loops,
        first_pass,
        o.gwlb,
    )?;
    Ok(sent.sent)
}

/// The measure of one round: the CPU the receiver's process used between
/// two readings (it is alone on its CPU, saturated until the backlog is
/// gone), printed by thread with `--threads`.
fn finish_round(
    o: &LiveBenchOptions,
    who: &str,
    round: usize,
    (before, after): (&Usage, &Usage),
    sent: u64,
    got: u64,
    (start, end): (Instant, Instant),
) -> BacklogRate {
    if o.show_threads {
        let kind = if round < o.warmup_backlogs {
            "warm-up"
        } else {
            "measured"
        };
        println!(
            "     {who} {kind} backlog, CPU s by thread: {}",
            after.report_since(before)
        );
    }
    BacklogRate {
        queued: sent,
        received: got,
        seconds: after.cpu_since(before),
        wall_seconds: end.duration_since(start).as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_a_quarter_of_the_drains_time_per_datagram() {
        // The drain: 1 µs a datagram; the sensor: 2 µs, so 1 µs of its own
        // work where 80 % of the drain's rate leaves 250 ns.
        let text = budget_text(
            &BacklogRate::for_test(1000, 0.001),
            &BacklogRate::for_test(1000, 0.002),
        );
        assert!(text.contains("drain 1000 ns, sensor 2000 ns"), "{text}");
        assert!(text.contains("beyond the drain's 1000 ns"), "{text}");
        assert!(text.contains("allows 250 ns"), "{text}");
    }
}

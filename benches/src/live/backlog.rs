//! The backlog measure: how fast a receiver empties a socket backlog it
//! did not keep up with. The receiver is paused (the drain's threads wait;
//! the sensor gets SIGSTOP), the sender queues a burst into the socket
//! buffer, then the receiver resumes alone on its CPU, with the sender idle,
//! and the time until everything is received gives its rate. That is its
//! loss-free ceiling measured without needing a sender faster than the
//! receiver, which a 2-CPU machine does not have: on loopback the sender's
//! CPU also runs the kernel's delivery into the receiving socket, so the
//! replay saturates before either receiver loses anything.

use super::drain::Drain;
use super::target::{SensorProcess, Target, replay};
use super::{LiveBenchOptions, parse_cpu_list};
use anyhow::{Result, bail};
use std::time::{Duration, Instant};

/// SO_RCVBUF asked for the backlog (the kernel doubles it; root may exceed
/// `net.core.rmem_max` with SO_RCVBUFFORCE, which both receivers try).
pub const BACKLOG_RCVBUF_BYTES: usize = 1 << 30;
/// Passes over the capture queued at once (each about 21,700 datagrams of
/// the default live capture: about 520,000 datagrams, which fit the buffer
/// above and take the receivers about a second).
pub const BACKLOG_LOOPS: u64 = 24;
/// Longest wait for a backlog to be received.
const BACKLOG_TIMEOUT: Duration = Duration::from_secs(60);

/// CPU seconds (user + system) a process has used, from /proc/PID/stat.
fn process_cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces): state is 3rd,
    // utime the 14th and stime the 15th field of the line.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok((ticks(11) + ticks(12)) / hz.max(1.0))
}

/// One backlog measure.
#[derive(Debug, Clone, Copy)]
pub struct BacklogRate {
    /// Datagrams queued (sent).
    pub queued: u64,
    /// Datagrams received.
    pub received: u64,
    /// CPU seconds the receiver's process spent from its release until
    /// every datagram was received (user and system time of every thread).
    pub seconds: f64,
    /// Wall-clock seconds from the release until a poll (every 100 ms) saw
    /// every datagram received: an upper bound, shown beside the CPU time.
    pub wall_seconds: f64,
}

impl BacklogRate {
    /// Datagrams per second.
    pub fn pps(&self) -> f64 {
        self.received as f64 / self.seconds.max(1e-9)
    }
}

fn wait_for(target: &Target, before: u64, want: u64, poll: Duration) -> Result<(u64, Instant)> {
    let deadline = Instant::now() + BACKLOG_TIMEOUT;
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

/// Repetitions of the pair (drain, sensor), alternating.
pub const BACKLOG_REPETITIONS: usize = 9;

/// Measures the bare drain and the sensor [`BACKLOG_REPETITIONS`] times,
/// alternating, each time with fresh sockets of [`BACKLOG_RCVBUF_BYTES`],
/// printing every pair; returns each receiver's pooled rate (all datagrams
/// received over all CPU seconds spent). Single passes swing by tens of
/// percent on a shared 2-CPU virtual machine (other tenants, the kernel's
/// own threads on the receiver CPU); pooling weighs every pass by its work
/// and, unlike a median of ratios, uses every measurement.
pub fn measure(o: &LiveBenchOptions) -> Result<(BacklogRate, BacklogRate)> {
    // This thread polls the receivers: keep it off their CPUs.
    super::drain::pin_to(&parse_cpu_list(&o.sender_cpus)?);
    let mut drains = Vec::new();
    let mut sensors = Vec::new();
    for i in 0..BACKLOG_REPETITIONS {
        let d = drain_once(o)?;
        let s = sensor_once(o)?;
        println!(
            "  #{}: drain {:>9.0} pps ({} in {:.3} CPU s, {:.2} s wall), sensor {:>9.0} pps \
             ({} in {:.3} CPU s, {:.2} s wall): {:.1} %",
            i + 1,
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
        drains.push(d);
        sensors.push(s);
    }
    let mut ratios: Vec<f64> = drains
        .iter()
        .zip(&sensors)
        .map(|(d, s)| s.pps() / d.pps().max(1e-9))
        .collect();
    ratios.sort_by(f64::total_cmp);
    let (drain, sensor) = (pooled(&drains), pooled(&sensors));
    println!(
        "  pooled: drain {:.0} pps, sensor {:.0} pps ({:.1} %); pair ratios from {:.1} % to {:.1} %, median {:.1} %",
        drain.pps(),
        sensor.pps(),
        sensor.pps() / drain.pps().max(1e-9) * 100.0,
        ratios.first().copied().unwrap_or(0.0) * 100.0,
        ratios.last().copied().unwrap_or(0.0) * 100.0,
        ratios.get(ratios.len() / 2).copied().unwrap_or(0.0) * 100.0,
    );
    Ok((drain, sensor))
}

/// The sum of several measures: every datagram over every second.
fn pooled(v: &[BacklogRate]) -> BacklogRate {
    v.iter().fold(
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
    let rate = ["--max".to_owned()];
    let sent = replay(
        &o.taskset,
        &o.sender_cpus,
        &o.sensor,
        &o.capture,
        addr,
        &rate,
        BACKLOG_LOOPS,
    )?;
    // Both receivers are timed the same way: the CPU their process used
    // (each is alone on its CPU, saturated until the backlog is gone, then
    // idle), read before the release and once a poll every 100 ms saw every
    // datagram received.
    let cpu_before = process_cpu_seconds(std::process::id())?;
    let start = Instant::now();
    if let Target::Drain(d) = &drain {
        d.release();
    }
    let (got, end) = wait_for(&drain, 0, sent.sent, Duration::from_millis(100))?;
    let cpu = process_cpu_seconds(std::process::id())? - cpu_before;
    drain.stop()?;
    Ok(BacklogRate {
        queued: sent.sent,
        received: got,
        seconds: cpu,
        wall_seconds: end.duration_since(start).as_secs_f64(),
    })
}

fn sensor_once(o: &LiveBenchOptions) -> Result<BacklogRate> {
    let rate = ["--max".to_owned()];
    let sensor = SensorProcess::start(
        &o.taskset,
        &o.receiver_cpus,
        &o.sensor,
        o.rx_threads,
        o.workers,
        BACKLOG_RCVBUF_BYTES,
    )?;
    let result = (|| {
        let target = Target::Sensor(sensor);
        let before = target.received()?;
        let Target::Sensor(s) = &target else {
            bail!("not a sensor");
        };
        s.signal("STOP")?;
        let sent = replay(
            &o.taskset,
            &o.sender_cpus,
            &o.sensor,
            &o.capture,
            s.vxlan,
            &rate,
            BACKLOG_LOOPS,
        );
        let cpu_before = process_cpu_seconds(s.pid())?;
        let start = Instant::now();
        s.signal("CONT")?;
        let sent = sent?;
        // Each poll is a /metrics scrape served by the sensor's own health
        // thread on the sensor's CPU, so poll rarely, and time the work by
        // the CPU the sensor used (it is alone on its CPU and idles once
        // done), not by when a poll noticed the end.
        let (got, end) = wait_for(&target, before, sent.sent, Duration::from_millis(100))?;
        let cpu = process_cpu_seconds(s.pid())? - cpu_before;
        let rate = BacklogRate {
            queued: sent.sent,
            received: got,
            seconds: cpu,
            wall_seconds: end.duration_since(start).as_secs_f64(),
        };
        target.stop()?;
        Ok(rate)
    })()?;
    Ok(result)
}

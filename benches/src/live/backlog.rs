//! The backlog measure: how fast a receiver empties a socket backlog it
//! did not keep up with. The receiver is paused (the drain's threads wait;
//! the sensor gets SIGSTOP), the sender queues a burst into the socket
//! buffer, then the receiver resumes alone on its CPU, with the sender idle,
//! and the time until everything is received gives its rate. That is its
//! loss-free ceiling measured without needing a sender faster than the
//! receiver, which a 2-CPU machine does not have: on loopback the sender's
//! CPU also runs the kernel's delivery into the receiving socket, so the
//! replay saturates before either receiver loses anything.

use super::drain::{Drain, DrainSetup};
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

/// One backlog measure.
#[derive(Debug, Clone, Copy)]
pub struct BacklogRate {
    /// Datagrams queued (sent).
    pub queued: u64,
    /// Datagrams received.
    pub received: u64,
    /// Seconds from resuming the receiver until all were received.
    pub seconds: f64,
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

/// Measures the bare drain and then the sensor, each with its own fresh
/// sockets of [`BACKLOG_RCVBUF_BYTES`].
pub fn measure(o: &LiveBenchOptions) -> Result<(BacklogRate, BacklogRate)> {
    // This thread polls the receivers: keep it off their CPUs.
    super::drain::pin_to(&parse_cpu_list(&o.sender_cpus)?);
    let setup = DrainSetup {
        threads: o.rx_threads,
        batch: 64,
        buffer_bytes: 9216,
        rcvbuf_bytes: BACKLOG_RCVBUF_BYTES,
        cpus: parse_cpu_list(&o.receiver_cpus)?,
    };
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
    let start = Instant::now();
    if let Target::Drain(d) = &drain {
        d.release();
    }
    let (got, end) = wait_for(&drain, 0, sent.sent, Duration::from_micros(500))?;
    drain.stop()?;
    let drain_rate = BacklogRate {
        queued: sent.sent,
        received: got,
        seconds: end.duration_since(start).as_secs_f64(),
    };

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
        let start = Instant::now();
        s.signal("CONT")?;
        let sent = sent?;
        // Each poll is a /metrics scrape served by the sensor's own health
        // thread, on the sensor's CPU: poll at the publication interval
        // (20 ms), not faster, so the measure does not slow the measured.
        let (got, end) = wait_for(&target, before, sent.sent, Duration::from_millis(20))?;
        let rate = BacklogRate {
            queued: sent.sent,
            received: got,
            seconds: end.duration_since(start).as_secs_f64(),
        };
        target.stop()?;
        Ok(rate)
    })()?;
    Ok((drain_rate, result))
}

//! `sensor replay`: sends captures to a sensor as AWS would deliver them.
//!
//! Owns: the command line of the replay, the loopback-only safety check,
//! and the loop that reads frames, paces them, encodes them and hands them
//! to the sender. Input: capture files (anything [`read_capture`] reads) and
//! a destination. Output: UDP datagrams (VXLAN, GWLB GENEVE, or the
//! capture's own tunnel payloads) and a [`ReplaySummary`]. Does not: craft
//! outer IP or UDP headers (the kernel does; the outer source port is chosen
//! by picking one of a pool of sockets), receive anything, or send to a
//! non-loopback address without `--allow-remote`.

pub mod encap;
pub mod pace;
pub mod renumber;
mod report;
pub mod sender;

pub use encap::{Encapsulation, SkipReason};
pub use report::{ReplaySummary, SkipCounts};

use crate::capture::{RawFrame, read_capture};
use crate::metrics::Counters;
use anyhow::{Context, bail};
use encap::{FrameEncoder, MAX_OVERHEAD_BYTES};
use pace::{Pacer, Rate};
use report::Progress;
use sender::{Batch, SendStats, SocketPool};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A paced packet due less than this far in the future is sent now rather
/// than slept for: sleeping costs about as much, and it lets a fast
/// schedule still fill batches.
const EARLY_SEND_SLACK: Duration = Duration::from_micros(200);
/// Longest single sleep, so progress keeps printing during long gaps.
const MAX_SLEEP: Duration = Duration::from_millis(250);

/// Command-line arguments of `sensor replay`.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("rate").args(["pps", "speed", "max"])))]
pub struct ReplayArgs {
    /// Capture files (pcap, pcapng, optionally gzip-compressed), sent in
    /// order as one stream.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Destination HOST:PORT (normally 4789 for vxlan, 6081 for gwlb).
    /// Only loopback (127.0.0.0/8, ::1, localhost) unless --allow-remote.
    #[arg(long, value_name = "HOST:PORT")]
    pub to: String,
    /// How each frame is wrapped: vxlan (AWS Traffic Mirroring), gwlb
    /// (GENEVE with the AWS options around the VXLAN packet, as a Gateway
    /// Load Balancer delivers it), none (the capture is already
    /// encapsulated: its UDP payloads are sent as they are).
    #[arg(long, value_enum, default_value_t = Encapsulation::Vxlan)]
    pub encap: Encapsulation,
    /// VXLAN network identifier (24 bits).
    #[arg(long, default_value_t = 4242, value_parser = clap::value_parser!(u32).range(0..=0x00ff_ffff))]
    pub vni: u32,
    /// Outer source address (on AWS: the mirrored interface's primary IP),
    /// an address of this host: on loopback any of 127.0.0.0/8. Default:
    /// the one the kernel picks.
    #[arg(long, value_name = "ADDR")]
    pub source_ip: Option<IpAddr>,
    /// Send at a steady N packets per second.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub pps: Option<u64>,
    /// Follow the capture timestamps, X times as fast. This is the default,
    /// at --speed 1 (real time).
    #[arg(long, value_name = "X", value_parser = parse_speed)]
    pub speed: Option<f64>,
    /// Send as fast as possible.
    #[arg(long)]
    pub max: bool,
    /// Send the files N times over (the flows repeat as they are, unless
    /// --unique-ip).
    #[arg(long = "loop", value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub loops: u64,
    /// New connections on every pass, as tcpreplay's option of that name:
    /// pass P (counted from --unique-ip-start, the first pass being 0 by
    /// default) adds P to the last 16 bits of both addresses of the first IP
    /// header inside the tunnel, with the IP, TCP, UDP and ICMPv6 checksums
    /// updated. Without it a receiver that tracks connections sees a later
    /// pass as retransmissions of the first. Pass 0, and datagrams with no
    /// readable IP header inside, are sent unchanged (counted in the summary
    /// as `unique_ip_unchanged`).
    #[arg(long)]
    pub unique_ip: bool,
    /// With --unique-ip: the number of the first pass, so that replays one
    /// after another into one receiver go on with new connections.
    #[arg(long, value_name = "P", default_value_t = 0, requires = "unique_ip")]
    pub unique_ip_start: u64,
    /// Allow a destination outside loopback.
    #[arg(long)]
    pub allow_remote: bool,
    /// Outer UDP source ports (one socket each); each direction of a flow
    /// uses one of them, chosen by a hash of its inner 5-tuple.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub source_ports: u16,
    /// Datagrams per batch (one sendmmsg call per run of one socket).
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub batch: u16,
    /// With --speed: the longest gap between two capture timestamps that is
    /// honoured (longer ones, and timestamps going backwards, are cut).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration)]
    pub max_gap: Duration,
    /// Print a progress line about once a second even when stderr is not a
    /// terminal.
    #[arg(long)]
    pub progress: bool,
}

fn parse_speed(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(format!("{s:?} is not a positive number")),
    }
}

impl ReplayArgs {
    /// The rate mode: --max, --pps, or --speed (default 1).
    pub fn rate(&self) -> Rate {
        match (self.max, self.pps) {
            (true, _) => Rate::Max,
            (false, Some(pps)) => Rate::PacketsPerSecond(pps),
            (false, None) => Rate::Speed(self.speed.unwrap_or(1.0)),
        }
    }
}

/// True for loopback addresses (127.0.0.0/8, ::1, IPv4-mapped loopback).
pub fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// Resolves `to` (HOST:PORT), preferring IPv4, and refuses anything but
/// loopback unless `allow_remote`.
pub fn resolve_destination(to: &str, allow_remote: bool) -> anyhow::Result<SocketAddr> {
    let addrs: Vec<SocketAddr> = to
        .to_socket_addrs()
        .with_context(|| format!("--to {to}: expected HOST:PORT that resolves"))?
        .collect();
    let Some(dst) = addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
    else {
        bail!("--to {to}: resolves to no address");
    };
    if dst.port() == 0 {
        bail!("--to {to}: port 0 is not a destination");
    }
    if !allow_remote && !is_loopback(dst.ip()) {
        bail!(
            "refusing to send to {dst} (--to {to}): not a loopback address \
             (127.0.0.0/8, ::1); pass --allow-remote to send mirrored traffic there"
        );
    }
    Ok(dst)
}

/// Runs a replay from the command line: prints progress and the summary on
/// stderr. Fails when a datagram could not be sent (after the summary).
pub fn run(args: &ReplayArgs) -> anyhow::Result<()> {
    let summary = replay(args)?;
    eprint!("{}", summary.render());
    let errors = summary.send_errors.total();
    if errors > 0 {
        return Err(SendErrorsReported { errors }.into());
    }
    Ok(())
}

/// The error [`run`] returns when some datagrams failed to send (the
/// command exits 1 rather than 2: the replay ran, with losses).
#[derive(Debug, thiserror::Error)]
#[error("{errors} datagrams could not be sent")]
pub struct SendErrorsReported {
    /// How many.
    pub errors: u64,
}

/// Replays the files and returns what happened, without printing the
/// summary.
pub fn replay(args: &ReplayArgs) -> anyhow::Result<ReplaySummary> {
    let dst = resolve_destination(&args.to, args.allow_remote)?;
    for f in &args.files {
        std::fs::metadata(f).with_context(|| format!("{}", f.display()))?;
    }
    if let Some(src) = args.source_ip
        && src.is_ipv4() != dst.is_ipv4()
    {
        bail!("--source-ip {src} and --to {dst} are not of one address family");
    }
    let pool = SocketPool::open_from(dst, args.source_ip, usize::from(args.source_ports))?;
    if dst.is_ipv4() && !pool.checksum_zero() {
        eprintln!("sensor replay: SO_NO_CHECK refused; outer UDP checksums will not be 0");
    }
    let mut r = Replayer {
        encoder: FrameEncoder::new(args.encap, args.vni, pool.len()),
        batch: Batch::new(usize::from(args.batch)),
        pacer: Pacer::new(args.rate(), args.max_gap),
        stats: SendStats::default(),
        skipped: SkipCounts::default(),
        offset: 0,
        unchanged: 0,
        frames: 0,
        start: Instant::now(),
        progress: Progress::new(args.progress),
        pool,
    };
    for pass in 0..args.loops {
        // 16 bits of offset: pass 65,536 repeats pass 0's addresses.
        r.offset = if args.unique_ip {
            (args.unique_ip_start.wrapping_add(pass) & 0xffff) as u16
        } else {
            0
        };
        for file in &args.files {
            let mut counters = Counters::default();
            let read = read_capture(file, &mut counters, &mut |frame, _| r.frame(&frame));
            if let Err(e) = read {
                r.flush();
                return Err(e.into());
            }
        }
    }
    r.flush();
    r.progress.finish();
    Ok(ReplaySummary {
        destination: dst,
        source_ports: r.pool.ports().to_vec(),
        checksum_zero: r.pool.checksum_zero(),
        frames_read: r.frames,
        packets_sent: r.stats.packets,
        bytes_sent: r.stats.bytes,
        elapsed: r.start.elapsed(),
        send_errors: r.stats.errors,
        skipped: r.skipped,
        unique_ip_unchanged: args.unique_ip.then_some(r.unchanged),
    })
}

struct Replayer {
    encoder: FrameEncoder,
    batch: Batch,
    pool: SocketPool,
    pacer: Pacer,
    stats: SendStats,
    skipped: SkipCounts,
    /// This pass's address offset (0: frames go as they are).
    offset: u16,
    /// Datagrams of a renumbered pass sent unchanged (no IP header found).
    unchanged: u64,
    frames: u64,
    start: Instant,
    progress: Progress,
}

impl Replayer {
    fn frame(&mut self, frame: &RawFrame<'_>) {
        self.frames += 1;
        // Under --max, skip the clock read.
        if !self.pacer.unpaced()
            && let Some(due) = self.pacer.next_due(frame.ts_us, self.start.elapsed())
        {
            self.wait_until(due);
        }
        if !self.batch.has_room(frame.data.len() + MAX_OVERHEAD_BYTES) {
            self.flush();
        }
        let start = self.batch.buffer().len();
        match self.encoder.encode(frame, self.batch.buffer()) {
            Ok(socket) => {
                if self.offset != 0 {
                    let header = self.encoder.last_header();
                    let datagram = &mut self.batch.buffer()[start..];
                    if !renumber::renumber(datagram, header, self.offset) {
                        self.unchanged += 1;
                    }
                }
                self.batch.commit(start, socket);
            }
            Err(reason) => self.skipped.add(reason),
        }
        if self.batch.is_full() {
            self.flush();
        }
    }

    /// Sends what is waiting, then sleeps until `due` (from the start).
    fn wait_until(&mut self, due: Duration) {
        loop {
            let now = self.start.elapsed();
            if due <= now + EARLY_SEND_SLACK {
                return;
            }
            if !self.batch.is_empty() {
                self.flush();
                continue;
            }
            self.progress.tick(&self.stats);
            std::thread::sleep((due - now).min(MAX_SLEEP));
        }
    }

    fn flush(&mut self) {
        if !self.batch.is_empty() {
            self.batch.flush(&self.pool, &mut self.stats);
        }
        self.progress.tick(&self.stats);
    }
}

//! `live-bench`: the live benchmark. Finds the highest `sensor replay` rate
//! with under 0.1 % loss for a bare recvmmsg drain of the sensor's socket
//! setup (the ceiling) and for `sensor run`, in the same run, on loopback,
//! and prints both and their ratio (target: 80 %). See benches/README.md.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, bail};
use benches::bench::tools::{self, MissingTool};
use benches::capture::{self, CaptureConfig};
use benches::live::{LiveBenchOptions, run};
use clap::Parser;

/// Live receive rate with no loss: sensor vs a bare recvmmsg drain.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// VXLAN capture to replay (default: a generated 20 MB benchmark capture
    /// in benches/data/live, made by the same generator as pipeline-bench).
    #[arg(long)]
    capture: Option<PathBuf>,
    /// Send every capture as a Gateway Load Balancer delivers mirrored
    /// traffic: GENEVE with the AWS options around the VXLAN packet
    /// (`sensor replay --encap gwlb`), to the sensor's GENEVE port. The
    /// generated captures' plain twins are sent; captures named by flags
    /// must then be plain (not encapsulated) ones.
    #[arg(long)]
    gwlb: bool,
    /// Receive threads of both receivers.
    #[arg(long, default_value_t = 1)]
    rx_threads: usize,
    /// Sensor worker threads.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// CPUs of the receiver (taskset list); default: the last CPU.
    #[arg(long)]
    receiver_cpus: Option<String>,
    /// CPUs of the sender (taskset list); default: CPU 0.
    #[arg(long, default_value = "0")]
    sender_cpus: String,
    /// Requested SO_RCVBUF (the sensor's default).
    #[arg(long, default_value_t = 32 << 20)]
    rcvbuf_bytes: usize,
    /// Pairs of backlog measures, alternating (more pairs: a steadier
    /// pooled figure on a noisy machine).
    #[arg(long, default_value_t = benches::live::backlog::BACKLOG_REPETITIONS)]
    backlog_pairs: usize,
    /// VXLAN capture of the measured backlogs (default: a generated 240 MB
    /// capture, about 260,000 datagrams, queued once, so that every
    /// connection in it is new to the receiver).
    #[arg(long)]
    backlog_capture: Option<PathBuf>,
    /// Passes of the backlog capture queued for each backlog. More than 1
    /// replays connections the receiver has seen: the sensor skips their
    /// payload as retransmissions, which flatters it.
    #[arg(long, default_value_t = benches::live::backlog::BACKLOG_LOOPS, value_parser = clap::value_parser!(u64).range(1..))]
    backlog_loops: u64,
    /// VXLAN capture of the warm-up backlogs (default: a generated capture
    /// like the backlog's, of another seed, so the measured backlog's
    /// connections stay new).
    #[arg(long)]
    warmup_capture: Option<PathBuf>,
    /// Unmeasured backlogs each receiver empties before the measured one
    /// (0: measure a freshly started receiver).
    #[arg(long, default_value_t = 1)]
    warmup_backlogs: usize,
    /// Print each backlog's CPU time by thread (user and system, from the
    /// clock tick) and its minor page faults.
    #[arg(long)]
    threads: bool,
    /// Instead of the benchmark: compare this sensor binary (the baseline)
    /// with the one under test by the backlog measure alone.
    #[arg(long)]
    compare_sensor: Option<PathBuf>,
    /// A configuration file for every sensor started (`sensor run --config
    /// FILE`), such as `[dissect] protocols = []`; default: none, the
    /// sensor's defaults (`SENSOR_*` variables are never passed on).
    #[arg(long)]
    sensor_config: Option<PathBuf>,
    /// Seconds per step (at most about 5).
    #[arg(long, default_value_t = 3.0)]
    step_seconds: f64,
    /// Binary-search steps after the full-speed probe.
    #[arg(long, default_value_t = 7)]
    iterations: usize,
    /// Percent of one CPU each receiver may use during the loss-free
    /// searches (a cgroup v1 CFS quota; needs root), so that the sender can
    /// outrun it; 0: no limit (on a 2-CPU machine the searches then end
    /// sender-bound and the backlog measure decides).
    #[arg(long, default_value_t = 10)]
    receiver_quota: u32,
    /// The period of that CPU limit, in milliseconds: a receiver runs its
    /// share at a stretch, then waits the rest (see benches/README.md).
    #[arg(long, default_value_t = benches::live::quota::DEFAULT_PERIOD_US / 1000)]
    quota_period_ms: u64,
    /// Exit with status 1 when the sensor is below 80 % of the drain.
    #[arg(long)]
    require_target: bool,
}

/// Size of the generated backlog captures: about 260,000 datagrams, which
/// the 1 GiB backlog socket buffer holds.
const BACKLOG_CAPTURE_BYTES: u64 = 240_000_000;
/// Makes the warm-up capture's seed differ from the backlog capture's.
const WARMUP_SEED_XOR: u64 = 0x5eed;

fn main() -> ExitCode {
    match run_bench(Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            if let Some(missing) = error.downcast_ref::<MissingTool>() {
                eprintln!("live-bench: {missing}");
                return ExitCode::from(3);
            }
            eprintln!("live-bench: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run_bench(args: Args) -> Result<bool> {
    let benches_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace_root = benches_dir.parent().unwrap_or(benches_dir);
    let taskset = tools::taskset()?;
    let sensor = tools::sensor_binary(workspace_root)?;
    // A capture the flag does not name is generated (once: a matching
    // manifest keeps it) under benches/data/NAME.
    let generated = |name: &str, bytes: u64, seed: u64| -> Result<PathBuf> {
        let config = CaptureConfig {
            target_vxlan_bytes: bytes,
            seed,
            ..CaptureConfig::default()
        };
        let dir = benches_dir.join("data").join(name);
        benches::bench::ensure_captures(&dir, &config)?;
        let (plain, vxlan, _) = capture::output_paths(&dir);
        Ok(if args.gwlb { plain } else { vxlan })
    };
    let seed = CaptureConfig::default().seed;
    let capture_path = match args.capture {
        Some(path) => path,
        None => generated("live", 20_000_000, seed)?,
    };
    // The backlog's captures: one pass each of traffic the receiver has not
    // seen, the warm-up's from another seed (other tunnels and flows).
    let backlog_capture = match args.backlog_capture {
        Some(path) => path,
        None => generated("live-backlog", BACKLOG_CAPTURE_BYTES, seed)?,
    };
    let warmup_capture = match args.warmup_capture {
        Some(path) => path,
        None => generated("live-warmup", BACKLOG_CAPTURE_BYTES, seed ^ WARMUP_SEED_XOR)?,
    };
    let last_cpu = tools::pick_core(usize::MAX);
    let options = LiveBenchOptions {
        sensor,
        taskset,
        capture: capture_path,
        gwlb: args.gwlb,
        backlog_capture,
        rx_threads: args.rx_threads.max(1),
        workers: args.workers.max(1),
        receiver_cpus: args.receiver_cpus.unwrap_or_else(|| last_cpu.to_string()),
        sender_cpus: args.sender_cpus,
        rcvbuf_bytes: args.rcvbuf_bytes,
        step: Duration::from_secs_f64(args.step_seconds.clamp(0.5, 10.0)),
        iterations: args.iterations,
        max_loss: 0.001,
        backlog_pairs: args.backlog_pairs,
        backlog_loops: args.backlog_loops,
        warmup_capture,
        warmup_backlogs: args.warmup_backlogs,
        show_threads: args.threads,
        receiver_quota: args.receiver_quota,
        quota_period_us: args.quota_period_ms.saturating_mul(1000),
        sensor_config: args.sensor_config,
    };
    if let Some(config) = &options.sensor_config {
        check_sensor_config(&options.sensor, config)?;
    }
    if let Some(baseline) = &args.compare_sensor {
        println!(
            "comparing {} (candidate) with {} (baseline): backlog of {} passes, alternating",
            options.sensor.display(),
            baseline.display(),
            options.backlog_loops
        );
        benches::live::backlog::compare(&options, baseline)?;
        return Ok(true);
    }
    let summary = run(&options)?;
    Ok(summary.meets_target || !args.require_target)
}

/// Refuses a `--sensor-config` the sensor would refuse, with the sensor's
/// own message (file, line and reason), before any receiver starts.
fn check_sensor_config(sensor: &Path, config: &Path) -> Result<()> {
    let out = std::process::Command::new(sensor)
        .arg("check-config")
        .arg(config)
        .output()?;
    if !out.status.success() {
        bail!(
            "--sensor-config {}: {}",
            config.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

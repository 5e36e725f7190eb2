//! `pipeline-bench`: the end-to-end benchmark. Builds the sensor, makes the
//! captures if needed, runs `sensor pcap --stats --workers 1` on the VXLAN
//! capture and `ndpiReader` on the same packets without VXLAN, both pinned
//! to one CPU, and prints their packet rates and the ratio.
//! See benches/README.md.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use benches::bench::tools::MissingTool;
use benches::bench::{BenchOptions, run};
use benches::capture::CaptureConfig;
use clap::Parser;

/// Sensor vs ndpiReader packet rate on one CPU.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Where the captures are kept (default: benches/data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Runs of each program; the median counts.
    #[arg(long, default_value_t = 5)]
    repetitions: usize,
    /// CPU to pin both programs to (the last CPU if this one does not exist).
    #[arg(long, default_value_t = 1)]
    core: usize,
    /// Seed of the generated traffic.
    #[arg(long, default_value_t = CaptureConfig::default().seed)]
    seed: u64,
    /// Size of vxlan.pcap in megabytes (10^6 bytes).
    #[arg(long, default_value_t = CaptureConfig::default().target_vxlan_bytes / 1_000_000)]
    size_mb: u64,
    /// Flows open at once.
    #[arg(long, default_value_t = CaptureConfig::default().concurrent_flows)]
    flows: usize,
    /// Mirror sessions (monitored ENIs).
    #[arg(long, default_value_t = CaptureConfig::default().sessions)]
    sessions: usize,
    /// Aimed-at inner traffic rate in Mbit/s.
    #[arg(long, default_value_t = CaptureConfig::default().offered_mbps)]
    offered_mbps: u64,
    /// Exit with status 1 when the sensor is below the 2x target.
    #[arg(long)]
    require_target: bool,
}

fn main() -> ExitCode {
    match run_bench(Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            if let Some(missing) = error.downcast_ref::<MissingTool>() {
                eprintln!("pipeline-bench: {missing}");
                return ExitCode::from(3);
            }
            eprintln!("pipeline-bench: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Ok(false) when the target is required and missed.
fn run_bench(args: Args) -> Result<bool> {
    let benches_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace_root = benches_dir.parent().unwrap_or(benches_dir).to_path_buf();
    let options = BenchOptions {
        workspace_root,
        data_dir: args.data_dir.unwrap_or_else(|| benches_dir.join("data")),
        capture: CaptureConfig {
            seed: args.seed,
            target_vxlan_bytes: args.size_mb * 1_000_000,
            concurrent_flows: args.flows,
            sessions: args.sessions,
            offered_mbps: args.offered_mbps,
        },
        repetitions: args.repetitions,
        core: args.core,
    };
    let summary = run(&options)?;
    Ok(summary.meets_target || !args.require_target)
}

//! `gen-capture`: writes `plain.pcap`, `vxlan.pcap` and `manifest.json`
//! into a directory, from a seed. The same arguments always give the same
//! bytes. See benches/README.md for what the traffic looks like.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;
use benches::capture::{CaptureConfig, generate};
use clap::Parser;

/// Generate the benchmark captures.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Directory to write into (default: benches/data).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Seed of every random choice.
    #[arg(long, default_value_t = CaptureConfig::default().seed)]
    seed: u64,
    /// Stop when vxlan.pcap reaches this many megabytes (10^6 bytes).
    #[arg(long, default_value_t = CaptureConfig::default().target_vxlan_bytes / 1_000_000)]
    size_mb: u64,
    /// Flows open at once.
    #[arg(long, default_value_t = CaptureConfig::default().concurrent_flows)]
    flows: usize,
    /// Mirror sessions (monitored ENIs).
    #[arg(long, default_value_t = CaptureConfig::default().sessions)]
    sessions: usize,
    /// Aimed-at inner traffic rate in Mbit/s (sets think times, hence how
    /// many seconds the capture spans).
    #[arg(long, default_value_t = CaptureConfig::default().offered_mbps)]
    offered_mbps: u64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let config = CaptureConfig {
        seed: args.seed,
        target_vxlan_bytes: args.size_mb * 1_000_000,
        concurrent_flows: args.flows,
        sessions: args.sessions,
        offered_mbps: args.offered_mbps,
    };
    let out = args
        .out
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("data"));
    let manifest = generate(&config, &out)?;
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, &manifest)?;
    writeln!(stdout)?;
    Ok(())
}

//! The capture generator: seeded synthetic traffic of a VPC written twice,
//! as `plain.pcap` (the inner Ethernet frames) and `vxlan.pcap` (the same
//! frames as AWS VPC Traffic Mirroring delivers them), plus a
//! `manifest.json` that records the parameters and what was written.
//!
//! Inputs: a [`CaptureConfig`]. Output: the three files in one directory.
//! It holds only the open flows in memory and streams packets to disk.
//! It does not send anything on a network.

mod content;
mod dns;
mod flow;
mod http;
mod ping;
pub(crate) mod rng;
mod schedule;
mod tcp;
mod topology;
mod wire;

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

pub use schedule::{FlowCounts, ScheduleReport};

/// Changes whenever the same configuration would produce different bytes;
/// a manifest with another version is stale.
pub const GENERATOR_VERSION: u32 = 3;
/// Capture time zero: 2024-06-01T12:00:00Z.
pub const EPOCH_S: u64 = 1_717_243_200;
/// File names inside the output directory.
pub const PLAIN_PCAP: &str = "plain.pcap";
/// See [`PLAIN_PCAP`].
pub const VXLAN_PCAP: &str = "vxlan.pcap";
/// See [`PLAIN_PCAP`].
pub const MANIFEST: &str = "manifest.json";

/// What to generate. Equal configurations give byte-identical files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureConfig {
    /// Seed of every random choice.
    pub seed: u64,
    /// Stop once `vxlan.pcap` is at least this large.
    pub target_vxlan_bytes: u64,
    /// Flow slots running at once (each runs one flow after another).
    pub concurrent_flows: usize,
    /// Mirror sessions (monitored ENIs, each with its own outer source IP
    /// and VNI).
    pub sessions: usize,
    /// Aimed-at inner traffic rate; sets the think time between requests.
    pub offered_mbps: u64,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        Self {
            seed: 0x6d69_7272_6f72,
            target_vxlan_bytes: 550_000_000,
            concurrent_flows: 5000,
            sessions: 8,
            offered_mbps: 250,
        }
    }
}

/// One mirror session as written in the manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionInfo {
    /// Outer source IP (the source ENI's primary IP).
    pub eni_ipv4: Ipv4Addr,
    /// VXLAN network identifier.
    pub vni: u32,
}

/// What a generation run wrote.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaptureManifest {
    /// [`GENERATOR_VERSION`] of the writer.
    pub generator_version: u32,
    /// The parameters.
    pub config: CaptureConfig,
    /// Packets in each file.
    pub packets: u64,
    /// Size of `plain.pcap`.
    pub plain_file_bytes: u64,
    /// Size of `vxlan.pcap`.
    pub vxlan_file_bytes: u64,
    /// Sum of inner frame lengths.
    pub plain_frame_bytes: u64,
    /// Sum of wrapped frame lengths.
    pub vxlan_frame_bytes: u64,
    /// Time from the first to the last packet.
    pub duration_s: f64,
    /// Inner traffic rate over that time.
    pub measured_mbps: f64,
    /// Mean think time used between HTTP requests.
    pub think_mean_ms: f64,
    /// Mirror sessions.
    pub sessions: Vec<SessionInfo>,
    /// Flow counts and concurrency.
    pub schedule: ScheduleReport,
    /// Wall time the generation took.
    pub generation_s: f64,
}

/// Paths of the outputs in `dir`.
pub fn output_paths(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    (
        dir.join(PLAIN_PCAP),
        dir.join(VXLAN_PCAP),
        dir.join(MANIFEST),
    )
}

/// Reads the manifest in `dir` if it describes files that are there, with
/// the sizes it says, written by this generator version from `config`.
pub fn current_manifest(dir: &Path, config: &CaptureConfig) -> Option<CaptureManifest> {
    let (plain, vxlan, manifest) = output_paths(dir);
    let manifest: CaptureManifest = serde_json::from_slice(&fs::read(manifest).ok()?).ok()?;
    let size = |path: &Path| fs::metadata(path).map(|meta| meta.len()).ok();
    let fresh = manifest.generator_version == GENERATOR_VERSION
        && manifest.config == *config
        && size(&plain) == Some(manifest.plain_file_bytes)
        && size(&vxlan) == Some(manifest.vxlan_file_bytes);
    fresh.then_some(manifest)
}

/// Writes `plain.pcap`, `vxlan.pcap` and `manifest.json` into `dir`.
pub fn generate(config: &CaptureConfig, dir: &Path) -> Result<CaptureManifest> {
    anyhow::ensure!(
        config.concurrent_flows > 0,
        "need at least one concurrent flow"
    );
    anyhow::ensure!(
        (1..=60_000).contains(&config.sessions),
        "sessions must be 1..=60000"
    );
    anyhow::ensure!(config.offered_mbps > 0, "offered load must be positive");
    let started = Instant::now();
    fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let (plain, vxlan, manifest_path) = output_paths(dir);
    // A stale manifest must not describe half-written files.
    let _ = fs::remove_file(&manifest_path);
    let (plain_tmp, vxlan_tmp) = (
        plain.with_extension("pcap.tmp"),
        vxlan.with_extension("pcap.tmp"),
    );

    let mut rng = rng::Rng::new(config.seed);
    let topology = topology::Topology::new(&mut rng, config.sessions);
    let content = content::Content::new(&mut rng);
    let think_mean_ns = think_mean_ns(config);
    // Simulation time 0 lies `warmup_ns` before the first written packet,
    // which is stamped EPOCH_S.
    let ramp_ns = think_mean_ns as u64;
    let warmup_ns = ramp_ns + 3 * think_mean_ns as u64;
    let simulation_epoch = Duration::from_secs(EPOCH_S) - Duration::from_nanos(warmup_ns);
    let factory = schedule::FlowFactory {
        topology: &topology,
        epoch_s: simulation_epoch.as_secs(),
        think_mean_ns,
    };
    let mut writer = wire::CaptureWriter::create(&plain_tmp, &vxlan_tmp, simulation_epoch)?;
    let timeline = schedule::Timeline {
        slots: config.concurrent_flows,
        ramp_ns,
        warmup_ns,
        target_vxlan_bytes: config.target_vxlan_bytes,
    };
    let report = schedule::run(&mut rng, &factory, &content, &mut writer, timeline)?;
    let totals = writer.finish()?;
    fs::rename(&plain_tmp, &plain).context("rename plain.pcap")?;
    fs::rename(&vxlan_tmp, &vxlan).context("rename vxlan.pcap")?;

    let duration_s = (report.last_packet_ns - report.first_packet_ns.unwrap_or(0)) as f64 / 1e9;
    let manifest = CaptureManifest {
        generator_version: GENERATOR_VERSION,
        config: config.clone(),
        packets: totals.packets,
        plain_file_bytes: totals.plain_file_bytes,
        vxlan_file_bytes: totals.vxlan_file_bytes,
        plain_frame_bytes: totals.plain_frame_bytes,
        vxlan_frame_bytes: totals.vxlan_frame_bytes,
        duration_s,
        measured_mbps: if duration_s > 0.0 {
            totals.plain_frame_bytes as f64 * 8.0 / duration_s / 1e6
        } else {
            0.0
        },
        think_mean_ms: think_mean_ns / 1e6,
        sessions: topology
            .sessions
            .iter()
            .map(|session| SessionInfo {
                eni_ipv4: Ipv4Addr::from(session.eni_ipv4),
                vni: session.vni,
            })
            .collect(),
        schedule: report,
        generation_s: started.elapsed().as_secs_f64(),
    };
    let json = serde_json::to_vec_pretty(&manifest).context("encode manifest")?;
    fs::write(&manifest_path, json)
        .with_context(|| format!("write {}", manifest_path.display()))?;
    Ok(manifest)
}

/// The mean think time that makes `concurrent_flows` HTTP connections
/// offer about `offered_mbps` together: each carries its share, so one
/// request cycle (mean size estimated by sampling the same distribution)
/// takes `cycle_bytes / share` seconds, nearly all of it thinking.
fn think_mean_ns(config: &CaptureConfig) -> f64 {
    const SAMPLES: u32 = 20_000;
    // Headers of data segments and the ACKs for them: about 8% on top.
    const WIRE_FACTOR: f64 = 1.08;
    let mut rng = rng::Rng::new(config.seed ^ 0x0074_6869_6e6b);
    let total: u64 = (0..SAMPLES)
        .map(|_| http::Exchange::draw(&mut rng).approximate_bytes())
        .sum();
    let cycle_bytes = total as f64 / f64::from(SAMPLES) * WIRE_FACTOR;
    let share_bytes_per_s = config.offered_mbps as f64 * 1e6 / 8.0 / config.concurrent_flows as f64;
    cycle_bytes / share_bytes_per_s * 1e9
}

//! The pipeline benchmark: the sensor on `vxlan.pcap` against ndpiReader
//! on `plain.pcap` (the same inner packets), each pinned to the same single
//! CPU, alternating, several times; reports both rates and their ratio.
//!
//! Inputs: [`BenchOptions`]. Output: a report on stdout. It installs
//! nothing; a missing `ndpiReader` or `taskset` is a [`tools::MissingTool`]
//! error carrying the install command.

mod measure;
mod report;
pub mod tools;

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};

use crate::capture::{self, CaptureConfig, CaptureManifest};

pub use report::Summary;

/// The packet rate the sensor must reach, as a multiple of ndpiReader's.
pub const TARGET_RATIO: f64 = 2.0;

/// How to run the benchmark.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// The cargo workspace that holds the sensor.
    pub workspace_root: PathBuf,
    /// Where the captures live (generated if missing or stale).
    pub data_dir: PathBuf,
    /// What capture to use.
    pub capture: CaptureConfig,
    /// Runs of each program.
    pub repetitions: usize,
    /// CPU to pin both programs to.
    pub core: usize,
}

/// Runs the whole benchmark and prints the report; returns the summary.
pub fn run(options: &BenchOptions) -> Result<Summary> {
    let ndpi_reader = tools::ndpi_reader()?;
    let taskset = tools::taskset()?;
    let sensor = tools::sensor_binary(&options.workspace_root)?;
    let manifest = ensure_captures(&options.data_dir, &options.capture)?;
    let (plain, vxlan, _) = capture::output_paths(&options.data_dir);
    warm_page_cache(&[&plain, &vxlan])?;

    let core = tools::pick_core(options.core);
    let sensor_command = measure::sensor_command(&taskset, core, &sensor, &vxlan);
    let ndpi_command = measure::ndpi_command(&taskset, core, &ndpi_reader, &plain);
    println!("machine:  {}", tools::machine_description());
    if let Some(warning) = tools::busy_machine_warning() {
        println!("warning:  {warning}");
    }
    println!("pinned:   CPU {core} (taskset -c {core}), one process at a time");
    println!("sensor:   {}", sensor_command.join(" "));
    println!("nDPI:     {}", ndpi_command.join(" "));
    report::print_capture(&manifest);

    let (mut sensor_runs, mut ndpi_runs) = (Vec::new(), Vec::new());
    for repetition in 1..=options.repetitions.max(1) {
        // Each run reads a warm file: the kernel may reclaim idle page cache
        // between runs (DAMON-based reclaim does on this kind of VM), and
        // neither program should be timed on the disk.
        warm_page_cache(&[&vxlan])?;
        let sensor_run = measure::run_sensor(&sensor_command)?;
        warm_page_cache(&[&plain])?;
        let ndpi_run = measure::run_ndpi(&ndpi_command)?;
        println!(
            "run {repetition}: sensor {:.3} s ({:.0} pps), ndpiReader {:.3} s ({:.0} pps)",
            sensor_run.wall.as_secs_f64(),
            sensor_run.wall_pps(),
            ndpi_run.wall.as_secs_f64(),
            ndpi_run.wall_pps(),
        );
        sensor_runs.push(sensor_run);
        ndpi_runs.push(ndpi_run);
    }
    let summary = Summary::new(&manifest, &sensor_runs, &ndpi_runs);
    summary.print();
    Ok(summary)
}

/// The captures in `dir` for `config`, generated first unless a manifest
/// says the files there already match.
pub fn ensure_captures(dir: &Path, config: &CaptureConfig) -> Result<CaptureManifest> {
    if let Some(manifest) = capture::current_manifest(dir, config) {
        println!("captures: reusing {} (manifest matches)", dir.display());
        return Ok(manifest);
    }
    println!("captures: generating into {} ...", dir.display());
    let started = Instant::now();
    let manifest = capture::generate(config, dir)?;
    println!(
        "captures: generated in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(manifest)
}

/// Reads each file through so that the timed run after it does not pay for
/// the disk.
fn warm_page_cache(paths: &[&Path]) -> Result<()> {
    for path in paths {
        let mut file = File::open(path).with_context(|| format!("open {}", path.display()))?;
        io::copy(&mut file.by_ref(), &mut io::sink())
            .with_context(|| format!("read {}", path.display()))?;
    }
    Ok(())
}

//! `wire-size`: bytes on the Nucleus wire per flow record, next to the
//! same records as JSON lines. Runs the sensor's offline pipeline over a
//! capture (default: the benchmark's `benches/data/vxlan.pcap`), seals the
//! flow records into batches as the exporter will, and checks that every
//! batch opens to records whose JSON is byte-identical to the sensor's.
//! See benches/README.md.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use benches::wire::{Measurement, Variant, measure};
use clap::Parser;
use nucleus_proto::{Instance, Record};
use sensor::config::PipelineConfig;
use sensor::record::RecordSink;
use sensor::runtime::offline::run_files;

/// Measure the Nucleus wire size of the sensor's records.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Capture to run (default: benches/data/vxlan.pcap; make it with
    /// `gen-capture`).
    capture: Option<PathBuf>,
    /// Records per batch.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Zstandard level of the exporter's default.
    #[arg(long, default_value_t = nucleus_proto::batch::DEFAULT_ZSTD_LEVEL)]
    zstd_level: i32,
}

/// Collects every record the pipeline writes.
#[derive(Default)]
struct Collect(Vec<Record>);

impl RecordSink for Collect {
    fn write_batch(&mut self, records: &[Record]) -> std::io::Result<()> {
        self.0.extend_from_slice(records);
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let capture = args
        .capture
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/data/vxlan.pcap")));
    if !capture.exists() {
        bail!(
            "{} is missing: make it with `cargo run --release -p benches --bin gen-capture`",
            capture.display()
        );
    }
    let cfg = PipelineConfig::default();
    let mut sink = Collect::default();
    let summary = run_files(std::slice::from_ref(&capture), &cfg, 1, &mut sink)
        .context("running the pipeline")?;
    if let Some(e) = summary.file_errors.first() {
        bail!("{e}");
    }
    let cid = nucleus_proto::community_id::CommunityId::new(
        cfg.community_id.seed,
        cfg.community_id.base64,
    );
    let flows: Vec<Record> = sink
        .0
        .iter()
        .filter(|r| matches!(r, Record::Flow(_)))
        .cloned()
        .collect();
    println!("capture: {}", capture.display());
    println!("records: {} ({} flow)", sink.0.len(), flows.len());
    println!("records per batch: {}", args.batch);
    for (label, records) in [("flow", &flows), ("all", &sink.0)] {
        let json = Measurement::json_lines(records)?;
        println!(
            "{label} records as JSON lines: {:.1} bytes per record",
            json.per_record()
        );
        for variant in Variant::all(args.zstd_level) {
            let m = measure(records, args.batch, &cid, variant)?;
            println!(
                "{label} records on the wire, {}: {:.1} bytes per record ({:.1}x smaller than JSON; sealed at {:.0} records/s)",
                variant,
                m.per_record(),
                json.per_record() / m.per_record(),
                m.records_per_second(),
            );
        }
    }
    // The same flows as `sensor run` with enrollment writes them: each
    // mirror session's flows name that session's workload.
    let enriched = with_vantages(&flows);
    let variant = Variant::all(args.zstd_level)[0];
    let json = Measurement::json_lines(&enriched)?;
    let m = measure(&enriched, args.batch, &cid, variant)?;
    println!(
        "flow records with a vantage (one workload per mirror session), {}: {:.1} bytes per record (JSON lines: {:.1})",
        variant,
        m.per_record(),
        json.per_record(),
    );
    Ok(())
}

/// `flows` with a `vantage` per distinct (outer source, VNI) of their
/// VXLAN layer, shaped as EC2 names things.
fn with_vantages(flows: &[Record]) -> Vec<Record> {
    use std::collections::HashMap;
    use std::sync::Arc;
    let mut workloads: HashMap<(std::net::IpAddr, u32), Arc<Instance>> = HashMap::new();
    let mut out = flows.to_vec();
    for r in &mut out {
        let Record::Flow(f) = r else { continue };
        let Some((src, vni)) = sensor::enroll::enrich::vantage_key(&f.tunnel) else {
            continue;
        };
        let n = workloads.len();
        let w = workloads.entry((src, vni)).or_insert_with(|| {
            Arc::new(Instance {
                instance_id: format!("i-0{:016x}", 0x5eed_0000_u64 + n as u64),
                eni_id: format!("eni-0{:016x}", 0xe41_0000_u64 + n as u64),
                vpc_id: "vpc-0a1b2c3d4e5f67890".into(),
                subnet_id: format!("subnet-0{:016x}", n % 3),
                availability_zone: format!("us-east-1{}", ["a", "b", "c"][n % 3]),
                tags: [("Name".to_string(), format!("web-{n}"))].into(),
            })
        });
        f.vantage = Some(Arc::clone(w));
    }
    out
}

//! `sensor`: the command line of the mirror sensor.

/// mimalloc: records and dissector state are many small, short-lived
/// allocations; glibc's allocator spent a quarter of the pipeline's time on
/// them (consolidation and free-list unlinking) in the benchmark.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use sensor::config::SensorConfig;
use sensor::metrics::Counters;
use sensor::record::{DiscardSink, JsonLinesSink, RecordSink, tee};
use sensor::runtime::offline::{RunSummary, run_files};
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "sensor",
    version,
    about = "Mirror sensor for AWS VPC Traffic Mirroring"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run capture files (pcap, pcapng, optionally gzip-compressed) through
    /// the pipeline the live sensor runs.
    Pcap(PcapArgs),
    /// Run the live appliance: receive VXLAN and GENEVE, serve health
    /// checks and metrics, drain on SIGTERM.
    Run(sensor::config::RunArgs),
    /// Validate a configuration file and print the effective configuration.
    CheckConfig(sensor::config::CheckConfigArgs),
    /// Send captures to a sensor as AWS Traffic Mirroring (or a GWLB) would.
    Replay(sensor::replay::ReplayArgs),
    /// Enroll instances in traffic mirroring toward this sensor: show the
    /// plan, apply one pass, or show what the sensor owns.
    Enroll(sensor::enroll::cli::EnrollArgs),
}

#[derive(clap::Args)]
struct PcapArgs {
    /// Capture files, processed in order as one stream.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// TOML configuration file whose pipeline sections ([decap], [defrag],
    /// [flows], [community_id]) apply, as for `sensor run`; SENSOR_*
    /// environment variables and the flags below override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Write records as JSON lines to PATH, or `-` for stdout.
    #[arg(long, value_name = "PATH|-")]
    json: Option<String>,
    /// Print counters, drops and anomalies by reason, and rates, to stderr.
    #[arg(long)]
    stats: bool,
    /// Worker threads (1 = everything on the calling thread).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    workers: u16,
    /// Community ID seed [default: 0].
    #[arg(long)]
    community_id_seed: Option<u16>,
    /// Render Community ID as hexadecimal instead of base64.
    #[arg(long)]
    community_id_hex: bool,
    /// UDP ports carrying VXLAN (repeat; default 4789 and 8472).
    #[arg(long = "vxlan-port", value_name = "PORT")]
    vxlan_ports: Vec<u16>,
    /// UDP ports carrying GENEVE (repeat; default 6081).
    #[arg(long = "geneve-port", value_name = "PORT")]
    geneve_ports: Vec<u16>,
    /// Most flows tracked at once per worker.
    #[arg(long)]
    max_flows: Option<usize>,
    /// Export to a Nucleus (as well as, or instead of, --json).
    #[command(flatten)]
    nucleus: sensor::config::NucleusArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Pcap(args) => pcap(args),
        Command::Run(args) => sensor::config::SensorConfig::from_run_args(&args)
            .and_then(sensor::runtime::live::run)
            .map(|()| ExitCode::SUCCESS),
        Command::CheckConfig(args) => sensor::config::check_config(&args).map(|text| {
            print!("{text}");
            ExitCode::SUCCESS
        }),
        Command::Replay(args) => match sensor::replay::run(&args) {
            // The replay ran and printed its summary; some sends failed.
            Err(e) if e.is::<sensor::replay::SendErrorsReported>() => {
                eprintln!("sensor: {e}");
                Ok(ExitCode::from(1))
            }
            other => other.map(|()| ExitCode::SUCCESS),
        },
        Command::Enroll(args) => sensor::enroll::cli::run(&args).map(|(text, clean)| {
            print!("{text}");
            if clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sensor: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn pcap(args: PcapArgs) -> Result<ExitCode> {
    let env = sensor::config::load::process_env()?;
    let flags = sensor::config::RunArgs {
        nucleus: args.nucleus.clone(),
        ..Default::default()
    };
    let mut full = SensorConfig::from_sources(args.config.as_deref(), &env, &flags)?;
    let cfg = &mut full.pipeline;
    if let Some(seed) = args.community_id_seed {
        cfg.community_id.seed = seed;
    }
    if args.community_id_hex {
        cfg.community_id.base64 = false;
    }
    if !args.vxlan_ports.is_empty() {
        cfg.decap.vxlan_ports = args.vxlan_ports;
    }
    if !args.geneve_ports.is_empty() {
        cfg.decap.geneve_ports = args.geneve_ports;
    }
    if let Some(n) = args.max_flows {
        if n == 0 {
            bail!("--max-flows must be at least 1");
        }
        cfg.flows.max_flows = n;
    }
    full.validate()?;
    let cfg = &full.pipeline;
    let workers = usize::from(args.workers);
    let json: Option<Box<dyn RecordSink + Send>> = match args.json.as_deref() {
        Some("-") => Some(Box::new(JsonLinesSink::new(std::io::stdout()))),
        Some(path) => {
            let f = File::create(path).with_context(|| format!("creating {path}"))?;
            Some(Box::new(JsonLinesSink::new(f)))
        }
        None => None,
    };
    let exporter = sensor::export::start_configured(&full)?;
    let export_status = exporter.as_ref().map(sensor::export::NucleusSink::status);
    let exporter = exporter.map(|e| Box::new(e) as Box<dyn RecordSink + Send>);
    let mut sink = tee(json, exporter).unwrap_or_else(|| Box::new(DiscardSink));
    let summary = run_files(&args.files, cfg, workers, sink.as_mut())?;
    if args.stats {
        print_stats(&summary);
        if let Some(s) = &export_status {
            eprint!("{}", s.summary());
        }
    }
    for e in &summary.file_errors {
        eprintln!("sensor: {e}");
    }
    Ok(if summary.file_errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_stats(s: &RunSummary) {
    let c: &Counters = &s.counters;
    let secs = s.elapsed.as_secs_f64().max(1e-9);
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "packets: {}", c.packets);
    let _ = writeln!(e, "bytes: {}", c.bytes);
    let _ = writeln!(e, "non_ip_packets: {}", c.non_ip_packets);
    let _ = writeln!(e, "fragments: {}", c.fragments);
    let _ = writeln!(e, "reassembled: {}", c.reassembled);
    let _ = writeln!(
        e,
        "duplicate_vantage_packets: {}",
        c.duplicate_vantage_packets
    );
    let _ = writeln!(e, "truncated_bytes: {}", c.truncated_bytes);
    let _ = writeln!(e, "flows: {}", c.flows_created);
    let _ = writeln!(e, "records: {}", c.records);
    let _ = writeln!(e, "drops: {}", c.total_drops());
    let _ = writeln!(e, "drops_by_reason: {}", c.drop_summary());
    let _ = writeln!(e, "anomalies_by_reason: {}", c.anomaly_summary());
    let _ = writeln!(e, "app_records: {}", c.app_record_summary());
    let _ = writeln!(e, "app_anomalies: {}", c.app_anomaly_summary());
    let _ = writeln!(
        e,
        "tcp_out_of_order_segments: {}",
        c.tcp_out_of_order_segments
    );
    let _ = writeln!(e, "tcp_gap_bytes: {}", c.tcp_gap_bytes);
    let _ = writeln!(e, "elapsed_s: {secs:.6}");
    let _ = writeln!(e, "pps: {:.1}", c.packets as f64 / secs);
    let _ = writeln!(e, "gbps: {:.4}", c.bytes as f64 * 8.0 / secs / 1e9);
}

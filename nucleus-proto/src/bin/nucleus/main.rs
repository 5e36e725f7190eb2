//! `nucleus`: the reference receiver of the Nucleus protocol
//! (nucleus-proto/PROTOCOL.md). `nucleus serve` accepts sensors over TLS
//! (mutual TLS when `--client-ca` is given), writes each batch's records as
//! JSON lines per record type under `--out`, durably and once, and
//! acknowledges a batch only after its records and its identity are on
//! disk. `nucleus dump FILE` prints the records of a file of frames or of a
//! sensor's spool segment.
//!
//! The modules: `tls` (certificates and rustls configuration), `session`
//! (one sensor's connection: frames in, acks out), `store` (the output
//! files and the deduplication ledger), `dump`.

mod dump;
mod session;
mod store;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use nucleus_proto::batch::BatchLimits;
use nucleus_proto::frame::DEFAULT_MAX_FRAME_BYTES;

/// The reference receiver of the Nucleus protocol.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Accept sensors over TLS and write their records under --out.
    Serve(ServeArgs),
    /// Print the records of a file of Nucleus frames, or of a sensor's spool
    /// segment, as JSON lines.
    ///
    /// A spool segment (a file starting with `NSPL`) is checked entry by
    /// entry: the records of every intact entry are printed, each damaged
    /// region is named on stderr ("FILE: bytes A..B damaged, skipped") and
    /// skipped, and the exit status is non-zero if anything was damaged.
    Dump {
        /// The file: a preamble then frames, as on the wire; or a spool
        /// segment.
        file: PathBuf,
        #[command(flatten)]
        limits: LimitArgs,
    },
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to listen on (port 0: any free port; the log says which).
    #[arg(long)]
    listen: SocketAddr,
    /// The receiver's certificate chain (PEM).
    #[arg(long)]
    tls_cert: PathBuf,
    /// The receiver's private key (PEM).
    #[arg(long)]
    tls_key: PathBuf,
    /// Require client certificates issued by these CAs (PEM): mutual TLS.
    #[arg(long)]
    client_ca: Option<PathBuf>,
    /// Directory of the output (`<record type>.jsonl`) and of the ledger of
    /// batches written.
    #[arg(long)]
    out: PathBuf,
    /// This receiver's name, sent in its Hello.
    #[arg(long, default_value = "nucleus")]
    name: String,
    /// Most connections at once; more are closed at once, and logged.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// A connection silent this long (handshake included) is closed.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    idle_timeout: std::time::Duration,
    #[command(flatten)]
    limits: LimitArgs,
}

#[derive(Debug, Clone, Copy, clap::Args)]
struct LimitArgs {
    /// Largest frame accepted, in bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_FRAME_BYTES)]
    max_frame_bytes: u32,
    /// Largest record block accepted (before compression), in bytes.
    #[arg(long, default_value_t = BatchLimits::default().max_block_bytes)]
    max_block_bytes: u64,
    /// Most records in one batch.
    #[arg(long, default_value_t = BatchLimits::default().max_records)]
    max_records: u32,
}

impl LimitArgs {
    fn batch(self) -> BatchLimits {
        BatchLimits {
            max_block_bytes: self.max_block_bytes,
            max_records: self.max_records,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Dump { file, limits } => {
            dump::dump(&file, limits.max_frame_bytes, &limits.batch())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nucleus: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = tls::server_config(&args.tls_cert, &args.tls_key, args.client_ca.as_deref())?;
    let store = Arc::new(store::Store::open(&args.out)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let settings = session::Settings {
        name: args.name,
        max_connections: args.max_connections,
        idle_timeout: args.idle_timeout,
        max_frame_bytes: args.limits.max_frame_bytes,
        batch: args.limits.batch(),
    };
    runtime.block_on(session::serve(args.listen, config, store, settings))
}

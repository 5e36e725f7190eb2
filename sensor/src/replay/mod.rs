//! `sensor replay`: sends captures to a sensor as AWS would. (Being built:
//! see issue 3.)

/// Command-line arguments of `sensor replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Capture files.
    #[arg(required = true)]
    pub files: Vec<std::path::PathBuf>,
}

/// Runs a replay.
pub fn run(args: &ReplayArgs) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("sensor replay is not built yet")
}

//! The live appliance: tunnel sockets → receivers → workers → output, with
//! health endpoints and graceful drain. (Being built: see issue 3.)

use crate::config::SensorConfig;

/// Runs the live sensor until SIGTERM/SIGINT and the drain period end.
pub fn run(cfg: SensorConfig) -> anyhow::Result<()> {
    let _ = cfg;
    anyhow::bail!("sensor run is not built yet")
}

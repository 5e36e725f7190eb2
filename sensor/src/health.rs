//! Health, readiness and metrics endpoints for load balancers and
//! Prometheus. (Being built: see issue 3.)

use crate::config::HealthConfig;
use crate::metrics::LiveStats;
use std::sync::Arc;

/// A running health server; stops when dropped.
#[derive(Debug)]
pub struct HealthServer;

/// Starts the HTTP endpoints and TCP health listeners.
pub fn spawn(cfg: &HealthConfig, stats: Arc<LiveStats>) -> anyhow::Result<HealthServer> {
    let _ = (cfg, stats);
    anyhow::bail!("health endpoints are not built yet")
}

//! Health, readiness and metrics endpoints for load balancers and
//! Prometheus. Inputs: a [`HealthConfig`] and the [`LiveStats`] the live
//! threads publish. Outputs: HTTP on `cfg.listen` (`/healthz`, `/readyz`,
//! `/metrics`) and TCP listeners on `cfg.tcp_listen` that accept and close
//! connections, served by one dedicated thread with a small tokio runtime so
//! the data path never shares a core's scheduler with them. It does not
//! decide when the sensor drains or stops (the live runtime sets
//! `LiveStats::draining`); it only reports.
//!
//! A TCP health check cannot express draining: the TCP listeners keep
//! accepting until the process exits, so a deployment that wants the load
//! balancer to stop sending during the drain period uses the HTTP `/readyz`
//! check on the health port.

mod collector;
mod metrics_text;
mod readiness;

pub use metrics_text::TextFormat;
pub use readiness::{Check, Readiness};

use crate::config::HealthConfig;
use crate::metrics::LiveStats;
use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use collector::SensorCollector;
use prometheus_client::registry::Registry;
use readiness::Monitor;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::oneshot;

/// Pause after a failed `accept` (e.g. out of file descriptors) so a
/// persistent error does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A running health server; stops when dropped.
#[derive(Debug)]
pub struct HealthServer {
    local_addr: SocketAddr,
    tcp_local_addrs: Vec<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl HealthServer {
    /// Address the HTTP endpoints are bound to (the real port when the
    /// configuration asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Addresses of the TCP health listeners, in `cfg.tcp_listen` order.
    pub fn tcp_local_addrs(&self) -> &[SocketAddr] {
        &self.tcp_local_addrs
    }

    /// Stops serving and waits for the server thread to end. Open
    /// connections are closed.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for HealthServer {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Binds the HTTP endpoints and TCP health listeners, then serves them on a
/// thread of their own. Every bind happens before this returns, so an
/// address in use is an error here, naming the address.
pub fn spawn(cfg: &HealthConfig, stats: Arc<LiveStats>) -> anyhow::Result<HealthServer> {
    let http = bind(cfg.listen, "health HTTP")?;
    let tcp = cfg
        .tcp_listen
        .iter()
        .map(|a| bind(*a, "TCP health-check"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let local_addr = http
        .local_addr()
        .context("reading the health HTTP address")?;
    let tcp_local_addrs = tcp
        .iter()
        .map(std::net::TcpListener::local_addr)
        .collect::<std::io::Result<Vec<_>>>()
        .context("reading the TCP health-check addresses")?;

    let enroll = stats.enroll.get().map(|e| Box::new(e.collector()));
    let export = stats.export.get().map(|e| Box::new(e.collector()));
    let monitor = Arc::new(Monitor::new(stats, cfg.clone()));
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SensorCollector::new(Arc::clone(&monitor))));
    if let Some(collector) = enroll {
        registry.register_collector(collector);
    }
    if let Some(collector) = export {
        registry.register_collector(collector);
    }
    let app = AppState {
        monitor,
        registry: Arc::new(registry),
    };
    let (stop, stopped) = oneshot::channel();
    // The runtime is built and dropped on the server thread, so `spawn` and
    // `Drop` work from plain threads and from inside another runtime alike.
    let (started_tx, started_rx) = std::sync::mpsc::sync_channel(1);
    let thread = std::thread::Builder::new()
        .name("health".into())
        .spawn(move || match start_runtime(http, tcp) {
            Ok((runtime, http, tcp)) => {
                let _ = started_tx.send(Ok(()));
                runtime.block_on(serve(http, tcp, app, stopped));
            }
            Err(e) => {
                let _ = started_tx.send(Err(e));
            }
        })
        .context("starting the health server thread")?;
    let server = HealthServer {
        local_addr,
        tcp_local_addrs,
        stop: Some(stop),
        thread: Some(thread),
    };
    match started_rx.recv() {
        Ok(Ok(())) => Ok(server),
        Ok(Err(e)) => Err(e),
        Err(_) => anyhow::bail!("the health server thread ended while starting"),
    }
}

type Listeners = (
    tokio::runtime::Runtime,
    tokio::net::TcpListener,
    Vec<tokio::net::TcpListener>,
);

fn start_runtime(
    http: std::net::TcpListener,
    tcp: Vec<std::net::TcpListener>,
) -> anyhow::Result<Listeners> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .context("starting the health server runtime")?;
    let entered = runtime.enter();
    let http =
        tokio::net::TcpListener::from_std(http).context("registering the health HTTP listener")?;
    let tcp = tcp
        .into_iter()
        .map(tokio::net::TcpListener::from_std)
        .collect::<std::io::Result<Vec<_>>>()
        .context("registering the TCP health-check listeners")?;
    drop(entered);
    Ok((runtime, http, tcp))
}

fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr)
        .with_context(|| format!("cannot bind the {what} listener on TCP {addr}"))?;
    l.set_nonblocking(true)
        .with_context(|| format!("setting the {what} listener on TCP {addr} non-blocking"))?;
    Ok(l)
}

#[derive(Debug, Clone)]
struct AppState {
    monitor: Arc<Monitor>,
    registry: Arc<Registry>,
}

async fn serve(
    http: tokio::net::TcpListener,
    tcp: Vec<tokio::net::TcpListener>,
    app: AppState,
    stopped: oneshot::Receiver<()>,
) {
    for listener in tcp {
        tokio::spawn(accept_and_close(listener));
    }
    let monitor = Arc::clone(&app.monitor);
    let sampler = async move {
        let mut every = tokio::time::interval(readiness::SAMPLE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            every.tick().await;
            monitor.sample();
        }
    };
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(app);
    tokio::select! {
        served = axum::serve(http, router).into_future() => {
            if let Err(e) = served {
                eprintln!("sensor: health HTTP server stopped: {e}");
            }
        }
        () = sampler => {}
        _ = stopped => {}
    }
}

/// Accepts connections and closes them at once: a TCP health check only
/// needs the handshake.
async fn accept_and_close(listener: tokio::net::TcpListener) {
    loop {
        match listener.accept().await {
            Ok((conn, _peer)) => drop(conn),
            Err(_) => tokio::time::sleep(ACCEPT_BACKOFF).await,
        }
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(app): State<AppState>) -> Response {
    let r = app.monitor.readiness();
    let status = if r.ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        r.render(),
    )
        .into_response()
}

async fn metrics(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = TextFormat::negotiate(accept);
    match metrics_text::render(&app.registry, format) {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, format.content_type())],
            body,
        )
            .into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics encoding failed\n",
        )
            .into_response(),
    }
}

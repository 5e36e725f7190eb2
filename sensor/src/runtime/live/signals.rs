//! SIGTERM and SIGINT for the live sensor.
//!
//! Owns: a small thread running a current-thread tokio runtime that waits
//! for the signals. The first is reported to [`Signals::wait`]; a second
//! exits the process at once (status 130 for SIGINT, 143 for SIGTERM).
//! Does not: drain (the caller does).

use anyhow::Context;
use std::sync::mpsc;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};

/// The signal watcher.
pub struct Signals {
    first: mpsc::Receiver<&'static str>,
}

impl Signals {
    /// Installs the handlers; returns once they are in place.
    pub fn install() -> anyhow::Result<Self> {
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let (first_tx, first) = mpsc::channel();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                rt.block_on(async move {
                    let (mut term, mut int) = match (
                        signal(SignalKind::terminate()),
                        signal(SignalKind::interrupt()),
                    ) {
                        (Ok(t), Ok(i)) => (t, i),
                        (Err(e), _) | (_, Err(e)) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    let name = tokio::select! {
                        _ = term.recv() => "SIGTERM",
                        _ = int.recv() => "SIGINT",
                    };
                    let _ = first_tx.send(name);
                    let (name, code) = tokio::select! {
                        _ = term.recv() => ("SIGTERM", 143),
                        _ = int.recv() => ("SIGINT", 130),
                    };
                    eprintln!("sensor: second signal ({name}): exiting at once");
                    std::process::exit(code);
                });
            })
            .context("starting the signal thread")?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Self { first }),
            Ok(Err(e)) => anyhow::bail!("installing signal handlers: {e}"),
            Err(_) => anyhow::bail!("installing signal handlers: the signal thread ended"),
        }
    }

    /// Waits up to `timeout` for the first signal; returns its name.
    pub fn wait(&self, timeout: Duration) -> Option<&'static str> {
        self.first.recv_timeout(timeout).ok()
    }
}

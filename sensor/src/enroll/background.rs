//! The enrollment loop of `sensor run`: a full pass at start and every
//! `interval`, and a pass at once when a queue event names an instance.
//!
//! Owns: the loop's thread (a small tokio runtime of its own, like the
//! health server's, so AWS latency never touches the data path), the event
//! consumer (long polling, delete after handling, malformed messages counted
//! and dropped), and reporting into [`EnrollStatus`]. Input: the `[enroll]`
//! configuration. Output: passes, status, log lines. Does not: decide what a
//! pass changes (see `reconcile`).

use super::events::{self, Event};
use super::inventory::Inventory;
use super::reconcile::Named;
use super::sqs::Queue;
use super::status::EnrollStatus;
use super::{Enroller, PassReport};
use crate::config::EnrollConfig;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Longest wait of one ReceiveMessage (SQS's maximum).
const MAX_WAIT: Duration = Duration::from_secs(20);
/// Messages asked per ReceiveMessage (SQS's maximum).
const BATCH: u32 = 10;
/// Pause after the queue or AWS could not be reached.
const RETRY_PAUSE: Duration = Duration::from_secs(5);
/// Malformed messages logged one by one; later ones are only counted.
const MALFORMED_LOGGED: u64 = 10;

/// The running loop; stops (and waits for its thread) when dropped.
pub struct EnrollLoop {
    stop: Option<watch::Sender<bool>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for EnrollLoop {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the loop when `cfg.enabled`; `None` otherwise. Each pass
/// refreshes `inventory`, when given (and `/metrics` shows it).
pub fn start(
    cfg: &EnrollConfig,
    status: Arc<EnrollStatus>,
    inventory: Option<Arc<Inventory>>,
) -> anyhow::Result<Option<EnrollLoop>> {
    if !cfg.enabled {
        return Ok(None);
    }
    if let Some(inventory) = &inventory {
        status.attach_inventory(Arc::clone(inventory));
    }
    let (stop, stop_rx) = watch::channel(false);
    let cfg = cfg.clone();
    let thread = std::thread::Builder::new()
        .name("enroll".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("sensor: enroll: no runtime: {e}");
                    return;
                }
            };
            runtime.block_on(run(cfg, status, inventory, stop_rx));
        })?;
    Ok(Some(EnrollLoop {
        stop: Some(stop),
        thread: Some(thread),
    }))
}

/// Runs `work` unless `stop` turns true first; `None` when stopped.
async fn unless_stopped<F: std::future::Future>(
    stop: &mut watch::Receiver<bool>,
    work: F,
) -> Option<F::Output> {
    if *stop.borrow() {
        return None;
    }
    tokio::select! {
        out = work => Some(out),
        _ = stop.changed() => None,
    }
}

fn log_pass(report: &PassReport, dry_run: bool, planned: (usize, usize)) {
    if dry_run && planned != (0, 0) {
        eprintln!(
            "sensor: enroll: dry run: would create {} and delete {} sessions",
            planned.0, planned.1
        );
    }
    if report.created + report.deleted + report.refused.len() > 0 {
        eprintln!(
            "sensor: enroll: {} sessions created, {} deleted, {} refused",
            report.created,
            report.deleted,
            report.refused.len()
        );
    }
    for e in &report.errors {
        eprintln!("sensor: enroll: {e}");
    }
}

async fn pass(enroller: &mut Enroller, status: &EnrollStatus) {
    match enroller.pass().await {
        Ok((plan, report)) => {
            let owned = (plan.kept + report.created) as u64;
            let refused = enroller.state().refused.len() as u64;
            log_pass(
                &report,
                enroller.config().dry_run,
                (plan.creates.len(), plan.deletes.len()),
            );
            status.pass_done(&report, owned, refused);
        }
        Err(e) => {
            eprintln!("sensor: enroll: pass failed: {e}");
            status.pass_failed(e);
        }
    }
}

/// Handles one message; `true` when it calls for a pass now.
fn handle(enroller: &mut Enroller, status: &EnrollStatus, body: &str, id: &str) -> bool {
    let cfg = enroller.config();
    let (launches, guardduty, cleanup) = (
        cfg.mode("launches"),
        cfg.mode("guardduty"),
        cfg.mode("cleanup"),
    );
    let (kind, named, pass_now) = match events::parse(body) {
        Ok(Event::StateChange { instance_id, state }) if state == "running" => (
            0,
            launches.then_some((instance_id, Named::Launch)),
            launches,
        ),
        // A stop or termination: the pass cleans up.
        Ok(Event::StateChange { .. }) => (1, None, cleanup),
        Ok(Event::Finding { instance_id }) => (
            2,
            guardduty.then_some((instance_id, Named::GuardDuty)),
            guardduty,
        ),
        Ok(Event::Ignored(_)) => (3, None, false),
        Err(why) => {
            if status.events[4].load(Ordering::Relaxed) < MALFORMED_LOGGED {
                eprintln!("sensor: enroll: dropping malformed message {id}: {why}");
            }
            (4, None, false)
        }
    };
    status.event(kind);
    if let Some((instance, why)) = named
        && let Err(e) = enroller.name_instance(&instance, why)
    {
        eprintln!("sensor: enroll: {e}");
    }
    pass_now
}

async fn run(
    cfg: EnrollConfig,
    status: Arc<EnrollStatus>,
    inventory: Option<Arc<Inventory>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut enroller = loop {
        match unless_stopped(&mut stop, Enroller::connect(&cfg)).await {
            None => return,
            Some(Ok(e)) => break e,
            Some(Err(e)) => {
                eprintln!("sensor: enroll: cannot reach AWS: {e}");
                status.pass_failed(e.to_string());
                if unless_stopped(&mut stop, tokio::time::sleep(RETRY_PAUSE))
                    .await
                    .is_none()
                {
                    return;
                }
            }
        }
    };
    status.attach_calls(enroller.call_stats());
    if let Some(inventory) = inventory {
        enroller.set_inventory(inventory);
    }
    let consume = !cfg.queue_url.is_empty() && (cfg.mode("launches") || cfg.mode("guardduty"));
    let mut next_pass = Instant::now();
    let mut pass_now = true;
    loop {
        if pass_now || Instant::now() >= next_pass {
            if unless_stopped(&mut stop, pass(&mut enroller, &status))
                .await
                .is_none()
            {
                return;
            }
            next_pass = Instant::now() + cfg.interval;
            pass_now = false;
        }
        if !consume {
            if unless_stopped(&mut stop, tokio::time::sleep_until(next_pass))
                .await
                .is_none()
            {
                return;
            }
            continue;
        }
        // The long poll ends before the HTTP exchange times out.
        let wait = next_pass
            .saturating_duration_since(Instant::now())
            .min(MAX_WAIT)
            .min(cfg.request_timeout.saturating_sub(Duration::from_secs(1)));
        let received = {
            let queue = Queue::new(enroller.client(), &cfg.queue_url);
            unless_stopped(&mut stop, queue.receive(wait.as_secs() as u32, BATCH)).await
        };
        let messages = match received {
            None => return,
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                eprintln!("sensor: enroll: queue: {e}");
                status.set_error(Some(e.to_string()));
                if unless_stopped(&mut stop, tokio::time::sleep(RETRY_PAUSE))
                    .await
                    .is_none()
                {
                    return;
                }
                continue;
            }
        };
        for m in messages {
            pass_now |= handle(&mut enroller, &status, &m.body, &m.id);
            let queue = Queue::new(enroller.client(), &cfg.queue_url);
            if let Err(e) = queue.delete(&m.receipt_handle).await {
                eprintln!("sensor: enroll: deleting message {}: {e}", m.id);
            }
        }
    }
}

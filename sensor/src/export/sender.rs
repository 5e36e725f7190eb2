//! The sender thread: one connection to the Nucleus at a time, every
//! stored batch sent in order, at most `max_in_flight` unacknowledged; an
//! ack removes its batch from the store. A failure (connect, TLS, an Error
//! frame, a silent receiver) ends the session; the next one, after a
//! jittered exponential backoff, starts again from the oldest batch held,
//! so nothing unacknowledged is skipped (the receiver drops the duplicates).
//!
//! Owns: the session (preamble, Hello, batches out, acks in), the backoff,
//! the logs of connection trouble (once per change of cause, then every
//! few minutes). Input: the shared store and phase. Output: frames on the
//! wire, acks applied to the store, status counters. Does not: seal
//! batches.

use super::status::ExportStatus;
use super::store::BatchId;
use super::{Phase, Shared, tls};
use nucleus_proto::frame::{self, Frame, FrameReader, FrameType};
use nucleus_proto::{SCHEMA_VERSION, pb};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::timeout;
use tokio_rustls::TlsConnector;

/// Largest frame accepted from the Nucleus (it sends only Hello, Ack and
/// Error, all small).
const MAX_INBOUND_FRAME: u32 = 1 << 20;
/// How often a failure that keeps happening is logged again.
const LOG_REPEAT: Duration = Duration::from_secs(300);
/// How often the session loop looks at the phase and the ack deadline when
/// nothing else happens.
const POLL: Duration = Duration::from_millis(100);

/// What the sender needs from the configuration.
pub(crate) struct Settings {
    pub address: String,
    pub host: String,
    pub port: u16,
    pub server_name: ServerName<'static>,
    pub tls: Arc<ClientConfig>,
    pub sensor_id: String,
    pub max_in_flight: usize,
    pub connect_timeout: Duration,
    pub ack_timeout: Duration,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
}

/// The thread's body: builds its runtime and runs until the phase says so.
pub(crate) fn run(shared: &Arc<Shared>, settings: &Settings, phase: watch::Receiver<Phase>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sensor: error: the export thread cannot start its runtime: {e}");
            return;
        }
    };
    runtime.block_on(Sender::new(shared, settings, phase).run());
}

/// Why a session ended without an error.
enum End {
    /// The phase says stop, or drain is over.
    Finished,
}

struct Sender<'a> {
    shared: &'a Arc<Shared>,
    settings: &'a Settings,
    phase: watch::Receiver<Phase>,
    /// The highest batch sent in any earlier session: sending it or one
    /// below it again is a resend.
    highest_sent: Option<BatchId>,
    last_logged: Option<(String, Instant)>,
    failures: u64,
}

impl<'a> Sender<'a> {
    fn new(shared: &'a Arc<Shared>, settings: &'a Settings, phase: watch::Receiver<Phase>) -> Self {
        Self {
            shared,
            settings,
            phase,
            highest_sent: None,
            last_logged: None,
            failures: 0,
        }
    }

    fn status(&self) -> &ExportStatus {
        &self.shared.status
    }

    /// Whether the sender is done: told to stop, or draining and either
    /// everything is acknowledged or the deadline has passed.
    fn finished(&self) -> bool {
        match *self.phase.borrow() {
            Phase::Running => false,
            Phase::Stop => true,
            Phase::Draining(deadline) => {
                Instant::now() >= deadline || self.shared.lock_store().is_empty()
            }
        }
    }

    async fn run(mut self) {
        let mut backoff = self.settings.reconnect_min;
        while !self.finished() {
            let result = match self.connect().await {
                Ok(stream) => {
                    backoff = self.settings.reconnect_min;
                    let r = self.session(stream).await;
                    self.status().connected.store(false, Ordering::Relaxed);
                    if r.is_err() {
                        ExportStatus::add(&self.status().disconnects, 1);
                    }
                    r
                }
                Err(e) => {
                    ExportStatus::add(&self.status().connect_failures, 1);
                    Err(e)
                }
            };
            match result {
                Ok(End::Finished) => break,
                Err(e) => self.failed(e),
            }
            if self.finished() {
                break;
            }
            self.wait(jitter(backoff, self.settings.reconnect_min))
                .await;
            backoff = (backoff * 2).min(self.settings.reconnect_max);
        }
    }

    fn failed(&mut self, e: String) {
        self.failures += 1;
        let now = Instant::now();
        let repeat = match &self.last_logged {
            Some((last, at)) => *last == e && now.duration_since(*at) < LOG_REPEAT,
            None => false,
        };
        if !repeat {
            eprintln!(
                "sensor: nucleus {}: {e} (attempt {}; retrying with backoff, batches wait in the \
                 store)",
                self.settings.address, self.failures
            );
            self.last_logged = Some((e.clone(), now));
        }
        self.status().set_error(Some(e));
    }

    /// Sleeps `d`, or less when the phase changes or a drain deadline
    /// comes first.
    async fn wait(&mut self, d: Duration) {
        let until = match *self.phase.borrow() {
            Phase::Draining(deadline) => deadline.min(Instant::now() + d),
            _ => Instant::now() + d,
        };
        tokio::select! {
            () = tokio::time::sleep_until(until.into()) => {}
            _ = self.phase.changed() => {}
        }
    }

    async fn connect(&self) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
        let s = self.settings;
        let tcp = timeout(
            s.connect_timeout,
            TcpStream::connect((s.host.as_str(), s.port)),
        )
        .await
        .map_err(|_| format!("TCP connect timed out after {:?}", s.connect_timeout))?
        .map_err(|e| format!("TCP connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let connector = TlsConnector::from(Arc::clone(&s.tls));
        timeout(
            s.connect_timeout,
            connector.connect(s.server_name.clone(), tcp),
        )
        .await
        .map_err(|_| format!("TLS handshake timed out after {:?}", s.connect_timeout))?
        .map_err(|e| format!("TLS handshake failed: {}", tls::explain(&e)))
    }

    /// The Hello exchange; returns the reader holding whatever followed.
    async fn hello<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
    ) -> Result<FrameReader, String> {
        let mut out = frame::preamble().to_vec();
        let hello = Frame::Hello(pb::Hello {
            sensor_id: self.settings.sensor_id.clone(),
            schema_version: SCHEMA_VERSION,
            software_version: env!("CARGO_PKG_VERSION").to_string(),
        });
        frame::encode(&hello, u32::MAX, &mut out).map_err(|e| e.to_string())?;
        let io = |e: std::io::Error| format!("sending the hello: {}", tls::explain(&e));
        stream.write_all(&out).await.map_err(io)?;
        stream.flush().await.map_err(io)?;
        let mut reader = FrameReader::new(MAX_INBOUND_FRAME);
        let mut buf = vec![0u8; 4096];
        let deadline = Instant::now() + self.settings.connect_timeout;
        loop {
            match reader.next_frame() {
                Ok(Some(Frame::Hello(h))) => {
                    if h.schema_version < SCHEMA_VERSION {
                        return Err(format!(
                            "the Nucleus {:?} speaks schema version {}, older than this \
                             sensor's {SCHEMA_VERSION}",
                            h.sensor_id, h.schema_version
                        ));
                    }
                    eprintln!(
                        "sensor: nucleus {}: connected to {:?} (software {})",
                        self.settings.address, h.sensor_id, h.software_version
                    );
                    return Ok(reader);
                }
                Ok(Some(Frame::Error(e))) => return Err(refused(&e)),
                Ok(Some(other)) => {
                    return Err(format!(
                        "the Nucleus sent {:?} before its hello",
                        other.frame_type()
                    ));
                }
                Ok(None) => {}
                Err(e) => return Err(format!("the Nucleus's stream: {e}")),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let n = timeout(left, stream.read(&mut buf))
                .await
                .map_err(|_| "no hello from the Nucleus in time".to_string())?
                .map_err(|e| format!("waiting for the hello: {}", tls::explain(&e)))?;
            if n == 0 {
                return Err("the Nucleus closed the connection before its hello".to_string());
            }
            reader.push(buf.get(..n).unwrap_or_default());
        }
    }

    async fn session(
        &mut self,
        mut stream: tokio_rustls::client::TlsStream<TcpStream>,
    ) -> Result<End, String> {
        let reader = self.hello(&mut stream).await?;
        self.status().connected.store(true, Ordering::Relaxed);
        self.status().set_error(None);
        ExportStatus::add(&self.status().connects, 1);
        self.failures = 0;
        self.last_logged = None;
        let (rd, mut wr) = tokio::io::split(stream);
        let (events_tx, mut events) = mpsc::channel(256);
        let reader_task = tokio::spawn(read_events(rd, reader, events_tx));
        let r = self.exchange(&mut wr, &mut events).await;
        reader_task.abort();
        if r.is_ok() {
            let _ = timeout(Duration::from_secs(1), wr.shutdown()).await;
        }
        r
    }

    async fn exchange<W: AsyncWrite + Unpin>(
        &mut self,
        wr: &mut W,
        events: &mut mpsc::Receiver<Event>,
    ) -> Result<End, String> {
        let mut in_flight: BTreeMap<BatchId, (Instant, u32)> = BTreeMap::new();
        let mut cursor: Option<BatchId> = None;
        let mut out = Vec::new();
        loop {
            out.clear();
            let mut sent = Vec::new();
            while in_flight.len() + sent.len() < self.settings.max_in_flight {
                let mut store = self.shared.lock_store();
                let Some(meta) = store.next_after(cursor) else {
                    break;
                };
                cursor = Some(meta.id);
                let bytes = store.read(meta.id);
                drop(store);
                let bytes = match bytes {
                    Ok(Some(b)) => b,
                    // Gone (dropped for space) or damaged: the store counted it.
                    Ok(None) => continue,
                    Err(e) => return Err(format!("reading the spool: {e}")),
                };
                frame::encode_raw(FrameType::Batch, &bytes, u32::MAX, &mut out)
                    .map_err(|e| e.to_string())?;
                sent.push(meta);
            }
            if !sent.is_empty() {
                let write = async {
                    wr.write_all(&out).await?;
                    wr.flush().await
                };
                timeout(self.settings.ack_timeout, write)
                    .await
                    .map_err(|_| "the Nucleus stopped reading (write timed out)".to_string())?
                    .map_err(|e| format!("sending: {}", tls::explain(&e)))?;
                let now = Instant::now();
                let status = self.status();
                ExportStatus::add(&status.bytes_sent, out.len() as u64);
                for m in &sent {
                    ExportStatus::add(&status.batches_sent, 1);
                    if self.highest_sent.is_some_and(|h| m.id <= h) {
                        ExportStatus::add(&status.batches_resent, 1);
                    }
                    in_flight.insert(m.id, (now, m.records));
                }
                self.highest_sent = self.highest_sent.max(sent.last().map(|m| m.id));
            }
            if self.finished() {
                return Ok(End::Finished);
            }
            if let Some((_, (at, _))) = in_flight.first_key_value()
                && at.elapsed() > self.settings.ack_timeout
            {
                return Err(format!(
                    "no acknowledgement within {:?} (nucleus.ack_timeout)",
                    self.settings.ack_timeout
                ));
            }
            tokio::select! {
                ev = events.recv() => match ev {
                    Some(Event::Ack(id)) => {
                        if let Some((_, records)) = in_flight.remove(&id) {
                            self.acked(id, records);
                        }
                    }
                    Some(Event::Refused(e)) => return Err(refused(&e)),
                    Some(Event::Failed(e)) => return Err(e),
                    None => return Err("the connection's reader stopped".to_string()),
                },
                () = self.shared.wake.notified() => {}
                _ = self.phase.changed() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    fn acked(&self, id: BatchId, records: u32) {
        let mut store = self.shared.lock_store();
        if store.ack(id) {
            let status = self.status();
            ExportStatus::add(&status.batches_acked, 1);
            ExportStatus::add(&status.records_acked, u64::from(records));
        }
        self.status().set_store(store.stats());
    }
}

fn refused(e: &pb::Error) -> String {
    let code = pb::ErrorCode::try_from(e.code).map_or_else(
        |_| format!("code {}", e.code),
        |c| c.as_str_name().to_string(),
    );
    format!("the Nucleus refused the session ({code}): {}", e.message)
}

/// What the reader task reports.
enum Event {
    Ack(BatchId),
    Refused(pb::Error),
    Failed(String),
}

async fn read_events<R: AsyncRead + Unpin>(
    mut rd: R,
    mut reader: FrameReader,
    events: mpsc::Sender<Event>,
) {
    let mut buf = vec![0u8; 16 << 10];
    loop {
        loop {
            let ev = match reader.next_frame() {
                Ok(None) => break,
                Ok(Some(Frame::Ack(a))) => Event::Ack(BatchId {
                    epoch: a.epoch,
                    sequence: a.sequence,
                }),
                Ok(Some(Frame::Error(e))) => Event::Refused(e),
                Ok(Some(f)) => Event::Failed(format!(
                    "the Nucleus sent an unexpected {:?} frame",
                    f.frame_type()
                )),
                Err(e) => Event::Failed(format!("the Nucleus's stream: {e}")),
            };
            let last = !matches!(ev, Event::Ack(_));
            if events.send(ev).await.is_err() || last {
                return;
            }
        }
        let ev = match rd.read(&mut buf).await {
            Ok(0) => Event::Failed("the Nucleus closed the connection".to_string()),
            Ok(n) => {
                reader.push(buf.get(..n).unwrap_or_default());
                continue;
            }
            Err(e) => Event::Failed(format!("receiving: {}", tls::explain(&e))),
        };
        let _ = events.send(ev).await;
        return;
    }
}

/// A wait between `floor` and `ceiling`, uniformly random ("full jitter"
/// above a floor), so sensors that lost the Nucleus together do not all
/// come back at the same instant.
fn jitter(ceiling: Duration, floor: Duration) -> Duration {
    let span = ceiling.saturating_sub(floor).as_micros();
    if span == 0 {
        return ceiling;
    }
    let r = u128::from(RandomState::new().hash_one(Instant::now()));
    floor + Duration::from_micros(u64::try_from(r % span).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::jitter;
    use std::time::Duration;

    #[test]
    fn jitter_stays_between_floor_and_ceiling_and_varies() {
        let (floor, ceiling) = (Duration::from_millis(200), Duration::from_secs(8));
        let waits: Vec<Duration> = (0..200).map(|_| jitter(ceiling, floor)).collect();
        assert!(waits.iter().all(|w| *w >= floor && *w <= ceiling));
        let distinct: std::collections::BTreeSet<_> = waits.iter().collect();
        assert!(distinct.len() > 100, "{} distinct waits", distinct.len());
        assert_eq!(jitter(floor, floor), floor);
    }
}

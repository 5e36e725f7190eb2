//! Connections: the TLS listener, and one sensor's session on it (the
//! preamble and Hello exchange, then batches in and acks out).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use nucleus_proto::batch::{BatchError, BatchLimits, open};
use nucleus_proto::frame::{self, Frame, FrameError, FrameReader};
use nucleus_proto::{SCHEMA_VERSION, pb};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;

use crate::store::{Outcome, Store};

/// What every session is run with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Sent in the receiver's Hello.
    pub name: String,
    /// Most connections at once.
    pub max_connections: usize,
    /// Longest silence of a peer (TLS handshake included).
    pub idle_timeout: Duration,
    /// Largest frame accepted.
    pub max_frame_bytes: u32,
    /// Limits on each batch.
    pub batch: BatchLimits,
}

/// Accepts connections until SIGINT or SIGTERM.
pub async fn serve(
    listen: SocketAddr,
    config: ServerConfig,
    store: Arc<Store>,
    settings: Settings,
) -> Result<()> {
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    eprintln!("nucleus: listening on {}", listener.local_addr()?);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let permits = Arc::new(Semaphore::new(settings.max_connections));
    let settings = Arc::new(settings);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("nucleus: accept: {e}");
                    continue;
                }
            },
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            eprintln!(
                "nucleus: {peer}: refused: {} connections already open (--max-connections)",
                settings.max_connections
            );
            continue;
        };
        eprintln!("nucleus: {peer}: connected");
        let (acceptor, store, settings) = (acceptor.clone(), store.clone(), settings.clone());
        tokio::spawn(async move {
            let _permit = permit;
            match timeout(settings.idle_timeout, acceptor.accept(tcp)).await {
                Err(_) => eprintln!("nucleus: {peer}: TLS handshake timed out"),
                Ok(Err(e)) => {
                    eprintln!(
                        "nucleus: {peer}: TLS handshake failed: {}",
                        crate::tls::explain(&e)
                    );
                }
                Ok(Ok(tls)) => match session(tls, &store, &settings).await {
                    Ok(sensor) => eprintln!("nucleus: {peer}: {sensor} closed the connection"),
                    Err(e) => eprintln!("nucleus: {peer}: {e:#}"),
                },
            }
        });
    }
    eprintln!("nucleus: stopping");
    Ok(())
}

async fn send<S: AsyncWrite + Unpin>(s: &mut S, f: &Frame) -> Result<()> {
    let mut out = Vec::new();
    frame::encode(f, u32::MAX, &mut out)?;
    s.write_all(&out).await?;
    s.flush().await?;
    Ok(())
}

/// Sends an Error frame (best effort: the peer may be gone) and returns
/// the error that ends the session.
async fn refuse<S: AsyncWrite + Unpin>(
    s: &mut S,
    code: pb::ErrorCode,
    message: String,
) -> anyhow::Error {
    let f = Frame::Error(pb::Error {
        code: code as i32,
        message: message.clone(),
    });
    let _ = send(s, &f).await;
    anyhow::anyhow!("refused: {message}")
}

fn frame_error_code(e: &FrameError) -> pb::ErrorCode {
    match e {
        FrameError::BadMagic | FrameError::UnsupportedVersion(_) | FrameError::UnknownType(_) => {
            pb::ErrorCode::UnsupportedVersion
        }
        FrameError::TooLarge { .. } => pb::ErrorCode::TooLarge,
        FrameError::Malformed { .. } | FrameError::AfterError => pb::ErrorCode::Malformed,
    }
}

fn batch_error_code(e: &BatchError) -> pb::ErrorCode {
    match e {
        BatchError::BlockTooLarge { .. } | BatchError::TooManyRecords { .. } => {
            pb::ErrorCode::TooLarge
        }
        _ => pb::ErrorCode::Malformed,
    }
}

/// One sensor's session; returns its id when the sensor closes.
async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    store: &Arc<Store>,
    settings: &Settings,
) -> Result<String> {
    s.write_all(&frame::preamble()).await?;
    let mut reader = FrameReader::new(settings.max_frame_bytes);
    let mut buf = vec![0u8; 64 << 10];
    let mut sensor: Option<String> = None;
    loop {
        loop {
            let f = match reader.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => return Err(refuse(&mut s, frame_error_code(&e), e.to_string()).await),
            };
            match f {
                Frame::Hello(h) => {
                    if h.schema_version > SCHEMA_VERSION {
                        let m = format!(
                            "schema version {} is newer than this receiver's {SCHEMA_VERSION}",
                            h.schema_version
                        );
                        return Err(refuse(&mut s, pb::ErrorCode::UnsupportedVersion, m).await);
                    }
                    eprintln!(
                        "nucleus: sensor {:?} (schema {}, software {:?}) connected",
                        h.sensor_id, h.schema_version, h.software_version
                    );
                    sensor = Some(h.sensor_id);
                    let hello = Frame::Hello(pb::Hello {
                        sensor_id: settings.name.clone(),
                        schema_version: SCHEMA_VERSION,
                        software_version: env!("CARGO_PKG_VERSION").to_string(),
                    });
                    send(&mut s, &hello).await?;
                }
                Frame::Batch(b) => {
                    let Some(id) = sensor.clone() else {
                        let m = "a batch before the hello".to_string();
                        return Err(refuse(&mut s, pb::ErrorCode::Protocol, m).await);
                    };
                    let records = match open(&b, &settings.batch) {
                        Ok(r) => r,
                        Err(e) => {
                            let m =
                                format!("batch (epoch {}, sequence {}): {e}", b.epoch, b.sequence);
                            return Err(refuse(&mut s, batch_error_code(&e), m).await);
                        }
                    };
                    let (epoch, sequence) = (b.epoch, b.sequence);
                    let st = store.clone();
                    let written = tokio::task::spawn_blocking(move || {
                        st.write(&id, epoch, sequence, &records)
                    })
                    .await?;
                    match written {
                        Ok(Outcome::Written | Outcome::Duplicate) => {
                            send(&mut s, &Frame::Ack(pb::Ack { epoch, sequence })).await?;
                        }
                        Err(e) => {
                            let m = format!("cannot write: {e:#}");
                            return Err(refuse(&mut s, pb::ErrorCode::Unavailable, m).await);
                        }
                    }
                }
                Frame::Ack(_) => {
                    let m = "an ack from a sensor".to_string();
                    return Err(refuse(&mut s, pb::ErrorCode::Protocol, m).await);
                }
                Frame::Error(e) => {
                    anyhow::bail!("the sensor closed with error {}: {}", e.code, e.message)
                }
            }
        }
        let n = timeout(settings.idle_timeout, s.read(&mut buf))
            .await
            .map_err(|_| anyhow::anyhow!("silent for {:?}: closing", settings.idle_timeout))??;
        if n == 0 {
            return Ok(sensor.unwrap_or_else(|| "a sensor with no hello".to_string()));
        }
        reader.push(buf.get(..n).unwrap_or_default());
    }
}

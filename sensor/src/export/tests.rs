//! The exporter against a scripted receiver over real TLS on loopback:
//! every batch arrives, batches unacknowledged when a session breaks are
//! sent again on the next, a receiver that stops acknowledging is left,
//! and a receiver that never comes costs the records of a memory-only
//! exporter with an error saying so.

use super::*;
use crate::record::RecordSink;
use nucleus_proto::frame::{Frame, FrameReader};
use nucleus_proto::{FlowRecord, Record, TimestampMicros, pb};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn temp_dir(label: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "sensor-export-{label}-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A CA file and a server certificate for 127.0.0.1 it issued.
struct Pki {
    ca_file: PathBuf,
    cert_pem: String,
    key_pem: String,
}

fn pki(dir: &Path) -> Pki {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    Pki {
        ca_file,
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// What the scripted receiver does in each session, in order (the last
/// one repeats).
#[derive(Clone, Copy)]
enum Script {
    /// Acknowledge this many batches, then close the connection.
    AckThenClose(usize),
    /// Acknowledge every batch.
    AckAll,
    /// Read batches, acknowledge none.
    Silent,
}

/// Batches the receiver saw: (epoch, sequence, records), per session.
type Seen = Arc<Mutex<Vec<Vec<(u64, u64, u32)>>>>;

fn start_receiver(p: &Pki, scripts: Vec<Script>) -> (SocketAddr, Seen) {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(p.cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(p.key_pem.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let seen2 = Arc::clone(&seen);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            for i in 0.. {
                let script = scripts[i.min(scripts.len() - 1)];
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let Ok(mut s) = acceptor.accept(tcp).await else {
                    continue;
                };
                seen2.lock().unwrap().push(Vec::new());
                let _ = session(&mut s, script, &seen2).await;
            }
        });
    });
    (addr, seen)
}

async fn session<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    s: &mut S,
    script: Script,
    seen: &Seen,
) -> std::io::Result<()> {
    s.write_all(&nucleus_proto::frame::preamble()).await?;
    let mut reader = FrameReader::new(16 << 20);
    let mut buf = vec![0u8; 1 << 16];
    let mut acked = 0usize;
    loop {
        while let Ok(Some(f)) = reader.next_frame() {
            let mut out = Vec::new();
            match f {
                Frame::Hello(_) => {
                    let h = Frame::Hello(pb::Hello {
                        sensor_id: "scripted".into(),
                        schema_version: nucleus_proto::SCHEMA_VERSION,
                        software_version: String::new(),
                    });
                    nucleus_proto::frame::encode(&h, u32::MAX, &mut out).unwrap();
                }
                Frame::Batch(b) => {
                    if let Some(v) = seen.lock().unwrap().last_mut() {
                        v.push((b.epoch, b.sequence, b.record_count));
                    }
                    match script {
                        Script::Silent => {}
                        Script::AckThenClose(n) if acked >= n => return Ok(()),
                        _ => {
                            acked += 1;
                            let a = Frame::Ack(pb::Ack {
                                epoch: b.epoch,
                                sequence: b.sequence,
                            });
                            nucleus_proto::frame::encode(&a, u32::MAX, &mut out).unwrap();
                        }
                    }
                }
                _ => return Ok(()),
            }
            s.write_all(&out).await?;
            s.flush().await?;
        }
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        reader.push(&buf[..n]);
    }
}

fn record(i: u16) -> Record {
    let ts = TimestampMicros(1_700_000_000_000_000 + i64::from(i));
    Record::Flow(Box::new(FlowRecord {
        ts,
        end_ts: ts,
        uid: format!("C{i}"),
        orig_ip_bytes: 28,
        ..crate::record::flow_record(i)
    }))
}

fn config(addr: SocketAddr, p: &Pki) -> NucleusConfig {
    NucleusConfig {
        address: addr.to_string(),
        ca: p.ca_file.to_string_lossy().into_owned(),
        batch_records: 10,
        reconnect_min: Duration::from_millis(20),
        reconnect_max: Duration::from_millis(100),
        drain_timeout: Duration::from_secs(20),
        ..NucleusConfig::default()
    }
}

fn sequences(seen: &Seen) -> Vec<u64> {
    let mut all: Vec<u64> = seen.lock().unwrap().iter().flatten().map(|b| b.1).collect();
    all.sort_unstable();
    all.dedup();
    all
}

#[test]
fn batches_unacknowledged_when_a_session_breaks_are_sent_again() {
    let dir = temp_dir("resend");
    let p = pki(&dir);
    let (addr, seen) = start_receiver(&p, vec![Script::AckThenClose(3), Script::AckAll]);
    let mut sink = start(&config(addr, &p), CommunityId::new(0, true)).unwrap();
    let status = sink.status();
    sink.write_owned((0..100).map(record).collect()).unwrap();
    sink.close().unwrap();

    assert_eq!(sequences(&seen), (0..10).collect::<Vec<u64>>());
    let sessions = seen.lock().unwrap().clone();
    assert!(sessions.len() >= 2, "{sessions:?}");
    // The second session starts from the oldest unacknowledged batch.
    assert_eq!(sessions[1].first().map(|b| b.1), Some(3), "{sessions:?}");
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(load(&status.batches_acked), 10);
    assert_eq!(load(&status.records_acked), 100);
    assert!(load(&status.batches_resent) >= 1);
    assert_eq!(status.store().batches, 0);
    // Every batch of one run carries the same epoch.
    let epochs: std::collections::BTreeSet<u64> = sessions.iter().flatten().map(|b| b.0).collect();
    assert_eq!(epochs.len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_receiver_that_stops_acknowledging_is_left_and_the_batches_go_to_the_next() {
    let dir = temp_dir("silent");
    let p = pki(&dir);
    let (addr, seen) = start_receiver(&p, vec![Script::Silent, Script::AckAll]);
    let mut cfg = config(addr, &p);
    cfg.ack_timeout = Duration::from_millis(300);
    let mut sink = start(&cfg, CommunityId::new(0, true)).unwrap();
    sink.write_owned((0..30).map(record).collect()).unwrap();
    sink.close().unwrap();
    assert_eq!(sequences(&seen), vec![0, 1, 2]);
    assert_eq!(sink.status().store().batches, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn batches_are_sealed_by_age_and_the_window_bounds_what_is_in_flight() {
    let dir = temp_dir("age");
    let p = pki(&dir);
    let (addr, seen) = start_receiver(&p, vec![Script::Silent]);
    let mut cfg = config(addr, &p);
    cfg.batch_records = 1000;
    cfg.batch_age = Duration::from_millis(50);
    cfg.max_in_flight = 2;
    cfg.drain_timeout = Duration::from_millis(500);
    let mut sink = start(&cfg, CommunityId::new(0, true)).unwrap();
    for i in 0..4u16 {
        sink.write_owned(vec![record(i)]).unwrap();
        std::thread::sleep(Duration::from_millis(80));
        sink.tick();
    }
    // Four batches of one record each, sealed by age; only two sent.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sequences(&seen).len() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(sequences(&seen), vec![0, 1]);
    let status = sink.status();
    assert_eq!(status.store().batches, 4);
    // Nothing acknowledged and no spool: close says the records are lost.
    let e = sink.close().unwrap_err();
    assert!(e.to_string().contains("4 records"), "{e}");
    assert!(e.to_string().contains("without a spool"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unreachable_nucleus_is_reported_with_its_cause() {
    let dir = temp_dir("unreachable");
    let p = pki(&dir);
    // A port nobody listens on.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut cfg = config(addr, &p);
    cfg.drain_timeout = Duration::from_millis(300);
    let mut sink = start(&cfg, CommunityId::new(0, true)).unwrap();
    sink.write_owned(vec![record(1)]).unwrap();
    let e = sink.close().unwrap_err().to_string();
    assert!(e.contains("TCP connect"), "{e}");
    let status = sink.status();
    assert!(
        status
            .connect_failures
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    assert!(status.readiness_detail().contains("degraded"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_batch_whose_block_is_too_large_is_split_and_nothing_is_lost() {
    let dir = temp_dir("split");
    let p = pki(&dir);
    let (addr, seen) = start_receiver(&p, vec![Script::AckAll]);
    let mut cfg = config(addr, &p);
    cfg.batch_records = 100;
    // Far below one block of 100 flows (checked ranges do not apply here).
    cfg.batch_max_bytes = 1500;
    let mut sink = start(&cfg, CommunityId::new(0, true)).unwrap();
    sink.write_owned((0..100).map(record).collect()).unwrap();
    sink.close().unwrap();
    let status = sink.status();
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    assert!(load(&status.batches_split) >= 1);
    let batches: Vec<(u64, u64, u32)> = seen.lock().unwrap().iter().flatten().copied().collect();
    assert!(batches.len() > 1, "{batches:?}");
    assert_eq!(batches.iter().map(|b| u64::from(b.2)).sum::<u64>(), 100);
    let n = batches.len() as u64;
    assert_eq!(sequences(&seen), (0..n).collect::<Vec<u64>>());
    let _ = std::fs::remove_dir_all(&dir);
}

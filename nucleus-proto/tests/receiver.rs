//! End-to-end tests of the `nucleus` binary on loopback over TLS: batches
//! are written once as JSON lines per record type and acknowledged,
//! duplicates (in one connection, and after the receiver is killed and
//! started again) are acknowledged and not written again, mutual TLS
//! refuses a client without a certificate with a log line naming the
//! cause, a client refuses a receiver of an unknown CA, and `nucleus dump`
//! prints the records of a file of frames.

// Test code: a failed expectation must stop the test with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{cid, frame_bytes, sample_records};
use nucleus_proto::batch::{Compression, seal};
use nucleus_proto::frame::{self, Frame, FrameReader};
use nucleus_proto::{Record, SCHEMA_VERSION, pb};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

/// A directory of its own for one test, removed at its end.
struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(tag: &str) -> TempDir {
    let d = std::env::temp_dir().join(format!(
        "nucleus-test-{}-{tag}-{}",
        std::process::id(),
        NEXT_DIR.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TempDir(d)
}

/// A CA, and certificates it issued.
struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

struct Issued {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl Pki {
    fn new(name: &str) -> Self {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
        Self { ca }
    }

    fn issue(&self, names: &[&str]) -> Issued {
        let p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
        let key = KeyPair::generate().unwrap();
        let c = p.signed_by(&key, &self.ca).unwrap();
        Issued {
            cert_pem: c.pem(),
            key_pem: key.serialize_pem(),
            der: c.der().clone(),
            key_der: key.serialize_der(),
        }
    }

    fn ca_pem(&self) -> String {
        self.ca.pem()
    }
}

/// A running `nucleus serve`, with its log.
struct Receiver {
    child: Child,
    addr: std::net::SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    fn start(dir: &Path, out: &Path, pki: &Pki, client_ca: bool) -> Self {
        Self::start_with(dir, out, pki, client_ca, &[])
    }

    fn start_with(dir: &Path, out: &Path, pki: &Pki, client_ca: bool, extra: &[&str]) -> Self {
        let server = pki.issue(&["localhost", "127.0.0.1"]);
        std::fs::write(dir.join("server.pem"), &server.cert_pem).unwrap();
        std::fs::write(dir.join("server.key"), &server.key_pem).unwrap();
        std::fs::write(dir.join("ca.pem"), pki.ca_pem()).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_nucleus"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--tls-cert"])
            .arg(dir.join("server.pem"))
            .arg("--tls-key")
            .arg(dir.join("server.key"))
            .arg("--out")
            .arg(out)
            .stderr(Stdio::piped());
        if client_ca {
            cmd.arg("--client-ca").arg(dir.join("ca.pem"));
        }
        cmd.args(extra);
        let mut child = cmd.spawn().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(a) = line.strip_prefix("nucleus: listening on ") {
                    let _ = tx.send(a.parse::<std::net::SocketAddr>().unwrap());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the receiver did not start");
        Self { child, addr, log }
    }

    /// Waits (at most 10 s) for a log line containing all of `parts`.
    fn wait_log(&self, parts: &[&str]) -> String {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(l) = self
                .log
                .lock()
                .unwrap()
                .iter()
                .find(|l| parts.iter().all(|p| l.contains(p)))
            {
                return l.clone();
            }
            assert!(
                Instant::now() < end,
                "no log line with {parts:?}: {:?}",
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client_config(roots_pem: &str, client: Option<&Issued>) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for c in CertificateDer::pem_slice_iter(roots_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    match client {
        None => b.with_no_client_auth(),
        Some(c) => b
            .with_client_auth_cert(
                vec![c.der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(c.key_der.clone())),
            )
            .unwrap(),
    }
}

/// Sends a Hello then `frames`, and reads frames back until `want` acks.
async fn exchange(
    addr: std::net::SocketAddr,
    config: rustls::ClientConfig,
    frames: &[Frame],
    want_acks: usize,
) -> Result<Vec<Frame>, String> {
    exchange_as(addr, config, SCHEMA_VERSION, frames, want_acks).await
}

/// `exchange` with a Hello of `schema_version`.
async fn exchange_as(
    addr: std::net::SocketAddr,
    config: rustls::ClientConfig,
    schema_version: u32,
    frames: &[Frame],
    want_acks: usize,
) -> Result<Vec<Frame>, String> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let mut out = frame::preamble().to_vec();
    out.extend(frame_bytes(&Frame::Hello(pb::Hello {
        sensor_id: "sensor-test".into(),
        schema_version,
        software_version: "test".into(),
    })));
    for f in frames {
        out.extend(frame_bytes(f));
    }
    tls.write_all(&out).await.map_err(|e| e.to_string())?;
    tls.flush().await.map_err(|e| e.to_string())?;
    let mut reader = FrameReader::new(frame::DEFAULT_MAX_FRAME_BYTES);
    let mut got = Vec::new();
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while got.iter().filter(|f| matches!(f, Frame::Ack(_))).count() < want_acks {
        let n = tokio::time::timeout_at(deadline, tls.read(&mut buf))
            .await
            .map_err(|_| format!("timed out with {got:?}"))?
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!("closed after {got:?}"));
        }
        reader.push(&buf[..n]);
        while let Some(f) = reader.next_frame().map_err(|e| e.to_string())? {
            if let Frame::Error(e) = &f {
                return Err(format!("error {}: {}", e.code, e.message));
            }
            got.push(f);
        }
    }
    Ok(got)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn batch(seq: u64, records: &[Record]) -> Frame {
    Frame::Batch(seal(5, seq, records, &cid(), Compression::Zstd(3)).unwrap())
}

fn json_lines(records: &[Record]) -> String {
    records
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect()
}

fn read(out: &Path, t: &str) -> String {
    std::fs::read_to_string(out.join(format!("{t}.jsonl"))).unwrap_or_default()
}

#[test]
fn batches_are_written_once_and_acknowledged() {
    let dir = temp_dir("once");
    let out = dir.join("out");
    let pki = Pki::new("test CA");
    let records = sample_records();
    let (flow, dns) = (&records[..1], &records[1..]);
    let rt = runtime();
    {
        let r = Receiver::start(&dir, &out, &pki, false);
        let frames = [batch(0, &records), batch(0, &records), batch(1, flow)];
        let got = rt
            .block_on(exchange(
                r.addr,
                client_config(&pki.ca_pem(), None),
                &frames,
                3,
            ))
            .unwrap();
        let Frame::Hello(h) = &got[0] else {
            panic!("{got:?}")
        };
        assert_eq!(h.schema_version, SCHEMA_VERSION);
        let acks: Vec<(u64, u64)> = got
            .iter()
            .filter_map(|f| match f {
                Frame::Ack(a) => Some((a.epoch, a.sequence)),
                _ => None,
            })
            .collect();
        assert_eq!(acks, [(5, 0), (5, 0), (5, 1)]);
        // The same JSON view the sensor writes, each batch once.
        assert_eq!(read(&out, "flow"), json_lines(flow).repeat(2));
        assert_eq!(read(&out, "dns"), json_lines(dns));
        r.wait_log(&["sensor \"sensor-test\"", "connected"]);
    }
    // Killed (Drop) and started again on the same directory: the ledger
    // remembers, so a resent batch is acknowledged and not written again.
    let r = Receiver::start(&dir, &out, &pki, false);
    let frames = [batch(1, flow), batch(2, dns)];
    rt.block_on(exchange(
        r.addr,
        client_config(&pki.ca_pem(), None),
        &frames,
        2,
    ))
    .unwrap();
    assert_eq!(read(&out, "flow"), json_lines(flow).repeat(2));
    assert_eq!(read(&out, "dns"), json_lines(dns).repeat(2));
}

#[test]
fn a_batch_cut_by_a_crash_leaves_nothing_behind() {
    let dir = temp_dir("crash");
    let out = dir.join("out");
    let pki = Pki::new("test CA");
    let records = sample_records();
    let rt = runtime();
    {
        let r = Receiver::start(&dir, &out, &pki, false);
        rt.block_on(exchange(
            r.addr,
            client_config(&pki.ca_pem(), None),
            &[batch(0, &records)],
            1,
        ))
        .unwrap();
    }
    // Records appended after the last ledger line: a batch whose write
    // the crash interrupted before it was recorded (and acknowledged).
    let flow_file = out.join("flow.jsonl");
    let before = std::fs::read_to_string(&flow_file).unwrap();
    std::fs::write(&flow_file, format!("{before}{{\"type\":\"flow\",\"cut")).unwrap();
    let r = Receiver::start(&dir, &out, &pki, false);
    r.wait_log(&["cutting", "flow.jsonl"]);
    assert_eq!(std::fs::read_to_string(&flow_file).unwrap(), before);
}

#[test]
fn mutual_tls_refuses_a_client_without_a_certificate() {
    let dir = temp_dir("mtls");
    let pki = Pki::new("test CA");
    let r = Receiver::start(&dir, &dir.join("out"), &pki, true);
    let rt = runtime();
    let frames = [batch(0, &sample_records())];
    let refused = rt.block_on(exchange(
        r.addr,
        client_config(&pki.ca_pem(), None),
        &frames,
        1,
    ));
    assert!(refused.is_err(), "{refused:?}");
    let line = r.wait_log(&["TLS handshake failed"]);
    eprintln!("{line}");
    assert!(line.contains("certificate"), "{line}");
    assert!(!dir.join("out/flow.jsonl").exists());
    // With a certificate of the CA the receiver trusts, it is accepted.
    let client = pki.issue(&["sensor-test"]);
    rt.block_on(exchange(
        r.addr,
        client_config(&pki.ca_pem(), Some(&client)),
        &frames,
        1,
    ))
    .unwrap();
    assert!(!read(&dir.join("out"), "flow").is_empty());
}

#[test]
fn a_client_refuses_a_receiver_of_an_unknown_ca() {
    let dir = temp_dir("unknown-ca");
    let pki = Pki::new("test CA");
    let other = Pki::new("another CA");
    let r = Receiver::start(&dir, &dir.join("out"), &pki, false);
    let rt = runtime();
    let e = rt
        .block_on(exchange(
            r.addr,
            client_config(&other.ca_pem(), None),
            &[],
            1,
        ))
        .unwrap_err();
    assert!(e.contains("UnknownIssuer"), "{e}");
    eprintln!(
        "client: {e}\nreceiver: {}",
        r.wait_log(&["TLS handshake failed"])
    );
}

#[test]
fn refusals_are_error_frames_that_name_the_cause() {
    let dir = temp_dir("refusals");
    let pki = Pki::new("test CA");
    let r = Receiver::start(&dir, &dir.join("out"), &pki, false);
    let rt = runtime();
    let config = || client_config(&pki.ca_pem(), None);
    let newer = rt.block_on(exchange_as(r.addr, config(), SCHEMA_VERSION + 1, &[], 1));
    let code = pb::ErrorCode::UnsupportedVersion as i32;
    assert_eq!(
        newer.unwrap_err(),
        format!(
            "error {code}: schema version {} is newer than this receiver's {SCHEMA_VERSION}",
            SCHEMA_VERSION + 1
        )
    );
    // A batch whose payload is not its declared block.
    let Frame::Batch(mut b) = batch(0, &sample_records()) else {
        unreachable!()
    };
    b.block_bytes += 1;
    let bad = rt
        .block_on(exchange(r.addr, config(), &[Frame::Batch(b)], 1))
        .unwrap_err();
    let code = pb::ErrorCode::Malformed as i32;
    assert!(
        bad.starts_with(&format!("error {code}: batch (epoch 5, sequence 0)")),
        "{bad}"
    );
    r.wait_log(&["refused: batch (epoch 5, sequence 0)"]);
    assert!(!dir.join("out/flow.jsonl").exists());
}

#[test]
fn connections_are_capped_and_silent_ones_closed() {
    let dir = temp_dir("caps");
    let pki = Pki::new("test CA");
    let extra = ["--max-connections", "1", "--idle-timeout", "1s"];
    let r = Receiver::start_with(&dir, &dir.join("out"), &pki, false, &extra);
    let rt = runtime();
    let frames = [batch(0, &sample_records())];
    // A peer that connects and says nothing holds the one connection.
    let silent = std::net::TcpStream::connect(r.addr).unwrap();
    r.wait_log(&[&format!("{}: connected", silent.local_addr().unwrap())]);
    let refused = rt.block_on(exchange(
        r.addr,
        client_config(&pki.ca_pem(), None),
        &frames,
        1,
    ));
    assert!(refused.is_err(), "{refused:?}");
    r.wait_log(&["refused: 1 connections already open"]);
    // After a second of silence it is closed, and the next sensor gets in.
    r.wait_log(&["TLS handshake timed out"]);
    rt.block_on(exchange(
        r.addr,
        client_config(&pki.ca_pem(), None),
        &frames,
        1,
    ))
    .unwrap();
    drop(silent);
}

#[test]
fn dump_prints_the_records_of_a_file_of_frames() {
    let dir = temp_dir("dump");
    let records = sample_records();
    let mut file = frame::preamble().to_vec();
    file.extend(frame_bytes(&batch(0, &records)));
    file.extend(frame_bytes(&batch(1, &records[..1])));
    let path = dir.join("segment");
    std::fs::write(&path, &file).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_nucleus"))
        .arg("dump")
        .arg(&path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut want = json_lines(&records);
    want.push_str(&json_lines(&records[..1]));
    assert_eq!(String::from_utf8(o.stdout).unwrap(), want);
    // A file cut in the middle of a frame fails, naming it.
    std::fs::write(&path, &file[..file.len() - 5]).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_nucleus"))
        .arg("dump")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("cut-off frame"));
}

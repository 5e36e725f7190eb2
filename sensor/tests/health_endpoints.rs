//! The health endpoints as a load balancer and Prometheus see them: HTTP on
//! loopback port 0, fake live threads publishing snapshots into a
//! `LiveStats`. Users rely on `/readyz` failing for every reason it lists
//! (and at once when draining), on `/metrics` being valid Prometheus text
//! with the per-thread values the threads published, and on the TCP health
//! listeners completing the handshake.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use sensor::config::HealthConfig;
use sensor::health::{HealthServer, spawn};
use sensor::metrics::{Anomaly, Drop, LiveStats, ThreadRole, ThreadSnapshot, ThreadStats};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const IO_TIMEOUT: Duration = Duration::from_secs(10);

fn loopback0() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn test_config() -> HealthConfig {
    HealthConfig {
        listen: loopback0(),
        tcp_listen: vec![loopback0(), loopback0()],
        max_drop_ratio: 0.01,
        stall_after: Duration::from_secs(5),
    }
}

struct Response {
    status: u16,
    content_type: String,
    body: String,
}

/// A minimal HTTP/1.1 GET over a plain socket.
fn get(addr: SocketAddr, path: &str, accept: Option<&str>) -> Response {
    let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let accept = accept.map_or(String::new(), |a| format!("Accept: {a}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: sensor\r\n{accept}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    Response {
        status,
        content_type,
        body: body.to_string(),
    }
}

fn publish(t: &ThreadStats, f: impl FnOnce(&mut ThreadSnapshot)) {
    let mut s = t.snapshot.lock().unwrap();
    f(&mut s);
}

fn heartbeat_all(threads: &[Arc<ThreadStats>]) {
    for t in threads {
        publish(t, |s| s.heartbeat = Instant::now());
    }
}

/// A sensor with one receiver, two workers and an output, all fresh.
fn running_sensor() -> (Arc<LiveStats>, Vec<Arc<ThreadStats>>) {
    let stats = Arc::new(LiveStats::new());
    let threads = vec![
        stats.register("rx-vxlan-0", ThreadRole::Receiver),
        stats.register("worker-0", ThreadRole::Worker),
        stats.register("worker-1", ThreadRole::Worker),
        stats.register("output", ThreadRole::Output),
    ];
    heartbeat_all(&threads);
    (stats, threads)
}

fn start(stats: &Arc<LiveStats>) -> HealthServer {
    spawn(&test_config(), Arc::clone(stats)).unwrap()
}

fn assert_readyz(server: &HealthServer, status: u16, needle: &str) {
    let r = get(server.local_addr(), "/readyz", None);
    assert_eq!(r.status, status, "{}", r.body);
    assert!(r.body.contains(needle), "{needle:?} not in:\n{}", r.body);
}

#[test]
fn readyz_waits_for_threads_and_sockets() {
    let stats = Arc::new(LiveStats::new());
    let server = start(&stats);
    let h = get(server.local_addr(), "/healthz", None);
    assert_eq!((h.status, h.body.trim()), (200, "ok"));
    assert_readyz(&server, 503, "threads: FAIL");

    let threads = [
        stats.register("rx-vxlan-0", ThreadRole::Receiver),
        stats.register("worker-0", ThreadRole::Worker),
        stats.register("output", ThreadRole::Output),
    ];
    heartbeat_all(&threads);
    assert_readyz(&server, 503, "sockets_bound: FAIL");
    stats.sockets_bound.store(true, Ordering::Release);
    let r = get(server.local_addr(), "/readyz", None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.starts_with("ready\n"), "{}", r.body);
    assert!(!r.body.contains("FAIL"), "{}", r.body);
}

#[test]
fn readyz_fails_on_a_stalled_worker_or_output_and_recovers() {
    let (stats, threads) = running_sensor();
    stats.sockets_bound.store(true, Ordering::Release);
    let server = start(&stats);
    assert_readyz(&server, 200, "threads_progressing: ok");

    let long_ago = Instant::now().checked_sub(Duration::from_secs(30)).unwrap();
    publish(&threads[2], |s| s.heartbeat = long_ago);
    assert_readyz(&server, 503, "worker-1 silent");
    heartbeat_all(&threads);
    assert_readyz(&server, 200, "ready");

    publish(&threads[3], |s| s.heartbeat = long_ago);
    assert_readyz(&server, 503, "output_progressing: FAIL (output silent");
}

#[test]
fn draining_fails_readiness_at_once_but_not_liveness_or_tcp() {
    let (stats, _threads) = running_sensor();
    stats.sockets_bound.store(true, Ordering::Release);
    let server = start(&stats);
    assert_readyz(&server, 200, "not_draining: ok");

    stats.draining.store(true, Ordering::Release);
    assert_readyz(&server, 503, "not_draining: FAIL");
    assert_eq!(get(server.local_addr(), "/healthz", None).status, 200);
    for addr in server.tcp_local_addrs() {
        assert!(TcpStream::connect_timeout(addr, IO_TIMEOUT).is_ok());
    }
    let m = get(server.local_addr(), "/metrics", None).body;
    assert!(m.contains("\nsensor_draining 1\n"), "{m}");
    assert!(m.contains("\nsensor_ready 0\n"), "{m}");
}

#[test]
fn readyz_fails_when_drops_exceed_the_ratio() {
    let (stats, threads) = running_sensor();
    stats.sockets_bound.store(true, Ordering::Release);
    let server = start(&stats);
    // 5 lost of 1000: 0.5%, under the 1% limit.
    publish(&threads[0], |s| {
        s.counters.packets = 1000;
        s.counters.drop_n(Drop::WorkerQueueFull, 5);
    });
    assert_readyz(&server, 200, "drop_ratio: ok");
    // 40 more datagrams dropped by the kernel and 60 output-queue drops:
    // 105 of 1040 arrived since start.
    publish(&threads[0], |s| {
        s.counters.drop_n(Drop::KernelSocketOverflow, 40)
    });
    publish(&threads[1], |s| {
        s.counters.drop_n(Drop::OutputQueueFull, 60)
    });
    // Caps such as a full flow table are not lost datagrams.
    publish(&threads[2], |s| {
        s.counters.drop_n(Drop::FlowTableFull, 1_000_000)
    });
    assert_readyz(&server, 503, "drop_ratio: FAIL (0.1010");
}

#[test]
fn tcp_health_listeners_accept_and_close() {
    let stats = Arc::new(LiveStats::new());
    let server = start(&stats);
    assert_eq!(server.tcp_local_addrs().len(), 2);
    for addr in server.tcp_local_addrs() {
        let mut s = TcpStream::connect_timeout(addr, IO_TIMEOUT).unwrap();
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut buf = [0u8; 16];
        // The server closes at once: end of stream, not a timeout.
        assert_eq!(s.read(&mut buf).unwrap(), 0);
    }
}

#[test]
fn bind_errors_name_the_address_and_shutdown_frees_it() {
    let taken = std::net::TcpListener::bind(loopback0()).unwrap();
    let taken_addr = taken.local_addr().unwrap();
    let stats = Arc::new(LiveStats::new());

    let cfg = HealthConfig {
        listen: taken_addr,
        ..test_config()
    };
    let e = format!("{:#}", spawn(&cfg, Arc::clone(&stats)).unwrap_err());
    assert!(e.contains(&taken_addr.to_string()), "{e}");
    let cfg = HealthConfig {
        tcp_listen: vec![loopback0(), taken_addr],
        ..test_config()
    };
    let e = format!("{:#}", spawn(&cfg, Arc::clone(&stats)).unwrap_err());
    assert!(e.contains(&taken_addr.to_string()), "{e}");
    assert!(e.contains("TCP health-check"), "{e}");

    let server = start(&stats);
    let http = server.local_addr();
    server.shutdown();
    assert!(TcpStream::connect_timeout(&http, IO_TIMEOUT).is_err());
}

/// One sample line of the text format: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: HashMap<String, String>,
    value: f64,
}

/// Parses Prometheus text 0.0.4 strictly enough to catch malformed output:
/// every sample belongs to the family of the `# TYPE` line before it (with
/// `_bucket`/`_sum`/`_count` for histograms), names and labels are well
/// formed, values are numbers, and each family is declared once.
fn parse_prometheus_text(text: &str) -> (HashMap<String, String>, Vec<Sample>) {
    let valid_name = |n: &str| {
        !n.is_empty()
            && !n.starts_with(|c: char| c.is_ascii_digit())
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let mut types = HashMap::new();
    let mut current: Option<(String, String)> = None;
    let mut samples = Vec::new();
    for line in text.lines() {
        assert!(!line.is_empty(), "blank line in:\n{text}");
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(valid_name(name), "{line}");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "{line}"
            );
            current = Some((name.to_string(), kind.to_string()));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            assert!(valid_name(rest.split(' ').next().unwrap()), "{line}");
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment {line}");
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, HashMap::new()),
            Some((name, rest)) => {
                let inner = rest.strip_suffix('}').unwrap();
                let labels = inner
                    .split(',')
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').unwrap();
                        assert!(valid_name(k), "{line}");
                        let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"'));
                        (k.to_string(), v.unwrap().to_string())
                    })
                    .collect();
                (name, labels)
            }
        };
        let (family, kind) = current.as_ref().expect("sample before any # TYPE");
        let ok = match kind.as_str() {
            "histogram" => ["_bucket", "_sum", "_count"]
                .iter()
                .any(|s| name.strip_suffix(s) == Some(family.as_str())),
            _ => name == family,
        };
        assert!(ok, "{name} outside its family {family}");
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    (types, samples)
}

fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found = find(samples, name, labels);
    assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
    found[0].value
}

#[test]
fn metrics_are_prometheus_text_with_the_published_values() {
    let (stats, threads) = running_sensor();
    stats.sockets_bound.store(true, Ordering::Release);
    stats.rcvbuf_bytes.store(8 << 20, Ordering::Relaxed);
    publish(&threads[0], |s| {
        s.counters.packets = 5000;
        s.counters.bytes = 7_000_000;
        s.counters.drop_n(Drop::KernelSocketOverflow, 2);
        s.counters.anomaly(Anomaly::VxlanMalformed);
        s.counters.anomaly(Anomaly::VxlanMalformed);
        s.batch_size.record_n(32, 10).unwrap();
        s.batch_size.record_n(64, 5).unwrap();
        s.batch_latency_ns.record_n(1_500, 15).unwrap();
    });
    publish(&threads[1], |s| {
        s.counters.packets = 1234;
        s.counters.flows_created = 17;
        s.counters.flows_expired = 9;
        s.counters.records = 9;
        s.counters.fragments = 4;
        s.counters.reassembled = 2;
        s.counters.truncated_bytes = 300;
        s.active_flows = 8;
        s.counters.anomaly(Anomaly::IpTruncated);
    });
    let server = start(&stats);
    let r = get(server.local_addr(), "/metrics", None);
    assert_eq!(r.status, 200);
    assert!(
        r.content_type.starts_with("text/plain; version=0.0.4"),
        "{}",
        r.content_type
    );
    let (types, samples) = parse_prometheus_text(&r.body);

    for (name, kind) in [
        ("sensor_packets_total", "counter"),
        ("sensor_bytes_total", "counter"),
        ("sensor_non_ip_packets_total", "counter"),
        ("sensor_fragments_total", "counter"),
        ("sensor_reassembled_total", "counter"),
        ("sensor_duplicate_vantage_packets_total", "counter"),
        ("sensor_truncated_bytes_total", "counter"),
        ("sensor_anomalies_total", "counter"),
        ("sensor_drops_total", "counter"),
        ("sensor_flows_active", "gauge"),
        ("sensor_flows_created_total", "counter"),
        ("sensor_flows_expired_total", "counter"),
        ("sensor_records_total", "counter"),
        ("sensor_batch_size", "histogram"),
        ("sensor_batch_latency_seconds", "histogram"),
        ("sensor_ready", "gauge"),
        ("sensor_draining", "gauge"),
        ("sensor_uptime_seconds", "gauge"),
        ("sensor_socket_rcvbuf_bytes", "gauge"),
        ("sensor_threads", "gauge"),
    ] {
        assert_eq!(types.get(name).map(String::as_str), Some(kind), "{name}");
    }

    let rx = [("thread", "rx-vxlan-0"), ("role", "receiver")];
    let w0 = [("thread", "worker-0"), ("role", "worker")];
    assert_eq!(value(&samples, "sensor_packets_total", &rx), 5000.0);
    assert_eq!(value(&samples, "sensor_bytes_total", &rx), 7_000_000.0);
    assert_eq!(value(&samples, "sensor_packets_total", &w0), 1234.0);
    assert_eq!(value(&samples, "sensor_flows_created_total", &w0), 17.0);
    assert_eq!(value(&samples, "sensor_flows_expired_total", &w0), 9.0);
    assert_eq!(value(&samples, "sensor_records_total", &w0), 9.0);
    assert_eq!(value(&samples, "sensor_fragments_total", &w0), 4.0);
    assert_eq!(value(&samples, "sensor_reassembled_total", &w0), 2.0);
    assert_eq!(value(&samples, "sensor_truncated_bytes_total", &w0), 300.0);
    assert_eq!(value(&samples, "sensor_flows_active", &w0), 8.0);
    let vxlan = [rx[0], rx[1], ("reason", "vxlan_malformed")];
    assert_eq!(value(&samples, "sensor_anomalies_total", &vxlan), 2.0);
    let kernel = [rx[0], rx[1], ("reason", "kernel_socket_overflow")];
    assert_eq!(value(&samples, "sensor_drops_total", &kernel), 2.0);

    // Every reason of every thread is a series, zeros included.
    for t in ["rx-vxlan-0", "worker-0", "worker-1", "output"] {
        for a in Anomaly::ALL {
            let l = [("thread", t), ("reason", a.name())];
            value(&samples, "sensor_anomalies_total", &l);
        }
        for d in Drop::ALL {
            value(
                &samples,
                "sensor_drops_total",
                &[("thread", t), ("reason", d.name())],
            );
        }
    }
    assert_eq!(
        find(&samples, "sensor_anomalies_total", &[]).len(),
        4 * Anomaly::COUNT
    );

    // Histograms: cumulative buckets ending at +Inf = _count.
    let le = |name: &str, bound: &str| value(&samples, name, &[rx[0], ("le", bound)]);
    let buckets = find(&samples, "sensor_batch_size_bucket", &rx);
    assert_eq!(buckets.len(), 12, "1..1024 and +Inf");
    assert!(buckets.windows(2).all(|w| w[0].value <= w[1].value));
    let bound = |s: &Sample| s.labels["le"].parse::<f64>().unwrap();
    let at = |b: f64| buckets.iter().find(|s| bound(s) == b).unwrap().value;
    assert_eq!(
        (at(16.0), at(32.0), at(64.0), at(1024.0)),
        (0.0, 10.0, 15.0, 15.0)
    );
    assert_eq!(le("sensor_batch_size_bucket", "+Inf"), 15.0);
    assert_eq!(value(&samples, "sensor_batch_size_count", &rx), 15.0);
    assert_eq!(value(&samples, "sensor_batch_size_sum", &rx), 640.0);
    let lat = find(&samples, "sensor_batch_latency_seconds_bucket", &rx);
    let lat_at = |b: f64| lat.iter().find(|s| bound(s) == b).unwrap().value;
    assert_eq!((lat_at(1e-6), lat_at(2e-6), lat_at(1.0)), (0.0, 15.0, 15.0));
    assert_eq!(
        value(&samples, "sensor_batch_latency_seconds_count", &w0),
        0.0
    );

    assert_eq!(value(&samples, "sensor_ready", &[]), 1.0);
    assert_eq!(value(&samples, "sensor_draining", &[]), 0.0);
    assert_eq!(
        value(&samples, "sensor_socket_rcvbuf_bytes", &[]),
        (8 << 20) as f64
    );
    assert!(value(&samples, "sensor_uptime_seconds", &[]) >= 0.0);
    assert_eq!(
        value(&samples, "sensor_threads", &[("role", "worker")]),
        2.0
    );
    assert_eq!(
        value(&samples, "sensor_threads", &[("role", "receiver")]),
        1.0
    );
    assert_eq!(
        value(&samples, "sensor_threads", &[("role", "output")]),
        1.0
    );
}

#[test]
fn prometheus_gets_openmetrics_when_it_asks() {
    let (stats, _threads) = running_sensor();
    let server = start(&stats);
    let accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
    let r = get(server.local_addr(), "/metrics", Some(accept));
    assert_eq!(r.status, 200);
    assert!(
        r.content_type.starts_with("application/openmetrics-text"),
        "{}",
        r.content_type
    );
    assert!(r.body.ends_with("# EOF\n"));
    assert!(
        r.body.contains("# TYPE sensor_packets counter\n"),
        "{}",
        r.body
    );
    assert!(
        r.body
            .contains("sensor_packets_total{thread=\"worker-0\",role=\"worker\"} 0\n")
    );
}

/// The live runtime may start and stop the server from async code.
#[tokio::test]
async fn starts_and_stops_inside_another_runtime() {
    let (stats, _threads) = running_sensor();
    let server = start(&stats);
    let addr = server.local_addr();
    let status = tokio::task::spawn_blocking(move || get(addr, "/healthz", None).status)
        .await
        .unwrap();
    assert_eq!(status, 200);
    drop(server);
    assert!(TcpStream::connect_timeout(&addr, IO_TIMEOUT).is_err());
}

//! Users rely on one connection giving one flow even when AWS sends its two
//! directions with different outer UDP source ports, so that the kernel's
//! SO_REUSEPORT hash hands them to different receive sockets.
//!
//! Each test sends 64 small TCP connections as VXLAN, each direction of each
//! connection from its own UDP socket (its own outer source port), to a
//! sensor with four receive threads: step k of every connection, a pause,
//! step k+1. The load must spread over more than one receive thread (else
//! the run proves nothing).
//! - Close together (5 ms), each connection must give exactly one record
//!   with both directions counted.
//! - Paced (20 ms, ten times the sensor's 2 ms batch age), the order holds
//!   even without reordering, so the records equal (times aside) what
//!   `sensor pcap` writes for a capture of the same datagrams.
//! - Back to back (no pause), the receive threads' batches reach the
//!   workers out of order, and the workers' reorder window
//!   (`live.reorder_window`) must put the packets back in time order: the
//!   records again equal `sensor pcap`'s, and no packet counts as late.
//!   `DIRECTION_PORTS_REORDER_WINDOW=0s` turns the window off, to see this
//!   test fail without it (on the 2-CPU VM: 72 to 108 differences in 64
//!   connections).
//!
//! All run on a warmed sensor: first every socket sends one SYN to another
//! server port (left out of the comparison), which reaches every receive
//! thread and worker. The first datagrams a thread handles pay for its first
//! memory (page faults, which are slow on a virtual machine); with the two
//! tests' sensors starting at once on two CPUs, that once held a receive
//! thread's first batch back past the next step, 20 ms later.

// Test code: a failed expectation must stop the test with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::net::{Ipv4Addr, UdpSocket};
use std::time::{Duration, Instant};

use sensor_tests::live::{LiveOptions, LiveSensor, TempDir};
use sensor_tests::packets::{outer_udp_frame, pcap_bytes, small_connection, vxlan_tcp};
use sensor_tests::probe::Metrics;
use sensor_tests::records::{differences, flows_only, normalize, parse_lines};
use sensor_tests::sensor::run_pcap;
use serde_json::Value;

const CONNECTIONS: u16 = 64;
const VNI: u32 = 0x00_4242;
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 1);
/// The server port of the warm-up SYNs (the connections use port 80).
const WARM_UP_PORT: u16 = 81;

#[test]
fn directions_from_different_outer_ports_form_one_flow() {
    let run = send_connections(Duration::from_millis(5));
    let ours: Vec<&Value> = run
        .live
        .iter()
        .filter(|r| r["dst_port"] == 80 && r["proto"] == "tcp")
        .collect();
    assert_eq!(
        ours.len(),
        usize::from(CONNECTIONS),
        "expected one record per connection; got {}:\n{}",
        ours.len(),
        ours.iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    for record in &ours {
        assert_eq!(
            (record["orig_pkts"].as_u64(), record["resp_pkts"].as_u64()),
            (Some(5), Some(3)),
            "both directions counted in one record: {record}"
        );
    }
    assert_spread(&run.metrics);
}

#[test]
fn paced_directions_on_different_sockets_keep_their_order() {
    let run = send_connections(Duration::from_millis(20));
    assert_same_as_offline(
        &run,
        "with a connection's packets 20 ms apart",
        "a receive thread held packets back past its batch age",
    );
    assert_spread(&run.metrics);
}

#[test]
fn back_to_back_directions_on_different_sockets_are_put_back_in_order() {
    // No pause: the steps of all connections follow each other within a
    // few milliseconds, so the receive threads' batches reach the workers
    // out of order; the workers' reorder window puts them back. The window
    // is wide here so that a receive thread that waits for a CPU on a busy
    // 2-CPU CI machine still makes it (the default, 20 ms, is for
    // production, where the threads have their cores).
    let window = std::env::var("DIRECTION_PORTS_REORDER_WINDOW").unwrap_or("500ms".into());
    let run = send_connections_with(
        Duration::ZERO,
        vec![("SENSOR_LIVE_REORDER_WINDOW".into(), window)],
    );
    assert_same_as_offline(
        &run,
        "with no pause between steps",
        "the workers did not restore packet-time order",
    );
    assert_eq!(
        run.metrics
            .sum("sensor_anomalies_total", &[("reason", "packet_late")]),
        0.0,
        "no packet may be processed after a later one"
    );
    assert_spread(&run.metrics);
}

/// Fails unless the live records of the compared connections equal the
/// offline ones (times aside); `when` and `why` explain a failure.
fn assert_same_as_offline(run: &Outcome, when: &str, why: &str) {
    let actual: Vec<Value> = run
        .live
        .iter()
        .filter(|r| r["dst_port"] != WARM_UP_PORT)
        .map(|r| normalize(r, &[]))
        .collect();
    let diff = differences(&run.offline, &actual);
    assert!(
        diff.is_empty(),
        "{when}, live records differ from offline ({} of {} connections); {why}:\n{}",
        diff.len(),
        CONNECTIONS,
        diff.join("\n")
    );
}

/// What one run gave.
struct Outcome {
    /// The sensor's flow records.
    live: Vec<Value>,
    /// `sensor pcap` of the same datagrams, normalized.
    offline: Vec<Value>,
    /// `/metrics` after sending, before the signal.
    metrics: Metrics,
}

fn send_connections(pause: Duration) -> Outcome {
    send_connections_with(pause, Vec::new())
}

fn send_connections_with(pause: Duration, env: Vec<(String, String)>) -> Outcome {
    let dir = TempDir::new("direction-ports");
    let options = LiveOptions {
        rx_threads: Some(4),
        workers: Some(2),
        drain: Duration::from_millis(500),
        env,
        ..LiveOptions::default()
    };
    let mut sensor = LiveSensor::start_ready(&dir, &options);

    // Per connection: (client-side socket, server-side socket), each with
    // its own ephemeral port.
    let sockets: Vec<(UdpSocket, UdpSocket)> = (0..CONNECTIONS)
        .map(|_| {
            let bind = || UdpSocket::bind("127.0.0.1:0").expect("bind a loopback UDP socket");
            (bind(), bind())
        })
        .collect();
    let connections: Vec<_> = (0..CONNECTIONS)
        .map(|i| small_connection((CLIENT, 20_000 + i), (SERVER, 80)))
        .collect();

    // Warm-up (see the module documentation): from each socket, so through
    // the receive threads the connections will use, one SYN of a flow that
    // is not compared; then time for it to reach the workers.
    for (i, (client_socket, server_socket)) in (0..CONNECTIONS).zip(&sockets) {
        let warm_up = small_connection((CLIENT, 20_000 + i), (SERVER, WARM_UP_PORT));
        let (_, syn) = &warm_up[0];
        for socket in [client_socket, server_socket] {
            socket
                .send_to(&vxlan_tcp(VNI, syn), sensor.vxlan)
                .expect("send on loopback");
        }
    }
    std::thread::sleep(Duration::from_millis(300));

    let mut reference = Vec::new();
    let mut ts_us: i64 = 1_700_000_000_000_000;
    for step in 0..connections[0].len() {
        for (connection, (client_socket, server_socket)) in connections.iter().zip(&sockets) {
            let (from_client, segment) = &connection[step];
            let socket = if *from_client {
                client_socket
            } else {
                server_socket
            };
            let datagram = vxlan_tcp(VNI, segment);
            socket
                .send_to(&datagram, sensor.vxlan)
                .expect("send on loopback");
            let sport = socket.local_addr().unwrap().port();
            reference.push((ts_us, outer_udp_frame(sport, 4789, &datagram)));
            ts_us += 1_000;
        }
        std::thread::sleep(pause);
    }
    // Read before the signal (afterwards the endpoints may be gone), once
    // the receivers have published every datagram (they publish about every
    // 100 ms).
    // Both sockets of every connection sent one warm-up SYN.
    let sent = (reference.len() + 2 * usize::from(CONNECTIONS)) as f64;
    let deadline = Instant::now() + Duration::from_secs(5);
    let metrics = loop {
        let metrics = sensor.metrics();
        let received = metrics.sum("sensor_packets_total", &[("role", "receiver")]);
        if received >= sent || Instant::now() > deadline {
            break metrics;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    sensor.stop(options.drain, Duration::from_secs(15));

    let capture = dir.join("reference.pcap");
    std::fs::write(&capture, pcap_bytes(&reference)).unwrap();
    let offline = run_pcap(&[capture.as_path()], &[]);
    assert!(offline.status.success(), "sensor pcap: {}", offline.stderr);
    let offline: Vec<Value> = flows_only(parse_lines(&offline.stdout))
        .iter()
        .map(|r| normalize(r, &[]))
        .collect();
    assert_eq!(
        offline.len(),
        usize::from(CONNECTIONS),
        "the reference capture gives one record per connection"
    );
    Outcome {
        live: sensor.flow_records(),
        offline,
        metrics,
    }
}

/// Fails unless more than one receive thread got datagrams.
fn assert_spread(metrics: &Metrics) {
    let busy_receivers = metrics
        .samples
        .iter()
        .filter(|s| s.name == "sensor_packets_total" && s.value > 0.0)
        .filter(|s| {
            s.labels
                .iter()
                .any(|(k, v)| k == "role" && (v.starts_with("rx") || v.starts_with("rec")))
        })
        .count();
    assert!(
        busy_receivers >= 2,
        "all datagrams went to one receive thread, so this run proves nothing; \
         /metrics sensor_packets_total: {:?}",
        metrics.nonzero("sensor_packets_total")
    );
}

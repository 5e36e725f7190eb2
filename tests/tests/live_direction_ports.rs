//! Users rely on one connection giving one flow even when AWS sends its two
//! directions with different outer UDP source ports, so that the kernel's
//! SO_REUSEPORT hash hands them to different receive sockets.
//!
//! The test sends 64 small TCP connections as VXLAN, each direction of each
//! connection from its own UDP socket (its own outer source port), to a
//! sensor with four receive threads, paced so that each connection's
//! packets stay in order. It expects exactly one record per connection with
//! both directions counted, equal (times aside) to what `sensor pcap`
//! writes for a capture of the same datagrams, and the load spread over
//! more than one receive thread (else the test would prove nothing).

// Test code: a failed expectation must stop the test with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::net::{Ipv4Addr, UdpSocket};
use std::time::Duration;

use sensor_tests::live::{LiveOptions, LiveSensor, TempDir};
use sensor_tests::packets::{outer_udp_frame, pcap_bytes, small_connection, vxlan_tcp};
use sensor_tests::records::{differences, flows_only, normalize, parse_lines};
use sensor_tests::sensor::run_pcap;
use serde_json::Value;

const CONNECTIONS: u16 = 64;
const VNI: u32 = 0x00_4242;
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 1);

#[test]
fn directions_from_different_outer_ports_form_one_flow() {
    let dir = TempDir::new("direction-ports");
    let options = LiveOptions {
        rx_threads: Some(4),
        workers: Some(2),
        drain: Duration::from_millis(500),
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

    // Step k of every connection, then a pause: a connection's packets are
    // 5 ms apart, far more than any reordering between receive threads.
    let mut reference = Vec::new();
    let mut ts_us: i64 = 1_700_000_000_000_000;
    let steps = connections[0].len();
    for step in 0..steps {
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
        std::thread::sleep(Duration::from_millis(5));
    }
    // Readiness and the spread are read before the signal: afterwards the
    // endpoints may be gone.
    let metrics = sensor.metrics();
    sensor.stop(options.drain, Duration::from_secs(15));

    let capture = dir.join("reference.pcap");
    std::fs::write(&capture, pcap_bytes(&reference)).unwrap();
    let offline = run_pcap(&[capture.as_path()], &[]);
    assert!(offline.status.success(), "sensor pcap: {}", offline.stderr);
    let expected: Vec<Value> = flows_only(parse_lines(&offline.stdout))
        .iter()
        .map(|r| normalize(r, &[]))
        .collect();
    let live = sensor.flow_records();

    // What the user relies on, stated plainly first.
    let ours: Vec<&Value> = live
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
    let actual: Vec<Value> = live.iter().map(|r| normalize(r, &[])).collect();
    let diff = differences(&expected, &actual);
    assert!(diff.is_empty(), "live vs offline:\n{}", diff.join("\n"));

    let busy_receivers = metrics
        .samples
        .iter()
        .filter(|s| s.name == "sensor_packets_total" && s.value > 0.0)
        .filter(|s| s.labels.iter().any(|(k, v)| k == "role" && is_receiver(v)))
        .count();
    assert!(
        busy_receivers >= 2,
        "all datagrams went to one receive thread, so this run proves nothing; \
         /metrics sensor_packets_total: {:?}",
        metrics.nonzero("sensor_packets_total")
    );
}

fn is_receiver(role: &str) -> bool {
    role.starts_with("rx") || role.starts_with("rec")
}

//! Users rely on a graceful drain behind a load balancer: `/readyz` answers
//! 200 while running and 503 within a second of SIGTERM (so the balancer
//! stops sending), the sensor keeps receiving for the drain period (the
//! balancer's deregistration delay), then writes every flow and exits 0.
//! No flow seen before the signal may lose its record, nor one seen during
//! the drain.

// Test code: a failed expectation must stop the test with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use sensor_tests::live::{LiveOptions, LiveSensor, TempDir};
use sensor_tests::packets::{small_connection, vxlan_tcp};
use sensor_tests::records::{flows_only, parse_lines};
use sensor_tests::replay::replay;
use sensor_tests::sensor::run_pcap;
use sensor_tests::workspace_root;

const DRAIN: Duration = Duration::from_secs(3);
/// Flushing and exiting after the drain may take this long on a busy machine.
const EXIT_MARGIN: Duration = Duration::from_secs(10);

#[test]
fn sigterm_fails_readiness_drains_then_writes_everything_and_exits_0() {
    let capture = workspace_root().join("pcaps/aws-mirror/vxlan.pcap");
    let dir = TempDir::new("drain");
    let options = LiveOptions {
        rx_threads: Some(2),
        workers: Some(2),
        drain: DRAIN,
        ..LiveOptions::default()
    };
    let mut sensor = LiveSensor::start_ready(&dir, &options);

    // Before the signal: the capture as AWS delivers it (VNIs 1..), all of
    // it sent and received.
    replay(
        &[&capture],
        sensor.vxlan,
        &["--encap", "none", "--pps", "5000"],
        Duration::from_secs(60),
    )
    .assert_success();
    assert_eq!(
        sensor.get("/readyz").map(|r| r.0),
        Ok(200),
        "ready before the signal"
    );

    sensor.signal("TERM");
    let signalled = Instant::now();
    let mut readiness_failed_after = None;
    while signalled.elapsed() < Duration::from_secs(1) {
        match sensor.get("/readyz") {
            Ok((503, _)) => {
                readiness_failed_after = Some(signalled.elapsed());
                break;
            }
            Ok(_) => {}
            Err(e) => panic!("/readyz must keep answering (503) while draining: {e}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let readiness_failed_after =
        readiness_failed_after.expect("/readyz still not 503 one second after SIGTERM");
    assert_eq!(
        sensor.get("/healthz").map(|r| r.0),
        Ok(200),
        "/healthz (alive) stays 200 while draining"
    );

    // During the drain: new connections (VNI 0x777) must still be received
    // and recorded.
    let during_drain = send_connections(sensor.vxlan);
    let sent_during_drain = signalled.elapsed();
    assert!(
        sent_during_drain < DRAIN,
        "sending during the drain ended {sent_during_drain:?} after the signal, \
         after the drain; the machine is too slow for this test's timing"
    );

    let status = sensor
        .wait_exit(DRAIN + EXIT_MARGIN)
        .unwrap_or_else(|| panic!("still running {:?} after SIGTERM", DRAIN + EXIT_MARGIN));
    let exited_after = signalled.elapsed();
    assert!(
        status.success(),
        "exit status {status}\n{}",
        sensor.stderr()
    );
    assert!(
        exited_after >= DRAIN,
        "exited {exited_after:?} after SIGTERM, before the {DRAIN:?} drain ended"
    );

    let live: BTreeSet<String> = sensor.flow_records().iter().map(flow_key).collect();
    let run = run_pcap(&[capture.as_path()], &[]);
    assert!(run.status.success(), "sensor pcap: {}", run.stderr);
    let before: Vec<String> = flows_only(parse_lines(&run.stdout))
        .iter()
        .map(flow_key)
        .collect();
    let missing: Vec<&String> = before
        .iter()
        .chain(&during_drain)
        .filter(|k| !live.contains(*k))
        .collect();
    assert!(
        missing.is_empty(),
        "{} flows have no record after the drain:\n{}",
        missing.len(),
        missing
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    println!(
        "/readyz 503 after {readiness_failed_after:?}; exit 0 after {exited_after:?} \
         (drain {DRAIN:?}); {} flows recorded, none missing",
        live.len()
    );
}

/// `vni N proto a:p b:q`, endpoints in order (so a record whose roles
/// were decided differently still matches).
fn flow_key(record: &Value) -> String {
    let endpoint = |ip: &str, port: &str| format!("{}:{}", record[ip], record[port]);
    let mut ends = [
        endpoint("src_ip", "src_port"),
        endpoint("dst_ip", "dst_port"),
    ];
    ends.sort();
    format!(
        "vni {} {} {} {}",
        record["tunnel"][0]["vni"], record["proto"], ends[0], ends[1]
    )
}

/// Sends 32 small TCP connections (VNI 0x777), each direction from its own
/// socket, and returns their flow keys.
fn send_connections(to: SocketAddr) -> Vec<String> {
    const VNI: u32 = 0x777;
    let (client, server) = (Ipv4Addr::new(10, 9, 0, 1), Ipv4Addr::new(10, 9, 0, 2));
    let bind = || UdpSocket::bind("127.0.0.1:0").expect("bind a loopback UDP socket");
    let (client_socket, server_socket) = (bind(), bind());
    let mut keys = Vec::new();
    for i in 0..32u16 {
        let port = 30_000 + i;
        for (from_client, segment) in small_connection((client, port), (server, 80)) {
            let socket = if from_client {
                &client_socket
            } else {
                &server_socket
            };
            socket
                .send_to(&vxlan_tcp(VNI, &segment), to)
                .expect("send on loopback");
        }
        keys.push(flow_key(&json!({
            "tunnel": [{"vni": VNI}], "proto": "tcp",
            "src_ip": client.to_string(), "src_port": port,
            "dst_ip": server.to_string(), "dst_port": 80,
        })));
        std::thread::sleep(Duration::from_millis(2));
    }
    keys
}

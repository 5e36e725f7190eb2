//! Users rely on a graceful drain behind a load balancer: `/readyz` answers
//! 200 while running and 503 within a second of SIGTERM (so the balancer
//! stops sending), the sensor keeps receiving for the drain period (the
//! balancer's deregistration delay), then writes every flow and exits 0.
//! No flow seen before the signal may lose its record, nor one seen during
//! the drain.

// Test code: a failed expectation must stop the test with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use sensor_tests::live::{LiveOptions, LiveSensor, TempDir};
use sensor_tests::records::{five_tuple, flows_only, parse_lines};
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

    // During the drain: the same capture wrapped again under another VNI
    // must still be received and recorded.
    replay(
        &[&workspace_root().join("pcaps/aws-mirror/plain.pcap")],
        sensor.vxlan,
        &["--encap", "vxlan", "--vni", "777", "--pps", "5000"],
        Duration::from_secs(60),
    )
    .assert_success();
    let sent_during_drain = signalled.elapsed();
    assert!(
        sent_during_drain < DRAIN,
        "the second replay took {sent_during_drain:?}, longer than the drain; \
         the machine is too slow for this test's timing"
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

    let live: BTreeSet<String> = sensor
        .flow_records()
        .iter()
        .map(|r| format!("vni {} {}", vni(r), five_tuple(r)))
        .collect();
    let mut missing = Vec::new();
    for (file, wrap_vni) in [
        (&capture, None),
        (
            &workspace_root().join("pcaps/aws-mirror/plain.pcap"),
            Some(777),
        ),
    ] {
        for key in offline_keys(file, wrap_vni) {
            if !live.contains(&key) {
                missing.push(key);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} flows have no record after the drain:\n{}",
        missing.len(),
        missing.join("\n")
    );
    println!(
        "/readyz 503 after {readiness_failed_after:?}; exit 0 after {exited_after:?} \
         (drain {DRAIN:?}); {} flows recorded, none missing",
        live.len()
    );
}

/// `vni N proto a:p -> b:q` of every flow `sensor pcap` finds in `file`;
/// `wrap_vni` is the VNI a replay wraps a plain capture in.
fn offline_keys(file: &Path, wrap_vni: Option<u64>) -> Vec<String> {
    let run = run_pcap(&[file], &[]);
    assert!(
        run.status.success(),
        "sensor pcap {}: {}",
        file.display(),
        run.stderr
    );
    flows_only(parse_lines(&run.stdout))
        .iter()
        .map(|r| {
            let vni = wrap_vni.unwrap_or_else(|| vni(r));
            format!("vni {vni} {}", five_tuple(r))
        })
        .collect()
}

fn vni(record: &serde_json::Value) -> u64 {
    record["tunnel"][0]["vni"].as_u64().unwrap_or(0)
}

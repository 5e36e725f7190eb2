//! Users load-test with a looped replay and rely on every pass being new
//! traffic: with `--unique-ip`, a capture sent twice into `sensor run` gives
//! its records twice, the second time with every inner address moved by one
//! (its last 16 bits), and otherwise equal to what `sensor pcap` writes for
//! the file (times, uid and Community ID aside: they follow from times and
//! addresses). Without it, the second pass's connections are the first's:
//! the records are not doubled.

// Test code: a failed expectation must stop the test with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use sensor_tests::live::{LiveOptions, LiveSensor, TempDir};
use sensor_tests::records::{differences, kind, normalize, parse_lines};
use sensor_tests::replay::{number_by, replay};
use sensor_tests::sensor::run_pcap;
use sensor_tests::workspace_root;
use serde_json::Value;

/// `addr` with `offset` added to its last 16 bits.
fn moved(addr: &str, offset: u16) -> String {
    match addr.parse::<IpAddr>().expect("an address") {
        IpAddr::V4(a) => {
            let mut o = a.octets();
            let low = u16::from_be_bytes([o[2], o[3]]).wrapping_add(offset);
            o[2..].copy_from_slice(&low.to_be_bytes());
            IpAddr::from(o).to_string()
        }
        IpAddr::V6(a) => {
            let mut s = a.segments();
            s[7] = s[7].wrapping_add(offset);
            IpAddr::from(s).to_string()
        }
    }
}

/// A normalized record without its Community ID, addresses moved.
fn comparable(record: &Value, offset: u16) -> Value {
    let mut r = normalize(record, &[]);
    let object = r.as_object_mut().unwrap();
    object.remove("community_id");
    for field in ["src_ip", "dst_ip"] {
        if let Some(Value::String(a)) = object.get(field) {
            let a = moved(a, offset);
            object.insert(field.into(), Value::String(a));
        }
    }
    r
}

fn live_records(capture: &Path, extra: &[&str], label: &str) -> Vec<Value> {
    let dir = TempDir::new(label);
    let options = LiveOptions {
        rx_threads: Some(1),
        workers: Some(1),
        drain: Duration::from_millis(500),
        ..LiveOptions::default()
    };
    let mut sensor = LiveSensor::start_ready(&dir, &options);
    let mut args = vec!["--encap", "none", "--pps", "20000", "--loop", "2"];
    args.extend_from_slice(extra);
    let run = replay(&[capture], sensor.vxlan, &args, Duration::from_secs(60));
    run.assert_success();
    if !extra.is_empty() {
        let unchanged = format!("{}\n{}", run.stdout, run.stderr)
            .lines()
            .find_map(|l| number_by(l, "unique_ip_unchanged"));
        assert_eq!(
            unchanged,
            Some(0),
            "every datagram renumbered:\n{}",
            run.stderr
        );
    }
    sensor.stop(options.drain, Duration::from_secs(15));
    sensor.records()
}

#[test]
fn each_pass_of_a_unique_ip_replay_is_new_traffic() {
    let capture = workspace_root().join("pcaps/aws-mirror/vxlan.pcap");
    let offline = run_pcap(&[capture.as_path()], &[]);
    assert!(offline.status.success(), "sensor pcap: {}", offline.stderr);
    let offline = parse_lines(&offline.stdout);
    for app in ["flow", "dns", "http"] {
        assert!(
            offline.iter().any(|r| kind(r) == app),
            "the capture gives no {app} record"
        );
    }

    // Pass 0 goes as it is, pass 1 one address further on.
    let expected: Vec<Value> = [0, 1]
        .iter()
        .flat_map(|&offset| offline.iter().map(move |r| comparable(r, offset)))
        .collect();
    let unique = live_records(&capture, &["--unique-ip"], "unique-ip");
    let actual: Vec<Value> = unique.iter().map(|r| comparable(r, 0)).collect();
    let diff = differences(&expected, &actual);
    assert!(
        diff.is_empty(),
        "{} live records vs {} expected (two passes of {}); {} differences:\n{}",
        actual.len(),
        expected.len(),
        offline.len(),
        diff.len(),
        diff.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
    );

    // The same two passes without --unique-ip are one pass's connections
    // seen again: fewer flow and HTTP records than two passes.
    let looped = live_records(&capture, &[], "looped");
    for app in ["flow", "http"] {
        let count = |records: &[Value]| records.iter().filter(|r| kind(r) == app).count();
        assert!(
            count(&looped) < count(&unique),
            "{app}: {} records looped, {} with --unique-ip",
            count(&looped),
            count(&unique)
        );
    }
}

//! Users rely on live and offline giving the same records: a capture
//! replayed over loopback into `sensor run` yields what `sensor pcap` writes
//! for the same file, equal in every field but the times (and the uid made
//! from them) and the outer tunnel addresses (the replay's loopback ones).
//!
//! Captures already encapsulated (VXLAN, GENEVE) are replayed with
//! `--encap none` to the matching port; plain captures with `--encap vxlan
//! --vni N`, so their live records carry one more layer, `vxlan` with that
//! VNI, in front of what `sensor pcap` reports. One receive thread keeps the
//! datagrams in order. The captures are short (no idle gap near a flow
//! timeout), because a replay does not keep the capture's pauses.
//!
//! Application records (DNS, HTTP) are compared too: the captures include
//! HTTP (Zeek's `http/get.pcap`, HTTP in VXLAN and GENEVE) and DNS over UDP
//! (the AWS capture) and TCP (`dns-tcp-www-google-com`).

// Test code: a failed expectation must stop the test with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use sensor_tests::corpus::corpus_location;
use sensor_tests::live::{LiveOptions, LiveSensor, TempDir};
use sensor_tests::records::{differences, kind, normalize, parse_lines};
use sensor_tests::replay::replay;
use sensor_tests::sensor::run_pcap;
use sensor_tests::workspace_root;
use serde_json::{Value, json};

/// How a capture is sent.
#[derive(Debug, Clone, Copy)]
enum Send {
    /// Already VXLAN: `--encap none` to the VXLAN port.
    VxlanAsIs,
    /// Already GENEVE: `--encap none` to the GENEVE port.
    GeneveAsIs,
    /// Plain: `--encap vxlan --vni N` to the VXLAN port.
    WrapVxlan(u32),
}

/// Corpus captures (paths under `pcaps/`), chosen short, untruncated, on
/// Ethernet, and covering TCP, UDP (QUIC), IPv6 with fragments, SCTP, a
/// reordered handshake, VXLAN with reserved bits set and GENEVE options.
/// Not here: captures with frames over 9216 bytes (offloaded super-frames,
/// such as Zeek's `geneve-47101.pcap`): the live receive buffer holds 9216
/// bytes, the most a mirror session delivers, so live counts the rest as
/// truncated where offline does not.
const CORPUS_CASES: &[(&str, Send)] = &[
    (
        "zeek+zeek/testing/btest/Traces/http/get.pcap",
        Send::WrapVxlan(101),
    ),
    (
        "OISF+suricata-verify/tests/community-id-ipv6/input.pcap",
        Send::WrapVxlan(102),
    ),
    (
        "OISF+suricata-verify/tests/dns/dns-tcp-www-google-com/dns.pcap",
        Send::WrapVxlan(103),
    ),
    (
        "zeek+zeek/testing/btest/Traces/quic/chromium-115.0.5790.110-api-cirrus-com.pcap",
        Send::WrapVxlan(104),
    ),
    (
        "zeek+zeek/testing/btest/Traces/ipv6-http-atomic-frag.pcap",
        Send::WrapVxlan(105),
    ),
    (
        "zeek+zeek/testing/btest/Traces/tcp/handshake-reorder.pcap",
        Send::WrapVxlan(106),
    ),
    (
        "zeek+zeek/testing/btest/Traces/communityid/sctp.pcap",
        Send::WrapVxlan(107),
    ),
    (
        "zeek+zeek/testing/btest/Traces/tunnels/vxlan-encapsulated-http.pcap",
        Send::VxlanAsIs,
    ),
    (
        "OISF+suricata-verify/tests/vxlan-non-zero-reserved-fields/input.pcap",
        Send::VxlanAsIs,
    ),
    (
        "zeek+zeek/testing/btest/Traces/tunnels/geneve-many-options.pcap",
        Send::GeneveAsIs,
    ),
];

#[test]
fn replayed_captures_give_the_offline_records() {
    let mut cases: Vec<(PathBuf, Send)> = vec![(
        workspace_root().join("pcaps/aws-mirror/vxlan.pcap"),
        Send::VxlanAsIs,
    )];
    let corpus = corpus_location().join("pcaps");
    if corpus.is_dir() {
        cases.extend(CORPUS_CASES.iter().map(|(p, s)| (corpus.join(p), *s)));
    } else {
        println!(
            "corpus not found at {}: only the bundled AWS capture is replayed",
            corpus.display()
        );
    }

    let mut expected = Vec::new();
    for (file, send) in &cases {
        let run = run_pcap(&[file.as_path()], &[]);
        assert!(
            run.status.success(),
            "sensor pcap {}: {}",
            file.display(),
            run.stderr
        );
        let records = parse_lines(&run.stdout);
        // Only what travelled in the tunnel reaches the sensor's tunnel
        // socket; the capture's other packets do not. Application records
        // have no tunnel list: their flow's (same uid) decides.
        let tunneled: std::collections::BTreeSet<&str> = records
            .iter()
            .filter(|r| outermost_tunnel(r).is_some_and(|t| t == "vxlan" || t == "geneve"))
            .filter_map(|r| r["uid"].as_str())
            .collect();
        for record in &records {
            if kind(record) != "flow" {
                let keep = matches!(send, Send::WrapVxlan(_))
                    || record["uid"].as_str().is_some_and(|u| tunneled.contains(u));
                if keep {
                    expected.push(normalize(record, &[]));
                }
                continue;
            }
            let record = record.clone();
            match send {
                Send::WrapVxlan(vni) => {
                    expected.push(normalize(&record, &[json!({"type": "vxlan", "vni": vni})]));
                }
                // Only what travelled in the tunnel reaches the sensor's
                // tunnel socket; the capture's other packets do not.
                Send::VxlanAsIs | Send::GeneveAsIs => {
                    if outermost_tunnel(&record).is_some_and(|t| t == "vxlan" || t == "geneve") {
                        expected.push(normalize(&record, &[]));
                    }
                }
            }
        }
    }

    let dir = TempDir::new("equals-offline");
    let options = LiveOptions {
        rx_threads: Some(1),
        workers: Some(2),
        drain: Duration::from_millis(500),
        ..LiveOptions::default()
    };
    let mut sensor = LiveSensor::start_ready(&dir, &options);
    for (file, send) in &cases {
        let vni_arg;
        let (to, args): (_, Vec<&str>) = match send {
            Send::VxlanAsIs => (sensor.vxlan, vec!["--encap", "none"]),
            Send::GeneveAsIs => (sensor.geneve, vec!["--encap", "none"]),
            Send::WrapVxlan(vni) => {
                vni_arg = vni.to_string();
                (sensor.vxlan, vec!["--encap", "vxlan", "--vni", &vni_arg])
            }
        };
        let mut args = args;
        args.extend(["--pps", "2000"]);
        replay(&[file.as_path()], to, &args, Duration::from_secs(60)).assert_success();
    }
    sensor.stop(options.drain, Duration::from_secs(15));

    let actual: Vec<Value> = sensor.records().iter().map(|r| normalize(r, &[])).collect();
    for app in ["dns", "http"] {
        let n = expected.iter().filter(|r| kind(r) == app).count();
        assert!(n > 0, "the captures gave no {app} record offline");
    }
    let diff = differences(&expected, &actual);
    assert!(
        diff.is_empty(),
        "{} live records vs {} offline records from {} captures; {} differences:\n{}",
        actual.len(),
        expected.len(),
        cases.len(),
        diff.len(),
        diff.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
    );
    println!(
        "{} records (flow, dns, http) from {} captures are equal live and offline",
        actual.len(),
        cases.len()
    );
}

fn outermost_tunnel(record: &Value) -> Option<&str> {
    record.get("tunnel")?.get(0)?.get("type")?.as_str()
}

//! Users rely on the sensor to see, inside VXLAN and GENEVE, exactly the
//! flows that a packet dissector sees: the same inner 5-tuples (no more, no
//! fewer, none split or merged), each with the same packet and IP byte counts
//! per direction (and UDP payload bytes), starting at its first packet, and
//! carrying the innermost VXLAN/GENEVE VNI; and to report the AWS Gateway
//! Load Balancer's GENEVE options (endpoint id, attachment id, flow cookie)
//! on every flow that came through one.
//!
//! The reference is tshark (`sensor_tests::tshark`), grouped into flows by
//! `sensor_tests::reference`: innermost flow after every tunnel the sensor
//! removes (VXLAN, GENEVE, GRE, ERSPAN, IP in IP), oriented by Zeek's rules
//! (SYN sender; else the first sender unless it came from a likely server
//! port), split after Zeek's idle timeouts. The captures are the real AWS
//! Traffic Mirroring capture and every `encap` capture of the corpus in which
//! tshark decodes VXLAN or GENEVE (with the sensor's extra VXLAN port 8472).

// Test code: a failed expectation must stop the test with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sensor_tests::corpus::{Corpus, corpus_or_skip};
use sensor_tests::flow::{Flow, FlowKey};
use sensor_tests::parallel_map;
use sensor_tests::reference::{RefFlow, group_flows};
use sensor_tests::sensor::flows_of;
use sensor_tests::tshark::{Dissection, SENSOR_TUNNELS, frame_fields};

/// The capture from AWS Traffic Mirroring that must always work.
const AWS_MIRROR: (&str, &str) = ("OISF+suricata-verify", "tests/vxlan-decoder-03/vxlan.pcap");
/// The capture from an AWS Gateway Load Balancer.
const AWS_GWLB: (&str, &str) = ("OISF+suricata-verify", "tests/bug-6402-01/input.pcap");

/// Option class AWS uses for its GENEVE options.
const AWS_OPTION_CLASS: u64 = 0x0108;

#[test]
fn encap_vs_tshark() {
    let Some(corpus) = corpus_or_skip() else {
        return;
    };
    sensor_tests::tshark::require_tshark();
    let dissections = tunneled_captures(&corpus);
    let aws = corpus.pcap(AWS_MIRROR.0, AWS_MIRROR.1);
    assert!(
        dissections.iter().any(|d| d.file == aws),
        "the AWS mirror capture {} is not among the VXLAN/GENEVE captures",
        aws.display()
    );
    let reports = parallel_map(&dissections, 2, |dissection| {
        compare_capture(&corpus, dissection)
    });
    let mut failures = Vec::new();
    let mut flows_checked = 0;
    for (checked, problems) in reports {
        flows_checked += checked;
        failures.extend(problems);
    }
    let names: Vec<_> = dissections
        .iter()
        .map(|d| corpus.relative(&d.file))
        .collect();
    println!(
        "compared {flows_checked} reference flows in {} captures: {}",
        dissections.len(),
        names.join(", ")
    );
    assert!(
        failures.is_empty(),
        "{} differences between the sensor and tshark:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The AWS mirror capture and every `encap` capture that tshark decodes as
/// VXLAN or GENEVE, dissected once.
fn tunneled_captures(corpus: &Corpus) -> Vec<Dissection> {
    let aws = corpus.pcap(AWS_MIRROR.0, AWS_MIRROR.1);
    let mut files: Vec<PathBuf> = corpus
        .category("encap")
        .map(|e| corpus.entry_path(e))
        .filter(|p| *p != aws)
        .collect();
    files.insert(0, aws);
    parallel_map(&files, 2, |file| Dissection::of(file))
        .into_iter()
        .filter(|d| d.contains_protocol(&["vxlan", "geneve"]))
        .collect()
}

/// Compares one capture; returns how many reference flows it had and one
/// line per difference.
fn compare_capture(corpus: &Corpus, dissection: &Dissection) -> (usize, Vec<String>) {
    let name = corpus.relative(&dissection.file).into_owned();
    let reference = group_flows(&dissection.packets(SENSOR_TUNNELS));
    let sensor = flows_of(&dissection.file, &[]);
    let mut problems = Vec::new();
    let mut by_key: BTreeMap<FlowKey, (Vec<&RefFlow>, Vec<&Flow>)> = BTreeMap::new();
    for flow in &reference {
        by_key.entry(flow.key).or_default().0.push(flow);
    }
    for flow in &sensor {
        by_key.entry(flow.key()).or_default().1.push(flow);
    }
    for (key, (mut expected, mut actual)) in by_key {
        if expected.len() != actual.len() {
            problems.push(format!(
                "{name}: {key}: tshark sees {} flow(s) (frames {:?}, VNIs {:?}), the sensor \
                 reports {}",
                expected.len(),
                expected
                    .iter()
                    .map(|f| f.frames.clone())
                    .collect::<Vec<_>>(),
                expected.iter().map(|f| f.vni).collect::<Vec<_>>(),
                actual.len()
            ));
            continue;
        }
        expected.sort_by_key(|f| (f.first_micros, f.frames[0]));
        actual.sort_by_key(|f| f.start_micros());
        for (reference_flow, sensor_flow) in expected.into_iter().zip(actual) {
            compare_flow(&name, reference_flow, sensor_flow, &mut problems);
        }
    }
    (reference.len(), problems)
}

fn compare_flow(name: &str, expected: &RefFlow, actual: &Flow, problems: &mut Vec<String>) {
    let label = format!(
        "{name}: {} -> {} proto {}",
        expected.src, expected.dst, expected.key.proto
    );
    let mut differ = |what: &str, tshark: String, sensor: String| {
        if tshark != sensor {
            problems.push(format!("{label}: {what}: tshark {tshark}, sensor {sensor}"));
        }
    };
    differ(
        "originator -> responder",
        format!("{} -> {}", expected.src, expected.dst),
        format!("{} -> {}", actual.src(), actual.dst()),
    );
    // Counts are compared in the reference's orientation, so that a flipped
    // flow is reported once (above) rather than as every count differing.
    let flipped = actual.src() != expected.src && actual.src() == expected.dst;
    let (orig_pkts, resp_pkts, orig_ip, resp_ip, orig_payload, resp_payload) = if flipped {
        let a = actual;
        (
            a.resp_pkts,
            a.orig_pkts,
            a.resp_ip_bytes,
            a.orig_ip_bytes,
            a.resp_bytes,
            a.orig_bytes,
        )
    } else {
        let a = actual;
        (
            a.orig_pkts,
            a.resp_pkts,
            a.orig_ip_bytes,
            a.resp_ip_bytes,
            a.orig_bytes,
            a.resp_bytes,
        )
    };
    differ(
        "packets orig/resp",
        format!("{}/{}", expected.orig_pkts, expected.resp_pkts),
        format!("{orig_pkts}/{resp_pkts}"),
    );
    differ(
        "IP bytes orig/resp",
        format!("{}/{}", expected.orig_ip_bytes, expected.resp_ip_bytes),
        format!("{orig_ip}/{resp_ip}"),
    );
    if expected.key.proto == 17 {
        differ(
            "UDP payload bytes orig/resp",
            format!(
                "{}/{}",
                expected.orig_payload_bytes, expected.resp_payload_bytes
            ),
            format!("{orig_payload}/{resp_payload}"),
        );
    }
    differ(
        "start time (us)",
        expected.first_micros.to_string(),
        actual.start_micros().to_string(),
    );
    if let Some(vni) = expected.vni {
        let innermost = actual
            .tunnel
            .iter()
            .rev()
            .find(|t| {
                matches!(
                    t.get("type").and_then(|k| k.as_str()),
                    Some("vxlan" | "geneve")
                )
            })
            .and_then(|t| t.get("vni"))
            .and_then(serde_json::Value::as_u64);
        differ(
            "innermost VNI",
            vni.to_string(),
            innermost.map_or_else(|| format!("none in {:?}", actual.tunnel), |v| v.to_string()),
        );
    }
}

/// The three AWS GWLB option values of one GENEVE header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct GwlbIds {
    endpoint_id: u64,
    attachment_id: u64,
    flow_cookie: u64,
}

#[test]
fn gwlb_geneve_options() {
    let Some(corpus) = corpus_or_skip() else {
        return;
    };
    sensor_tests::tshark::require_tshark();
    let file = corpus.pcap(AWS_GWLB.0, AWS_GWLB.1);
    let expected = tshark_gwlb_ids(&file);
    assert_eq!(
        expected.len(),
        1,
        "tshark decodes one set of AWS options in {}: {expected:?}",
        file.display()
    );
    let expected = expected[0];
    let flows = flows_of(&file, &[]);
    assert!(
        !flows.is_empty(),
        "the sensor reports no flow for {}",
        file.display()
    );
    for flow in &flows {
        let geneve: Vec<_> = flow.tunnels_of("geneve").collect();
        assert_eq!(
            geneve.len(),
            1,
            "{}: one geneve tunnel entry in {:?}",
            flow.describe(),
            flow.tunnel
        );
        let aws = geneve[0].get("aws_gwlb").unwrap_or_else(|| {
            panic!(
                "{}: geneve entry without aws_gwlb: {}",
                flow.describe(),
                geneve[0]
            )
        });
        let actual = GwlbIds {
            endpoint_id: id_value(aws, "endpoint_id"),
            attachment_id: id_value(aws, "attachment_id"),
            flow_cookie: id_value(aws, "flow_cookie"),
        };
        assert_eq!(actual, expected, "{}: aws_gwlb {aws}", flow.describe());
        let endpoint = aws.get("endpoint_id").and_then(serde_json::Value::as_str);
        assert!(
            endpoint.is_some_and(|e| e.starts_with("vpce-")),
            "{}: endpoint_id should read as a VPC endpoint id (vpce-...): {aws}",
            flow.describe()
        );
    }
}

/// The distinct AWS option triples tshark decodes in `file`'s GENEVE headers.
fn tshark_gwlb_ids(file: &Path) -> Vec<GwlbIds> {
    let rows = frame_fields(
        file,
        &[
            "geneve.option.class",
            "geneve.option.type",
            "geneve.option.unknown.data",
        ],
    );
    let mut found: Vec<GwlbIds> = Vec::new();
    for row in rows {
        let classes: Vec<&str> = row[0].split(',').collect();
        let types: Vec<&str> = row[1].split(',').collect();
        let data: Vec<&str> = row[2].split(',').collect();
        let mut ids = [None; 4];
        for ((class, kind), value) in classes.iter().zip(&types).zip(&data) {
            if hex(class) == Some(AWS_OPTION_CLASS) {
                let kind = hex(kind).expect("option type is hex") as usize;
                if (1..=3).contains(&kind) {
                    ids[kind] = Some(u64::from_str_radix(value, 16).expect("option data is hex"));
                }
            }
        }
        if let [_, Some(endpoint_id), Some(attachment_id), Some(flow_cookie)] = ids {
            let ids = GwlbIds {
                endpoint_id,
                attachment_id,
                flow_cookie,
            };
            if !found.contains(&ids) {
                found.push(ids);
            }
        }
    }
    found
}

fn hex(raw: &str) -> Option<u64> {
    u64::from_str_radix(raw.strip_prefix("0x").unwrap_or(raw), 16).ok()
}

/// An id from the sensor's `aws_gwlb` object: a number, or a string of hex
/// digits with an optional `vpce-`/`0x` prefix.
fn id_value(aws: &serde_json::Value, key: &str) -> u64 {
    let value = aws
        .get(key)
        .unwrap_or_else(|| panic!("aws_gwlb has no {key}: {aws}"));
    if let Some(number) = value.as_u64() {
        return number;
    }
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("aws_gwlb.{key} is neither a number nor a string: {aws}"));
    let digits = text
        .strip_prefix("vpce-")
        .or_else(|| text.strip_prefix("0x"))
        .unwrap_or(text);
    u64::from_str_radix(digits, 16)
        .unwrap_or_else(|_| panic!("aws_gwlb.{key} is not hex digits: {aws}"))
}

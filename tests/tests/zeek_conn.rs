//! Users rely on the sensor's flow records meaning what Zeek's `conn.log`
//! means: for the Zeek test traces of tunnels and TCP edge cases, each flow
//! the sensor reports has Zeek's packet, byte and IP byte counts per
//! direction, connection state and history, unless the difference is listed
//! with its reason in `tests/expectations/zeek_conn.toml`.
//!
//! The test fails on a difference that is not listed, and on a listed
//! difference that no longer occurs, so the list stays honest. When it fails
//! it prints the unlisted differences as TOML tables to review and paste.

// Test code: a failed expectation must stop the test with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use sensor_tests::corpus::corpus_or_skip;
use sensor_tests::expectations::{Listed, judge};
use sensor_tests::flow::Flow;
use sensor_tests::sensor::flows_of;
use sensor_tests::zeek::{
    ConnBaseline, KnownDifference, ZeekConn, conn_baselines, load_expectations, parse_conn_log,
};

/// Trace folders (under `testing/btest/Traces/`) whose conn baselines are compared.
const TRACE_PREFIXES: &[&str] = &["tunnels/", "tcp/"];

/// Count columns compared when the baseline has them, as (originator column,
/// responder column); the sensor's fields have the same names.
const COUNT_COLUMNS: &[(&str, &str)] = &[
    ("orig_pkts", "resp_pkts"),
    ("orig_bytes", "resp_bytes"),
    ("orig_ip_bytes", "resp_ip_bytes"),
];

/// Zeek services of outer tunnel connections whose tunnel the sensor removes.
const REMOVED_TUNNEL_SERVICES: &[&str] = &["vxlan", "geneve"];

#[test]
fn zeek_conn() {
    let Some(corpus) = corpus_or_skip() else {
        return;
    };
    let expectations_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("expectations/zeek_conn.toml");
    let expectations = load_expectations(&expectations_path);
    let baselines = conn_baselines(&corpus, TRACE_PREFIXES);
    assert!(
        !baselines.is_empty(),
        "no conn baselines found for {TRACE_PREFIXES:?}"
    );
    let mut problems = Vec::new();
    for skip in &expectations.skip {
        if !baselines
            .iter()
            .any(|b| b.trace == skip.trace && b.name == skip.baseline)
        {
            problems.push(format!(
                "stale [[skip]]: no baseline {} for trace {}",
                skip.baseline, skip.trace
            ));
        }
        if skip.reason.trim().is_empty() {
            problems.push(format!("[[skip]] {} has no reason", skip.baseline));
        }
    }
    let compared: Vec<&ConnBaseline> = baselines
        .iter()
        .filter(|b| {
            !expectations
                .skip
                .iter()
                .any(|s| s.trace == b.trace && s.baseline == b.name)
        })
        .collect();
    let mut sensor_runs: BTreeMap<&str, Vec<Flow>> = BTreeMap::new();
    let mut found: Vec<KnownDifference> = Vec::new();
    for baseline in &compared {
        let flows = sensor_runs
            .entry(baseline.trace.as_str())
            .or_insert_with(|| flows_of(&baseline.pcap, &[]));
        match compare_baseline(baseline, flows) {
            Ok(differences) => {
                for difference in differences {
                    if !found.iter().any(|f| f.same_as(&difference)) {
                        found.push(difference);
                    }
                }
            }
            Err(problem) => problems.push(problem),
        }
    }
    let known = judge(
        &expectations.difference,
        &found,
        &expectations_path,
        &mut problems,
    );
    println!(
        "compared {} conn baselines of {} traces; {} known differences",
        compared.len(),
        sensor_runs.len(),
        known
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Matches the rows of one baseline with the sensor's flows and returns every
/// difference; `Err` when the baseline cannot be matched at all.
fn compare_baseline(
    baseline: &ConnBaseline,
    flows: &[Flow],
) -> Result<Vec<KnownDifference>, String> {
    let rows = parse_conn_log(&baseline.path);
    let mut order: Vec<usize> = (0..flows.len()).collect();
    order.sort_by_key(|&i| (flows[i].start_micros(), i));
    let mut used = vec![false; flows.len()];
    let mut differences = Vec::new();
    let mut labels = Labeler::default();
    let difference = |flow: &str, field: &str, zeek: String, sensor: String| KnownDifference {
        trace: baseline.trace.clone(),
        flow: flow.to_owned(),
        field: field.to_owned(),
        zeek,
        sensor,
        reason: String::new(),
    };
    let has_tuple = rows
        .first()
        .is_some_and(|r| r.has("id.orig_h") && r.has("id.resp_h"));
    if !has_tuple {
        // Some tests cut the log to uid/history: match the one flow left
        // after the outer tunnel rows, or give up.
        let inner: Vec<&ZeekConn> = rows.iter().filter(|r| !is_removed_tunnel(r)).collect();
        if inner.len() != 1 || flows.len() != 1 {
            return Err(format!(
                "{} ({}) has no 5-tuple columns and {} inner rows for {} sensor flows: \
                 list it under [[skip]] with a reason",
                baseline.name,
                baseline.trace,
                inner.len(),
                flows.len()
            ));
        }
        let label = labels.label(&format!("{} (sensor's 5-tuple)", flows[0].describe()));
        compare_fields(inner[0], &flows[0], false, &mut |field, zeek, sensor| {
            differences.push(difference(&label, field, zeek, sensor));
        });
        return Ok(differences);
    }
    for row in &rows {
        let label = labels.label(&zeek_label(row));
        let matched = order
            .iter()
            .copied()
            .find(|&i| !used[i] && orientation(row, &flows[i]).is_some());
        let Some(index) = matched else {
            differences.push(difference(
                &label,
                "presence",
                "logged".into(),
                "absent".into(),
            ));
            continue;
        };
        used[index] = true;
        let flow = &flows[index];
        let flipped = orientation(row, flow) == Some(Orientation::Flipped);
        if flipped {
            differences.push(difference(
                &label,
                "direction",
                format!("orig {}", endpoint(row.orig_h(), row.orig_p())),
                format!("orig {}", flow.src()),
            ));
        }
        compare_fields(row, flow, flipped, &mut |field, zeek, sensor| {
            differences.push(difference(&label, field, zeek, sensor));
        });
    }
    for &index in order.iter().filter(|&&i| !used[i]) {
        let label = labels.label(&flows[index].describe());
        differences.push(difference(
            &label,
            "presence",
            "absent".into(),
            "flow".into(),
        ));
    }
    Ok(differences)
}

/// True for an outer VXLAN/GENEVE connection row, which the sensor does not
/// report as a flow of its own.
fn is_removed_tunnel(row: &ZeekConn) -> bool {
    row.get("service")
        .is_some_and(|s| s.split(',').any(|s| REMOVED_TUNNEL_SERVICES.contains(&s)))
}

/// Compares the count, state and history columns the row has and sets,
/// calling `report(field, zeek, sensor)` for each difference.
fn compare_fields(
    row: &ZeekConn,
    flow: &Flow,
    flipped: bool,
    report: &mut dyn FnMut(&str, String, String),
) {
    for &(orig, resp) in COUNT_COLUMNS {
        let (sensor_orig, sensor_resp) = (sensor_count(flow, orig), sensor_count(flow, resp));
        let (sensor_orig, sensor_resp) = if flipped {
            (sensor_resp, sensor_orig)
        } else {
            (sensor_orig, sensor_resp)
        };
        for (column, sensor) in [(orig, sensor_orig), (resp, sensor_resp)] {
            // Zeek leaves byte counts unset (`-`) when it has no size
            // information (a single packet): nothing to compare.
            if let Some(zeek) = row.get(column)
                && zeek != sensor.to_string()
            {
                report(column, zeek.to_owned(), sensor.to_string());
            }
        }
    }
    for (column, sensor) in [("conn_state", &flow.conn_state), ("history", &flow.history)] {
        if row.has(column) {
            let zeek = row.columns[column].as_str();
            let sensor = sensor.as_deref().unwrap_or("(none)");
            // Zeek writes `-` for an empty history.
            let sensor_shown = if sensor.is_empty() { "-" } else { sensor };
            if zeek != sensor_shown {
                report(column, zeek.to_owned(), sensor_shown.to_owned());
            }
        }
    }
}

fn sensor_count(flow: &Flow, column: &str) -> u64 {
    match column {
        "orig_pkts" => flow.orig_pkts,
        "resp_pkts" => flow.resp_pkts,
        "orig_bytes" => flow.orig_bytes,
        "resp_bytes" => flow.resp_bytes,
        "orig_ip_bytes" => flow.orig_ip_bytes,
        "resp_ip_bytes" => flow.resp_ip_bytes,
        other => unreachable!("not a count column: {other}"),
    }
}

/// How a sensor flow lines up with a Zeek row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Orientation {
    /// Same originator.
    Same,
    /// The sensor's originator is Zeek's responder.
    Flipped,
}

/// Whether `flow` is the connection of `row` (protocol, addresses, and the
/// ports the row has), and in which orientation.
fn orientation(row: &ZeekConn, flow: &Flow) -> Option<Orientation> {
    if row.proto_number().is_some_and(|p| p != flow.proto_number()) {
        return None;
    }
    let (orig_h, resp_h) = (row.orig_h()?, row.resp_h()?);
    let port_ok = |zeek: Option<u16>, sensor: u16| zeek.is_none_or(|z| z == sensor);
    let (src, dst) = (flow.src(), flow.dst());
    if orig_h == src.ip
        && resp_h == dst.ip
        && port_ok(row.orig_p(), src.port)
        && port_ok(row.resp_p(), dst.port)
    {
        Some(Orientation::Same)
    } else if orig_h == dst.ip
        && resp_h == src.ip
        && port_ok(row.orig_p(), dst.port)
        && port_ok(row.resp_p(), src.port)
    {
        Some(Orientation::Flipped)
    } else {
        None
    }
}

/// `a:p -> b:q proto` in Zeek's orientation; `?` for a column the log lacks.
fn zeek_label(row: &ZeekConn) -> String {
    let proto = row
        .proto_number()
        .map_or_else(|| "?".to_owned(), |p| p.to_string());
    format!(
        "{} -> {} proto {proto}",
        endpoint(row.orig_h(), row.orig_p()),
        endpoint(row.resp_h(), row.resp_p())
    )
}

fn endpoint(ip: Option<IpAddr>, port: Option<u16>) -> String {
    let port = port.map_or_else(|| "?".to_owned(), |p| p.to_string());
    match ip {
        Some(IpAddr::V6(ip)) => format!("[{ip}]:{port}"),
        Some(ip) => format!("{ip}:{port}"),
        None => format!("?:{port}"),
    }
}

/// Makes labels unique within a baseline: the n-th repeat of a 5-tuple (a
/// connection Zeek split, for example by a timeout) gets ` #n`.
#[derive(Default)]
struct Labeler {
    seen: BTreeMap<String, usize>,
}

impl Labeler {
    fn label(&mut self, base: &str) -> String {
        let count = self.seen.entry(base.to_owned()).or_insert(0);
        *count += 1;
        if *count == 1 {
            base.to_owned()
        } else {
            format!("{base} #{count}")
        }
    }
}

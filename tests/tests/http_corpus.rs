//! Users rely on the sensor's `http` records saying what Zeek's `http.log`
//! and Suricata's `http` events say about the same traffic: for the Zeek
//! baselines of the corpus traces under `http/` and the suricata-verify
//! tests whose checks look at `http` events, each request/response pair has
//! the same method, host, URI, status code (and interim code), user agent
//! and body lengths, unless the difference is listed with its reason in
//! `tests/expectations/http.toml`.
//!
//! The test fails on a difference that is not listed, and on a listed
//! difference that no longer occurs. When it fails it prints the unlisted
//! differences as TOML tables to review and paste.

// Test code: a failed expectation must stop the test with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sensor_tests::corpus::corpus_or_skip;
use sensor_tests::expectations::{Listed, judge};
use sensor_tests::records::parse_lines;
use sensor_tests::sensor::run_pcap;
use sensor_tests::suricata::{Check, Expected, tests_with_event};
use sensor_tests::zeek::{KnownDifference, ZeekConn, load_expectations, log_baselines, parse_log};
use serde_json::Value;

/// Trace folders (under `testing/btest/Traces/`) whose http baselines are
/// compared.
const TRACE_PREFIXES: &[&str] = &["http/"];

/// http.log columns compared, with the sensor's field of the same meaning.
const ZEEK_COLUMNS: &[(&str, &str)] = &[
    ("method", "method"),
    ("host", "host"),
    ("uri", "uri"),
    ("user_agent", "user_agent"),
    ("status_code", "status_code"),
    ("info_code", "info_code"),
    ("request_body_len", "request_body_len"),
    ("response_body_len", "response_body_len"),
];

/// Keys of suricata-verify checks that locate an event or describe what
/// the sensor does not report (packet number, MAC address, Suricata's own
/// version, the Referer header, the raw status text): left out of the
/// match, the rest of the check still applies.
const IGNORED_KEYS: &[&str] = &[
    "event_type",
    "pcap_cnt",
    "ether.src_mac",
    "has-key",
    "http.http_refer",
    "http.status_string",
];

#[test]
fn http_corpus() {
    let Some(corpus) = corpus_or_skip() else {
        return;
    };
    let expectations_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("expectations/http.toml");
    let expectations = load_expectations(&expectations_path);
    let is_skipped = |trace: &str, baseline: &str| {
        expectations
            .skip
            .iter()
            .any(|s| s.trace == trace && s.baseline == baseline)
    };

    let baselines = log_baselines(&corpus, TRACE_PREFIXES, "http");
    assert!(!baselines.is_empty(), "no http baselines found");
    let sv_tests = tests_with_event(&corpus, "http");
    assert!(!sv_tests.is_empty(), "no suricata-verify http tests found");

    let mut problems = Vec::new();
    for skip in &expectations.skip {
        let exists = baselines
            .iter()
            .any(|b| b.trace == skip.trace && b.name == skip.baseline)
            || (skip.baseline == "test.yaml" && sv_tests.iter().any(|t| t.name == skip.trace));
        if !exists {
            problems.push(format!(
                "stale [[skip]]: {} {} is not in the corpus",
                skip.trace, skip.baseline
            ));
        }
        if skip.reason.trim().is_empty() {
            problems.push(format!("[[skip]] {} has no reason", skip.trace));
        }
    }

    let mut runs: BTreeMap<PathBuf, Vec<Value>> = BTreeMap::new();
    let mut found: Vec<KnownDifference> = Vec::new();
    let push = |d: KnownDifference, found: &mut Vec<KnownDifference>| {
        if !found.iter().any(|f| f.same_as(&d)) {
            found.push(d);
        }
    };
    let (mut zeek_compared, mut checks_compared) = (0, 0);
    for baseline in &baselines {
        if is_skipped(&baseline.trace, &baseline.name) {
            continue;
        }
        zeek_compared += 1;
        let records = runs
            .entry(baseline.pcap.clone())
            .or_insert_with(|| http_records(&baseline.pcap));
        for d in compare_zeek(&baseline.trace, &parse_log(&baseline.path), records) {
            push(d, &mut found);
        }
    }
    for test in &sv_tests {
        if is_skipped(&test.name, "test.yaml") {
            continue;
        }
        let records = runs
            .entry(test.pcap.clone())
            .or_insert_with(|| http_records(&test.pcap));
        for (i, check) in test.checks.iter().enumerate() {
            if check.event_type().as_deref() != Some("http") {
                continue;
            }
            checks_compared += 1;
            if let Some(d) = compare_check(&test.name, i, check, records) {
                push(d, &mut found);
            }
        }
    }

    let known = judge(
        &expectations.difference,
        &found,
        &expectations_path,
        &mut problems,
    );
    println!(
        "compared {zeek_compared} Zeek http baselines and {checks_compared} suricata-verify http checks; {} known differences",
        known
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The sensor's `http` records for a capture.
fn http_records(pcap: &Path) -> Vec<Value> {
    let run = run_pcap(&[pcap], &[]);
    assert!(
        run.status.success() && !run.panicked(),
        "sensor pcap {} failed ({}):\n{}",
        pcap.display(),
        run.status,
        run.stderr
    );
    parse_lines(&run.stdout)
        .into_iter()
        .filter(|r| r.get("type").and_then(Value::as_str) == Some("http"))
        .collect()
}

/// A field of a record as text (`None` when absent).
fn field(record: &Value, name: &str) -> Option<String> {
    match record.get(name)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn difference(
    trace: &str,
    flow: &str,
    field: &str,
    expected: String,
    sensor: String,
) -> KnownDifference {
    KnownDifference {
        trace: trace.to_owned(),
        flow: flow.to_owned(),
        field: field.to_owned(),
        zeek: expected,
        sensor,
        reason: String::new(),
    }
}

/// `ip:port -> ip:port` of a record.
fn record_tuple(r: &Value) -> String {
    let ip = |k: &str| {
        let ip = field(r, k).unwrap_or_default();
        if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip
        }
    };
    format!(
        "{}:{} -> {}:{}",
        ip("src_ip"),
        field(r, "src_port").unwrap_or_default(),
        ip("dst_ip"),
        field(r, "dst_port").unwrap_or_default()
    )
}

/// `ip:port -> ip:port` of a Zeek row.
fn row_tuple(row: &ZeekConn) -> String {
    let ip = |k: &str| {
        let ip = row.get(k).unwrap_or("?").to_owned();
        if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip
        }
    };
    format!(
        "{}:{} -> {}:{}",
        ip("id.orig_h"),
        row.get("id.orig_p").unwrap_or("?"),
        ip("id.resp_h"),
        row.get("id.resp_p").unwrap_or("?")
    )
}

/// Pairs each Zeek row with the sensor record of the same connection and
/// `trans_depth` and compares the columns.
fn compare_zeek(trace: &str, rows: &[ZeekConn], records: &[Value]) -> Vec<KnownDifference> {
    let mut out = Vec::new();
    let mut used = vec![false; records.len()];
    for row in rows {
        let tuple = row_tuple(row);
        let depth = row.get("trans_depth").unwrap_or("?");
        let label = format!("{tuple} #{depth}");
        let index = records.iter().enumerate().position(|(i, r)| {
            !used[i]
                && record_tuple(r) == tuple
                && field(r, "trans_depth").as_deref() == Some(depth)
        });
        let Some(index) = index else {
            out.push(difference(
                trace,
                &label,
                "presence",
                "logged".into(),
                "absent".into(),
            ));
            continue;
        };
        used[index] = true;
        let record = &records[index];
        for &(column, name) in ZEEK_COLUMNS {
            if !row.has(column) {
                continue;
            }
            let zeek = match row.columns[column].as_str() {
                "-" => None,
                "(empty)" => Some(String::new()),
                v => Some(v.to_owned()),
            };
            let sensor = field(record, name);
            if zeek != sensor {
                let show = |v: Option<String>| v.unwrap_or_else(|| "-".into());
                out.push(difference(trace, &label, column, show(zeek), show(sensor)));
            }
        }
    }
    for (i, r) in records.iter().enumerate() {
        if !used[i] {
            let label = format!(
                "{} #{}",
                record_tuple(r),
                field(r, "trans_depth").unwrap_or_default()
            );
            out.push(difference(
                trace,
                &label,
                "presence",
                "absent".into(),
                "record".into(),
            ));
        }
    }
    out
}

/// Suricata's `http.hostname`: the host without its port, lower case.
fn hostname(host: &str) -> String {
    let host = host.trim();
    let bare = if host.starts_with('[') {
        host.split_inclusive(']').next().unwrap_or(host)
    } else {
        host.rsplit_once(':')
            .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
            .map_or(host, |(h, _)| h)
    };
    bare.to_ascii_lowercase()
}

/// Whether `record` has the value a check expects at `key`; `Err` for a key
/// the comparison does not know.
fn matches(record: &Value, key: &str, expected: &Expected) -> Result<bool, String> {
    let want = expected.as_text();
    let got = match key {
        "src_ip" | "src_port" | "dst_ip" | "dst_port" => field(record, key),
        "dest_ip" => field(record, "dst_ip"),
        "dest_port" => field(record, "dst_port"),
        "proto" => field(record, "proto").map(|p| p.to_ascii_uppercase()),
        "tx_id" => field(record, "trans_depth")
            .and_then(|d| d.parse::<u64>().ok())
            .map(|d| (d.saturating_sub(1)).to_string()),
        "http.http_method" => field(record, "method"),
        "http.hostname" => field(record, "host").map(|h| hostname(&h)),
        "http.url" => field(record, "uri"),
        "http.status" => field(record, "status_code"),
        "http.http_user_agent" => field(record, "user_agent"),
        "http.length" => field(record, "response_body_len"),
        "http.protocol" => field(record, "version").map(|v| format!("HTTP/{v}")),
        "http.version" => field(record, "version"),
        // HTTP/2 is out of scope: the sensor has no HTTP/2 records, so no
        // record has these.
        k if k.starts_with("http.http2.") || k.starts_with("http.request_headers") => None,
        "http.http_content_type" => field(record, "content_type")
            .map(|c| c.split(';').next().unwrap_or_default().trim().to_owned()),
        other => return Err(format!("unsupported check key {other}")),
    };
    Ok(got.as_deref() == Some(want.as_str()))
}

/// Counts the records a check selects; a difference when the count is not
/// the expected one (or the check uses a key the comparison lacks).
fn compare_check(
    test: &str,
    index: usize,
    check: &Check,
    records: &[Value],
) -> Option<KnownDifference> {
    let keys: Vec<&(String, Expected)> = check
        .matches
        .iter()
        .filter(|(k, _)| !IGNORED_KEYS.contains(&k.as_str()))
        .collect();
    let summary = keys
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_text()))
        .collect::<Vec<_>>()
        .join(" ");
    let label = format!("check {index}: {summary}");
    let probe = serde_json::json!({});
    for (key, value) in &keys {
        if let Err(problem) = matches(&probe, key, value) {
            return Some(difference(
                test,
                &label,
                "check",
                "comparable".into(),
                problem,
            ));
        }
    }
    let mut count = 0u64;
    for record in records {
        let mut all = true;
        for (key, value) in &keys {
            match matches(record, key, value) {
                Ok(true) => {}
                Ok(false) => {
                    all = false;
                    break;
                }
                Err(_) => unreachable!("keys were checked"),
            }
        }
        if all {
            count += 1;
        }
    }
    let ok = match check.count {
        Some(n) => n == count,
        None => count >= 1,
    };
    (!ok).then(|| {
        difference(
            test,
            &label,
            "count",
            check.count.map_or_else(|| ">=1".into(), |n| n.to_string()),
            count.to_string(),
        )
    })
}

//! Users rely on the sensor's `quic` records agreeing with the tools they
//! know, on the QUIC captures of the corpus:
//! - Zeek's `quic.log` for the traces under `quic/`: SNI (`server_name`),
//!   version (`quicv2` is the sensor's `2`), the client's first DCID and
//!   SCID, and the first ALPN offered (`client_protocol`);
//! - the suricata-verify checks on `quic` events that name the JA4
//!   (`quic.ja4`), the SNI or the first ALPN (`quic.extensions[i]` named
//!   `server_name` / `alpn`): some record of the capture has that value;
//! - tshark's JA3 of every ClientHello it decrypts from the Initial packets
//!   (`tls.handshake.ja3`) on every capture of category `quic`, per
//!   connection.
//!
//! Every remaining difference is listed with its reason in
//! `tests/expectations/quic.toml`; the test fails on an unlisted difference
//! and on a listed one that no longer occurs. On failure it prints the
//! unlisted differences as TOML tables to review and paste.

// Test code: a failed expectation must stop the test with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use sensor_tests::corpus::{Corpus, corpus_or_skip};
use sensor_tests::expectations::{Difference, Expectations, judge};
use sensor_tests::records::{of_type, parse_lines};
use sensor_tests::sensor::run_pcap;
use sensor_tests::suricata::tests_with_event;
use sensor_tests::tshark::require_tshark;
use sensor_tests::zeek::{log_baselines, parse_log};

/// Zeek `quic.log` columns compared.
const ZEEK_COLUMNS: &[&str] = &[
    "server_name",
    "version",
    "client_initial_dcid",
    "client_scid",
    "client_protocol",
];

/// The sensor's `quic` records of each capture, run once per capture.
#[derive(Default)]
struct Runs {
    by_pcap: BTreeMap<PathBuf, Vec<Value>>,
}

impl Runs {
    fn quic(&mut self, pcap: &Path) -> Vec<Value> {
        self.by_pcap
            .entry(pcap.to_owned())
            .or_insert_with(|| {
                let run = run_pcap(&[pcap], &[]);
                assert!(
                    run.status.success() && !run.panicked(),
                    "sensor failed on {}: {}",
                    pcap.display(),
                    run.stderr
                );
                of_type(parse_lines(&run.stdout), "quic")
            })
            .clone()
    }
}

fn text(record: &Value, field: &str) -> Option<String> {
    match record.get(field)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// The sensor's value in Zeek's notation for `column`.
fn sensor_as_zeek(record: &Value, column: &str) -> String {
    let value = match column {
        "server_name" => text(record, "sni"),
        "version" => {
            text(record, "version").map(|v| if v == "2" { "quicv2".to_owned() } else { v })
        }
        "client_initial_dcid" => text(record, "dcid"),
        "client_scid" => text(record, "scid").map(|s| {
            if s.is_empty() {
                "(empty)".to_owned()
            } else {
                s
            }
        }),
        "client_protocol" => record
            .get("alpn")
            .and_then(|a| a.get(0))
            .and_then(Value::as_str)
            .map(str::to_owned),
        other => unreachable!("not a compared column: {other}"),
    };
    value.unwrap_or_else(|| "-".to_owned())
}

/// `a:p <-> b:q`, the lower endpoint first, so both orientations agree.
fn connection_key(a: (&str, &str), b: (&str, &str)) -> String {
    let (x, y) = (format!("{}:{}", a.0, a.1), format!("{}:{}", b.0, b.1));
    if x <= y {
        format!("{x} <-> {y}")
    } else {
        format!("{y} <-> {x}")
    }
}

fn last_occurrence(value: &str) -> &str {
    value.rsplit(',').next().unwrap_or(value)
}

fn record_key(record: &Value) -> String {
    connection_key(
        (
            &text(record, "src_ip").unwrap_or_default(),
            &text(record, "src_port").unwrap_or_default(),
        ),
        (
            &text(record, "dst_ip").unwrap_or_default(),
            &text(record, "dst_port").unwrap_or_default(),
        ),
    )
}

fn zeek_differences(corpus: &Corpus, runs: &mut Runs) -> (usize, Vec<Difference>) {
    let mut found = Vec::new();
    let mut compared = 0;
    for baseline in log_baselines(corpus, &["quic/"], "quic") {
        let records = runs.quic(&baseline.pcap);
        let case = format!("{} {}", baseline.trace, baseline.name);
        let mut used = vec![false; records.len()];
        for row in parse_log(&baseline.path) {
            compared += 1;
            let (index, item) = match (row.orig_h(), row.orig_p(), row.resp_h(), row.resp_p()) {
                (Some(oh), Some(op), Some(rh), Some(rp)) => {
                    let key = connection_key(
                        (&oh.to_string(), &op.to_string()),
                        (&rh.to_string(), &rp.to_string()),
                    );
                    let index =
                        (0..records.len()).find(|&i| !used[i] && record_key(&records[i]) == key);
                    (index, format!("{oh}:{op} -> {rh}:{rp} row {}", row.row))
                }
                // A log cut to a few columns: the capture's only record.
                _ => (
                    (records.len() == 1 && !used[0]).then_some(0),
                    format!("row {} (no 5-tuple in the log)", row.row),
                ),
            };
            let Some(index) = index else {
                found.push(Difference {
                    source: "zeek".into(),
                    case: case.clone(),
                    item,
                    field: "presence".into(),
                    expected: "logged".into(),
                    sensor: format!("absent ({} records)", records.len()),
                    reason: String::new(),
                });
                continue;
            };
            used[index] = true;
            for &column in ZEEK_COLUMNS {
                if !row.has(column) {
                    continue;
                }
                let zeek = row.get(column).unwrap_or("-").to_owned();
                let ours = sensor_as_zeek(&records[index], column);
                if zeek != ours {
                    found.push(Difference {
                        source: "zeek".into(),
                        case: case.clone(),
                        item: item.clone(),
                        field: column.into(),
                        expected: zeek,
                        sensor: ours,
                        reason: String::new(),
                    });
                }
            }
        }
    }
    (compared, found)
}

/// The value a record must have for each JA4 / SNI / ALPN a check names.
fn suricata_expectations(
    matches: &[(String, sensor_tests::suricata::Expected)],
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for (path, value) in matches {
        if path == "quic.ja4" {
            out.push(("ja4", value.as_text()));
        }
        if let Some(prefix) = path.strip_suffix(".name") {
            let wanted = match value.as_text().as_str() {
                "server_name" => "sni",
                "alpn" => "alpn",
                _ => continue,
            };
            let values = format!("{prefix}.values[0]");
            if let Some((_, v)) = matches.iter().find(|(p, _)| *p == values) {
                out.push((wanted, v.as_text()));
            }
        }
    }
    out
}

fn suricata_differences(corpus: &Corpus, runs: &mut Runs) -> (usize, Vec<Difference>) {
    let mut compared = 0;
    let mut found = Vec::new();
    for test in tests_with_event(corpus, "quic") {
        let records = runs.quic(&test.pcap);
        for (index, check) in test.checks.iter().enumerate() {
            if check.event_type().as_deref() != Some("quic") || check.count == Some(0) {
                continue;
            }
            for (field, wanted) in suricata_expectations(&check.matches) {
                compared += 1;
                let has = |r: &Value| match field {
                    "alpn" => {
                        r.get("alpn").and_then(|a| a.get(0)).and_then(Value::as_str)
                            == Some(wanted.as_str())
                    }
                    f => text(r, f).as_deref() == Some(wanted.as_str()),
                };
                if !records.iter().any(has) {
                    let seen: BTreeSet<String> = records
                        .iter()
                        .map(|r| {
                            text(r, if field == "alpn" { "alpn" } else { field })
                                .unwrap_or_else(|| "-".into())
                        })
                        .collect();
                    found.push(Difference {
                        source: "suricata".into(),
                        case: test.name.clone(),
                        item: format!("check {index}"),
                        field: field.into(),
                        expected: wanted,
                        sensor: seen.into_iter().collect::<Vec<_>>().join(" "),
                        reason: String::new(),
                    });
                }
            }
        }
    }
    (compared, found)
}

/// tshark's JA3 of each ClientHello it decrypts, per connection.
fn tshark_ja3(pcap: &Path, ports: &BTreeSet<u16>) -> BTreeMap<String, BTreeSet<String>> {
    let fields = [
        "ip.src",
        "ipv6.src",
        "udp.srcport",
        "ip.dst",
        "ipv6.dst",
        "udp.dstport",
        "tls.handshake.ja3",
    ];
    let mut command = Command::new(require_tshark());
    command
        .arg("-n")
        .arg("-r")
        .arg(pcap)
        .args(["-T", "fields", "-E", "separator=/t", "-E", "occurrence=a"])
        .args(["-E", "aggregator=,"]);
    for port in ports {
        command.args(["-d", &format!("udp.port=={port},quic")]);
    }
    for field in fields {
        command.args(["-e", field]);
    }
    let output = command.output().expect("tshark runs");
    assert!(
        output.status.success(),
        "tshark failed on {}",
        pcap.display()
    );
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let mut row: Vec<&str> = line.split('\t').collect();
        row.resize(fields.len(), "");
        if row[6].is_empty() {
            continue;
        }
        let src = if row[0].is_empty() { row[1] } else { row[0] };
        let dst = if row[3].is_empty() { row[4] } else { row[3] };
        let key = connection_key(
            (last_occurrence(src), last_occurrence(row[2])),
            (last_occurrence(dst), last_occurrence(row[5])),
        );
        out.entry(key).or_default().extend(
            row[6]
                .split(',')
                .filter(|h| !h.is_empty())
                .map(str::to_owned),
        );
    }
    out
}

fn tshark_differences(corpus: &Corpus, runs: &mut Runs) -> (usize, Vec<Difference>) {
    let mut found = Vec::new();
    let mut compared = 0;
    let entries: Vec<_> = corpus.category("quic").cloned().collect();
    for entry in entries {
        let pcap = corpus.entry_path(&entry);
        let case = corpus.relative(&pcap).into_owned();
        let records = runs.quic(&pcap);
        let ports: BTreeSet<u16> = records
            .iter()
            .filter_map(|r| r.get("dst_port").and_then(Value::as_u64))
            .filter_map(|p| u16::try_from(p).ok())
            .filter(|&p| p != 443)
            .collect();
        let reference = tshark_ja3(&pcap, &ports);
        let mut ours: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for r in &records {
            ours.entry(record_key(r))
                .or_default()
                .extend(text(r, "ja3"));
        }
        let keys: BTreeSet<&String> = reference.keys().chain(ours.keys()).collect();
        let empty = BTreeSet::new();
        for key in keys {
            let theirs = reference.get(key).unwrap_or(&empty);
            let mine = ours.get(key).unwrap_or(&empty);
            if theirs.is_empty() && mine.is_empty() {
                continue;
            }
            compared += 1;
            // The sensor reports the first ClientHello of a connection;
            // tshark every one (a Retry makes the client send it again).
            let agree = if mine.is_empty() {
                theirs.is_empty()
            } else {
                mine.is_subset(theirs) && !theirs.is_empty()
            };
            if !agree {
                let join = |s: &BTreeSet<String>| {
                    if s.is_empty() {
                        "-".to_owned()
                    } else {
                        s.iter().cloned().collect::<Vec<_>>().join(",")
                    }
                };
                found.push(Difference {
                    source: "tshark".into(),
                    case: case.clone(),
                    item: key.clone(),
                    field: "ja3".into(),
                    expected: join(theirs),
                    sensor: join(mine),
                    reason: String::new(),
                });
            }
        }
    }
    (compared, found)
}

#[test]
fn quic_matches_zeek_suricata_and_tshark() {
    let Some(corpus) = corpus_or_skip() else {
        return;
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("expectations/quic.toml");
    let expectations = Expectations::load(&path);
    let mut runs = Runs::default();
    let mut problems = Vec::new();
    let (zk, mut found) = zeek_differences(&corpus, &mut runs);
    let (sv, more) = suricata_differences(&corpus, &mut runs);
    found.extend(more);
    let (ts, more) = tshark_differences(&corpus, &mut runs);
    found.extend(more);
    let known = judge(&expectations.difference, &found, &path, &mut problems);
    println!(
        "compared {zk} Zeek quic.log rows, {sv} suricata-verify values, {ts} tshark connections; {known} known differences"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

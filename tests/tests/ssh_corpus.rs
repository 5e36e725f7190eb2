//! Users rely on the sensor's `ssh` records agreeing with the tools they
//! know, on the SSH captures of the corpus:
//! - the suricata-verify checks on `ssh` events (HASSH and HASSH-server,
//!   their strings, banners' protocol and software versions, the number of
//!   events per connection);
//! - tshark's HASSH and HASSH-server (`ssh.kex.hassh`, `ssh.kex.hasshserver`)
//!   on every capture of category `ssh`, per connection;
//! - Zeek's `ssh.log` for the traces under `ssh/`: client and server banners,
//!   and the negotiated algorithms where the baseline has them.
//!
//! Every remaining difference is listed with its reason in
//! `tests/expectations/ssh.toml`; the test fails on an unlisted difference
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
use sensor_tests::suricata::{Check, Expected, tests_with_event};
use sensor_tests::tshark::require_tshark;
use sensor_tests::zeek::{log_baselines, parse_log};

/// Suricata check fields that name nothing the sensor reports (the packet
/// number of the event): they do not restrict the match.
const IGNORED_SURICATA_FIELDS: &[&str] = &["event_type", "pcap_cnt"];

/// Zeek `ssh.log` columns compared, with the sensor's field.
const ZEEK_COLUMNS: &[(&str, &str)] = &[
    ("client", "client_banner"),
    ("server", "server_banner"),
    ("kex_alg", "kex"),
    ("host_key_alg", "host_key_alg"),
    ("cipher_alg", "cipher"),
    ("mac_alg", "mac"),
    ("compression_alg", "compression"),
];

/// The sensor's `ssh` records of each capture, run once per capture.
#[derive(Default)]
struct Runs {
    by_pcap: BTreeMap<PathBuf, Vec<Value>>,
}

impl Runs {
    fn ssh(&mut self, pcap: &Path) -> &[Value] {
        self.by_pcap.entry(pcap.to_owned()).or_insert_with(|| {
            let run = run_pcap(&[pcap], &[]);
            assert!(
                run.status.success() && !run.panicked(),
                "sensor failed on {}: {}",
                pcap.display(),
                run.stderr
            );
            of_type(parse_lines(&run.stdout), "ssh")
        })
    }
}

fn text(record: &Value, field: &str) -> Option<String> {
    match record.get(field)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// `SSH-<proto>-<software> <comments>` -> (proto, software).
fn banner_parts(banner: &str) -> Option<(String, String)> {
    let rest = banner.strip_prefix("SSH-")?;
    let (proto, software) = rest.split_once('-')?;
    let software = software.split(' ').next().unwrap_or(software);
    Some((proto.to_owned(), software.to_owned()))
}

/// The value of a Suricata EVE path for a sensor record; `Err` for a path
/// the sensor has no counterpart of.
fn suricata_value(record: &Value, path: &str) -> Result<Option<String>, String> {
    let banner_part = |side: &str, software: bool| {
        text(record, side)
            .and_then(|b| banner_parts(&b))
            .map(|(p, s)| if software { s } else { p })
    };
    Ok(match path {
        "src_ip" => text(record, "src_ip"),
        "dest_ip" => text(record, "dst_ip"),
        "src_port" => text(record, "src_port"),
        "dest_port" => text(record, "dst_port"),
        "proto" => text(record, "proto").map(|p| p.to_uppercase()),
        "ssh.client.hassh.hash" => text(record, "hassh"),
        "ssh.client.hassh.string" => text(record, "hassh_string"),
        "ssh.server.hassh.hash" => text(record, "hassh_server"),
        "ssh.server.hassh.string" => text(record, "hassh_server_string"),
        "ssh.client.proto_version" => banner_part("client_banner", false),
        "ssh.client.software_version" => banner_part("client_banner", true),
        "ssh.server.proto_version" => banner_part("server_banner", false),
        "ssh.server.software_version" => banner_part("server_banner", true),
        other => return Err(other.to_owned()),
    })
}

fn expected_equals(expected: &Expected, actual: Option<&str>) -> bool {
    match (expected, actual) {
        (Expected::Null, None) => true,
        (Expected::Float(f), Some(a)) => a.parse::<f64>().is_ok_and(|a| a == *f),
        (e, Some(a)) => e.as_text() == a,
        _ => false,
    }
}

fn suricata_differences(
    corpus: &Corpus,
    runs: &mut Runs,
    problems: &mut Vec<String>,
) -> (usize, Vec<Difference>) {
    let mut compared = 0;
    let mut found = Vec::new();
    for test in tests_with_event(corpus, "ssh") {
        let records = runs.ssh(&test.pcap).to_vec();
        let checks: Vec<(usize, &Check)> = test
            .checks
            .iter()
            .enumerate()
            .filter(|(_, c)| c.event_type().as_deref() == Some("ssh"))
            .collect();
        for (index, check) in checks {
            compared += 1;
            let mut matching = 0u64;
            for record in &records {
                let mut all = true;
                for (path, expected) in &check.matches {
                    if IGNORED_SURICATA_FIELDS.contains(&path.as_str()) {
                        continue;
                    }
                    match suricata_value(record, path) {
                        Ok(actual) => all &= expected_equals(expected, actual.as_deref()),
                        Err(path) => {
                            problems.push(format!(
                                "{} check {index}: field {path} has no sensor counterpart",
                                test.name
                            ));
                            all = false;
                        }
                    }
                }
                matching += u64::from(all);
            }
            let ok = match check.count {
                Some(n) => n == matching,
                None => matching > 0,
            };
            if !ok {
                let fields: Vec<String> = check
                    .matches
                    .iter()
                    .filter(|(p, _)| p != "event_type")
                    .map(|(p, v)| format!("{p}={}", v.as_text()))
                    .collect();
                let seen: Vec<String> = records
                    .iter()
                    .map(|r| {
                        format!(
                            "{}/{}/{}",
                            text(r, "hassh").unwrap_or_default(),
                            text(r, "hassh_server").unwrap_or_default(),
                            text(r, "server_banner").unwrap_or_default()
                        )
                    })
                    .collect();
                found.push(Difference {
                    source: "suricata".into(),
                    case: test.name.clone(),
                    item: format!("check {index}: {}", fields.join(" ")),
                    field: "count".into(),
                    expected: check
                        .count
                        .map_or_else(|| ">= 1".to_owned(), |n| n.to_string()),
                    sensor: format!("{matching} (records: {})", seen.join(", ")),
                    reason: String::new(),
                });
            }
        }
    }
    (compared, found)
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

type Fingerprints = BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)>;

/// tshark's HASSH fields per connection; `ports` are decoded as SSH too
/// (tshark recognises SSH on port 22 only).
fn tshark_fingerprints(pcap: &Path, ports: &BTreeSet<u16>) -> Fingerprints {
    let fields = [
        "ip.src",
        "ipv6.src",
        "tcp.srcport",
        "ip.dst",
        "ipv6.dst",
        "tcp.dstport",
        "ssh.kex.hassh",
        "ssh.kex.hasshserver",
    ];
    let mut command = Command::new(require_tshark());
    command
        .arg("-n")
        .arg("-r")
        .arg(pcap)
        .args(["-T", "fields", "-E", "separator=/t", "-E", "occurrence=a"])
        .args(["-E", "aggregator=,"]);
    for port in ports {
        command.args(["-d", &format!("tcp.port=={port},ssh")]);
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
    let rows: Vec<Vec<String>> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let mut values: Vec<String> = line.split('\t').map(str::to_owned).collect();
            values.resize(fields.len(), String::new());
            values
        })
        .collect();
    let mut out = Fingerprints::new();
    for row in rows {
        if row[6].is_empty() && row[7].is_empty() {
            continue;
        }
        let src = if row[0].is_empty() { &row[1] } else { &row[0] };
        let dst = if row[3].is_empty() { &row[4] } else { &row[3] };
        let key = connection_key(
            (last_occurrence(src), last_occurrence(&row[2])),
            (last_occurrence(dst), last_occurrence(&row[5])),
        );
        let entry = out.entry(key).or_default();
        for h in row[6].split(',').filter(|h| !h.is_empty()) {
            entry.0.insert(h.to_owned());
        }
        for h in row[7].split(',').filter(|h| !h.is_empty()) {
            entry.1.insert(h.to_owned());
        }
    }
    out
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

fn sensor_fingerprints(records: &[Value]) -> Fingerprints {
    let mut out = Fingerprints::new();
    for record in records {
        let entry = out.entry(record_key(record)).or_default();
        entry.0.extend(text(record, "hassh"));
        entry.1.extend(text(record, "hassh_server"));
    }
    out
}

fn tshark_differences(corpus: &Corpus, runs: &mut Runs) -> (usize, Vec<Difference>) {
    let mut found = Vec::new();
    let mut compared = 0;
    let entries: Vec<_> = corpus.category("ssh").cloned().collect();
    for entry in entries {
        let pcap = corpus.entry_path(&entry);
        let case = corpus.relative(&pcap).into_owned();
        let records = runs.ssh(&pcap).to_vec();
        let ports: BTreeSet<u16> = records
            .iter()
            .filter_map(|r| r.get("dst_port").and_then(Value::as_u64))
            .filter_map(|p| u16::try_from(p).ok())
            .filter(|&p| p != 22)
            .collect();
        let reference = tshark_fingerprints(&pcap, &ports);
        let ours = sensor_fingerprints(&records);
        let keys: BTreeSet<&String> = reference
            .iter()
            .chain(ours.iter())
            .filter(|(_, (c, s))| !c.is_empty() || !s.is_empty())
            .map(|(k, _)| k)
            .collect();
        let empty = (BTreeSet::new(), BTreeSet::new());
        for key in keys {
            compared += 1;
            let theirs = reference.get(key).unwrap_or(&empty);
            let mine = ours.get(key).unwrap_or(&empty);
            let join = |s: &BTreeSet<String>| {
                if s.is_empty() {
                    "-".to_owned()
                } else {
                    s.iter().cloned().collect::<Vec<_>>().join(",")
                }
            };
            for (field, t, m) in [
                ("hassh", &theirs.0, &mine.0),
                ("hassh_server", &theirs.1, &mine.1),
            ] {
                if t != m {
                    found.push(Difference {
                        source: "tshark".into(),
                        case: case.clone(),
                        item: key.clone(),
                        field: field.into(),
                        expected: join(t),
                        sensor: join(m),
                        reason: String::new(),
                    });
                }
            }
        }
    }
    (compared, found)
}

fn zeek_differences(corpus: &Corpus, runs: &mut Runs) -> (usize, Vec<Difference>) {
    let mut found = Vec::new();
    let mut compared = 0;
    for baseline in log_baselines(corpus, &["ssh/"], "ssh") {
        let records = runs.ssh(&baseline.pcap).to_vec();
        let case = format!("{} {}", baseline.trace, baseline.name);
        for row in parse_log(&baseline.path) {
            let (Some(oh), Some(op), Some(rh), Some(rp)) =
                (row.orig_h(), row.orig_p(), row.resp_h(), row.resp_p())
            else {
                continue;
            };
            compared += 1;
            let key = connection_key(
                (&oh.to_string(), &op.to_string()),
                (&rh.to_string(), &rp.to_string()),
            );
            let item = format!("{oh}:{op} -> {rh}:{rp}");
            let Some(record) = records.iter().find(|r| record_key(r) == key) else {
                found.push(Difference {
                    source: "zeek".into(),
                    case: case.clone(),
                    item,
                    field: "presence".into(),
                    expected: "logged".into(),
                    sensor: "absent".into(),
                    reason: String::new(),
                });
                continue;
            };
            for &(column, field) in ZEEK_COLUMNS {
                if !row.has(column) {
                    continue;
                }
                let zeek = row.get(column).unwrap_or("-").to_owned();
                let ours = text(record, field).unwrap_or_else(|| "-".to_owned());
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

#[test]
fn ssh_matches_suricata_tshark_and_zeek() {
    let Some(corpus) = corpus_or_skip() else {
        return;
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("expectations/ssh.toml");
    let expectations = Expectations::load(&path);
    let mut runs = Runs::default();
    let mut problems = Vec::new();
    let (sv, mut found) = suricata_differences(&corpus, &mut runs, &mut problems);
    let (ts, more) = tshark_differences(&corpus, &mut runs);
    found.extend(more);
    let (zk, more) = zeek_differences(&corpus, &mut runs);
    found.extend(more);
    let known = judge(&expectations.difference, &found, &path, &mut problems);
    println!(
        "compared {sv} suricata-verify checks, {ts} tshark connections, {zk} Zeek ssh.log rows; {known} known differences"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

//! Users rely on the sensor's `tls` records agreeing with the tools they
//! know: JA3 and JA3S equal tshark's on every TLS and DTLS capture of the
//! corpus (where tshark finds the hello), JA4 equals what the
//! suricata-verify tests expect (`tls.ja4`), and version, SNI, cipher, selected ALPN, resumption
//! and the certificate chain (subject, issuer, SANs, serial, validity, key)
//! equal Zeek's `ssl.log` and `x509.log` baselines for the traces under
//! `tls/`, unless the difference is listed with its reason in
//! `tests/expectations/tls.toml`.
//!
//! Each test fails on a difference that is not listed, and on a listed one
//! that no longer occurs; it prints the unlisted ones as TOML to review.

// Test code: a failed expectation must stop the test with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use sensor_tests::corpus::{Corpus, corpus_or_skip};
use sensor_tests::records::parse_lines;
use sensor_tests::sensor::run_pcap;
use sensor_tests::suricata::tests_with_event;
use sensor_tests::tshark::{SENSOR_DECODE_AS, require_tshark};
use sensor_tests::zeek::{ConnBaseline, log_baselines, parse_log};
use serde::Deserialize;
use serde_json::Value;

/// One known difference from a reference tool.
#[derive(Debug, Clone, Deserialize, PartialEq)]
struct Difference {
    /// `ja3`, `ja3s`, `ja4`, `ssl` or `x509`.
    check: String,
    /// The capture, relative to the corpus root.
    capture: String,
    /// What differs: a hash, a flow and column, a certificate and column.
    item: String,
    /// The reference tool's value.
    expected: String,
    /// The sensor's value.
    sensor: String,
    #[serde(default)]
    reason: String,
}

impl Difference {
    fn same_as(&self, other: &Self) -> bool {
        (
            &self.check,
            &self.capture,
            &self.item,
            &self.expected,
            &self.sensor,
        ) == (
            &other.check,
            &other.capture,
            &other.item,
            &other.expected,
            &other.sensor,
        )
    }

    fn to_toml(&self) -> String {
        format!(
            "[[difference]]\ncheck = {:?}\ncapture = {:?}\nitem = {:?}\nexpected = {:?}\nsensor = {:?}\nreason = \"\"\n",
            self.check, self.capture, self.item, self.expected, self.sensor
        )
    }
}

#[derive(Debug, Deserialize, Default)]
struct Expectations {
    #[serde(default)]
    difference: Vec<Difference>,
}

fn expectations_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("expectations/tls.toml")
}

fn load() -> Expectations {
    let text = std::fs::read_to_string(expectations_path()).expect("tls.toml is readable");
    toml::from_str(&text).expect("tls.toml parses")
}

/// Compares what was found with the listed differences of `check`;
/// returns the problems (unlisted or stale differences).
fn verdict(check: &str, found: &[Difference], summary: &str) -> Vec<String> {
    let expectations = load();
    let listed: Vec<&Difference> = expectations
        .difference
        .iter()
        .filter(|d| d.check == check)
        .collect();
    let mut problems = Vec::new();
    for l in &listed {
        if l.reason.trim().is_empty() {
            problems.push(format!(
                "listed difference without a reason:\n{}",
                l.to_toml()
            ));
        }
        if !found.iter().any(|f| f.same_as(l)) {
            problems.push(format!(
                "listed difference no longer occurs:\n{}",
                l.to_toml()
            ));
        }
    }
    let unlisted: Vec<&Difference> = found
        .iter()
        .filter(|f| !listed.iter().any(|l| l.same_as(f)))
        .collect();
    println!(
        "{summary}; {} known differences, {} unlisted",
        found.len() - unlisted.len(),
        unlisted.len()
    );
    if !unlisted.is_empty() {
        problems.push(format!(
            "{} differences ({check}) not listed in {}:\n{}",
            unlisted.len(),
            expectations_path().display(),
            unlisted
                .iter()
                .map(|d| d.to_toml())
                .collect::<Vec<_>>()
                .join("\n")
        ));
    }
    problems
}

/// The sensor's `tls` records for a capture.
fn tls_records(pcap: &Path) -> Vec<Value> {
    let run = run_pcap(&[pcap], &[]);
    assert!(
        run.status.success() && !run.panicked(),
        "sensor pcap {} failed: {}",
        pcap.display(),
        run.stderr
    );
    parse_lines(&run.stdout)
        .into_iter()
        .filter(|r| r["type"] == "tls")
        .collect()
}

fn str_field(r: &Value, k: &str) -> Option<String> {
    r.get(k).and_then(Value::as_str).map(str::to_owned)
}

/// The JA3 and JA3S hashes tshark computes for the TLS-over-TCP and the
/// DTLS hellos of a capture.
fn tshark_hashes(pcap: &Path) -> (BTreeSet<String>, BTreeSet<String>) {
    let out = Command::new(require_tshark())
        .arg("-n")
        .arg("-r")
        .arg(pcap)
        .args(SENSOR_DECODE_AS.iter().flat_map(|rule| ["-d", rule]))
        .args([
            "-Y",
            "(tcp && (tls.handshake.type == 1 || tls.handshake.type == 2)) \
             || (udp && (dtls.handshake.type == 1 || dtls.handshake.type == 2))",
        ])
        .args(["-T", "fields", "-E", "separator=/t", "-E", "occurrence=a"])
        .args(["-E", "aggregator=,"])
        .args(["-e", "tls.handshake.ja3", "-e", "tls.handshake.ja3s"])
        .args(["-e", "dtls.handshake.ja3", "-e", "dtls.handshake.ja3s"])
        .output()
        .expect("tshark runs");
    let mut ja3 = BTreeSet::new();
    let mut ja3s = BTreeSet::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut cols = line.split('\t');
        let (tls_ja3, tls_ja3s) = (cols.next(), cols.next());
        let (dtls_ja3, dtls_ja3s) = (cols.next(), cols.next());
        for (is_ja3s, col) in [
            (false, tls_ja3),
            (true, tls_ja3s),
            (false, dtls_ja3),
            (true, dtls_ja3s),
        ] {
            let set = if is_ja3s { &mut ja3s } else { &mut ja3 };
            for v in col.unwrap_or("").split(',').filter(|v| !v.is_empty()) {
                set.insert(v.to_owned());
            }
        }
    }
    (ja3, ja3s)
}

fn tls_captures(corpus: &Corpus) -> Vec<PathBuf> {
    corpus
        .category("tls")
        .map(|e| corpus.entry_path(e))
        .filter(|p| p.is_file())
        .collect()
}

#[test]
fn ja3_and_ja3s_equal_tshark() {
    let Some(corpus) = corpus_or_skip() else {
        return;
    };
    let captures = tls_captures(&corpus);
    assert!(!captures.is_empty(), "no TLS captures in the manifest");
    let mut found = Vec::new();
    let (mut with_hello, mut ja3_equal, mut ja3s_equal) = (0, 0, 0);
    for pcap in &captures {
        let capture = corpus.relative(pcap).into_owned();
        let (t_ja3, t_ja3s) = tshark_hashes(pcap);
        let recs = tls_records(pcap);
        // A DTLS client made to retry sent two hellos; tshark lists both.
        let s_ja3: BTreeSet<String> = recs
            .iter()
            .flat_map(|r| [str_field(r, "ja3"), str_field(r, "first_hello_ja3")])
            .flatten()
            .collect();
        // A HelloRetryRequest is a ServerHello to tshark: its JA3S is listed
        // beside the final one's, as the record carries both.
        let s_ja3s: BTreeSet<String> = recs
            .iter()
            .flat_map(|r| [str_field(r, "ja3s"), str_field(r, "hello_retry_ja3s")])
            .flatten()
            .collect();
        if !t_ja3.is_empty() || !t_ja3s.is_empty() {
            with_hello += 1;
        }
        for (check, tshark, sensor, equal) in [
            ("ja3", &t_ja3, &s_ja3, &mut ja3_equal),
            ("ja3s", &t_ja3s, &s_ja3s, &mut ja3s_equal),
        ] {
            if !tshark.is_empty() && tshark == sensor {
                *equal += 1;
            }
            for h in tshark.difference(sensor) {
                found.push(Difference {
                    check: check.into(),
                    capture: capture.clone(),
                    item: h.clone(),
                    expected: h.clone(),
                    sensor: "(missing)".into(),
                    reason: String::new(),
                });
            }
            // A hash tshark did not find: only a difference where tshark
            // dissected the hellos of this capture (it may not know the port).
            if !tshark.is_empty() {
                for h in sensor.difference(tshark) {
                    found.push(Difference {
                        check: check.into(),
                        capture: capture.clone(),
                        item: h.clone(),
                        expected: "(absent)".into(),
                        sensor: h.clone(),
                        reason: String::new(),
                    });
                }
            }
        }
    }
    let mut problems = verdict(
        "ja3",
        &found
            .iter()
            .filter(|d| d.check == "ja3")
            .cloned()
            .collect::<Vec<_>>(),
        &format!(
            "{} TLS captures, {with_hello} with hellos tshark dissects; JA3 sets equal on {ja3_equal}, JA3S sets equal on {ja3s_equal}",
            captures.len()
        ),
    );
    problems.extend(verdict(
        "ja3s",
        &found
            .iter()
            .filter(|d| d.check == "ja3s")
            .cloned()
            .collect::<Vec<_>>(),
        "JA3S",
    ));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn ja4_equals_suricata_verify() {
    let Some(corpus) = corpus_or_skip() else {
        return;
    };
    let tests = tests_with_event(&corpus, "tls");
    let mut found = Vec::new();
    let (mut checks, mut equal) = (0, 0);
    let mut cache: BTreeMap<PathBuf, BTreeSet<String>> = BTreeMap::new();
    for t in &tests {
        for check in &t.checks {
            let Some(expected) = check.get("tls.ja4") else {
                continue;
            };
            if check.count == Some(0) {
                continue;
            }
            checks += 1;
            let expected = expected.as_text();
            let ja4s = cache.entry(t.pcap.clone()).or_insert_with(|| {
                tls_records(&t.pcap)
                    .iter()
                    .filter_map(|r| str_field(r, "ja4"))
                    .collect()
            });
            if ja4s.contains(&expected) {
                equal += 1;
            } else {
                found.push(Difference {
                    check: "ja4".into(),
                    capture: corpus.relative(&t.pcap).into_owned(),
                    item: t.name.clone(),
                    expected: expected.clone(),
                    sensor: ja4s.iter().cloned().collect::<Vec<_>>().join(","),
                    reason: String::new(),
                });
            }
        }
    }
    assert!(checks > 0, "no suricata-verify check looks at tls.ja4");
    let problems = verdict(
        "ja4",
        &found,
        &format!("{checks} suricata-verify tls.ja4 checks, {equal} equal"),
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Zeek's `time` column (epoch seconds) as RFC 3339 UTC.
fn epoch_rfc3339(v: &str) -> String {
    let secs: i64 = v
        .split('.')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        tod / 3600,
        tod % 3600 / 60,
        tod % 60
    )
}

/// A Zeek value: `-` (unset) and `(empty)` are the empty string.
fn zeek_value(v: Option<&str>) -> String {
    match v {
        None | Some("-") | Some("(empty)") => String::new(),
        Some(v) => v.to_owned(),
    }
}

fn join_strs(v: Option<&Value>) -> String {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// Baselines by file: a test that reads several traces has one baseline
/// for all of them (its rows are matched against all their records).
fn group(baselines: &[ConnBaseline]) -> Vec<(&ConnBaseline, Vec<PathBuf>)> {
    let mut out: Vec<(&ConnBaseline, Vec<PathBuf>)> = Vec::new();
    for b in baselines {
        match out.iter_mut().find(|(o, _)| o.path == b.path) {
            Some((_, pcaps)) => pcaps.push(b.pcap.clone()),
            None => out.push((b, vec![b.pcap.clone()])),
        }
    }
    out
}

fn records_of(runs: &mut BTreeMap<PathBuf, Vec<Value>>, pcaps: &[PathBuf]) -> Vec<Value> {
    let mut all = Vec::new();
    for p in pcaps {
        all.extend(
            runs.entry(p.clone())
                .or_insert_with(|| tls_records(p))
                .iter()
                .cloned(),
        );
    }
    all
}

fn capture_name(corpus: &Corpus, pcaps: &[PathBuf]) -> String {
    pcaps
        .iter()
        .map(|p| corpus.relative(p).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn ssl_and_x509_equal_zeek() {
    let Some(corpus) = corpus_or_skip() else {
        return;
    };
    let ssl = log_baselines(&corpus, &["tls/"], "ssl");
    let x509 = log_baselines(&corpus, &["tls/"], "x509");
    assert!(!ssl.is_empty(), "no ssl.log baselines under tls/");
    let mut runs: BTreeMap<PathBuf, Vec<Value>> = BTreeMap::new();
    let mut found = Vec::new();
    let (mut rows, mut cert_rows) = (0, 0);
    for (b, pcaps) in group(&ssl) {
        let recs = records_of(&mut runs, &pcaps);
        let capture = capture_name(&corpus, &pcaps);
        let mut used = vec![false; recs.len()];
        for row in parse_log(&b.path) {
            rows += 1;
            let flow = format!(
                "{}:{} > {}:{}",
                zeek_value(row.get("id.orig_h")),
                zeek_value(row.get("id.orig_p")),
                zeek_value(row.get("id.resp_h")),
                zeek_value(row.get("id.resp_p"))
            );
            let idx = recs.iter().enumerate().position(|(i, r)| {
                !used[i]
                    && r["src_ip"].as_str() == row.get("id.orig_h")
                    && r["dst_ip"].as_str() == row.get("id.resp_h")
                    && r["src_port"].as_u64().map(|p| p.to_string()).as_deref()
                        == row.get("id.orig_p")
                    && r["dst_port"].as_u64().map(|p| p.to_string()).as_deref()
                        == row.get("id.resp_p")
            });
            let diff = |item: String, expected: String, sensor: String| Difference {
                check: "ssl".into(),
                capture: capture.clone(),
                item,
                expected,
                sensor,
                reason: String::new(),
            };
            let Some(i) = idx else {
                found.push(diff(
                    format!("{flow} ({})", b.name),
                    "record".into(),
                    "(missing)".into(),
                ));
                continue;
            };
            used[i] = true;
            let r = &recs[i];
            let certs = r["certs"].as_array().cloned().unwrap_or_default();
            let fps = certs
                .iter()
                .filter_map(|c| c["sha256"].as_str())
                .collect::<Vec<_>>()
                .join(",");
            let resumed = if r["resumed"].as_bool() == Some(true) {
                "T"
            } else {
                "F"
            };
            for (col, sensor) in [
                ("version", str_field(r, "version").unwrap_or_default()),
                ("cipher", str_field(r, "cipher").unwrap_or_default()),
                ("server_name", str_field(r, "sni").unwrap_or_default()),
                (
                    "next_protocol",
                    str_field(r, "alpn_selected").unwrap_or_default(),
                ),
                ("resumed", resumed.to_owned()),
                ("cert_chain_fps", fps),
            ] {
                if !row.has(col) {
                    continue;
                }
                let expected = zeek_value(row.get(col));
                if expected != sensor {
                    found.push(diff(format!("{flow} {col}"), expected, sensor));
                }
            }
        }
    }
    for (b, pcaps) in group(&x509) {
        let recs = records_of(&mut runs, &pcaps);
        let capture = capture_name(&corpus, &pcaps);
        let certs: Vec<Value> = recs
            .iter()
            .flat_map(|r| r["certs"].as_array().cloned().unwrap_or_default())
            .collect();
        for row in parse_log(&b.path) {
            cert_rows += 1;
            let fp = zeek_value(row.get("fingerprint"));
            let diff = |item: String, expected: String, sensor: String| Difference {
                check: "x509".into(),
                capture: capture.clone(),
                item,
                expected,
                sensor,
                reason: String::new(),
            };
            let Some(c) = certs
                .iter()
                .find(|c| c["sha256"].as_str() == Some(fp.as_str()))
            else {
                found.push(diff(
                    format!("{fp} ({})", b.name),
                    "certificate".into(),
                    "(missing)".into(),
                ));
                continue;
            };
            let sensor_str = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
            let bits = c["key_bits"].as_u64().unwrap_or(0).to_string();
            for (col, sensor, map) in [
                ("certificate.subject", sensor_str("subject"), None),
                ("certificate.issuer", sensor_str("issuer"), None),
                ("certificate.serial", sensor_str("serial"), None),
                ("san.dns", join_strs(c.get("san_dns")), None),
                ("san.ip", join_strs(c.get("san_ip")), None),
                (
                    "certificate.not_valid_before",
                    sensor_str("not_before"),
                    Some(epoch_rfc3339 as fn(&str) -> String),
                ),
                (
                    "certificate.not_valid_after",
                    sensor_str("not_after"),
                    Some(epoch_rfc3339 as fn(&str) -> String),
                ),
                ("certificate.key_type", sensor_str("key_type"), None),
                ("certificate.key_length", bits, None),
            ] {
                if !row.has(col) {
                    continue;
                }
                let mut expected = zeek_value(row.get(col));
                if let Some(f) = map {
                    expected = f(&expected);
                }
                if expected != sensor {
                    found.push(diff(format!("{fp} {col}"), expected, sensor));
                }
            }
        }
    }
    let mut problems = verdict(
        "ssl",
        &found
            .iter()
            .filter(|d| d.check == "ssl")
            .cloned()
            .collect::<Vec<_>>(),
        &format!("{} ssl.log baselines, {rows} rows", ssl.len()),
    );
    problems.extend(verdict(
        "x509",
        &found
            .iter()
            .filter(|d| d.check == "x509")
            .cloned()
            .collect::<Vec<_>>(),
        &format!("{} x509.log baselines, {cert_rows} rows", x509.len()),
    ));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

//! Users rely on the sensor's `dns` records saying what Zeek's `dns.log` and
//! Suricata's EVE `dns` events say about the same traffic: for the Zeek
//! traces of DNS (`dns*`, `dnssec/`, and the IPv6 fragmented DNS trace) and
//! the suricata-verify tests whose checks look at DNS events, the records
//! match on query, qtype, rcode and answer data, unless the difference is
//! listed with its reason in `tests/expectations/dns.toml`.
//!
//! The sensor writes record data in zone-file presentation format (see
//! `sensor/src/dissect/dns/rdata.rs`); Zeek and Suricata each show some
//! types their own way, so the sensor's `data` is turned into each tool's
//! view before comparing ([`zeek_view`], [`suricata_view`]). Suricata logs one
//! event per query and one per response; a sensor record stands for the
//! query event unless it is `unsolicited`, and for the response event
//! unless it is `unanswered`.
//!
//! The test fails on a difference that is not listed, and on a listed
//! difference that no longer occurs. When it fails it prints the unlisted
//! differences as TOML tables to review and paste.

// Test code: a failed expectation must stop the test with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use sensor_tests::corpus::{Corpus, corpus_or_skip};
use sensor_tests::expectations::{Difference, Listed, judge};
use sensor_tests::records::parse_lines;
use sensor_tests::sensor::run_pcap;
use sensor_tests::suricata::{Check, Expected, SvTest, tests_with_event};
use sensor_tests::zeek::{ConnBaseline, ZeekConn, log_baselines, parse_log};

/// Zeek traces (under `testing/btest/Traces/`) whose dns baselines are
/// compared: every `dns*` trace (`dns/`, `dnssec/`, `dns-*.pcap`, ...) and
/// the IPv6 fragmented DNS trace.
const TRACE_PREFIXES: &[&str] = &["dns", "ipv6-fragmented-dns"];

/// `tests/expectations/dns.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expectations {
    #[serde(default)]
    skip: Vec<Skip>,
    #[serde(default)]
    difference: Vec<Difference>,
}

/// A baseline or suricata-verify test that is not compared, and why.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Skip {
    /// `zeek` or `suricata`.
    source: String,
    /// Zeek: the trace; Suricata: the test name.
    trace: String,
    /// Zeek: `<test dir>/<file>`; Suricata: empty.
    #[serde(default)]
    baseline: String,
    reason: String,
}

/// The sensor's dns records of one capture, cached by path.
#[derive(Default)]
struct Runs {
    runs: BTreeMap<PathBuf, Vec<Value>>,
}

impl Runs {
    fn dns(&mut self, pcap: &Path) -> &[Value] {
        self.runs.entry(pcap.to_owned()).or_insert_with(|| {
            let run = run_pcap(&[pcap], &[]);
            let mut recs: Vec<Value> = parse_lines(&run.stdout)
                .into_iter()
                .filter(|r| r.get("type").and_then(Value::as_str) == Some("dns"))
                .collect();
            recs.sort_by(|a, b| {
                let ts = |r: &Value| r.get("ts").map(Value::to_string).unwrap_or_default();
                ts(a).cmp(&ts(b))
            });
            recs
        })
    }
}

#[test]
fn dns_corpus() {
    let Some(corpus) = corpus_or_skip() else {
        return;
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("expectations/dns.toml");
    let text = std::fs::read_to_string(&path).expect("dns.toml is readable");
    let expectations: Expectations = toml::from_str(&text).expect("dns.toml is valid");
    let mut problems = Vec::new();
    let mut found = Vec::new();
    let mut runs = Runs::default();

    let baselines = log_baselines(&corpus, TRACE_PREFIXES, "dns");
    assert!(
        baselines.len() >= 20,
        "too few dns baselines: {}",
        baselines.len()
    );
    let skipped = |source: &str, trace: &str, baseline: &str| {
        expectations
            .skip
            .iter()
            .any(|s| s.source == source && s.trace == trace && s.baseline == baseline)
    };
    let mut zeek_compared = 0;
    for b in &baselines {
        if skipped("zeek", &b.trace, &b.name) {
            continue;
        }
        zeek_compared += 1;
        let recs = runs.dns(&b.pcap).to_vec();
        compare_zeek(b, &recs, &mut found);
    }

    let sv = suricata_dns_tests(&corpus);
    assert!(
        sv.len() >= 30,
        "too few suricata-verify dns tests: {}",
        sv.len()
    );
    let mut sv_compared = 0;
    for t in &sv {
        if skipped("suricata", &t.name, "") {
            continue;
        }
        sv_compared += 1;
        let recs = runs.dns(&t.pcap).to_vec();
        compare_suricata(t, &recs, &mut found);
    }

    for s in &expectations.skip {
        let exists = match s.source.as_str() {
            "zeek" => baselines
                .iter()
                .any(|b| b.trace == s.trace && b.name == s.baseline),
            "suricata" => sv.iter().any(|t| t.name == s.trace),
            _ => false,
        };
        if !exists {
            problems.push(format!(
                "stale [[skip]]: {} {} {}",
                s.source, s.trace, s.baseline
            ));
        }
        if s.reason.trim().is_empty() {
            problems.push(format!("[[skip]] {} has no reason", s.trace));
        }
    }
    let known = judge(&expectations.difference, &found, &path, &mut problems);
    println!(
        "compared {zeek_compared} Zeek dns baselines and {sv_compared} suricata-verify tests; {known} known differences"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---- Zeek ----

fn text(r: &Value, key: &str) -> Option<String> {
    r.get(key).and_then(|v| match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    })
}

fn answers(r: &Value) -> Vec<Value> {
    r.get("answers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn flag(r: &Value, key: &str) -> bool {
    r.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// Zeek's name of a query type: the mnemonic, `*` for ANY, `query-<n>` for
/// a number.
fn zeek_qtype(v: &Value) -> String {
    match v {
        Value::String(s) if s == "ANY" => "*".into(),
        Value::String(s) => s.clone(),
        other => format!("query-{other}"),
    }
}

fn compare_zeek(b: &ConnBaseline, recs: &[Value], found: &mut Vec<Difference>) {
    let rows = parse_log(&b.path);
    let mut used = vec![false; recs.len()];
    let mut labels: BTreeMap<String, usize> = BTreeMap::new();
    let mut diff = |item: &str, field: &str, expected: String, sensor: String| {
        let d = Difference {
            source: "zeek".into(),
            case: b.trace.clone(),
            item: item.to_owned(),
            field: field.to_owned(),
            expected,
            sensor,
            reason: String::new(),
        };
        if !found.iter().any(|f| f.same_as(&d)) {
            found.push(d);
        }
    };
    for row in &rows {
        let base = format!(
            "{} id {} {}",
            b.name,
            row.get("trans_id").unwrap_or("?"),
            row.get("query").unwrap_or("-")
        );
        let n = labels.entry(base.clone()).or_insert(0);
        *n += 1;
        let item = if *n == 1 {
            base
        } else {
            format!("{base} #{n}")
        };
        let Some(i) = (0..recs.len()).find(|&i| !used[i] && row_matches(row, &recs[i])) else {
            diff(&item, "presence", "logged".into(), "absent".into());
            continue;
        };
        used[i] = true;
        let r = &recs[i];
        let unset = || "-".to_owned();
        if let Some(q) = row.get("query") {
            let ours = text(r, "query").unwrap_or_else(unset);
            if !q.eq_ignore_ascii_case(&ours) {
                diff(&item, "query", q.to_owned(), ours);
            }
        }
        if let Some(q) = row.get("qtype_name") {
            let ours = r.get("qtype").map_or_else(unset, zeek_qtype);
            if q != ours {
                diff(&item, "qtype", q.to_owned(), ours);
            }
        }
        if row.has("rcode_name") {
            let z = row.get("rcode_name").unwrap_or("-").to_owned();
            let ours = text(r, "rcode").unwrap_or_else(unset);
            if z != ours {
                diff(&item, "rcode", z, ours);
            }
        }
        if row.has("answers") {
            let z = row.get("answers").unwrap_or("-").to_owned();
            let list = answers(r);
            let ours = if list.is_empty() {
                unset()
            } else {
                list.iter().map(zeek_view).collect::<Vec<_>>().join(",")
            };
            if z != ours {
                diff(&item, "answers", z, ours);
            }
        }
        if row.has("TTLs") {
            let z = row.get("TTLs").unwrap_or("-");
            let z: Vec<String> = if z == "-" {
                Vec::new()
            } else {
                z.split(',')
                    .map(|t| t.parse::<f64>().map_or(t.to_owned(), |f| format!("{f}")))
                    .collect()
            };
            let ours: Vec<String> = answers(r)
                .iter()
                .map(|a| a.get("ttl").map(Value::to_string).unwrap_or_default())
                .collect();
            if z != ours {
                diff(&item, "ttls", z.join(","), ours.join(","));
            }
        }
    }
    for (i, r) in recs.iter().enumerate() {
        if !used[i] {
            let item = format!(
                "{} id {} {}",
                b.name,
                text(r, "trans_id").unwrap_or_default(),
                text(r, "query").unwrap_or_else(|| "-".into())
            );
            diff(&item, "presence", "absent".into(), "record".into());
        }
    }
}

/// The row and the record are the same transaction: same endpoints (either
/// orientation), transaction id and query where the row has them.
fn row_matches(row: &ZeekConn, r: &Value) -> bool {
    let ips = (text(r, "src_ip"), text(r, "dst_ip"));
    let pair_ok = match (row.get("id.orig_h"), row.get("id.resp_h")) {
        (Some(o), Some(p)) => {
            let (o, p) = (Some(o.to_owned()), Some(p.to_owned()));
            (o == ips.0 && p == ips.1) || (o == ips.1 && p == ips.0)
        }
        (Some(o), None) => {
            let o = Some(o.to_owned());
            o == ips.0 || o == ips.1
        }
        _ => true,
    };
    let id_ok = row
        .get("trans_id")
        .is_none_or(|id| text(r, "trans_id").as_deref() == Some(id));
    let query_ok = row
        .get("query")
        .is_none_or(|q| text(r, "query").is_some_and(|ours| ours.eq_ignore_ascii_case(q)));
    // A row without a response (rcode unset) is an unanswered query.
    let answered_ok = match row.get("rcode_name") {
        None if row.has("rcode_name") => !flag(r, "unsolicited") && r.get("rcode").is_none(),
        _ => true,
    };
    pair_ok && id_ok && query_ok && answered_ok
}

/// The number of a type mnemonic, for Zeek's RRSIG view.
fn type_number(name: &str) -> String {
    let n = match name {
        "A" => 1,
        "NS" => 2,
        "CNAME" => 5,
        "SOA" => 6,
        "PTR" => 12,
        "MX" => 15,
        "TXT" => 16,
        "AAAA" => 28,
        "LOC" => 29,
        "SRV" => 33,
        "NAPTR" => 35,
        "DS" => 43,
        "SSHFP" => 44,
        "RRSIG" => 46,
        "NSEC" => 47,
        "DNSKEY" => 48,
        "NSEC3" => 50,
        "NSEC3PARAM" => 51,
        "TLSA" => 52,
        "SVCB" => 64,
        "HTTPS" => 65,
        "SPF" => 99,
        "CAA" => 257,
        other => return other.trim_start_matches("TYPE").to_owned(),
    };
    n.to_string()
}

/// The character-strings of a TXT-like presentation (`"a" "b"`), unescaped.
fn strings(data: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut cur: Option<Vec<u8>> = None;
    let mut chars = data.bytes().peekable();
    while let Some(c) = chars.next() {
        match (c, cur.as_mut()) {
            (b'"', None) => cur = Some(Vec::new()),
            (b'"', Some(_)) => out.push(cur.take().unwrap()),
            (b'\\', Some(s)) => {
                let next = chars.next().unwrap_or(b'\\');
                if next.is_ascii_digit() {
                    let d: String = [next, chars.next().unwrap(), chars.next().unwrap()]
                        .iter()
                        .map(|&b| char::from(b))
                        .collect();
                    s.push(d.parse().unwrap_or(b'?'));
                } else {
                    s.push(next);
                }
            }
            (c, Some(s)) => s.push(c),
            (_, None) => {}
        }
    }
    out
}

/// How Zeek's `answers` column shows this answer.
fn zeek_view(a: &Value) -> String {
    let rtype = a.get("type").map_or_else(String::new, |t| {
        t.as_str().map_or_else(|| t.to_string(), str::to_owned)
    });
    let data = text(a, "data").unwrap_or_default();
    let tokens: Vec<&str> = data.split(' ').collect();
    let tok = |i: usize| tokens.get(i).copied().unwrap_or("").to_owned();
    // Zeek lowercases names.
    match rtype.as_str() {
        "CNAME" | "NS" | "PTR" | "DNAME" => data.to_lowercase(),
        "MX" => tok(1).to_lowercase(),
        "SRV" => tok(3).to_lowercase(),
        "SOA" => tok(0).to_lowercase(),
        "TXT" | "SPF" => strings(&data)
            .iter()
            .map(|s| format!("{rtype} {} {}", s.len(), String::from_utf8_lossy(s)))
            .collect::<Vec<_>>()
            .join(" "),
        "DNSKEY" => format!("DNSKEY {}", tok(2)),
        "DS" => format!("DS {} {}", tok(1), tok(2)),
        "RRSIG" => format!("RRSIG {} {}", type_number(&tok(0)), tok(7).to_lowercase()),
        "NSEC" => format!("NSEC {} {}", text(a, "name").unwrap_or_default(), tok(0)).to_lowercase(),
        "NSEC3" | "NSEC3PARAM" => rtype,
        "SSHFP" => format!("SSHFP: {}", tok(2).to_lowercase()),
        "NAPTR" => {
            let s = strings(&data);
            let part = |i: usize| s.get(i).map(|b| String::from_utf8_lossy(b).into_owned());
            let mut v = vec![tok(0), tok(1)];
            v.extend((0..3).filter_map(part).filter(|p| !p.is_empty()));
            v.push(tokens.last().copied().unwrap_or("").to_owned());
            format!("NAPTR {}", v.join(" "))
        }
        "65534" => "BIND9 signing signal".into(),
        _ => data,
    }
}

// ---- Suricata ----

/// Every suricata-verify test with a check on DNS events: those indexed
/// under `dns`, and those whose checks match `dns.*` fields without naming
/// the event type.
fn suricata_dns_tests(corpus: &Corpus) -> Vec<SvTest> {
    let mut tests = tests_with_event(corpus, "dns");
    for t in tests_with_event(corpus, "?") {
        if t.checks.iter().any(is_dns_check) && !tests.iter().any(|x| x.name == t.name) {
            tests.push(t);
        }
    }
    tests.sort_by(|a, b| a.name.cmp(&b.name));
    tests
}

fn is_dns_check(c: &Check) -> bool {
    match c.event_type() {
        Some(e) => e == "dns",
        None => c.matches.iter().any(|(k, _)| k.starts_with("dns.")),
    }
}

/// What a Suricata event looks at, in the sensor's terms.
enum Side {
    Request,
    Response,
}

/// A check translated: which side of the transaction, and a predicate per
/// supported field; `partial` when some fields had no sensor counterpart
/// (then only "at least one" can be checked).
struct Translated {
    side: Option<Side>,
    preds: Vec<(String, Expected)>,
    partial: bool,
}

fn translate(c: &Check) -> Translated {
    let mut t = Translated {
        side: None,
        preds: Vec::new(),
        partial: false,
    };
    for (k, v) in &c.matches {
        let key = k.as_str();
        match key {
            "event_type" | "dns.version" => {}
            "dns.type" => {
                t.side = match v.as_text().as_str() {
                    "request" | "query" => Some(Side::Request),
                    _ => Some(Side::Response),
                }
            }
            "dns.qr" => {
                t.side = Some(if v == &Expected::Bool(true) {
                    Side::Response
                } else {
                    Side::Request
                })
            }
            "dns.queries[0].rrname" | "dns.rrname" | "dns.query[0].rrname" => {
                t.preds.push(("query".into(), v.clone()))
            }
            "dns.queries[0].rrtype" | "dns.rrtype" | "dns.query[0].rrtype" => {
                t.preds.push(("qtype".into(), v.clone()))
            }
            "dns.rcode" | "dns.answer.rcode" => t.preds.push(("rcode".into(), v.clone())),
            "dns.id" | "dns.answer.id" | "dns.query[0].id" => {
                t.preds.push(("trans_id".into(), v.clone()))
            }
            "dns.rd" | "dns.ra" | "dns.aa" | "dns.answer.rd" | "dns.answer.ra" => {
                let f = key.rsplit('.').next().unwrap_or_default();
                t.preds.push((f.into(), v.clone()));
            }
            "dns.opcode" | "dns.answer.opcode" | "dns.query[0].opcode" => {
                t.preds.push(("opcode".into(), v.clone()))
            }
            "dns.answers.__len" => t.preds.push(("answers.len".into(), v.clone())),
            "src_ip" | "dest_ip" => t.preds.push(("ip".into(), v.clone())),
            "src_port" | "dest_port" => t.preds.push(("port".into(), v.clone())),
            "proto" => t.preds.push(("proto".into(), v.clone())),
            _ if key.starts_with("dns.answers[") || key.starts_with("dns.grouped.") => t
                .preds
                .push((key.trim_start_matches("dns.").into(), v.clone())),
            _ => t.partial = true,
        }
    }
    t
}

/// Suricata's `rdata` for this answer.
fn suricata_view(a: &Value) -> String {
    let rtype = text(a, "type").unwrap_or_default();
    let data = text(a, "data").unwrap_or_default();
    match rtype.as_str() {
        "MX" => data.split(' ').nth(1).unwrap_or("").to_owned(),
        "TXT" | "SPF" => strings(&data)
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect::<Vec<_>>()
            .join(""),
        _ => data,
    }
}

/// The answers as Suricata lists them: a TXT record with several
/// character-strings is one entry per string.
fn suricata_answers(r: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for a in answers(r) {
        let rtype = text(&a, "type").unwrap_or_default();
        if rtype == "TXT" {
            for s in strings(&text(&a, "data").unwrap_or_default()) {
                let mut one = a.clone();
                let quoted = format!(
                    "\"{}\"",
                    String::from_utf8_lossy(&s)
                        .replace('\\', "\\\\")
                        .replace('"', "\\\"")
                );
                one["data"] = Value::String(quoted);
                out.push(one);
            }
        } else {
            out.push(a);
        }
    }
    out
}

/// The value the sensor's record gives for a translated field.
fn sensor_value(r: &Value, field: &str) -> Option<String> {
    let list = suricata_answers(r);
    let answer_field = |a: &Value, f: &str| -> Option<String> {
        let tokens =
            |i: usize| text(a, "data").and_then(|d| d.split(' ').nth(i).map(str::to_owned));
        match f {
            "rdata" => Some(suricata_view(a)),
            "rrname" => text(a, "name"),
            "rrtype" => text(a, "type"),
            "ttl" => text(a, "ttl"),
            "srv.priority" => tokens(0),
            "srv.weight" => tokens(1),
            "srv.port" => tokens(2),
            "srv.name" => tokens(3),
            "sshfp.algo" => tokens(0),
            "sshfp.fingerprint" => tokens(2).map(|h| {
                h.to_lowercase()
                    .as_bytes()
                    .chunks(2)
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect::<Vec<_>>()
                    .join(":")
            }),
            _ => None,
        }
    };
    if let Some(rest) = field.strip_prefix("answers[") {
        let (index, f) = rest.split_once("].")?;
        let a = list.get(index.parse::<usize>().ok()?)?;
        return answer_field(a, f);
    }
    if let Some(rest) = field.strip_prefix("grouped.") {
        let (ty, index) = rest.split_once('[')?;
        let index: usize = index.trim_end_matches(']').parse().ok()?;
        let a = list
            .iter()
            .filter(|a| text(a, "type").as_deref() == Some(ty))
            .nth(index)?;
        return Some(suricata_view(a));
    }
    match field {
        "answers.len" => Some(list.len().to_string()),
        "opcode" => text(r, "opcode").map(|o| match o.as_str() {
            "QUERY" => "0".into(),
            "IQUERY" => "1".into(),
            "STATUS" => "2".into(),
            "NOTIFY" => "4".into(),
            "UPDATE" => "5".into(),
            other => other.to_owned(),
        }),
        _ => text(r, field),
    }
}

/// How many of Suricata's events for this record (its query event unless
/// `unsolicited`, its response event unless `unanswered`) the check
/// selects.
fn matching_events(t: &Translated, r: &Value) -> u64 {
    let preds_ok = t.preds.iter().all(|(field, want)| {
        let want = want.as_text();
        match field.as_str() {
            "ip" => [text(r, "src_ip"), text(r, "dst_ip")].contains(&Some(want)),
            "port" => [text(r, "src_port"), text(r, "dst_port")].contains(&Some(want)),
            "proto" => text(r, "proto").is_some_and(|p| p.eq_ignore_ascii_case(&want)),
            "query" => sensor_value(r, "query").is_some_and(|q| q.eq_ignore_ascii_case(&want)),
            f => sensor_value(r, f).as_deref() == Some(want.as_str()),
        }
    });
    if !preds_ok {
        return 0;
    }
    let request = u64::from(!flag(r, "unsolicited"));
    let response = u64::from(!flag(r, "unanswered"));
    // Fields only a response has select the response event alone.
    let response_only = t.preds.iter().any(|(f, _)| {
        f == "rcode"
            || f == "ra"
            || f == "aa"
            || f.starts_with("answers")
            || f.starts_with("grouped")
    });
    match t.side {
        Some(Side::Request) => request,
        Some(Side::Response) => response,
        None if response_only => response,
        None => request + response,
    }
}

fn compare_suricata(t: &SvTest, recs: &[Value], found: &mut Vec<Difference>) {
    for (i, c) in t.checks.iter().enumerate() {
        if !is_dns_check(c) {
            continue;
        }
        let tr = translate(c);
        let matching: u64 = recs.iter().map(|r| matching_events(&tr, r)).sum();
        let summary: Vec<String> = c
            .matches
            .iter()
            .filter(|(k, _)| k != "event_type")
            .map(|(k, v)| format!("{k}={}", v.as_text()))
            .collect();
        let mut summary = summary.join(" ");
        if summary.len() > 160 {
            let mut cut = 160;
            while !summary.is_char_boundary(cut) {
                cut -= 1;
            }
            summary.truncate(cut);
            summary.push_str("...");
        }
        let item = format!("check {i}: {summary}");
        let (expected, ok) = match (c.count, tr.partial) {
            (Some(0), true) => continue,
            (Some(n), false) => (n.to_string(), matching == n),
            (_, _) => (">=1".to_owned(), matching >= 1),
        };
        if !ok {
            let d = Difference {
                source: "suricata".into(),
                case: t.name.clone(),
                item,
                field: "count".into(),
                expected,
                sensor: matching.to_string(),
                reason: String::new(),
            };
            if !found.iter().any(|f| f.same_as(&d)) {
                found.push(d);
            }
        }
    }
}

//! Zeek's `conn.log` baselines in the corpus, and the expectations file that
//! lists where the sensor knowingly differs from them.
//!
//! Baselines live under `expected/zeek+zeek/testing/btest/Baseline/<test>/`,
//! where `<test>` is the btest script path with `/` turned into `.` and the
//! extension dropped. `zeek-trace-to-baselines.json` maps each trace to the
//! tests that read it and their baseline files. Logs are tab separated with a
//! `#fields` header, or, for `zeek-cut` output, a plain header line.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::corpus::Corpus;
use crate::expectations::Listed;

/// One baseline log of one trace (conn, dns, http, ...).
#[derive(Debug, Clone)]
pub struct ConnBaseline {
    /// Trace path relative to `testing/btest/Traces/`.
    pub trace: String,
    /// The btest script that produced it, e.g. `core/tunnels/vxlan.zeek`.
    pub test: String,
    /// `<test dir>/<file>`, e.g. `core.tunnels.vxlan/conn.log`.
    pub name: String,
    /// Absolute path of the baseline file.
    pub path: PathBuf,
    /// Absolute path of the trace.
    pub pcap: PathBuf,
}

/// Every conn baseline (`conn*` files) of the traces whose path starts with
/// one of `prefixes` and that exist in the corpus, sorted by trace and name.
pub fn conn_baselines(corpus: &Corpus, prefixes: &[&str]) -> Vec<ConnBaseline> {
    log_baselines(corpus, prefixes, "conn")
}

/// Every baseline whose file name starts with `log` (`"dns"` finds
/// `dns.log`, `"http"` finds `http.log`) of the traces whose path starts
/// with one of `prefixes` (`""` for all) and that exist in the corpus,
/// sorted by trace and name. Read them with [`parse_log`].
pub fn log_baselines(corpus: &Corpus, prefixes: &[&str], log: &str) -> Vec<ConnBaseline> {
    let index_path = corpus.root.join("zeek-trace-to-baselines.json");
    let index: BTreeMap<String, Vec<(String, Vec<String>)>> = serde_json::from_str(
        &std::fs::read_to_string(&index_path).expect("zeek-trace-to-baselines.json is readable"),
    )
    .expect("zeek-trace-to-baselines.json has the expected shape");
    let traces = corpus.root.join("pcaps/zeek+zeek/testing/btest/Traces");
    let baselines = corpus
        .root
        .join("expected/zeek+zeek/testing/btest/Baseline");
    let mut found = Vec::new();
    for (trace, tests) in &index {
        if !prefixes.iter().any(|p| trace.starts_with(p)) {
            continue;
        }
        let pcap = traces.join(trace);
        if !pcap.is_file() {
            continue;
        }
        for (test, files) in tests {
            let dir = test_dir_name(test);
            for file in files.iter().filter(|f| f.starts_with(log)) {
                let path = baselines.join(&dir).join(file);
                if path.is_file() {
                    found.push(ConnBaseline {
                        trace: trace.clone(),
                        test: test.clone(),
                        name: format!("{dir}/{file}"),
                        path,
                        pcap: pcap.clone(),
                    });
                }
            }
        }
    }
    found.sort_by(|a, b| (&a.trace, &a.name).cmp(&(&b.trace, &b.name)));
    found
}

/// `core/tunnels/vxlan.zeek` -> `core.tunnels.vxlan`.
fn test_dir_name(test: &str) -> String {
    let stem = match test.rsplit_once('.') {
        Some((stem, ext)) if !ext.contains('/') => stem,
        _ => test,
    };
    stem.replace('/', ".")
}

/// One row of a conn log; `None` for a column the log does not have, or
/// whose value is unset (`-`).
#[derive(Debug, Clone, Default)]
pub struct ZeekConn {
    /// 1-based row number among the log's data rows.
    pub row: usize,
    /// Every column present in the log, raw.
    pub columns: BTreeMap<String, String>,
}

impl ZeekConn {
    /// The raw value of a column, or `None` when absent or unset (`-`).
    pub fn get(&self, column: &str) -> Option<&str> {
        self.columns
            .get(column)
            .map(String::as_str)
            .filter(|v| *v != "-")
    }

    /// True when the log has the column (even if this row leaves it unset).
    pub fn has(&self, column: &str) -> bool {
        self.columns.contains_key(column)
    }

    /// Originator address.
    pub fn orig_h(&self) -> Option<IpAddr> {
        self.get("id.orig_h").and_then(|v| v.parse().ok())
    }

    /// Responder address.
    pub fn resp_h(&self) -> Option<IpAddr> {
        self.get("id.resp_h").and_then(|v| v.parse().ok())
    }

    /// Originator port (ICMP: type).
    pub fn orig_p(&self) -> Option<u16> {
        self.get("id.orig_p").and_then(|v| v.parse().ok())
    }

    /// Responder port (ICMP: counterpart type or code).
    pub fn resp_p(&self) -> Option<u16> {
        self.get("id.resp_p").and_then(|v| v.parse().ok())
    }

    /// The IP protocol number, from `ip_proto` or `proto` and the address
    /// family.
    pub fn proto_number(&self) -> Option<u8> {
        if let Some(number) = self.get("ip_proto").and_then(|v| v.parse().ok()) {
            return Some(number);
        }
        match self.get("proto")? {
            "tcp" => Some(6),
            "udp" => Some(17),
            "icmp" => Some(if matches!(self.orig_h(), Some(IpAddr::V6(_))) {
                58
            } else {
                1
            }),
            _ => None,
        }
    }
}

/// Parses any Zeek log (full, or cut by `zeek-cut` with or without `-m`)
/// into rows of raw columns.
pub fn parse_log(path: &Path) -> Vec<ZeekConn> {
    parse_conn_log(path)
}

/// Parses a conn log (full, or cut by `zeek-cut` with or without `-m`).
pub fn parse_conn_log(path: &Path) -> Vec<ZeekConn> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut header: Option<Vec<String>> = None;
    let mut rows = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with("###") {
            continue;
        }
        if let Some(fields) = line.strip_prefix("#fields\t") {
            header = Some(fields.split('\t').map(str::to_owned).collect());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let Some(columns) = &header else {
            header = Some(line.split('\t').map(str::to_owned).collect());
            continue;
        };
        let mut row = ZeekConn {
            row: rows.len() + 1,
            ..ZeekConn::default()
        };
        // zeek-cut can repeat a column name (a test's typo): keep the first.
        for (name, value) in columns.iter().zip(line.split('\t')) {
            row.columns
                .entry(name.clone())
                .or_insert_with(|| value.to_owned());
        }
        rows.push(row);
    }
    rows
}

/// `tests/expectations/zeek_conn.toml`: baselines not compared, and the known
/// differences between Zeek and the sensor, each with its reason.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZeekExpectations {
    /// Baselines left out of the comparison.
    #[serde(default)]
    pub skip: Vec<SkippedBaseline>,
    /// Known differences.
    #[serde(default)]
    pub difference: Vec<KnownDifference>,
}

/// A baseline that is not compared, and why.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkippedBaseline {
    /// Trace path relative to `Traces/`.
    pub trace: String,
    /// `<test dir>/<file>`.
    pub baseline: String,
    /// Why the comparison would not be meaningful.
    pub reason: String,
}

/// A difference between a Zeek baseline row and the sensor, and why.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnownDifference {
    /// Trace path relative to `Traces/`.
    pub trace: String,
    /// The flow, as the test prints it (Zeek's orientation when Zeek has it).
    pub flow: String,
    /// `presence`, `direction`, or a conn.log column name.
    pub field: String,
    /// Zeek's value.
    pub zeek: String,
    /// The sensor's value.
    pub sensor: String,
    /// Why they differ (a real reason, not "differs").
    #[serde(default)]
    pub reason: String,
}

impl Listed for KnownDifference {
    fn same_as(&self, other: &Self) -> bool {
        self.trace == other.trace
            && self.flow == other.flow
            && self.field == other.field
            && self.zeek == other.zeek
            && self.sensor == other.sensor
    }

    fn to_toml(&self) -> String {
        format!(
            "[[difference]]\ntrace = {:?}\nflow = {:?}\nfield = {:?}\nzeek = {:?}\nsensor = {:?}\nreason = {:?}\n",
            self.trace, self.flow, self.field, self.zeek, self.sensor, self.reason
        )
    }

    fn reason(&self) -> &str {
        &self.reason
    }
}

/// Reads the expectations file.
pub fn load_expectations(path: &Path) -> ZeekExpectations {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    toml::from_str(&text).unwrap_or_else(|e| panic!("{} is not valid: {e}", path.display()))
}

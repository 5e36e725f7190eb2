//! The suricata-verify tests of the corpus: which tests look at an EVE event
//! type, their capture, and their checks.
//!
//! Each test is `expected/OISF+suricata-verify/tests/<name>/test.yaml`; its
//! capture is `pcaps/OISF+suricata-verify/<pcap>` as listed in
//! `suricata-verify-tests.json`. A check is a filter: the number of EVE
//! events (`count`) whose fields equal every `match` entry (dotted paths
//! such as `dns.queries[0].rrname`). Checks that `requires` a Suricata
//! version older than the newest (an `lt-version`) are left out, as the
//! corpus README says: use the newest.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use yaml_rust2::{Yaml, YamlLoader};

use crate::corpus::Corpus;

/// A scalar expected by a check, as written in the YAML.
#[derive(Debug, Clone, PartialEq)]
pub enum Expected {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// A float.
    Float(f64),
    /// `null` / `~`.
    Null,
    /// Anything else (a list or a map), in its debug form.
    Other(String),
}

impl Expected {
    /// The value as a string, for comparing with text fields.
    pub fn as_text(&self) -> String {
        match self {
            Expected::Str(s) => s.clone(),
            Expected::Int(i) => i.to_string(),
            Expected::Bool(b) => b.to_string(),
            Expected::Float(f) => f.to_string(),
            Expected::Null => "null".to_string(),
            Expected::Other(o) => o.clone(),
        }
    }
}

/// One filter check of a test.
#[derive(Debug, Clone)]
pub struct Check {
    /// How many matching events Suricata produces (None when the check has
    /// no count: at least one).
    pub count: Option<u64>,
    /// The field matches, in file order: (dotted path, value).
    pub matches: Vec<(String, Expected)>,
}

impl Check {
    /// The expected value of `path`, if the check names it.
    pub fn get(&self, path: &str) -> Option<&Expected> {
        self.matches.iter().find(|(p, _)| p == path).map(|(_, v)| v)
    }

    /// The `event_type` the check filters on.
    pub fn event_type(&self) -> Option<String> {
        self.get("event_type").map(Expected::as_text)
    }
}

/// One suricata-verify test.
#[derive(Debug, Clone)]
pub struct SvTest {
    /// `tests/<name>` as in `suricata-verify-tests.json`.
    pub name: String,
    /// The capture.
    pub pcap: PathBuf,
    /// Every filter check (of any event type).
    pub checks: Vec<Check>,
    /// Suricata arguments the test runs with, as listed.
    pub args: String,
}

#[derive(Debug, Deserialize)]
struct IndexEntry {
    /// `null` for tests without a capture of their own.
    pcap: Option<String>,
    events: BTreeMap<String, u64>,
    /// `null` for some tests.
    #[serde(default)]
    args: Option<String>,
}

/// Every test whose checks look at EVE events of `event_type`, with an
/// existing capture and test.yaml, sorted by name.
pub fn tests_with_event(corpus: &Corpus, event_type: &str) -> Vec<SvTest> {
    let index_path = corpus.root.join("suricata-verify-tests.json");
    let index: BTreeMap<String, IndexEntry> = serde_json::from_str(
        &std::fs::read_to_string(&index_path).expect("suricata-verify-tests.json is readable"),
    )
    .expect("suricata-verify-tests.json has the expected shape");
    let mut out = Vec::new();
    for (name, entry) in index {
        if !entry.events.contains_key(event_type) {
            continue;
        }
        let Some(pcap) = &entry.pcap else {
            continue;
        };
        let pcap = corpus.root.join("pcaps/OISF+suricata-verify").join(pcap);
        let yaml = corpus
            .root
            .join("expected/OISF+suricata-verify")
            .join(&name)
            .join("test.yaml");
        if !pcap.is_file() || !yaml.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&yaml).expect("test.yaml is readable");
        out.push(SvTest {
            name,
            pcap,
            checks: parse_checks(&text),
            args: entry.args.unwrap_or_default(),
        });
    }
    out
}

/// The filter checks of a test.yaml that apply to the newest Suricata.
pub fn parse_checks(text: &str) -> Vec<Check> {
    let Ok(docs) = YamlLoader::load_from_str(text) else {
        return Vec::new();
    };
    let Some(doc) = docs.first() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let Yaml::Array(checks) = &doc["checks"] else {
        return out;
    };
    for c in checks {
        let filter = &c["filter"];
        if filter.is_badvalue() {
            continue;
        }
        if !c["requires"]["lt-version"].is_badvalue() || !filter["lt-version"].is_badvalue() {
            continue;
        }
        if !filter["requires"]["lt-version"].is_badvalue() {
            continue;
        }
        let count = filter["count"].as_i64().and_then(|n| u64::try_from(n).ok());
        let mut matches = Vec::new();
        if let Yaml::Hash(m) = &filter["match"] {
            for (k, v) in m {
                let key = match k {
                    Yaml::String(s) => s.clone(),
                    other => format!("{other:?}"),
                };
                matches.push((key, scalar(v)));
            }
        }
        out.push(Check { count, matches });
    }
    out
}

fn scalar(v: &Yaml) -> Expected {
    match v {
        Yaml::String(s) => Expected::Str(s.clone()),
        Yaml::Integer(i) => Expected::Int(*i),
        Yaml::Boolean(b) => Expected::Bool(*b),
        Yaml::Real(r) => r
            .parse()
            .map_or_else(|_| Expected::Str(r.clone()), Expected::Float),
        Yaml::Null => Expected::Null,
        other => Expected::Other(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_filters_and_skips_checks_for_older_versions() {
        let text = "requires:\n  min-version: 8\nchecks:\n  - filter:\n      count: 2\n      match:\n        event_type: dns\n        dns.answers[0].srv.port: 5060\n  - filter:\n      requires:\n        lt-version: 7\n      count: 1\n      match:\n        event_type: dns\n  - shell:\n      args: true\n";
        let checks = parse_checks(text);
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].count, Some(2));
        assert_eq!(checks[0].event_type().as_deref(), Some("dns"));
        assert_eq!(
            checks[0].get("dns.answers[0].srv.port"),
            Some(&Expected::Int(5060))
        );
    }
}

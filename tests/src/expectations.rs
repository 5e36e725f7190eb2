//! Known differences between the sensor and a reference tool, as the corpus
//! tests list them in `tests/expectations/<name>.toml`, and the verdict every
//! such test gives ([`judge`]): a difference that is not listed fails, and so
//! does a listed one that no longer occurs or has no reason, so the lists
//! stay honest. [`Difference`] is the general form (`dns_corpus`,
//! `quic_corpus`, `ssh_corpus`); Zeek's conn and http comparisons keep their
//! own ([`crate::zeek::KnownDifference`]).

use std::path::Path;

use serde::Deserialize;

/// The `[[difference]]` tables of an expectations file (files with other
/// tables too deserialize their own struct around a `Vec<Difference>`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectations {
    /// The listed differences.
    #[serde(default)]
    pub difference: Vec<Difference>,
}

impl Expectations {
    /// Reads and parses `path`; fails the test when it cannot.
    pub fn load(path: &Path) -> Self {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
}

/// One difference: which reference (`suricata`, `tshark`, `zeek`), which
/// case (test, capture, trace or baseline), which item in it (a check, a
/// connection, a row), which field, the reference's value and the sensor's.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Difference {
    /// The reference tool.
    pub source: String,
    /// The test, capture or trace.
    pub case: String,
    /// The check, connection or row within it.
    pub item: String,
    /// The field compared.
    pub field: String,
    /// The reference's value.
    pub expected: String,
    /// The sensor's value.
    pub sensor: String,
    /// Why the sensor differs (required in the file).
    #[serde(default)]
    pub reason: String,
}

/// What [`judge`] needs of a listed difference.
pub trait Listed {
    /// The same difference, whatever its reason.
    fn same_as(&self, other: &Self) -> bool;
    /// The difference as a TOML table, to review and paste into the file.
    fn to_toml(&self) -> String;
    /// Why the sensor differs.
    fn reason(&self) -> &str;
}

impl Listed for Difference {
    fn same_as(&self, other: &Self) -> bool {
        (
            &self.source,
            &self.case,
            &self.item,
            &self.field,
            &self.expected,
            &self.sensor,
        ) == (
            &other.source,
            &other.case,
            &other.item,
            &other.field,
            &other.expected,
            &other.sensor,
        )
    }

    fn to_toml(&self) -> String {
        let q = |v: &str| toml::Value::String(v.to_owned()).to_string();
        format!(
            "[[difference]]\nsource = {}\ncase = {}\nitem = {}\nfield = {}\nexpected = {}\nsensor = {}\nreason = {}\n",
            q(&self.source),
            q(&self.case),
            q(&self.item),
            q(&self.field),
            q(&self.expected),
            q(&self.sensor),
            q(&self.reason)
        )
    }

    fn reason(&self) -> &str {
        &self.reason
    }
}

/// Compares the differences `found` with those `listed` in the file at
/// `path`, adding to `problems` every listed difference without a reason or
/// that no longer occurs, and the unlisted ones; returns how many found
/// differences are listed (known).
pub fn judge<D: Listed>(
    listed: &[D],
    found: &[D],
    path: &Path,
    problems: &mut Vec<String>,
) -> usize {
    for l in listed {
        if l.reason().trim().is_empty() {
            problems.push(format!(
                "listed difference without a reason:\n{}",
                l.to_toml()
            ));
        }
        if !found.iter().any(|d| d.same_as(l)) {
            problems.push(format!(
                "listed difference no longer occurs:\n{}",
                l.to_toml()
            ));
        }
    }
    let unlisted: Vec<&D> = found
        .iter()
        .filter(|d| !listed.iter().any(|l| l.same_as(d)))
        .collect();
    if !unlisted.is_empty() {
        problems.push(format!(
            "{} differences are not listed in {} (a sensor bug, or list them with a real reason):\n{}",
            unlisted.len(),
            path.display(),
            unlisted
                .iter()
                .map(|d| d.to_toml())
                .collect::<Vec<_>>()
                .join("\n")
        ));
    }
    found.len() - unlisted.len()
}

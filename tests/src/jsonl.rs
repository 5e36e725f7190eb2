//! Records as JSON lines compared as multisets: grouped by record type,
//! each group sorted, byte for byte. What the export tests need to say
//! "the same records, none lost, none twice" about two outputs (`sensor
//! pcap --json`, a receiver's `<type>.jsonl` files, `nucleus dump`).
//!
//! Inputs: text of JSON lines, or lines already grouped. Outputs: grouped
//! lines, differences, repeats. It does not read files or run anything.

use std::collections::BTreeMap;

/// JSON lines (`sensor pcap --json` output, `nucleus dump` output) grouped
/// by their `type` field, each group sorted; fails the test on a line that
/// is not a JSON object with a type.
pub fn lines_by_type(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut by_type: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        let kind = value
            .get("type")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_else(|| panic!("a record without a type: {line}"));
        by_type
            .entry(kind.to_owned())
            .or_default()
            .push(line.to_owned());
    }
    for lines in by_type.values_mut() {
        lines.sort();
    }
    by_type
}

/// Every line of `by_type`, in one sorted list.
pub fn all_lines(by_type: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    let mut all: Vec<String> = by_type.values().flatten().cloned().collect();
    all.sort();
    all
}

/// Lines that occur more than once in `lines`.
pub fn repeated(lines: &[String]) -> Vec<String> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for l in lines {
        *counts.entry(l).or_default() += 1;
    }
    counts
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(l, n)| format!("{n}x {l}"))
        .collect()
}

/// What differs between two record multisets grouped by type: per type,
/// the counts and a few lines missing from either side. Empty when equal.
pub fn multiset_differences(
    expected: &BTreeMap<String, Vec<String>>,
    actual: &BTreeMap<String, Vec<String>>,
) -> Vec<String> {
    let mut out = Vec::new();
    let kinds: std::collections::BTreeSet<&String> = expected.keys().chain(actual.keys()).collect();
    let empty = Vec::new();
    for kind in kinds {
        let want = expected.get(kind).unwrap_or(&empty);
        let got = actual.get(kind).unwrap_or(&empty);
        let missing = minus(want, got);
        let extra = minus(got, want);
        if missing.is_empty() && extra.is_empty() {
            continue;
        }
        out.push(format!(
            "{kind}: {} expected, {} received; {} missing, {} unexpected",
            want.len(),
            got.len(),
            missing.len(),
            extra.len()
        ));
        out.extend(missing.iter().take(3).map(|l| format!("  missing: {l}")));
        out.extend(extra.iter().take(3).map(|l| format!("  unexpected: {l}")));
    }
    out
}

/// The lines of `a` not matched one for one by a line of `b`.
pub fn minus(a: &[String], b: &[String]) -> Vec<String> {
    let mut left: BTreeMap<&str, usize> = BTreeMap::new();
    for l in b {
        *left.entry(l).or_default() += 1;
    }
    let mut out = Vec::new();
    for l in a {
        match left.get_mut(l.as_str()) {
            Some(n) if *n > 0 => *n -= 1,
            _ => out.push(l.clone()),
        }
    }
    out
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn multisets_compare_one_for_one() {
        let a = vec!["x".to_owned(), "x".to_owned(), "y".to_owned()];
        let b = vec!["x".to_owned(), "y".to_owned(), "z".to_owned()];
        assert_eq!(minus(&a, &b), vec!["x".to_owned()]);
        assert_eq!(minus(&b, &a), vec!["z".to_owned()]);
        assert_eq!(repeated(&a), vec!["2x x".to_owned()]);
        let grouped = |v: &[String]| BTreeMap::from([("flow".to_owned(), v.to_vec())]);
        assert!(multiset_differences(&grouped(&a), &grouped(&a)).is_empty());
        assert_eq!(multiset_differences(&grouped(&a), &grouped(&b)).len(), 3);
    }

    #[test]
    fn lines_group_by_type() {
        let text = "{\"type\":\"dns\",\"a\":1}\n{\"type\":\"flow\",\"b\":2}\n\n{\"type\":\"dns\",\"a\":0}\n";
        let g = lines_by_type(text);
        assert_eq!(
            g["dns"],
            vec!["{\"type\":\"dns\",\"a\":0}", "{\"type\":\"dns\",\"a\":1}"]
        );
        assert_eq!(g["flow"].len(), 1);
        assert_eq!(all_lines(&g).len(), 3);
    }
}

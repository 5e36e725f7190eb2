//! Comparing flow records from two runs as raw JSON objects: what differs
//! between a live run and an offline run of the same packets by design
//! (times, the uid derived from them, the outer tunnel addresses) is
//! removed, the rest must be equal, field by field.
//!
//! Inputs: JSON lines. Outputs: normalized records sorted by their 5-tuple
//! and a readable list of differences. It does not run anything.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// Fields that depend on when the packets arrived, not on what they were.
pub const TIME_FIELDS: &[&str] = &["ts", "end_ts", "duration", "uid", "rtt"];

/// Keys of a tunnel layer that name the outer endpoints (live: the replay's
/// loopback addresses; offline: the capture's).
pub const OUTER_ADDRESS_KEYS: &[&str] = &["outer_src", "outer_dst"];

/// Every line of `text` that is a JSON object; fails the test on a line
/// that is not JSON (a torn or interleaved write).
pub fn parse_lines(text: &str) -> Vec<Value> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("record line {} is not JSON ({e}): {l}", n + 1))
        })
        .collect()
}

/// The `"type":"flow"` records of `records`.
pub fn flows_only(records: Vec<Value>) -> Vec<Value> {
    of_type(records, "flow")
}

/// The records of `records` whose `type` is `kind` (`flow`, `dns`, `http`).
pub fn of_type(records: Vec<Value>, kind: &str) -> Vec<Value> {
    records
        .into_iter()
        .filter(|r| r.get("type").and_then(Value::as_str) == Some(kind))
        .collect()
}

/// The record's `type`.
pub fn kind(record: &Value) -> &str {
    record.get("type").and_then(Value::as_str).unwrap_or("")
}

/// `record` without its time fields and without outer addresses in its
/// tunnel layers; `prefix_layers` are put in front of its tunnel list (the
/// layers a replay added around a plain capture). Application records
/// (which have no tunnel list) only lose their time fields.
pub fn normalize(record: &Value, prefix_layers: &[Value]) -> Value {
    let mut object: Map<String, Value> = record.as_object().cloned().unwrap_or_default();
    for field in TIME_FIELDS {
        object.remove(*field);
    }
    if !matches!(kind(record), "flow" | "") {
        return Value::Object(object);
    }
    let mut tunnel: Vec<Value> = prefix_layers.to_vec();
    if let Some(Value::Array(layers)) = object.get("tunnel") {
        tunnel.extend(layers.iter().cloned());
    }
    for layer in &mut tunnel {
        if let Some(layer) = layer.as_object_mut() {
            for key in OUTER_ADDRESS_KEYS {
                layer.remove(*key);
            }
        }
    }
    object.insert("tunnel".into(), Value::Array(tunnel));
    Value::Object(object)
}

/// The sort key of a normalized record: protocol, both endpoints, then the
/// whole record (so flows of one 5-tuple in several domains sort stably).
pub fn sort_key(record: &Value) -> String {
    let field = |k: &str| record.get(k).map(Value::to_string).unwrap_or_default();
    format!(
        "{} {}:{} {}:{} {}",
        field("proto"),
        field("src_ip"),
        field("src_port"),
        field("dst_ip"),
        field("dst_port"),
        record
    )
}

/// The 5-tuple of a record, for messages.
pub fn five_tuple(record: &Value) -> String {
    let field = |k: &str| {
        record
            .get(k)
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .unwrap_or_default()
    };
    format!(
        "{} {}:{} -> {}:{}",
        field("proto"),
        field("src_ip"),
        field("src_port"),
        field("dst_ip"),
        field("dst_port")
    )
}

/// Compares two multisets of normalized records. Returns one line per
/// record missing on either side, and for records whose 5-tuple matches
/// but whose fields differ, the fields that differ. Empty when equal.
pub fn differences(expected: &[Value], actual: &[Value]) -> Vec<String> {
    let group = |records: &[Value]| {
        let mut map: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for r in records {
            map.entry(five_tuple(r)).or_default().push(r.clone());
        }
        for list in map.values_mut() {
            list.sort_by_key(sort_key);
        }
        map
    };
    let (want, got) = (group(expected), group(actual));
    let mut out = Vec::new();
    let keys: std::collections::BTreeSet<&String> = want.keys().chain(got.keys()).collect();
    for key in keys {
        let empty = Vec::new();
        let w = want.get(key).unwrap_or(&empty);
        let g = got.get(key).unwrap_or(&empty);
        let mut unmatched_w: Vec<&Value> = w.iter().filter(|r| !g.contains(r)).collect();
        let mut unmatched_g: Vec<&Value> = g.iter().filter(|r| !w.contains(r)).collect();
        if w.len() != g.len() {
            out.push(format!(
                "{key}: {} record(s) expected, {} received",
                w.len(),
                g.len()
            ));
        }
        while let (Some(a), Some(b)) = (unmatched_w.first(), unmatched_g.first()) {
            out.push(format!("{key}: {}", field_differences(a, b).join("; ")));
            unmatched_w.remove(0);
            unmatched_g.remove(0);
        }
        for r in unmatched_w {
            out.push(format!("{key}: missing live: {r}"));
        }
        for r in unmatched_g {
            out.push(format!("{key}: unexpected live: {r}"));
        }
    }
    out
}

/// `field: expected X, got Y` for every field that differs.
pub fn field_differences(expected: &Value, actual: &Value) -> Vec<String> {
    let empty = Map::new();
    let e = expected.as_object().unwrap_or(&empty);
    let a = actual.as_object().unwrap_or(&empty);
    let keys: std::collections::BTreeSet<&String> = e.keys().chain(a.keys()).collect();
    keys.into_iter()
        .filter(|k| e.get(*k) != a.get(*k))
        .map(|k| {
            let show =
                |v: Option<&Value>| v.map_or_else(|| "<absent>".to_owned(), Value::to_string);
            format!("{k}: offline {} vs live {}", show(e.get(k)), show(a.get(k)))
        })
        .collect()
}

#[cfg(test)]
mod unit {
    use super::*;
    use serde_json::json;

    fn record(pkts: u64, outer: &str) -> Value {
        json!({"type":"flow","ts":"t1","end_ts":"t2","uid":"Cx","duration":0.5,
               "proto":"tcp","src_ip":"10.0.0.1","src_port":1,"dst_ip":"10.0.0.2","dst_port":80,
               "orig_pkts":pkts,"tunnel":[{"type":"vxlan","vni":7,"outer_src":outer,"outer_dst":outer}]})
    }

    #[test]
    fn times_and_outer_addresses_do_not_count() {
        let a = normalize(&record(3, "10.1.1.1"), &[]);
        let b = normalize(&record(3, "127.0.0.1"), &[]);
        assert_eq!(differences(&[a], &[b]), Vec::<String>::new());
    }

    #[test]
    fn counts_do() {
        let a = normalize(&record(3, "10.1.1.1"), &[]);
        let b = normalize(&record(4, "127.0.0.1"), &[]);
        let diff = differences(&[a], &[b]);
        assert_eq!(diff.len(), 1, "{diff:?}");
        assert!(
            diff[0].contains("orig_pkts: offline 3 vs live 4"),
            "{diff:?}"
        );
    }

    #[test]
    fn missing_records_are_reported() {
        let a = normalize(&record(3, "x"), &[]);
        let diff = differences(&[a.clone(), a.clone()], &[a]);
        assert_eq!(diff.len(), 1, "{diff:?}");
    }

    #[test]
    fn prefix_layers_go_first() {
        let plain = json!({"proto":"udp","tunnel":[{"type":"vlan","id":5}]});
        let n = normalize(&plain, &[json!({"type":"vxlan","vni":9})]);
        assert_eq!(
            n["tunnel"],
            json!([{"type":"vxlan","vni":9},{"type":"vlan","id":5}])
        );
    }
}

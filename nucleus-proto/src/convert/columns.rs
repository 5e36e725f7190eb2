//! The flows of a block as columns (`pb::FlowColumns`) and back: a pure
//! transposition of `pb::Flow` rows, field by field. Columns put like
//! values next to like, which the block's compression turns into far fewer
//! bytes than rows (measured in PROTOCOL.md).
//!
//! Dense columns hold one element per flow. Sparse ones, for fields most
//! flows leave out, hold the values of the flows that have the field and,
//! for each, the number of flows without it since the previous one with it
//! (`*_gaps`). Decoding checks every column's length and every gap against
//! the number of flows the block's `kinds` names before building a row.

use super::ConvertError;
use super::compact::UID_PACKED_BYTES;
use crate::pb;

/// Values and gaps of a sparse column.
fn sparse<T>(items: impl Iterator<Item = Option<T>>) -> (Vec<T>, Vec<u32>) {
    let (mut values, mut gaps) = (Vec::new(), Vec::new());
    let mut skipped = 0u32;
    for item in items {
        match item {
            Some(v) => {
                values.push(v);
                gaps.push(skipped);
                skipped = 0;
            }
            None => skipped = skipped.saturating_add(1),
        }
    }
    (values, gaps)
}

/// The per-flow options of a sparse column of `n` flows.
fn unsparse<T>(
    field: &'static str,
    values: Vec<T>,
    gaps: &[u32],
    n: usize,
) -> Result<Vec<Option<T>>, ConvertError> {
    let bad = || ConvertError::BadColumn { field };
    if values.len() != gaps.len() {
        return Err(bad());
    }
    let mut out: Vec<Option<T>> = std::iter::repeat_with(|| None).take(n).collect();
    let mut at = 0usize;
    for (v, &gap) in values.into_iter().zip(gaps) {
        at = at.checked_add(gap as usize).ok_or_else(bad)?;
        *out.get_mut(at).ok_or_else(bad)? = Some(v);
        at += 1;
    }
    Ok(out)
}

/// A dense column of `n` flows, as an iterator.
fn dense<T>(
    field: &'static str,
    column: Vec<T>,
    n: usize,
) -> Result<std::vec::IntoIter<T>, ConvertError> {
    if column.len() == n {
        Ok(column.into_iter())
    } else {
        Err(ConvertError::BadColumn { field })
    }
}

/// `Some(s)` for a non-empty string.
fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// The rows as columns.
pub(crate) fn to_columns(rows: &[pb::Flow]) -> pb::FlowColumns {
    let (service, service_gaps) = sparse(rows.iter().map(|f| f.service.clone()));
    let (tunnel, tunnel_gaps) = sparse(rows.iter().map(|f| {
        (!f.tunnel.is_empty()).then(|| pb::TunnelStack {
            layers: f.tunnel.clone(),
        })
    }));
    // A uid is packed or text: the text column lists every flow without
    // packed bytes (an empty uid included).
    let (uid_text, uid_text_gaps) = sparse(
        rows.iter()
            .map(|f| f.uid_packed.is_empty().then(|| f.uid_text.clone())),
    );
    let (community_id, community_id_gaps) = sparse(rows.iter().map(|f| f.community_id.clone()));
    let (duration, duration_gaps) = sparse(rows.iter().map(|f| f.duration));
    let (orig_tcp_flags_text, orig_tcp_flags_text_gaps) =
        sparse(rows.iter().map(|f| f.orig_tcp_flags_text.clone()));
    let (resp_tcp_flags_text, resp_tcp_flags_text_gaps) =
        sparse(rows.iter().map(|f| f.resp_tcp_flags_text.clone()));
    let (conn_state_text, conn_state_text_gaps) =
        sparse(rows.iter().map(|f| non_empty(&f.conn_state_text)));
    let (vantage_ref, vantage_ref_gaps) = sparse(
        rows.iter()
            .map(|f| (f.vantage_ref != 0).then_some(f.vantage_ref)),
    );
    let flags = |v: Option<u32>| v.map_or(0, |b| u64::from(b) + 1);
    pb::FlowColumns {
        ts_delta_us: rows.iter().map(|f| f.ts_delta_us).collect(),
        uid_packed: rows
            .iter()
            .flat_map(|f| f.uid_packed.iter().copied())
            .collect(),
        span_us: rows.iter().map(|f| f.span_us).collect(),
        proto: rows.iter().map(|f| f.proto).collect(),
        conn_state: rows.iter().map(|f| f.conn_state).collect(),
        orig_tcp_flags: rows.iter().map(|f| flags(f.orig_tcp_flags)).collect(),
        resp_tcp_flags: rows.iter().map(|f| flags(f.resp_tcp_flags)).collect(),
        history: rows.iter().map(|f| f.history.clone()).collect(),
        tunnel_ref: rows.iter().map(|f| f.tunnel_ref).collect(),
        dst_port: rows.iter().map(|f| f.dst_port).collect(),
        dst_ip: rows.iter().map(|f| f.dst_ip.clone()).collect(),
        src_ip: rows.iter().map(|f| f.src_ip.clone()).collect(),
        src_port: rows.iter().map(|f| f.src_port).collect(),
        orig_pkts: rows.iter().map(|f| f.orig_pkts).collect(),
        resp_pkts: rows.iter().map(|f| f.resp_pkts).collect(),
        orig_bytes: rows.iter().map(|f| f.orig_bytes).collect(),
        resp_bytes: rows.iter().map(|f| f.resp_bytes).collect(),
        orig_ip_overhead: rows.iter().map(|f| f.orig_ip_overhead).collect(),
        resp_ip_overhead: rows.iter().map(|f| f.resp_ip_overhead).collect(),
        missed_bytes: rows.iter().map(|f| f.missed_bytes).collect(),
        truncated_bytes: rows.iter().map(|f| f.truncated_bytes).collect(),
        service,
        service_gaps,
        vantages: rows.iter().map(|f| f.vantages.unwrap_or(1)).collect(),
        duplicate_pkts: rows.iter().map(|f| f.duplicate_pkts).collect(),
        tunnel,
        tunnel_gaps,
        uid_text,
        uid_text_gaps,
        community_id,
        community_id_gaps,
        duration,
        duration_gaps,
        orig_tcp_flags_text,
        orig_tcp_flags_text_gaps,
        resp_tcp_flags_text,
        resp_tcp_flags_text_gaps,
        conn_state_text,
        conn_state_text_gaps,
        vantage_ref,
        vantage_ref_gaps,
    }
}

/// The `n` rows of columns.
pub(crate) fn from_columns(c: pb::FlowColumns, n: usize) -> Result<Vec<pb::Flow>, ConvertError> {
    let mut ts_delta_us = dense("ts_delta_us", c.ts_delta_us, n)?;
    let mut span_us = dense("span_us", c.span_us, n)?;
    let mut proto = dense("proto", c.proto, n)?;
    let mut conn_state = dense("conn_state", c.conn_state, n)?;
    let mut orig_tcp_flags = dense("orig_tcp_flags", c.orig_tcp_flags, n)?;
    let mut resp_tcp_flags = dense("resp_tcp_flags", c.resp_tcp_flags, n)?;
    let mut history = dense("history", c.history, n)?;
    let mut tunnel_ref = dense("tunnel_ref", c.tunnel_ref, n)?;
    let mut dst_port = dense("dst_port", c.dst_port, n)?;
    let mut dst_ip = dense("dst_ip", c.dst_ip, n)?;
    let mut src_ip = dense("src_ip", c.src_ip, n)?;
    let mut src_port = dense("src_port", c.src_port, n)?;
    let mut orig_pkts = dense("orig_pkts", c.orig_pkts, n)?;
    let mut resp_pkts = dense("resp_pkts", c.resp_pkts, n)?;
    let mut orig_bytes = dense("orig_bytes", c.orig_bytes, n)?;
    let mut resp_bytes = dense("resp_bytes", c.resp_bytes, n)?;
    let mut orig_ip_overhead = dense("orig_ip_overhead", c.orig_ip_overhead, n)?;
    let mut resp_ip_overhead = dense("resp_ip_overhead", c.resp_ip_overhead, n)?;
    let mut missed_bytes = dense("missed_bytes", c.missed_bytes, n)?;
    let mut truncated_bytes = dense("truncated_bytes", c.truncated_bytes, n)?;
    let mut vantages = dense("vantages", c.vantages, n)?;
    let mut duplicate_pkts = dense("duplicate_pkts", c.duplicate_pkts, n)?;
    let mut service = unsparse("service", c.service, &c.service_gaps, n)?.into_iter();
    let mut tunnel = unsparse("tunnel", c.tunnel, &c.tunnel_gaps, n)?.into_iter();
    let uid_text = unsparse("uid_text", c.uid_text, &c.uid_text_gaps, n)?;
    let packed_flows = uid_text.iter().filter(|t| t.is_none()).count();
    if c.uid_packed.len() != packed_flows * UID_PACKED_BYTES {
        return Err(ConvertError::BadColumn {
            field: "uid_packed",
        });
    }
    let mut uid_packed = c.uid_packed.chunks(UID_PACKED_BYTES);
    let mut uid_text = uid_text.into_iter();
    let mut community_id =
        unsparse("community_id", c.community_id, &c.community_id_gaps, n)?.into_iter();
    let mut duration = unsparse("duration", c.duration, &c.duration_gaps, n)?.into_iter();
    let mut orig_text = unsparse(
        "orig_tcp_flags_text",
        c.orig_tcp_flags_text,
        &c.orig_tcp_flags_text_gaps,
        n,
    )?
    .into_iter();
    let mut resp_text = unsparse(
        "resp_tcp_flags_text",
        c.resp_tcp_flags_text,
        &c.resp_tcp_flags_text_gaps,
        n,
    )?
    .into_iter();
    let mut state_text = unsparse(
        "conn_state_text",
        c.conn_state_text,
        &c.conn_state_text_gaps,
        n,
    )?
    .into_iter();
    let mut vantage_ref =
        unsparse("vantage_ref", c.vantage_ref, &c.vantage_ref_gaps, n)?.into_iter();
    let flags = |v: u64| -> Result<Option<u32>, ConvertError> {
        match v {
            0 => Ok(None),
            v => u32::try_from(v - 1)
                .map(Some)
                .map_err(|_| ConvertError::OutOfRange {
                    field: "tcp_flags",
                    value: v,
                }),
        }
    };
    let mut rows = Vec::with_capacity(n);
    // Every iterator holds exactly n elements (checked above).
    for _ in 0..n {
        let v = vantages.next().unwrap_or(1);
        let (packed, text) = match uid_text.next().flatten() {
            Some(t) => (Vec::new(), t),
            None => (
                uid_packed.next().unwrap_or_default().to_vec(),
                String::new(),
            ),
        };
        rows.push(pb::Flow {
            uid_packed: packed,
            uid_text: text,
            ts_delta_us: ts_delta_us.next().unwrap_or_default(),
            span_us: span_us.next().unwrap_or_default(),
            proto: proto.next().unwrap_or_default(),
            conn_state: conn_state.next().unwrap_or_default(),
            orig_tcp_flags: flags(orig_tcp_flags.next().unwrap_or_default())?,
            resp_tcp_flags: flags(resp_tcp_flags.next().unwrap_or_default())?,
            history: history.next().unwrap_or_default(),
            tunnel_ref: tunnel_ref.next().unwrap_or_default(),
            dst_port: dst_port.next().unwrap_or_default(),
            dst_ip: dst_ip.next().unwrap_or_default(),
            src_ip: src_ip.next().unwrap_or_default(),
            src_port: src_port.next().unwrap_or_default(),
            orig_pkts: orig_pkts.next().unwrap_or_default(),
            resp_pkts: resp_pkts.next().unwrap_or_default(),
            orig_bytes: orig_bytes.next().unwrap_or_default(),
            resp_bytes: resp_bytes.next().unwrap_or_default(),
            orig_ip_overhead: orig_ip_overhead.next().unwrap_or_default(),
            resp_ip_overhead: resp_ip_overhead.next().unwrap_or_default(),
            missed_bytes: missed_bytes.next().unwrap_or_default(),
            truncated_bytes: truncated_bytes.next().unwrap_or_default(),
            service: service.next().flatten(),
            vantages: (v != 1).then_some(v),
            duplicate_pkts: duplicate_pkts.next().unwrap_or_default(),
            tunnel: tunnel
                .next()
                .flatten()
                .map(|s| s.layers)
                .unwrap_or_default(),
            community_id: community_id.next().flatten(),
            duration: duration.next().flatten(),
            orig_tcp_flags_text: orig_text.next().flatten(),
            resp_tcp_flags_text: resp_text.next().flatten(),
            conn_state_text: state_text.next().flatten().unwrap_or_default(),
            vantage_ref: vantage_ref.next().flatten().unwrap_or_default(),
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(i: u32) -> pb::Flow {
        pb::Flow {
            ts_delta_us: i64::from(i),
            uid_packed: if i == 1 {
                Vec::new()
            } else {
                vec![i as u8; 14]
            },
            uid_text: if i == 1 { "odd".into() } else { String::new() },
            service: (i != 0).then(|| "dns".to_string()),
            vantages: (i == 2).then_some(3),
            orig_tcp_flags: Some(0x12),
            vantage_ref: if i == 3 { 1 } else { 0 },
            ..Default::default()
        }
    }

    #[test]
    fn rows_survive_the_transposition() {
        let rows: Vec<pb::Flow> = (0..4).map(row).collect();
        let c = to_columns(&rows);
        assert_eq!(c.uid_packed.len(), 3 * 14);
        assert_eq!(
            (c.uid_text.as_slice(), c.uid_text_gaps.as_slice()),
            (&["odd".to_string()][..], &[1][..])
        );
        assert_eq!(c.service_gaps, [1, 0, 0]);
        assert_eq!(
            (&c.vantage_ref[..], &c.vantage_ref_gaps[..]),
            (&[1][..], &[3][..])
        );
        assert_eq!(from_columns(c, 4).unwrap(), rows);
    }

    #[test]
    fn columns_that_do_not_fit_are_refused() {
        let rows: Vec<pb::Flow> = (0..4).map(row).collect();
        let c = to_columns(&rows);
        // Another number of flows than the columns hold.
        assert!(from_columns(c.clone(), 5).is_err());
        assert!(from_columns(c.clone(), 3).is_err());
        let mut gap_past_end = c.clone();
        gap_past_end.service_gaps[2] = 9;
        assert!(from_columns(gap_past_end, 4).is_err());
        let mut huge_gap = c.clone();
        huge_gap.service_gaps[0] = u32::MAX;
        assert!(from_columns(huge_gap, 4).is_err());
        let mut short_uids = c.clone();
        short_uids.uid_packed.pop();
        assert!(from_columns(short_uids, 4).is_err());
        let mut unpaired = c;
        unpaired.duration.push(1.0);
        assert!(from_columns(unpaired, 4).is_err());
    }
}

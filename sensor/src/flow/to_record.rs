//! A finished flow as a record: Zeek's conn.log fields, Community ID, the
//! deterministic uid, the tunnel layers.

use super::community_id::CommunityId;
use super::state::Flow;
use crate::decap::tcp_flags;
use crate::decap::tunnel::TunnelContext;
use crate::dissect::{AppEvent, Emitted};
use crate::packet::Direction;
use foldhash::fast::FixedState;
use nucleus_proto::{AppRecord, FlowRecord, FlowRef, Proto, Record, TimestampMicros, TunnelLayer};
use std::hash::{BuildHasher, Hash, Hasher};

/// A deterministic uid: `C` and 18 base62 digits of a 128-bit hash of the
/// flow key and its first timestamp.
pub(super) fn uid(f: &Flow) -> String {
    let mut h1 = FixedState::with_seed(0x7569_6431).build_hasher();
    let mut h2 = FixedState::with_seed(0x7569_6432).build_hasher();
    for h in [&mut h1, &mut h2] {
        (f.key, f.first_us).hash(h);
    }
    let v = (u128::from(h1.finish()) << 64) | u128::from(h2.finish());
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    // The 18 lowest base-62 digits of v, least significant first, as two
    // runs of 9 (62^9 fits in a u64): two 128-bit divisions instead of 18.
    const P9: u128 = 62u128.pow(9);
    let mut s = String::with_capacity(19);
    s.push('C');
    for mut part in [(v % P9) as u64, ((v / P9) % P9) as u64] {
        for _ in 0..9 {
            s.push(char::from(ALPHABET[(part % 62) as usize]));
            part /= 62;
        }
    }
    s
}

/// Computes and keeps the flow's uid and Community ID (once).
pub(super) fn remember_identity(f: &mut Flow, cid: &CommunityId) {
    if f.ident.is_none() {
        let id = (uid(f), community_id(f, cid));
        f.ident = Some(Box::new(id));
    }
}

fn community_id(f: &Flow, cid: &CommunityId) -> String {
    cid.compute(f.orig.addr, f.resp.addr, f.proto, f.orig.port, f.resp.port)
}

/// The flow's (uid, Community ID): kept ones when there are, else computed.
fn identity(f: &Flow, cid: &CommunityId) -> (String, String) {
    match &f.ident {
        Some(id) => (id.0.clone(), id.1.clone()),
        None => (uid(f), community_id(f, cid)),
    }
}

/// The record of a flow that ends: its kept identity is moved, not copied.
pub(super) fn flow_record(f: &mut Flow, cid: &CommunityId) -> FlowRecord {
    let (uid, community_id) = match f.ident.take() {
        Some(id) => *id,
        None => (uid(f), community_id(f, cid)),
    };
    let [o, r] = f.dirs;
    let (conn_state, history, orig_bytes, resp_bytes, missed) = match &f.tcp {
        Some(t) => (
            t.conn_state().to_string(),
            t.history().to_string(),
            t.payload_bytes(Direction::Originator),
            t.payload_bytes(Direction::Responder),
            t.missed_bytes(),
        ),
        None => {
            let state = match (f.proto, o.pkts > 0, r.pkts > 0) {
                (17, true, true) => "SF",
                (17, true, false) => "S0",
                (17, false, true) => "SHR",
                _ => "OTH",
            };
            let mut hist = String::new();
            if f.flipped {
                hist.push('^');
            }
            if f.proto == 17 {
                if o.pkts > 0 {
                    hist.push('D');
                }
                if r.pkts > 0 {
                    hist.push('d');
                }
            }
            (state.to_string(), hist, o.payload_bytes, r.payload_bytes, 0)
        }
    };
    let flags = |v: u8| {
        (f.proto == 6).then(|| {
            let mut s = String::new();
            for (bit, c) in [
                (tcp_flags::FIN, 'F'),
                (tcp_flags::SYN, 'S'),
                (tcp_flags::RST, 'R'),
                (tcp_flags::PSH, 'P'),
                (tcp_flags::ACK, 'A'),
                (0x20, 'U'),
                (0x40, 'E'),
                (0x80, 'C'),
            ] {
                if v & bit != 0 {
                    s.push(c);
                }
            }
            s
        })
    };
    let tunnel: Vec<TunnelLayer> = {
        let mut t = TunnelContext::new();
        for l in f.tunnel.iter() {
            t.push(*l);
        }
        t.to_records()
    };
    FlowRecord {
        ts: TimestampMicros(f.first_us),
        end_ts: TimestampMicros(f.last_us),
        uid,
        community_id,
        proto: Proto(f.proto),
        src_ip: f.orig.addr,
        src_port: f.orig.port,
        dst_ip: f.resp.addr,
        dst_port: f.resp.port,
        orig_pkts: o.pkts,
        orig_bytes,
        orig_ip_bytes: o.ip_bytes,
        resp_pkts: r.pkts,
        resp_bytes,
        resp_ip_bytes: r.ip_bytes,
        orig_tcp_flags: flags(o.tcp_flags),
        resp_tcp_flags: flags(r.tcp_flags),
        conn_state,
        history,
        missed_bytes: missed,
        truncated_bytes: o.truncated_bytes + r.truncated_bytes,
        duration: (f.last_us - f.first_us) as f64 / 1e6,
        service: f.service.map(str::to_string),
        tunnel,
        vantages: u32::try_from(f.vantages.len().max(1)).unwrap_or(u32::MAX),
        duplicate_pkts: f.duplicate_pkts,
        vantage: None,
    }
}

/// An application record of `f`, with the flow's identity.
pub(super) fn app_record(f: &Flow, cid: &CommunityId, e: Emitted) -> Record {
    let (uid, community_id) = identity(f, cid);
    let flow = FlowRef {
        uid,
        community_id,
        proto: Proto(f.proto),
        src_ip: f.orig.addr,
        src_port: f.orig.port,
        dst_ip: f.resp.addr,
        dst_port: f.resp.port,
    };
    let ts = TimestampMicros(e.ts_us);
    let seq = f.app_seq;
    match e.event {
        AppEvent::Dns(body) => Record::Dns(wrap(ts, flow, seq, body)),
        AppEvent::Http(body) => Record::Http(wrap(ts, flow, seq, body)),
        AppEvent::Tls(body) => Record::Tls(wrap(ts, flow, seq, body)),
        AppEvent::Quic(body) => Record::Quic(wrap(ts, flow, seq, body)),
        AppEvent::Ssh(body) => Record::Ssh(wrap(ts, flow, seq, body)),
    }
}

fn wrap<T>(ts: TimestampMicros, flow: FlowRef, seq: u64, body: T) -> Box<AppRecord<T>> {
    Box::new(AppRecord {
        ts,
        flow,
        seq,
        body,
    })
}

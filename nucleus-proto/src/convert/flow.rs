//! Flow records and their tunnel layers, both ways.

use super::compact::{
    conn_state_fields, conn_state_from, ip_bytes, ip_from, narrow, tcp_flags_fields,
    tcp_flags_from, uid_fields, uid_from_fields,
};
use super::{ConvertError, Decoder, Encoder, Tuple};
use crate::{AwsGwlb, FlowRecord, GeneveOption, Instance, Proto, TimestampMicros, TunnelLayer, pb};

/// The duration the receiver computes when the wire leaves it out: the
/// sensor's own formula.
fn computed_duration(span_us: i64) -> f64 {
    span_us as f64 / 1e6
}

/// IP bytes as the difference from payload bytes (wrapping: lossless for
/// every pair, small for real flows).
fn overhead(ip_bytes: u64, payload_bytes: u64) -> i64 {
    (ip_bytes as i64).wrapping_sub(payload_bytes as i64)
}

fn with_overhead(payload_bytes: u64, overhead: i64) -> u64 {
    (payload_bytes as i64).wrapping_add(overhead) as u64
}

pub(super) fn encode(e: &mut Encoder, f: &FlowRecord) -> pb::Flow {
    let (uid_packed, uid_text) = uid_fields(&f.uid);
    let tuple = Tuple {
        proto: f.proto.0,
        src: f.src_ip,
        src_port: f.src_port,
        dst: f.dst_ip,
        dst_port: f.dst_port,
    };
    let span_us = f.end_ts.0.wrapping_sub(f.ts.0);
    let duration =
        (computed_duration(span_us).to_bits() != f.duration.to_bits()).then_some(f.duration);
    let (orig_tcp_flags, orig_tcp_flags_text) = tcp_flags_fields(f.orig_tcp_flags.as_deref());
    let (resp_tcp_flags, resp_tcp_flags_text) = tcp_flags_fields(f.resp_tcp_flags.as_deref());
    let (conn_state, conn_state_text) = conn_state_fields(&f.conn_state);
    let (tunnel_ref, tunnel) = e.tunnel(&f.tunnel);
    pb::Flow {
        ts_delta_us: e.ts_delta(f.ts),
        span_us,
        uid_packed,
        uid_text,
        community_id: e.community_id(&f.community_id, &tuple),
        proto: u32::from(f.proto.0),
        src_ip: ip_bytes(f.src_ip),
        src_port: u32::from(f.src_port),
        dst_ip: ip_bytes(f.dst_ip),
        dst_port: u32::from(f.dst_port),
        orig_pkts: f.orig_pkts,
        orig_bytes: f.orig_bytes,
        orig_ip_overhead: overhead(f.orig_ip_bytes, f.orig_bytes),
        resp_pkts: f.resp_pkts,
        resp_bytes: f.resp_bytes,
        resp_ip_overhead: overhead(f.resp_ip_bytes, f.resp_bytes),
        orig_tcp_flags,
        orig_tcp_flags_text,
        resp_tcp_flags,
        resp_tcp_flags_text,
        conn_state,
        conn_state_text,
        history: f.history.clone(),
        missed_bytes: f.missed_bytes,
        truncated_bytes: f.truncated_bytes,
        duration,
        service: f.service.clone(),
        tunnel_ref,
        tunnel,
        vantages: (f.vantages != 1).then_some(f.vantages),
        duplicate_pkts: f.duplicate_pkts,
        vantage_ref: e.vantage_ref(f.vantage.as_ref()),
    }
}

pub(super) fn decode(d: &mut Decoder, w: pb::Flow) -> Result<FlowRecord, ConvertError> {
    let ts = d.ts(w.ts_delta_us);
    let tuple = Tuple {
        proto: narrow("proto", w.proto)?,
        src: ip_from("src_ip", &w.src_ip)?,
        src_port: narrow("src_port", w.src_port)?,
        dst: ip_from("dst_ip", &w.dst_ip)?,
        dst_port: narrow("dst_port", w.dst_port)?,
    };
    Ok(FlowRecord {
        ts,
        end_ts: TimestampMicros(ts.0.wrapping_add(w.span_us)),
        uid: uid_from_fields(&w.uid_packed, w.uid_text)?,
        community_id: d.community_id(w.community_id, &tuple),
        proto: Proto(tuple.proto),
        src_ip: tuple.src,
        src_port: tuple.src_port,
        dst_ip: tuple.dst,
        dst_port: tuple.dst_port,
        orig_pkts: w.orig_pkts,
        orig_bytes: w.orig_bytes,
        orig_ip_bytes: with_overhead(w.orig_bytes, w.orig_ip_overhead),
        resp_pkts: w.resp_pkts,
        resp_bytes: w.resp_bytes,
        resp_ip_bytes: with_overhead(w.resp_bytes, w.resp_ip_overhead),
        orig_tcp_flags: tcp_flags_from(w.orig_tcp_flags, w.orig_tcp_flags_text)?,
        resp_tcp_flags: tcp_flags_from(w.resp_tcp_flags, w.resp_tcp_flags_text)?,
        conn_state: conn_state_from(w.conn_state, w.conn_state_text)?,
        history: w.history,
        missed_bytes: w.missed_bytes,
        truncated_bytes: w.truncated_bytes,
        duration: w.duration.unwrap_or_else(|| computed_duration(w.span_us)),
        service: w.service,
        tunnel: d.tunnel(w.tunnel_ref, w.tunnel)?,
        vantages: w.vantages.unwrap_or(1),
        duplicate_pkts: w.duplicate_pkts,
        vantage: d.vantage(w.vantage_ref)?,
    })
}

impl From<&Instance> for pb::Instance {
    fn from(i: &Instance) -> Self {
        pb::Instance {
            instance_id: i.instance_id.clone(),
            eni_id: i.eni_id.clone(),
            vpc_id: i.vpc_id.clone(),
            subnet_id: i.subnet_id.clone(),
            availability_zone: i.availability_zone.clone(),
            tags: i
                .tags
                .iter()
                .map(|(key, value)| pb::Tag {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect(),
        }
    }
}

/// A repeated key keeps its last value (the sensor sends each key once).
impl From<pb::Instance> for Instance {
    fn from(w: pb::Instance) -> Self {
        Instance {
            instance_id: w.instance_id,
            eni_id: w.eni_id,
            vpc_id: w.vpc_id,
            subnet_id: w.subnet_id,
            availability_zone: w.availability_zone,
            tags: w.tags.into_iter().map(|t| (t.key, t.value)).collect(),
        }
    }
}

fn outer(src: &std::net::IpAddr, dst: &std::net::IpAddr) -> pb::OuterAddresses {
    pb::OuterAddresses {
        outer_src: ip_bytes(*src),
        outer_dst: ip_bytes(*dst),
    }
}

impl From<&TunnelLayer> for pb::TunnelLayer {
    fn from(t: &TunnelLayer) -> Self {
        use pb::tunnel_layer::Layer as L;
        let layer = match t {
            TunnelLayer::Vxlan {
                vni,
                outer_src,
                outer_dst,
            } => L::Vxlan(pb::Vxlan {
                vni: *vni,
                outer_src: ip_bytes(*outer_src),
                outer_dst: ip_bytes(*outer_dst),
            }),
            TunnelLayer::Geneve {
                vni,
                outer_src,
                outer_dst,
                aws_gwlb,
                options,
            } => L::Geneve(pb::Geneve {
                vni: *vni,
                outer_src: ip_bytes(*outer_src),
                outer_dst: ip_bytes(*outer_dst),
                aws_gwlb: aws_gwlb.as_ref().map(|g| pb::AwsGwlb {
                    endpoint_id: g.endpoint_id.clone(),
                    attachment_id: g.attachment_id.clone(),
                    flow_cookie: g.flow_cookie,
                }),
                options: options
                    .iter()
                    .map(|o| pb::GeneveOption {
                        class: u32::from(o.class),
                        r#type: u32::from(o.option_type),
                        len: u32::from(o.len),
                    })
                    .collect(),
            }),
            TunnelLayer::Vlan { id, tpid } => L::Vlan(pb::Vlan {
                id: u32::from(*id),
                tpid: u32::from(*tpid),
            }),
            TunnelLayer::Mpls { label } => L::Mpls(pb::Mpls { label: *label }),
            TunnelLayer::Gre {
                outer_src,
                outer_dst,
                protocol,
                key,
            } => L::Gre(pb::Gre {
                outer_src: ip_bytes(*outer_src),
                outer_dst: ip_bytes(*outer_dst),
                protocol: u32::from(*protocol),
                key: *key,
            }),
            TunnelLayer::Erspan {
                version,
                session_id,
                vlan,
                outer_src,
                outer_dst,
            } => L::Erspan(pb::Erspan {
                version: u32::from(*version),
                session_id: session_id.map(u32::from),
                vlan: vlan.map(u32::from),
                outer_src: ip_bytes(*outer_src),
                outer_dst: ip_bytes(*outer_dst),
            }),
            TunnelLayer::IpInIp {
                outer_src,
                outer_dst,
            } => L::IpInIp(outer(outer_src, outer_dst)),
            TunnelLayer::Teredo {
                outer_src,
                outer_dst,
            } => L::Teredo(outer(outer_src, outer_dst)),
            TunnelLayer::Ayiya {
                outer_src,
                outer_dst,
            } => L::Ayiya(outer(outer_src, outer_dst)),
            TunnelLayer::Gtp {
                teid,
                outer_src,
                outer_dst,
            } => L::Gtp(pb::Gtp {
                teid: *teid,
                outer_src: ip_bytes(*outer_src),
                outer_dst: ip_bytes(*outer_dst),
            }),
        };
        pb::TunnelLayer { layer: Some(layer) }
    }
}

impl TryFrom<pb::TunnelLayer> for TunnelLayer {
    type Error = ConvertError;

    fn try_from(w: pb::TunnelLayer) -> Result<Self, ConvertError> {
        use pb::tunnel_layer::Layer as L;
        let src = |b: &[u8]| ip_from("outer_src", b);
        let dst = |b: &[u8]| ip_from("outer_dst", b);
        Ok(
            match w.layer.ok_or(ConvertError::Missing("tunnel layer"))? {
                L::Vxlan(v) => TunnelLayer::Vxlan {
                    vni: v.vni,
                    outer_src: src(&v.outer_src)?,
                    outer_dst: dst(&v.outer_dst)?,
                },
                L::Geneve(g) => TunnelLayer::Geneve {
                    vni: g.vni,
                    outer_src: src(&g.outer_src)?,
                    outer_dst: dst(&g.outer_dst)?,
                    aws_gwlb: g.aws_gwlb.map(|a| AwsGwlb {
                        endpoint_id: a.endpoint_id,
                        attachment_id: a.attachment_id,
                        flow_cookie: a.flow_cookie,
                    }),
                    options: g
                        .options
                        .into_iter()
                        .map(|o| {
                            Ok(GeneveOption {
                                class: narrow("geneve option class", o.class)?,
                                option_type: narrow("geneve option type", o.r#type)?,
                                len: narrow("geneve option len", o.len)?,
                            })
                        })
                        .collect::<Result<_, ConvertError>>()?,
                },
                L::Vlan(v) => TunnelLayer::Vlan {
                    id: narrow("vlan id", v.id)?,
                    tpid: narrow("vlan tpid", v.tpid)?,
                },
                L::Mpls(m) => TunnelLayer::Mpls { label: m.label },
                L::Gre(g) => TunnelLayer::Gre {
                    outer_src: src(&g.outer_src)?,
                    outer_dst: dst(&g.outer_dst)?,
                    protocol: narrow("gre protocol", g.protocol)?,
                    key: g.key,
                },
                L::Erspan(e) => TunnelLayer::Erspan {
                    version: narrow("erspan version", e.version)?,
                    session_id: e
                        .session_id
                        .map(|v| narrow("erspan session_id", v))
                        .transpose()?,
                    vlan: e.vlan.map(|v| narrow("erspan vlan", v)).transpose()?,
                    outer_src: src(&e.outer_src)?,
                    outer_dst: dst(&e.outer_dst)?,
                },
                L::IpInIp(o) => TunnelLayer::IpInIp {
                    outer_src: src(&o.outer_src)?,
                    outer_dst: dst(&o.outer_dst)?,
                },
                L::Teredo(o) => TunnelLayer::Teredo {
                    outer_src: src(&o.outer_src)?,
                    outer_dst: dst(&o.outer_dst)?,
                },
                L::Ayiya(o) => TunnelLayer::Ayiya {
                    outer_src: src(&o.outer_src)?,
                    outer_dst: dst(&o.outer_dst)?,
                },
                L::Gtp(g) => TunnelLayer::Gtp {
                    teid: g.teid,
                    outer_src: src(&g.outer_src)?,
                    outer_dst: dst(&g.outer_dst)?,
                },
            },
        )
    }
}

//! The tunnels carried in UDP and GRE: VXLAN, GENEVE (with the AWS Gateway
//! Load Balancer options), GRE-in-UDP, GRE with ERSPAN I/II/III, MPLS and
//! PPP payloads. Each peels its header, records the layer in the tunnel
//! context and says where decoding goes on.

use super::headers::{self, HeaderError};
use super::tunnel::{Encap, OuterAddrs, TunnelContext};
use super::{Decoder, Step};
use crate::metrics::{Anomaly, Counters};

/// The layer a parsed GENEVE header records (the general path's and the
/// GWLB fast path's).
pub(super) fn geneve_layer(g: &headers::Geneve, outer: OuterAddrs) -> Encap {
    Encap::Geneve {
        vni: g.vni,
        outer,
        gwlb: g.gwlb,
        options: g.options,
        option_count: g.option_count,
    }
}

impl Decoder {
    /// Recognises VXLAN, GENEVE and GRE-in-UDP by destination port (or, when
    /// the header reads cleanly, by source port, for captures of the return
    /// direction of an overlay). A payload that does not parse as the tunnel
    /// stays a UDP packet, counted.
    pub(super) fn udp_tunnel<'a>(
        &self,
        src_port: u16,
        dst_port: u16,
        body: &'a [u8],
        outer: OuterAddrs,
        ctx: &mut TunnelContext,
        counters: &mut Counters,
    ) -> Option<Step<'a>> {
        let c = &self.cfg;
        let tunnel_port =
            self.tunnel_ports.contains(dst_port) || self.tunnel_ports.contains(src_port);
        let by_dst = |ports: &[u16]| tunnel_port && ports.contains(&dst_port);
        let by_src = |ports: &[u16]| tunnel_port && ports.contains(&src_port);
        if by_dst(&c.vxlan_ports) || by_src(&c.vxlan_ports) {
            match headers::parse_vxlan(body) {
                Ok((v, rest)) => return self.peel_vxlan(v, rest, outer, ctx, counters),
                Err(_) if by_dst(&c.vxlan_ports) => counters.anomaly(Anomaly::VxlanMalformed),
                Err(_) => {}
            }
        }
        if by_dst(&c.geneve_ports) || by_src(&c.geneve_ports) {
            match headers::parse_geneve(body) {
                Ok((g, rest)) => return self.peel_geneve(g, rest, outer, ctx, counters),
                Err(_) if by_dst(&c.geneve_ports) => counters.anomaly(Anomaly::GeneveMalformed),
                Err(_) => {}
            }
        }
        if by_dst(&c.gre_udp_ports) {
            return self.gre(body, outer, ctx, counters);
        }
        // The IP-in-UDP tunnels are recognised by either port (a server's
        // replies come from it) and only when the payload reads cleanly.
        // Teredo: on its server port, or on any port (a relay's) when the
        // payload is an IPv6 packet with a Teredo address (2001:0::/32).
        if let Ok(ip) = headers::parse_teredo(body)
            && (by_dst(&c.teredo_ports)
                || by_src(&c.teredo_ports)
                || (c.teredo_any_port && headers::has_teredo_address(ip)))
        {
            let next = if headers::is_teredo_bubble(ip) {
                Step::TunnelSignal
            } else {
                Step::Ip(ip)
            };
            return self
                .push(ctx, Encap::Teredo { outer }, counters)
                .then_some(next);
        }
        if (by_dst(&c.ayiya_ports) || by_src(&c.ayiya_ports))
            && let Ok((_, ip)) = headers::parse_ayiya(body)
        {
            return self
                .push(ctx, Encap::Ayiya { outer }, counters)
                .then_some(Step::Ip(ip));
        }
        if (by_dst(&c.gtp_u_ports) || by_src(&c.gtp_u_ports))
            && let Ok((teid, ip)) = headers::parse_gtp_u(body)
        {
            return self
                .push(ctx, Encap::Gtp { teid, outer }, counters)
                .then_some(Step::Ip(ip));
        }
        None
    }

    /// Peels a VXLAN header; `None` when it is malformed (counted) or the
    /// context is full.
    pub(super) fn vxlan<'a>(
        &self,
        body: &'a [u8],
        outer: OuterAddrs,
        ctx: &mut TunnelContext,
        counters: &mut Counters,
    ) -> Option<Step<'a>> {
        match headers::parse_vxlan(body) {
            Ok((v, rest)) => self.peel_vxlan(v, rest, outer, ctx, counters),
            Err(_) => {
                counters.anomaly(Anomaly::VxlanMalformed);
                None
            }
        }
    }

    /// Records a parsed VXLAN header; `None` when the context is full.
    fn peel_vxlan<'a>(
        &self,
        v: headers::Vxlan,
        rest: &'a [u8],
        outer: OuterAddrs,
        ctx: &mut TunnelContext,
        counters: &mut Counters,
    ) -> Option<Step<'a>> {
        if v.reserved_nonzero {
            counters.anomaly(Anomaly::VxlanReservedBits);
        }
        self.push(ctx, Encap::Vxlan { vni: v.vni, outer }, counters)
            .then_some(Step::Ether(rest))
    }

    /// Peels a GENEVE header and its options; `None` when it is malformed
    /// (counted) or the context is full.
    pub(super) fn geneve<'a>(
        &self,
        body: &'a [u8],
        outer: OuterAddrs,
        ctx: &mut TunnelContext,
        counters: &mut Counters,
    ) -> Option<Step<'a>> {
        match headers::parse_geneve(body) {
            Ok((g, rest)) => self.peel_geneve(g, rest, outer, ctx, counters),
            Err(_) => {
                counters.anomaly(Anomaly::GeneveMalformed);
                None
            }
        }
    }

    /// Records a parsed GENEVE header; `None` when the context is full.
    fn peel_geneve<'a>(
        &self,
        g: headers::Geneve,
        rest: &'a [u8],
        outer: OuterAddrs,
        ctx: &mut TunnelContext,
        counters: &mut Counters,
    ) -> Option<Step<'a>> {
        if g.options_dropped > 0 {
            counters.anomaly(Anomaly::GeneveOptionsDropped);
        }
        // The protocol type is an EtherType (RFC 8926 section 3.4); 0x6558 is
        // a whole Ethernet frame.
        let next = match g.protocol {
            0x6558 => Step::Ether(rest),
            other => Step::EtherType(other, rest),
        };
        self.push(ctx, geneve_layer(&g, outer), counters)
            .then_some(next)
    }

    pub(super) fn gre<'a>(
        &self,
        b: &'a [u8],
        outer: OuterAddrs,
        ctx: &mut TunnelContext,
        counters: &mut Counters,
    ) -> Option<Step<'a>> {
        let (gre, rest) = match headers::parse_gre(b) {
            Ok(v) => v,
            Err(_) => {
                counters.anomaly(Anomaly::GreMalformed);
                return None;
            }
        };
        let gre_layer = Encap::Gre {
            outer,
            protocol: gre.protocol,
            key: gre.key,
        };
        let (layer, next) = match gre.protocol {
            0x6558 => (gre_layer, Step::Ether(rest)),
            0x0800 | 0x86dd => (gre_layer, Step::Ip(rest)),
            0x8847 | 0x8848 => (gre_layer, Step::Mpls(rest)),
            0x880b => (gre_layer, Step::Ppp(rest)),
            // ERSPAN type I has no header and no sequence number; type II has both.
            0x88be if !gre.has_sequence => (
                Encap::Erspan {
                    version: 1,
                    session_id: None,
                    vlan: None,
                    outer,
                },
                Step::Ether(rest),
            ),
            0x88be | 0x22eb => match headers::parse_erspan(rest) {
                Ok((e, frame)) => (
                    Encap::Erspan {
                        version: e.erspan_type,
                        session_id: Some(e.session_id),
                        vlan: Some(e.vlan),
                        outer,
                    },
                    Step::Ether(frame),
                ),
                Err(HeaderError::Truncated) | Err(HeaderError::Unsupported) => {
                    counters.anomaly(Anomaly::ErspanMalformed);
                    return None;
                }
            },
            _ => {
                counters.anomaly(Anomaly::GreUnknownProtocol);
                return None;
            }
        };
        self.push(ctx, layer, counters).then_some(next)
    }
}

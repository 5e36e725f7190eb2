//! Decapsulation: from a captured or received frame to the innermost IP
//! packet and the chain of layers around it.
//!
//! Owns: link types, Ethernet, VLAN (802.1Q, 802.1ad, QinQ), MPLS, PPPoE,
//! IPv4/IPv6 with options and extension headers (through etherparse's lax
//! slices, so truncated packets still give what they have), UDP tunnels
//! (VXLAN, GENEVE, GRE-in-UDP), GRE with ERSPAN I/II/III and PPP, IP in IP.
//! Input: the bytes of one frame and its link type. Output: a [`Decoded`]
//! value borrowing those bytes, and the layers pushed into a
//! [`TunnelContext`]. Does not: reassemble fragments (it hands them to
//! [`defrag`]), track flows, or drop anything for a bad checksum or a length
//! beyond the capture (PacketLength truncation is normal on AWS).

pub mod defrag;
pub mod headers;
pub mod tunnel;

use crate::config::DecapConfig;
use crate::metrics::{Anomaly, Counters};
use etherparse::{IpNumber, Ipv6ExtensionSlice, LaxIpSlice, TcpSlice, UdpSlice};
use headers::{HeaderError, MplsPayload};
use std::net::IpAddr;
use tunnel::{Encap, OuterAddrs, TunnelContext};

/// Link types of capture files (the LINKTYPE_ values of the pcap spec).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    /// LINKTYPE_ETHERNET (1).
    Ethernet,
    /// LINKTYPE_RAW (101, also 12 and 14 on some systems): IPv4 or IPv6.
    RawIp,
    /// LINKTYPE_IPV4 (228).
    Ipv4,
    /// LINKTYPE_IPV6 (229).
    Ipv6,
    /// LINKTYPE_LINUX_SLL (113).
    LinuxSll,
    /// LINKTYPE_LINUX_SLL2 (276).
    LinuxSll2,
    /// LINKTYPE_NULL (0): 4-byte address family in host byte order.
    Null,
    /// LINKTYPE_LOOP (108): 4-byte address family in network byte order.
    Loop,
    /// LINKTYPE_PPP (9) and LINKTYPE_PPP_HDLC (50).
    Ppp,
    /// Anything else (counted, not decoded).
    Unknown(u32),
}

impl LinkType {
    /// Maps a pcap LINKTYPE_ number.
    pub fn from_pcap(n: u32) -> Self {
        match n {
            1 => LinkType::Ethernet,
            12 | 14 | 101 => LinkType::RawIp,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            0 => LinkType::Null,
            108 => LinkType::Loop,
            9 | 50 => LinkType::Ppp,
            other => LinkType::Unknown(other),
        }
    }
}

/// TCP flag bits.
pub mod tcp_flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

/// The transport layer of an inner packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport<'a> {
    /// TCP.
    Tcp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
        /// Sequence number.
        seq: u32,
        /// Acknowledgement number.
        ack: u32,
        /// Flags byte.
        flags: u8,
        /// Window field.
        window: u16,
        /// Payload bytes present in the capture.
        payload: &'a [u8],
        /// Payload length the IP header claims (may exceed `payload`).
        payload_len: u32,
    },
    /// UDP.
    Udp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
        /// Payload bytes present.
        payload: &'a [u8],
        /// Payload length the IP header claims.
        payload_len: u32,
    },
    /// ICMP or ICMPv6.
    Icmp {
        /// Message type.
        icmp_type: u8,
        /// Message code.
        code: u8,
        /// Bytes after the 8-byte ICMP header, as claimed.
        payload_len: u32,
    },
    /// Any other IP protocol (or a transport header too short to read).
    Other {
        /// IP payload length claimed.
        payload_len: u32,
    },
}

/// The innermost IP packet of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InnerPacket<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol number (after IPv6 extension headers).
    pub proto: u8,
    /// IP total length the header claims (IPv6: 40 + payload length).
    pub ip_len: u32,
    /// Bytes the capture or mirror session cut from this packet.
    pub truncated_bytes: u32,
    /// IPv4 identification or IPv6 flow label: part of the packet's identity
    /// when the same packet arrives through two mirror sessions.
    pub ip_id: u32,
    /// The transport layer.
    pub transport: Transport<'a>,
    /// The captured bytes from the transport header on.
    pub l4_bytes: &'a [u8],
}

/// One IP fragment, for [`defrag::Defragmenter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Identification (IPv4: 16 bits, IPv6: 32 bits).
    pub id: u32,
    /// Protocol of the fragmented payload.
    pub proto: u8,
    /// Offset of this piece in bytes.
    pub offset: u16,
    /// More fragments follow.
    pub more: bool,
    /// The IPv4 header (to rebuild the datagram); empty for IPv6.
    pub ipv4_header: &'a [u8],
    /// The bytes of this piece present in the capture.
    pub payload: &'a [u8],
    /// True when the capture cut this piece short (it can never complete a
    /// datagram).
    pub truncated: bool,
}

/// The tunnel a live socket receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpTunnel {
    /// VXLAN (NLB listener, UDP 4789).
    Vxlan,
    /// GENEVE (GWLB, UDP 6081).
    Geneve,
}

/// The result of decoding one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// An IP packet that belongs to a flow.
    Packet(InnerPacket<'a>),
    /// A fragment to reassemble before going on.
    Fragment(Fragment<'a>),
    /// A frame with no IP inside (ARP, LLDP, spanning tree ...).
    NotIp,
    /// Unreadable before any IP layer was found (already counted).
    Malformed,
}

enum Step<'a> {
    Ether(&'a [u8]),
    EtherType(u16, &'a [u8]),
    Ip(&'a [u8]),
    Mpls(&'a [u8]),
    Ppp(&'a [u8]),
}

/// Decodes frames according to a [`DecapConfig`]. Stateless apart from the
/// configuration; cheap to clone per worker.
#[derive(Debug, Clone)]
pub struct Decoder {
    cfg: DecapConfig,
}

impl Decoder {
    /// A decoder for the given configuration.
    pub fn new(cfg: DecapConfig) -> Self {
        Self { cfg }
    }

    /// Decodes one frame of the given link type. `ctx` is cleared first and
    /// holds the peeled layers afterwards.
    pub fn decode<'a>(
        &self,
        link: LinkType,
        data: &'a [u8],
        ctx: &mut TunnelContext,
        counters: &mut Counters,
    ) -> Decoded<'a> {
        ctx.clear();
        let first = match link {
            LinkType::Ethernet => Step::Ether(data),
            LinkType::RawIp | LinkType::Ipv4 | LinkType::Ipv6 => Step::Ip(data),
            LinkType::LinuxSll => match (data.get(14..16), data.get(16..)) {
                (Some(p), Some(rest)) => Step::EtherType(u16::from_be_bytes([p[0], p[1]]), rest),
                _ => {
                    counters.anomaly(Anomaly::EthernetTruncated);
                    return Decoded::Malformed;
                }
            },
            LinkType::LinuxSll2 => match (data.get(0..2), data.get(20..)) {
                (Some(p), Some(rest)) => Step::EtherType(u16::from_be_bytes([p[0], p[1]]), rest),
                _ => {
                    counters.anomaly(Anomaly::EthernetTruncated);
                    return Decoded::Malformed;
                }
            },
            LinkType::Null | LinkType::Loop => match data.get(4..) {
                // The family values differ per OS (2 is AF_INET everywhere;
                // AF_INET6 is 10, 24, 28 or 30), so trust the IP version nibble.
                Some(rest) => Step::Ip(rest),
                None => {
                    counters.anomaly(Anomaly::EthernetTruncated);
                    return Decoded::Malformed;
                }
            },
            LinkType::Ppp => Step::Ppp(data),
            LinkType::Unknown(_) => {
                counters.anomaly(Anomaly::UnknownLinkType);
                return Decoded::Malformed;
            }
        };
        self.run(first, ctx, counters)
    }

    /// Decodes the payload of a UDP datagram received on a tunnel socket (the
    /// live sensor: the kernel has removed the outer IP and UDP headers).
    /// `outer` holds the datagram's source and destination addresses.
    /// `ctx` is cleared first.
    pub fn decode_tunnel_payload<'a>(
        &self,
        tunnel: UdpTunnel,
        outer: OuterAddrs,
        payload: &'a [u8],
        ctx: &mut TunnelContext,
        counters: &mut Counters,
    ) -> Decoded<'a> {
        ctx.clear();
        let first = match tunnel {
            UdpTunnel::Vxlan => self.vxlan(payload, outer, ctx, counters),
            UdpTunnel::Geneve => self.geneve(payload, outer, ctx, counters),
        };
        match first {
            Some(step) => self.run(step, ctx, counters),
            None => Decoded::Malformed,
        }
    }

    /// Continues decoding at an IP header (a datagram rebuilt from
    /// fragments) with the layers already in `ctx`.
    pub fn decode_ip<'a>(
        &self,
        data: &'a [u8],
        ctx: &mut TunnelContext,
        counters: &mut Counters,
    ) -> Decoded<'a> {
        self.run(Step::Ip(data), ctx, counters)
    }

    fn push(&self, ctx: &mut TunnelContext, layer: Encap, counters: &mut Counters) -> bool {
        if ctx.len() >= self.cfg.max_depth || !ctx.push(layer) {
            counters.anomaly(Anomaly::TunnelTooDeep);
            return false;
        }
        true
    }

    fn run<'a>(
        &self,
        mut step: Step<'a>,
        ctx: &mut TunnelContext,
        counters: &mut Counters,
    ) -> Decoded<'a> {
        // Every step consumes bytes or a layer slot, so this bound is never
        // reached by a well-formed packet; it guards against mistakes.
        for _ in 0..(4 * tunnel::MAX_TUNNEL_LAYERS + 16) {
            step = match step {
                Step::Ether(b) => {
                    let Some(t) = b.get(12..14) else {
                        counters.anomaly(Anomaly::EthernetTruncated);
                        return Decoded::Malformed;
                    };
                    Step::EtherType(u16::from_be_bytes([t[0], t[1]]), &b[14..])
                }
                Step::EtherType(ethertype, b) => match ethertype {
                    0x0800 | 0x86dd => Step::Ip(b),
                    0x8100 | 0x88a8 | 0x9100 => {
                        let Some(tag) = b.get(..4) else {
                            counters.anomaly(Anomaly::VlanTruncated);
                            return Decoded::Malformed;
                        };
                        let id = u16::from_be_bytes([tag[0], tag[1]]) & 0x0fff;
                        let next = u16::from_be_bytes([tag[2], tag[3]]);
                        if !self.push(
                            ctx,
                            Encap::Vlan {
                                id,
                                tpid: ethertype,
                            },
                            counters,
                        ) {
                            return Decoded::Malformed;
                        }
                        Step::EtherType(next, &b[4..])
                    }
                    0x8847 | 0x8848 => Step::Mpls(b),
                    // PPPoE session stage: 6-byte header, then PPP protocol.
                    0x8864 => match b.get(6..) {
                        Some(rest) => Step::Ppp(rest),
                        None => {
                            counters.anomaly(Anomaly::PppMalformed);
                            return Decoded::Malformed;
                        }
                    },
                    _ => return Decoded::NotIp,
                },
                Step::Mpls(b) => {
                    let mut rest = b;
                    loop {
                        match headers::parse_mpls_entry(rest) {
                            Ok((label, bottom, r)) => {
                                if !self.push(ctx, Encap::Mpls { label }, counters) {
                                    return Decoded::Malformed;
                                }
                                rest = r;
                                if bottom {
                                    break;
                                }
                            }
                            Err(_) => {
                                counters.anomaly(Anomaly::MplsTruncated);
                                return Decoded::Malformed;
                            }
                        }
                    }
                    match headers::mpls_payload_kind(rest) {
                        (MplsPayload::Ip, r) => Step::Ip(r),
                        (MplsPayload::Ethernet, r) => Step::Ether(r),
                    }
                }
                Step::Ppp(b) => match headers::parse_ppp(b) {
                    Ok((0x0021, r)) | Ok((0x0057, r)) => Step::Ip(r),
                    Ok(_) => return Decoded::NotIp,
                    Err(_) => {
                        counters.anomaly(Anomaly::PppMalformed);
                        return Decoded::Malformed;
                    }
                },
                Step::Ip(b) => match self.ip(b, ctx, counters) {
                    IpOutcome::Done(d) => return d,
                    IpOutcome::Next(s) => s,
                },
            };
        }
        counters.anomaly(Anomaly::TunnelTooDeep);
        Decoded::Malformed
    }

    fn ip<'a>(
        &self,
        b: &'a [u8],
        ctx: &mut TunnelContext,
        counters: &mut Counters,
    ) -> IpOutcome<'a> {
        let (ip, ext_err) = match LaxIpSlice::from_slice(b) {
            Ok(v) => v,
            Err(_) => {
                counters.anomaly(Anomaly::IpMalformed);
                return IpOutcome::Done(Decoded::Malformed);
            }
        };
        let src = ip.source_addr();
        let dst = ip.destination_addr();
        let payload = ip.payload();
        let (ip_len, ip_id, ipv4_header): (u32, u32, &'a [u8]) = match &ip {
            LaxIpSlice::Ipv4(v4) => {
                let h = v4.header();
                let total = u32::from(h.total_len());
                let hl = h.slice().len() as u32;
                // A zero or too-small total length (TSO, BIG TCP) means "the
                // rest of the frame".
                let len = if total < hl { b.len() as u32 } else { total };
                let header = b.get(..hl as usize).unwrap_or(&[]);
                (len, u32::from(h.identification()), header)
            }
            LaxIpSlice::Ipv6(v6) => {
                let h = v6.header();
                let pl = u32::from(h.payload_length());
                let len = if pl == 0 { b.len() as u32 } else { 40 + pl };
                (len, h.flow_label().value(), &[][..])
            }
        };
        let present = b.len() as u32;
        let truncated_bytes = ip_len.saturating_sub(present);
        if truncated_bytes > 0 {
            counters.anomaly(Anomaly::IpTruncated);
        }
        if ext_err.is_some() {
            counters.anomaly(Anomaly::Ipv6ExtensionMalformed);
        }
        let proto = payload.ip_number.0;
        let claimed = (payload.payload.len() as u32).saturating_add(truncated_bytes);

        if payload.fragmented {
            let (id, offset, more) = match &ip {
                LaxIpSlice::Ipv4(v4) => {
                    let h = v4.header();
                    (
                        u32::from(h.identification()),
                        h.fragments_offset().byte_offset(),
                        h.more_fragments(),
                    )
                }
                LaxIpSlice::Ipv6(v6) => {
                    let mut found = None;
                    for ext in v6.extensions().clone() {
                        if let Ipv6ExtensionSlice::Fragment(f) = ext {
                            found = Some((
                                f.identification(),
                                f.fragment_offset().byte_offset(),
                                f.more_fragments(),
                            ));
                        }
                    }
                    match found {
                        Some(v) => v,
                        None => {
                            counters.anomaly(Anomaly::FragmentInvalid);
                            return IpOutcome::Done(Decoded::Malformed);
                        }
                    }
                }
            };
            return IpOutcome::Done(Decoded::Fragment(Fragment {
                src,
                dst,
                id,
                proto,
                offset,
                more,
                ipv4_header,
                payload: payload.payload,
                truncated: truncated_bytes > 0,
            }));
        }

        let outer = OuterAddrs { src, dst };
        let l4 = payload.payload;
        let transport = match payload.ip_number {
            IpNumber::TCP => match TcpSlice::from_slice(l4) {
                Ok(t) => {
                    let hl = u32::from(t.data_offset()) * 4;
                    Transport::Tcp {
                        src_port: t.source_port(),
                        dst_port: t.destination_port(),
                        seq: t.sequence_number(),
                        ack: t.acknowledgment_number(),
                        flags: l4.get(13).copied().unwrap_or(0),
                        window: t.window_size(),
                        payload: t.payload(),
                        payload_len: claimed.saturating_sub(hl),
                    }
                }
                Err(_) => {
                    // Without its whole header a segment cannot be placed in
                    // a connection (Zeek: `truncated_header`, no connection).
                    counters.anomaly(Anomaly::TcpHeaderTruncated);
                    return IpOutcome::Done(Decoded::Malformed);
                }
            },
            IpNumber::UDP => match UdpSlice::from_slice_lax(l4) {
                Ok(u) => {
                    let (sp, dp) = (u.source_port(), u.destination_port());
                    let body = u.payload();
                    if let Some(next) = self.udp_tunnel(sp, dp, body, outer, ctx, counters) {
                        return IpOutcome::Next(next);
                    }
                    Transport::Udp {
                        src_port: sp,
                        dst_port: dp,
                        payload: body,
                        payload_len: claimed.saturating_sub(8),
                    }
                }
                Err(_) => {
                    counters.anomaly(Anomaly::UdpTruncated);
                    return IpOutcome::Done(Decoded::Malformed);
                }
            },
            IpNumber::ICMP | IpNumber::IPV6_ICMP if l4.len() >= 2 => Transport::Icmp {
                icmp_type: l4[0],
                code: l4[1],
                payload_len: claimed.saturating_sub(8),
            },
            IpNumber::GRE => {
                if let Some(next) = self.gre(l4, outer, ctx, counters) {
                    return IpOutcome::Next(next);
                }
                Transport::Other {
                    payload_len: claimed,
                }
            }
            IpNumber::IPV4 | IpNumber::IPV6 => {
                if self.push(ctx, Encap::IpInIp { outer }, counters) {
                    return IpOutcome::Next(Step::Ip(l4));
                }
                Transport::Other {
                    payload_len: claimed,
                }
            }
            _ => Transport::Other {
                payload_len: claimed,
            },
        };
        IpOutcome::Done(Decoded::Packet(InnerPacket {
            src,
            dst,
            proto,
            ip_len,
            truncated_bytes,
            ip_id,
            transport,
            l4_bytes: l4,
        }))
    }

    /// Recognises VXLAN, GENEVE and GRE-in-UDP by destination port (or, when
    /// the header reads cleanly, by source port, for captures of the return
    /// direction of an overlay). A payload that does not parse as the tunnel
    /// stays a UDP packet, counted.
    fn udp_tunnel<'a>(
        &self,
        src_port: u16,
        dst_port: u16,
        body: &'a [u8],
        outer: OuterAddrs,
        ctx: &mut TunnelContext,
        counters: &mut Counters,
    ) -> Option<Step<'a>> {
        let c = &self.cfg;
        let by_dst = |ports: &[u16]| ports.contains(&dst_port);
        let by_src = |ports: &[u16]| ports.contains(&src_port);
        if by_dst(&c.vxlan_ports) || by_src(&c.vxlan_ports) {
            if headers::parse_vxlan(body).is_ok() {
                return self.vxlan(body, outer, ctx, counters);
            }
            if by_dst(&c.vxlan_ports) {
                counters.anomaly(Anomaly::VxlanMalformed);
            }
        }
        if by_dst(&c.geneve_ports) || by_src(&c.geneve_ports) {
            if headers::parse_geneve(body).is_ok() {
                return self.geneve(body, outer, ctx, counters);
            }
            if by_dst(&c.geneve_ports) {
                counters.anomaly(Anomaly::GeneveMalformed);
            }
        }
        if by_dst(&c.gre_udp_ports) {
            return self.gre(body, outer, ctx, counters);
        }
        None
    }

    /// Peels a VXLAN header; `None` when it is malformed (counted) or the
    /// context is full.
    fn vxlan<'a>(
        &self,
        body: &'a [u8],
        outer: OuterAddrs,
        ctx: &mut TunnelContext,
        counters: &mut Counters,
    ) -> Option<Step<'a>> {
        match headers::parse_vxlan(body) {
            Ok((v, rest)) => {
                if v.reserved_nonzero {
                    counters.anomaly(Anomaly::VxlanReservedBits);
                }
                self.push(ctx, Encap::Vxlan { vni: v.vni, outer }, counters)
                    .then_some(Step::Ether(rest))
            }
            Err(_) => {
                counters.anomaly(Anomaly::VxlanMalformed);
                None
            }
        }
    }

    /// Peels a GENEVE header and its options; `None` when it is malformed
    /// (counted) or the context is full.
    fn geneve<'a>(
        &self,
        body: &'a [u8],
        outer: OuterAddrs,
        ctx: &mut TunnelContext,
        counters: &mut Counters,
    ) -> Option<Step<'a>> {
        match headers::parse_geneve(body) {
            Ok((g, rest)) => {
                if g.options_dropped > 0 {
                    counters.anomaly(Anomaly::GeneveOptionsDropped);
                }
                // The protocol type is an EtherType (RFC 8926 section 3.4);
                // 0x6558 is a whole Ethernet frame.
                let next = match g.protocol {
                    0x6558 => Step::Ether(rest),
                    other => Step::EtherType(other, rest),
                };
                let layer = Encap::Geneve {
                    vni: g.vni,
                    outer,
                    gwlb: g.gwlb,
                    options: g.options,
                    option_count: g.option_count,
                };
                self.push(ctx, layer, counters).then_some(next)
            }
            Err(_) => {
                counters.anomaly(Anomaly::GeneveMalformed);
                None
            }
        }
    }

    fn gre<'a>(
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

enum IpOutcome<'a> {
    Done(Decoded<'a>),
    Next(Step<'a>),
}

#[cfg(test)]
mod tests;

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
mod tunnels;
mod view;

pub use view::{Decoded, Fragment, InnerPacket, Transport, UdpTunnel, tcp_flags};

use crate::config::DecapConfig;
use crate::metrics::{Anomaly, Counters};
use etherparse::{IpNumber, Ipv6ExtensionSlice, LaxIpSlice, TcpSlice, UdpSlice};
use headers::MplsPayload;
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

pub(super) enum Step<'a> {
    Ether(&'a [u8]),
    EtherType(u16, &'a [u8]),
    Ip(&'a [u8]),
    Mpls(&'a [u8]),
    Ppp(&'a [u8]),
    /// A tunnel's own signalling (a Teredo bubble): no inner packet.
    TunnelSignal,
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

    pub(super) fn push(
        &self,
        ctx: &mut TunnelContext,
        layer: Encap,
        counters: &mut Counters,
    ) -> bool {
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
                Step::TunnelSignal => return Decoded::NotIp,
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
}

enum IpOutcome<'a> {
    Done(Decoded<'a>),
    Next(Step<'a>),
}

#[cfg(test)]
mod tests;

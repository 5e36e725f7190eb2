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
mod fast;
pub mod headers;
mod ip;
pub mod tunnel;
mod tunnels;
mod view;

pub use view::{Decoded, Fragment, InnerPacket, Transport, UdpTunnel, tcp_flags};

use crate::config::DecapConfig;
use crate::flow::PortSet;
use crate::metrics::{Anomaly, Counters};
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

/// The EtherType of an Ethernet header and the bytes after it.
fn ether_type<'a>((header, rest): (&[u8; 14], &'a [u8])) -> (u16, &'a [u8]) {
    (u16::from_be_bytes([header[12], header[13]]), rest)
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
    /// Every port of every UDP tunnel in `cfg`: most UDP packets use none,
    /// and one look-up here spares them the search of each tunnel's list.
    tunnel_ports: PortSet,
}

impl Decoder {
    /// A decoder for the given configuration.
    pub fn new(cfg: DecapConfig) -> Self {
        let ports: Vec<u16> = [
            &cfg.vxlan_ports,
            &cfg.geneve_ports,
            &cfg.gre_udp_ports,
            &cfg.teredo_ports,
            &cfg.ayiya_ports,
            &cfg.gtp_u_ports,
        ]
        .into_iter()
        .flatten()
        .copied()
        .collect();
        Self {
            tunnel_ports: PortSet::new(&ports),
            cfg,
        }
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
    /// `ctx` is cleared first. Inlined: the live loop calls it once per
    /// datagram, and the fast path's packet is then written where the caller
    /// reads it.
    #[inline(always)]
    pub fn decode_tunnel_payload<'a>(
        &self,
        tunnel: UdpTunnel,
        outer: OuterAddrs,
        payload: &'a [u8],
        ctx: &mut TunnelContext,
        counters: &mut Counters,
    ) -> Decoded<'a> {
        ctx.clear();
        let fast = match tunnel {
            UdpTunnel::Vxlan => self.vxlan_fast(payload, outer, ctx),
            UdpTunnel::Geneve => self.geneve_fast(payload, outer, ctx),
        };
        if let Some(decoded) = fast {
            return decoded;
        }
        // The fast path may have added its layers before declining.
        ctx.clear();
        self.tunnel_payload(tunnel, outer, payload, ctx, counters)
    }

    /// The general path of [`Self::decode_tunnel_payload`], for any layout
    /// (`ctx` already cleared). Kept out of line: rare on a VXLAN socket.
    #[inline(never)]
    fn tunnel_payload<'a>(
        &self,
        tunnel: UdpTunnel,
        outer: OuterAddrs,
        payload: &'a [u8],
        ctx: &mut TunnelContext,
        counters: &mut Counters,
    ) -> Decoded<'a> {
        let first = match tunnel {
            UdpTunnel::Vxlan => self.vxlan(payload, outer, ctx, counters),
            UdpTunnel::Geneve => self.geneve(payload, outer, ctx, counters),
        };
        let Some(step) = first else {
            return Decoded::Malformed;
        };
        // What AWS mirrors: an untagged Ethernet frame carrying IP, straight
        // to the IP layer.
        if let Step::Ether(frame) = step
            && let Some((0x0800 | 0x86dd, ip)) = frame.split_first_chunk::<14>().map(ether_type)
        {
            return self.ip(ip, ctx, counters);
        }
        self.run(step, ctx, counters)
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
                Step::Ip(b) => return self.ip(b, ctx, counters),
            };
        }
        counters.anomaly(Anomaly::TunnelTooDeep);
        Decoded::Malformed
    }
}

#[cfg(test)]
mod tests;

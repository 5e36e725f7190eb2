//! New connections on every pass of a looped replay (`--unique-ip`).
//!
//! Owns: finding the first IP header inside an encoded tunnel datagram and
//! moving its two addresses by one offset, with the IPv4 header checksum and
//! the TCP, UDP or ICMPv6 checksum updated to match (RFC 1624, so payloads
//! are not read). Input: the datagram as the encoder wrote it (VXLAN or
//! GENEVE header first) and the pass's offset. Output: the bytes changed in
//! place, or `false` with the bytes untouched. Does not: parse anything
//! beyond the headers it rewrites.
//!
//! Why: a receiver that tracks connections recognises a pass it has seen
//! (same addresses, ports and sequence numbers) and skips its payload as
//! retransmissions, so a looped capture after its first pass is cheap
//! traffic. Like tcpreplay's `--unique-ip`, each pass moves every inner
//! address by the same amount, so both directions of a connection still
//! meet and no two connections of one pass merge.

use etherparse::{IpNumber, Ipv6ExtensionSlice, Ipv6ExtensionsSlice};

/// The first header of an encoded datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelHeader {
    /// VXLAN (8 bytes, then Ethernet).
    Vxlan,
    /// GENEVE (base header and options, then its protocol type).
    Geneve,
}

/// EtherTypes (and GENEVE protocol types) met on the way in.
const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const ETH_VLAN: u16 = 0x8100;
const ETH_QINQ: u16 = 0x88a8;
/// GENEVE protocol type of an Ethernet frame (transparent Ethernet bridging).
const GENEVE_ETHERNET: u16 = 0x6558;
/// VLAN tags skipped before giving up.
const MAX_VLAN_TAGS: usize = 2;
/// UDP port of the VXLAN packet a GWLB wraps in GENEVE.
const VXLAN_PORT: u16 = 4789;

/// Moves the addresses of the first IP packet inside `datagram` by
/// `offset` (added to their last 16 bits) and fixes the checksums that
/// cover them. A GWLB datagram's own inner IPv4/UDP/VXLAN layer is passed
/// through to the mirrored packet. Returns false, leaving the bytes as they
/// were, when no IP header is found, the headers are cut short or an IPv6
/// extension header cannot be read; and for offset 0.
pub fn renumber(datagram: &mut [u8], header: TunnelHeader, offset: u16) -> bool {
    if offset == 0 {
        return false;
    }
    match first_ip(datagram, header) {
        Some(at) => datagram
            .get_mut(at..)
            .is_some_and(|ip| renumber_ip(ip, offset)),
        None => false,
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2).map(|p| u16::from_be_bytes([p[0], p[1]]))
}

/// Offset of the mirrored packet's IP header in an encoded datagram.
fn first_ip(d: &[u8], header: TunnelHeader) -> Option<usize> {
    match header {
        TunnelHeader::Vxlan => ethernet_ip(d, 8),
        TunnelHeader::Geneve => {
            let options = usize::from(*d.first()? & 0x3f) * 4;
            let at = 8 + options;
            match be16(d, 2)? {
                GENEVE_ETHERNET => ethernet_ip(d, at),
                ETH_IPV4 => {
                    // A GWLB wraps the VXLAN packet in IPv4/UDP: go through it.
                    let ihl = usize::from(*d.get(at)? & 0x0f) * 4;
                    let udp = at + ihl;
                    if *d.get(at + 9)? == 17 && be16(d, udp + 2)? == VXLAN_PORT {
                        ethernet_ip(d, udp + 8 + 8)
                    } else {
                        Some(at)
                    }
                }
                ETH_IPV6 => Some(at),
                _ => None,
            }
        }
    }
}

/// Offset of the IP header behind the Ethernet header at `at` (VLAN tags
/// skipped).
fn ethernet_ip(d: &[u8], at: usize) -> Option<usize> {
    let mut type_at = at + 12;
    for _ in 0..=MAX_VLAN_TAGS {
        match be16(d, type_at)? {
            ETH_IPV4 | ETH_IPV6 => return Some(type_at + 2),
            ETH_VLAN | ETH_QINQ => type_at += 4,
            _ => return None,
        }
    }
    None
}

/// RFC 1624 eqn. 3: the checksum after one 16-bit word changed.
fn checksum_replace(checksum: u16, old: u16, new: u16) -> u16 {
    let mut sum = u32::from(!checksum) + u32::from(!old) + u32::from(new);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}

/// Where a transport checksum that covers the addresses sits, relative to
/// the transport header, and whether it is UDP's (sent as 0xffff when it
/// computes to 0, and over IPv4 absent when 0).
fn transport_checksum(proto: u8, v4: bool) -> Option<(usize, bool)> {
    match proto {
        6 => Some((16, false)),
        17 => Some((6, true)),
        58 if !v4 => Some((2, false)),
        _ => None,
    }
}

/// The rewrite itself: `ip` starts at an IPv4 or IPv6 header.
fn renumber_ip(ip: &mut [u8], offset: u16) -> bool {
    let Some(&first) = ip.first() else {
        return false;
    };
    // (low words of source and destination, header checksum, transport)
    let v4 = first >> 4 == 4;
    let (words, header_checksum, transport) = match first >> 4 {
        4 => {
            let ihl = usize::from(first & 0x0f) * 4;
            if ihl < 20 || ip.len() < ihl {
                return false;
            }
            let fragment_offset = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff;
            let transport = (fragment_offset == 0)
                .then(|| transport_checksum(ip[9], true))
                .flatten()
                .map(|(at, udp)| (ihl + at, udp));
            ([14, 18], Some(10), transport)
        }
        6 => {
            if ip.len() < 40 {
                return false;
            }
            let Some((proto, l4, first_piece)) = ipv6_transport(ip) else {
                return false;
            };
            let transport = first_piece
                .then(|| transport_checksum(proto, false))
                .flatten()
                .map(|(at, udp)| (l4 + at, udp));
            ([22, 38], None, transport)
        }
        _ => return false,
    };
    // A transport header cut before its checksum: leave the packet alone
    // rather than send one whose checksum no longer matches.
    if let Some((at, _)) = transport
        && ip.len() < at + 2
    {
        return false;
    }
    for word in words {
        let old = u16::from_be_bytes([ip[word], ip[word + 1]]);
        let new = old.wrapping_add(offset);
        ip[word..word + 2].copy_from_slice(&new.to_be_bytes());
        if let Some(at) = header_checksum {
            let c = u16::from_be_bytes([ip[at], ip[at + 1]]);
            ip[at..at + 2].copy_from_slice(&checksum_replace(c, old, new).to_be_bytes());
        }
        if let Some((at, udp)) = transport {
            let c = u16::from_be_bytes([ip[at], ip[at + 1]]);
            if !(udp && v4 && c == 0) {
                let mut updated = checksum_replace(c, old, new);
                // UDP sends a computed 0 as 0xffff (0 means "no checksum").
                if updated == 0 && udp {
                    updated = 0xffff;
                }
                ip[at..at + 2].copy_from_slice(&updated.to_be_bytes());
            }
        }
    }
    true
}

/// The transport protocol of an IPv6 packet, its offset, and whether this
/// packet holds the transport header (not a later fragment); `None` when
/// the extension headers cannot be read.
fn ipv6_transport(ip: &[u8]) -> Option<(u8, usize, bool)> {
    let rest = ip.get(40..)?;
    let (exts, proto, after) = Ipv6ExtensionsSlice::from_slice(IpNumber(ip[6]), rest).ok()?;
    let later_fragment = exts
        .clone()
        .into_iter()
        .any(|e| matches!(e, Ipv6ExtensionSlice::Fragment(f) if f.fragment_offset().value() != 0));
    Some((proto.0, ip.len() - after.len(), !later_fragment))
}

#[cfg(test)]
#[path = "renumber_tests.rs"]
mod tests;

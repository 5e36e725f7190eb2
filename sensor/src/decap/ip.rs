//! The IP layer of decapsulation: one IPv4 or IPv6 header and the transport
//! header after it, giving the inner packet, a fragment to reassemble, or the
//! next tunnel to peel.
//!
//! Nearly every mirrored packet is plain: an IPv4 header (options or not) or
//! an IPv6 header followed directly by TCP, UDP or ICMPv6, not fragmented,
//! and with a length the capture holds. Those are read straight from their
//! fixed fields ([`plain`]), which costs a fraction of building etherparse's
//! general slices. Everything else (IPv6 extension headers, IPv4 AH,
//! fragments, a length that disagrees with the capture, a cut or garbled
//! header) goes through etherparse's lax slices, which give the same values
//! for plain packets and lenient ones for the rest.

use super::tunnel::{Encap, OuterAddrs, TunnelContext};
use super::{Decoded, Decoder, Fragment, InnerPacket, Step, Transport};
use crate::metrics::{Anomaly, Counters};
use etherparse::{IpNumber, Ipv6ExtensionSlice, LaxIpSlice, TcpSlice, UdpSlice};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What the transport stage needs from an unfragmented IP header.
pub(super) struct IpParts<'a> {
    pub(super) src: IpAddr,
    pub(super) dst: IpAddr,
    /// Protocol after any extension headers.
    pub(super) proto: u8,
    /// Total length the header claims (see [`InnerPacket::ip_len`]).
    pub(super) ip_len: u32,
    /// See [`InnerPacket::ip_id`].
    pub(super) ip_id: u32,
    pub(super) truncated_bytes: u32,
    /// The transport bytes present, cut to the length the header claims.
    pub(super) l4: &'a [u8],
}

/// Reads a plain IP header (see the module documentation); `None` for
/// anything that needs the general parser.
#[inline(always)]
pub(super) fn plain(b: &[u8]) -> Option<IpParts<'_>> {
    match b.first()? >> 4 {
        4 => {
            let h = b.first_chunk::<20>()?;
            let header_len = usize::from(h[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
            // More-fragments flag or a fragment offset; AH (51) is an
            // extension etherparse peels.
            let fragmenting = u16::from_be_bytes([h[6], h[7]]) & 0x3fff != 0;
            if header_len < 20 || total < header_len || total > b.len() || fragmenting || h[9] == 51
            {
                return None;
            }
            Some(IpParts {
                src: IpAddr::V4(Ipv4Addr::from(*h[12..].first_chunk::<4>()?)),
                dst: IpAddr::V4(Ipv4Addr::from(*h[16..].first_chunk::<4>()?)),
                proto: h[9],
                ip_len: total as u32,
                ip_id: u32::from(u16::from_be_bytes([h[4], h[5]])),
                truncated_bytes: 0,
                l4: b.get(header_len..total)?,
            })
        }
        6 => {
            let h = b.first_chunk::<40>()?;
            let payload_len = usize::from(u16::from_be_bytes([h[4], h[5]]));
            // TCP, UDP, ICMPv6: no extension header to walk.
            if payload_len == 0 || 40 + payload_len > b.len() || !matches!(h[6], 6 | 17 | 58) {
                return None;
            }
            Some(IpParts {
                src: IpAddr::V6(Ipv6Addr::from(*h[8..].first_chunk::<16>()?)),
                dst: IpAddr::V6(Ipv6Addr::from(*h[24..].first_chunk::<16>()?)),
                proto: h[6],
                ip_len: 40 + payload_len as u32,
                ip_id: u32::from_be_bytes([0, h[1] & 0x0f, h[2], h[3]]),
                truncated_bytes: 0,
                l4: b.get(40..40 + payload_len)?,
            })
        }
        _ => None,
    }
}

/// What the general parser made of a header.
enum Lax<'a> {
    Parts(IpParts<'a>),
    Done(Decoded<'a>),
}

impl Decoder {
    /// Decodes an IP packet and what it carries (recursing into a tunnel
    /// found inside: each level adds a layer to `ctx`, which is bounded).
    pub(super) fn ip<'a>(
        &self,
        b: &'a [u8],
        ctx: &mut TunnelContext,
        counters: &mut Counters,
    ) -> Decoded<'a> {
        // Two calls rather than one on a merged value: the plain header's
        // fields then go straight into the packet.
        match plain(b) {
            Some(parts) => self.transport(parts, ctx, counters),
            None => match lax(b, counters) {
                Lax::Parts(parts) => self.transport(parts, ctx, counters),
                Lax::Done(d) => d,
            },
        }
    }

    fn transport<'a>(
        &self,
        ip: IpParts<'a>,
        ctx: &mut TunnelContext,
        counters: &mut Counters,
    ) -> Decoded<'a> {
        let IpParts {
            src,
            dst,
            proto,
            ip_len,
            ip_id,
            truncated_bytes,
            l4,
        } = ip;
        let claimed = (l4.len() as u32).saturating_add(truncated_bytes);
        // Only a tunnel inside needs the addresses as a layer's outer ones.
        let outer = || OuterAddrs { src, dst };
        let transport = match IpNumber(proto) {
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
                    return Decoded::Malformed;
                }
            },
            IpNumber::UDP => match UdpSlice::from_slice_lax(l4) {
                Ok(u) => {
                    let (sp, dp) = (u.source_port(), u.destination_port());
                    let body = u.payload();
                    if let Some(next) = self.udp_tunnel(sp, dp, body, outer(), ctx, counters) {
                        return self.run(next, ctx, counters);
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
                    return Decoded::Malformed;
                }
            },
            IpNumber::ICMP | IpNumber::IPV6_ICMP if l4.len() >= 2 => Transport::Icmp {
                icmp_type: l4[0],
                code: l4[1],
                payload_len: claimed.saturating_sub(8),
            },
            IpNumber::GRE => {
                if let Some(next) = self.gre(l4, outer(), ctx, counters) {
                    return self.run(next, ctx, counters);
                }
                Transport::Other {
                    payload_len: claimed,
                }
            }
            IpNumber::IPV4 | IpNumber::IPV6 => {
                if self.push(ctx, Encap::IpInIp { outer: outer() }, counters) {
                    return self.run(Step::Ip(l4), ctx, counters);
                }
                Transport::Other {
                    payload_len: claimed,
                }
            }
            _ => Transport::Other {
                payload_len: claimed,
            },
        };
        Decoded::Packet(InnerPacket {
            src,
            dst,
            proto,
            ip_len,
            truncated_bytes,
            ip_id,
            transport,
            l4_bytes: l4,
        })
    }
}

/// The general parser: any header etherparse reads leniently, counting what
/// is cut or malformed; fragments end here. Kept out of line: it is the rare
/// path, and inlined it would crowd the plain one.
#[inline(never)]
fn lax<'a>(b: &'a [u8], counters: &mut Counters) -> Lax<'a> {
    let (ip, ext_err) = match LaxIpSlice::from_slice(b) {
        Ok(v) => v,
        Err(_) => {
            counters.anomaly(Anomaly::IpMalformed);
            return Lax::Done(Decoded::Malformed);
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
                for ext in read_extensions(v6.extensions()) {
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
                        return Lax::Done(Decoded::Malformed);
                    }
                }
            }
        };
        return Lax::Done(Decoded::Fragment(Fragment {
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
    Lax::Parts(IpParts {
        src,
        dst,
        proto,
        ip_len,
        ip_id,
        truncated_bytes,
        l4: payload.payload,
    })
}

/// The extension headers etherparse read, and only those.
///
/// etherparse's iterator trusts the last header's next-header field: after a
/// lax read stopped at a cut or malformed header, that field names a header
/// which is not in the slice, and the iterator reads it anyway, past the end
/// of the slice (undefined behaviour; a debug build aborts). So the walk stops
/// when the headers it has given cover the slice.
fn read_extensions<'a>(
    exts: &etherparse::Ipv6ExtensionsSlice<'a>,
) -> impl Iterator<Item = Ipv6ExtensionSlice<'a>> {
    let mut left = exts.slice().len();
    let mut headers = exts.clone().into_iter();
    std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let ext = headers.next()?;
        let len = match &ext {
            Ipv6ExtensionSlice::HopByHop(h)
            | Ipv6ExtensionSlice::Routing(h)
            | Ipv6ExtensionSlice::DestinationOptions(h) => h.slice().len(),
            Ipv6ExtensionSlice::Fragment(f) => f.slice().len(),
            Ipv6ExtensionSlice::Authentication(a) => a.slice().len(),
        };
        left = left.saturating_sub(len);
        Some(ext)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    /// The plain reader must give exactly what the general parser gives.
    fn assert_same(packet: &[u8]) {
        let fast = plain(packet).expect("a plain packet");
        let mut c = Counters::default();
        let Lax::Parts(slow) = lax(packet, &mut c) else {
            panic!("the general parser did not give parts");
        };
        assert_eq!(
            (fast.src, fast.dst, fast.proto, fast.ip_len, fast.ip_id),
            (slow.src, slow.dst, slow.proto, slow.ip_len, slow.ip_id)
        );
        assert_eq!(fast.truncated_bytes, slow.truncated_bytes);
        assert_eq!(fast.l4, slow.l4);
    }

    fn tcp_v4(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(1234, 80, 7, 1000)
            .write(&mut out, payload)
            .unwrap();
        out
    }

    #[test]
    fn plain_headers_read_as_the_general_parser_reads_them() {
        let mut v4 = tcp_v4(b"GET / HTTP/1.1\r\n");
        v4[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
        assert_same(&v4);
        // Ethernet padding after the datagram is not transport bytes.
        let mut padded = tcp_v4(b"");
        padded.extend_from_slice(&[0; 6]);
        assert_same(&padded);
        // IPv4 options.
        let mut opts = Vec::new();
        PacketBuilder::ip(etherparse::IpHeaders::Ipv4(
            etherparse::Ipv4Header {
                options: [1, 1, 1, 1][..].try_into().unwrap(),
                source: [1, 2, 3, 4],
                destination: [5, 6, 7, 8],
                ..Default::default()
            },
            Default::default(),
        ))
        .udp(53, 5353)
        .write(&mut opts, b"answer")
        .unwrap();
        assert_same(&opts);
        let mut v6 = Vec::new();
        PacketBuilder::ipv6([1; 16], [2; 16], 64)
            .udp(5353, 53)
            .write(&mut v6, b"query")
            .unwrap();
        v6[1] = 0x0a;
        v6[2..4].copy_from_slice(&[0xbc, 0xde]);
        assert_same(&v6);
        let mut icmp6 = Vec::new();
        PacketBuilder::ipv6([1; 16], [2; 16], 64)
            .icmpv6_echo_request(1, 2)
            .write(&mut icmp6, b"ping")
            .unwrap();
        assert_same(&icmp6);
    }

    #[test]
    fn unusual_headers_are_left_to_the_general_parser() {
        let full = tcp_v4(b"0123456789");
        // Cut by the capture.
        assert!(plain(&full[..full.len() - 3]).is_none());
        // Fragment: more-fragments flag, then an offset.
        let mut more = full.clone();
        more[6] |= 0x20;
        assert!(plain(&more).is_none());
        let mut offset = full.clone();
        offset[7] = 1;
        assert!(plain(&offset).is_none());
        // A total length below the header (TSO) and a short IHL.
        let mut zero = full.clone();
        zero[2..4].copy_from_slice(&[0, 0]);
        assert!(plain(&zero).is_none());
        let mut ihl = full.clone();
        ihl[0] = 0x44;
        assert!(plain(&ihl).is_none());
        // AH is an extension header.
        let mut ah = full;
        ah[9] = 51;
        assert!(plain(&ah).is_none());
        // IPv6 with a hop-by-hop header, or a zero payload length.
        let mut v6 = Vec::new();
        PacketBuilder::ipv6([1; 16], [2; 16], 64)
            .udp(1, 2)
            .write(&mut v6, b"x")
            .unwrap();
        let mut hop = v6.clone();
        hop[6] = 0;
        assert!(plain(&hop).is_none());
        let mut jumbo = v6;
        jumbo[4..6].copy_from_slice(&[0, 0]);
        assert!(plain(&jumbo).is_none());
        assert!(plain(&[]).is_none());
        assert!(plain(&[0x45; 19]).is_none());
    }

    /// An IPv6 first fragment whose fragment header names a next header
    /// that is cut short (`tail`): etherparse stops its lax read there.
    fn v6_fragment_then(next: u8, tail: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&((8 + tail.len()) as u16).to_be_bytes());
        p.extend_from_slice(&[44, 64]);
        p.extend_from_slice(&[1; 16]);
        p.extend_from_slice(&[2; 16]);
        // Fragment header: offset 0, more fragments, identification 0x01020304.
        p.extend_from_slice(&[next, 0, 0, 1, 1, 2, 3, 4]);
        p.extend_from_slice(tail);
        p
    }

    /// A fragment header followed by a cut or misplaced extension header is
    /// still read as a fragment, the damage counted, and nothing is read
    /// beyond the headers etherparse accepted. (Found by CI's run of the
    /// decoder property test: etherparse's own iterator read past them.)
    #[test]
    fn a_fragment_before_a_damaged_extension_header_is_read_within_bounds() {
        for (next, tail) in [
            (60u8, &[17u8][..]),                 // destination options, 1 byte of 8
            (60, &[17, 3, 0, 0, 0, 0][..]),      // claims 32 bytes, has 6
            (43, &[][..]),                       // routing, nothing left
            (0, &[17, 0, 0, 0, 0, 0, 0, 0][..]), // hop-by-hop not first
            (51, &[17, 9][..]),                  // authentication, cut
        ] {
            let packet = v6_fragment_then(next, tail);
            let mut c = Counters::default();
            match lax(&packet, &mut c) {
                Lax::Done(Decoded::Fragment(f)) => {
                    assert_eq!((f.id, f.offset, f.more), (0x0102_0304, 0, true));
                }
                Lax::Done(Decoded::Malformed) => {}
                _ => panic!("next header {next}: neither a fragment nor malformed"),
            }
            assert_eq!(
                c.anomalies[Anomaly::Ipv6ExtensionMalformed as usize],
                1,
                "next header {next}"
            );
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]
        /// Any chain of IPv6 extension headers, whole, cut or nonsense, is
        /// read without a panic or a read out of bounds, as a fragment, a
        /// packet or a counted malformed packet.
        #[test]
        fn any_ipv6_extension_chain_is_read_within_bounds(
            first in proptest::sample::select(vec![0u8, 43, 44, 51, 60, 6, 17, 59]),
            claimed in proptest::option::of(0u16..200),
            chain in proptest::collection::vec(
                (proptest::sample::select(vec![0u8, 43, 44, 51, 60, 6, 17]), 0u8..4, proptest::prelude::any::<[u8; 6]>()),
                0..5,
            ),
            cut in 0usize..48,
        ) {
            let mut body = Vec::new();
            for (next, len, rest) in &chain {
                body.push(*next);
                body.push(*len);
                body.extend_from_slice(rest);
                body.extend(std::iter::repeat_n(0, usize::from(*len) * 8));
            }
            body.truncate(body.len().saturating_sub(cut));
            let mut p = vec![0x60, 0, 0, 0];
            let len = claimed.unwrap_or(body.len() as u16);
            p.extend_from_slice(&len.to_be_bytes());
            p.extend_from_slice(&[first, 64]);
            p.extend_from_slice(&[1; 32]);
            p.extend_from_slice(&body);
            let mut c = Counters::default();
            let _ = lax(&p, &mut c);
        }
    }
}

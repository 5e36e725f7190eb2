//! The fast path of a live tunnel datagram: what AWS mirrors nearly every
//! time, read in one pass from fixed offsets.
//!
//! Input: the payload of a VXLAN datagram (the kernel removed the outer IP
//! and UDP headers). Covered: a VXLAN header with only the I flag set, an
//! untagged Ethernet frame, a plain IP header (the cases of `ip::plain`:
//! IPv4 with or without options, IPv6 without extension headers; not
//! fragmented, a length the capture holds), then a whole TCP header, or a
//! UDP header on no tunnel port whose payload is not Teredo. Output: the
//! same [`Decoded`] and VXLAN layer the general path gives, with no anomaly
//! to count (each covered case has none). Anything else is `None`, perhaps
//! with the VXLAN layer already in `ctx`: the caller clears it, and the
//! general path decodes the datagram from the start. Does not: count
//! anything.
//!
//! A Gateway Load Balancer delivers the same VXLAN packet inside GENEVE:
//! GENEVE (its options read as the general path reads them, none dropped)
//! carrying IPv4, a plain IPv4 header, UDP to a VXLAN port, then the VXLAN
//! payload above. That shape has a fast path too (`geneve_fast`).

use super::headers;
use super::ip::plain;
use super::tunnel::{Encap, OuterAddrs, TunnelContext};
use super::tunnels::geneve_layer;
use super::{Decoded, Decoder, InnerPacket, Transport};

fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}

/// A UDP datagram's payload (`l4` the datagram, `h` its header, `rest`
/// what follows the header): up to the length field when the capture holds
/// it and it covers the header (etherparse's lax rule, as the general path
/// reads it), else what is there.
#[inline(always)]
fn udp_body<'a>(l4: &'a [u8], h: &[u8; 8], rest: &'a [u8]) -> &'a [u8] {
    let length = usize::from(be16([h[4], h[5]]));
    l4.get(8..length).unwrap_or(rest)
}

impl Decoder {
    /// Decodes a VXLAN payload of the common shape (see the module
    /// documentation); `None` for anything else, with `ctx` to be cleared.
    #[inline(always)]
    pub(super) fn vxlan_fast<'a>(
        &self,
        payload: &'a [u8],
        outer: OuterAddrs,
        ctx: &mut TunnelContext,
    ) -> Option<Decoded<'a>> {
        // A context that cannot take the layer is counted by the general path.
        if self.cfg.max_depth == 0 {
            return None;
        }
        let (vxlan, frame) = payload.split_first_chunk::<8>()?;
        // The I flag alone, reserved bits clear (else an anomaly to count).
        if u32::from_be_bytes([vxlan[0], vxlan[1], vxlan[2], vxlan[3]]) != 0x0800_0000
            || vxlan[7] != 0
        {
            return None;
        }
        // The layer goes in first, so the packet's fields go straight into
        // the result instead of waiting (on the stack) for it.
        let vni = u32::from_be_bytes([0, vxlan[4], vxlan[5], vxlan[6]]);
        // Room is certain (the context was cleared and holds at least one
        // layer), but a refusal must leave the datagram to the general path.
        if !ctx.push(Encap::Vxlan { vni, outer }) {
            return None;
        }
        let (ether, ip) = frame.split_first_chunk::<14>()?;
        if !matches!(be16([ether[12], ether[13]]), 0x0800 | 0x86dd) {
            return None;
        }
        // The plain IP header the general path also reads directly
        // (`ip::plain`); its other cases go to the general path.
        let parts = plain(ip)?;
        let l4 = parts.l4;
        let transport = match parts.proto {
            6 => {
                // A cut header is an anomaly: the general path counts it.
                let h = l4.first_chunk::<20>()?;
                let header_len = usize::from(h[12] >> 4) * 4;
                if header_len < 20 {
                    return None;
                }
                let body = l4.get(header_len..)?;
                Transport::Tcp {
                    src_port: be16([h[0], h[1]]),
                    dst_port: be16([h[2], h[3]]),
                    seq: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
                    ack: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
                    flags: h[13],
                    window: be16([h[14], h[15]]),
                    payload: body,
                    payload_len: body.len() as u32,
                }
            }
            17 => {
                let (h, rest) = l4.split_first_chunk::<8>()?;
                let (src_port, dst_port) = (be16([h[0], h[1]]), be16([h[2], h[3]]));
                if self.tunnel_ports.contains(src_port) || self.tunnel_ports.contains(dst_port) {
                    return None;
                }
                let body = udp_body(l4, h, rest);
                // Teredo is recognised on any port by its payload.
                if self.cfg.teredo_any_port
                    && headers::parse_teredo(body).is_ok_and(headers::has_teredo_address)
                {
                    return None;
                }
                Transport::Udp {
                    src_port,
                    dst_port,
                    payload: body,
                    payload_len: (l4.len() as u32).saturating_sub(8),
                }
            }
            _ => return None,
        };
        Some(Decoded::Packet(InnerPacket {
            src: parts.src,
            dst: parts.dst,
            proto: parts.proto,
            ip_len: parts.ip_len,
            truncated_bytes: parts.truncated_bytes,
            ip_id: parts.ip_id,
            transport,
            l4_bytes: l4,
        }))
    }

    /// Decodes a GENEVE payload of the shape a Gateway Load Balancer
    /// delivers mirrored traffic in (see the module documentation); `None`
    /// for anything else, with `ctx` to be cleared. Out of line: inlined
    /// beside the VXLAN path, it cost that path about 50 instructions per
    /// datagram.
    #[inline(never)]
    pub(super) fn geneve_fast<'a>(
        &self,
        payload: &'a [u8],
        outer: OuterAddrs,
        ctx: &mut TunnelContext,
    ) -> Option<Decoded<'a>> {
        // Both layers must fit, or the general path counts the refusal.
        if self.cfg.max_depth < 2 {
            return None;
        }
        let (g, ip) = headers::parse_geneve(payload).ok()?;
        if g.options_dropped > 0 || g.protocol != 0x0800 {
            return None;
        }
        if !ctx.push(geneve_layer(&g, outer)) {
            return None;
        }
        let parts = plain(ip)?;
        if parts.proto != 17 {
            return None;
        }
        let (h, rest) = parts.l4.split_first_chunk::<8>()?;
        // VXLAN by its destination port, as the general path's first test
        // (`udp_tunnel`) finds it.
        let dst_port = be16([h[2], h[3]]);
        if !(self.tunnel_ports.contains(dst_port) && self.cfg.vxlan_ports.contains(&dst_port)) {
            return None;
        }
        let body = udp_body(parts.l4, h, rest);
        let inner_outer = OuterAddrs {
            src: parts.src,
            dst: parts.dst,
        };
        self.vxlan_fast(body, inner_outer, ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DecapConfig;
    use crate::decap::UdpTunnel;
    use crate::metrics::Counters;
    use etherparse::PacketBuilder;
    use proptest::prelude::*;
    use std::net::IpAddr;

    fn outer() -> OuterAddrs {
        OuterAddrs {
            src: IpAddr::from([10, 0, 0, 1]),
            dst: IpAddr::from([10, 0, 0, 2]),
        }
    }

    /// What decoding gives: the result, the layers and the counters.
    type Outcome = (String, Vec<Encap>, Counters);

    /// Decodes with the fast path first (as the sensor does) and with the
    /// general path alone; both must give the same. Returns the outcome and
    /// whether the fast path took the datagram.
    fn both(d: &Decoder, payload: &[u8]) -> (Outcome, bool) {
        both_on(d, UdpTunnel::Vxlan, payload)
    }

    /// [`both`] for a datagram received on the `tunnel` socket.
    fn both_on(d: &Decoder, tunnel: UdpTunnel, payload: &[u8]) -> (Outcome, bool) {
        let (mut ctx, mut c) = (TunnelContext::new(), Counters::default());
        let fast = format!(
            "{:?}",
            d.decode_tunnel_payload(tunnel, outer(), payload, &mut ctx, &mut c)
        );
        let fast = (fast, ctx.layers().to_vec(), c);
        let mut scratch = TunnelContext::new();
        let taken = match tunnel {
            UdpTunnel::Vxlan => d.vxlan_fast(payload, outer(), &mut scratch),
            UdpTunnel::Geneve => d.geneve_fast(payload, outer(), &mut scratch),
        }
        .is_some();
        let (mut ctx, mut c) = (TunnelContext::new(), Counters::default());
        let general = format!(
            "{:?}",
            d.tunnel_payload(tunnel, outer(), payload, &mut ctx, &mut c)
        );
        let general = (general, ctx.layers().to_vec(), c);
        assert_eq!(fast, general, "payload {payload:02x?}");
        (fast, taken)
    }

    /// A GWLB datagram around a VXLAN payload: GENEVE with the three AWS
    /// options (endpoint, attachment, flow cookie), IPv4, UDP to 4789.
    fn gwlb(vxlan_payload: &[u8]) -> Vec<u8> {
        let class = crate::decap::headers::AWS_GENEVE_CLASS.to_be_bytes();
        let mut g = vec![8, 0, 0x08, 0x00, 0, 0, 0, 0];
        g.extend_from_slice(&[class[0], class[1], 1, 2]);
        g.extend_from_slice(&0x0e5a_0000_0000_0001u64.to_be_bytes());
        g.extend_from_slice(&[class[0], class[1], 2, 2]);
        g.extend_from_slice(&0x0a77_0000_0000_0002u64.to_be_bytes());
        g.extend_from_slice(&[class[0], class[1], 3, 1]);
        g.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        PacketBuilder::ipv4([10, 0, 1, 10], [10, 0, 2, 20], 64)
            .udp(50_123, 4789)
            .write(&mut g, vxlan_payload)
            .unwrap();
        g
    }

    fn vxlan(frame: &[u8]) -> Vec<u8> {
        let mut v = vec![0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0];
        v.extend_from_slice(frame);
        v
    }

    /// A VXLAN payload around the frame `write` builds.
    fn build(
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), etherparse::err::packet::BuildWriteError>,
    ) -> Vec<u8> {
        let mut frame = Vec::new();
        write(&mut frame).unwrap();
        vxlan(&frame)
    }

    /// Common shapes (the first five), and ones that look common but are
    /// not: a tunnel port, Teredo on any port, ICMP, a VLAN tag.
    fn templates() -> Vec<Vec<u8>> {
        let eth = || PacketBuilder::ethernet2([2; 6], [4; 6]);
        let v4 = || eth().ipv4([172, 16, 0, 1], [172, 16, 0, 2], 64);
        let v6 = || eth().ipv6([1; 16], [2; 16], 64);
        let mss = [etherparse::TcpOptionElement::MaximumSegmentSize(1460)];
        let mut teredo = Vec::new();
        let teredo_addr = [0x20, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
        PacketBuilder::ipv6(teredo_addr, [3; 16], 64)
            .udp(1, 2)
            .write(&mut teredo, b"x")
            .unwrap();
        vec![
            build(|f| {
                v4().tcp(40000, 80, 7, 1000)
                    .ack(9)
                    .psh()
                    .write(f, b"GET / HTTP/1.1\r\n")
            }),
            build(|f| {
                v4().tcp(443, 40000, 7, 1000)
                    .syn()
                    .options(&mss)
                    .unwrap()
                    .write(f, b"")
            }),
            build(|f| v6().tcp(40000, 22, 1, 1).fin().write(f, b"bye")),
            build(|f| v4().udp(5353, 53).write(f, b"\x00\x01query")),
            build(|f| v6().udp(53, 5353).write(f, b"answer")),
            build(|f| v4().udp(40000, 4789).write(f, &vxlan(&[0; 60]))),
            build(|f| v4().udp(50000, 50001).write(f, &teredo)),
            build(|f| v4().icmpv4_echo_request(1, 2).write(f, b"ping")),
            build(|f| {
                eth()
                    .single_vlan(7.try_into().unwrap())
                    .ipv4([1, 1, 1, 1], [2, 2, 2, 2], 64)
                    .tcp(1, 2, 3, 4)
                    .write(f, b"v")
            }),
        ]
    }

    #[test]
    fn common_shapes_take_the_fast_path_and_decode_as_the_general_path_does() {
        let d = Decoder::new(DecapConfig::default());
        let taken: Vec<bool> = templates().iter().map(|t| both(&d, t).1).collect();
        assert_eq!(
            taken,
            [true, true, true, true, true, false, false, false, false]
        );
    }

    #[test]
    fn gwlb_datagrams_of_common_shapes_take_the_fast_path_too() {
        let d = Decoder::new(DecapConfig::default());
        let taken: Vec<bool> = templates()
            .iter()
            .map(|t| both_on(&d, UdpTunnel::Geneve, &gwlb(t)).1)
            .collect();
        assert_eq!(
            taken,
            [true, true, true, true, true, false, false, false, false]
        );
        let ((_, layers, _), _) = both_on(&d, UdpTunnel::Geneve, &gwlb(&templates()[0]));
        assert!(
            matches!(
                layers.as_slice(),
                [Encap::Geneve { gwlb, .. }, Encap::Vxlan { vni: 0x12_3456, .. }]
                    if gwlb.flow_cookie == Some(0x1234_5678)
            ),
            "{layers:?}"
        );
        // Not the GWLB shape: GENEVE carrying Ethernet, an option cut short,
        // UDP to another port, a context with room for one layer only.
        let mut ether = gwlb(&templates()[0]);
        ether[2..4].copy_from_slice(&[0x65, 0x58]);
        assert!(!both_on(&d, UdpTunnel::Geneve, &ether).1);
        let mut cut_option = gwlb(&templates()[0]);
        cut_option[0] = 9;
        assert!(!both_on(&d, UdpTunnel::Geneve, &cut_option).1);
        let mut port = gwlb(&templates()[0]);
        port[40 + 20 + 2..40 + 20 + 4].copy_from_slice(&4790u16.to_be_bytes());
        assert!(!both_on(&d, UdpTunnel::Geneve, &port).1);
        let shallow = Decoder::new(DecapConfig {
            max_depth: 1,
            ..DecapConfig::default()
        });
        let ((_, _, c), taken) = both_on(&shallow, UdpTunnel::Geneve, &gwlb(&templates()[0]));
        assert!(!taken);
        assert_eq!(
            c.anomalies[crate::metrics::Anomaly::TunnelTooDeep as usize],
            1
        );
    }

    #[test]
    fn a_full_context_is_counted_as_the_general_path_counts_it() {
        let d = Decoder::new(DecapConfig {
            max_depth: 0,
            ..DecapConfig::default()
        });
        let ((decoded, layers, c), taken) = both(&d, &templates()[0]);
        assert!(!taken);
        assert_eq!(decoded, "Malformed");
        assert!(layers.is_empty());
        assert_eq!(
            c.anomalies[crate::metrics::Anomaly::TunnelTooDeep as usize],
            1
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]
        /// Damaged datagrams (bytes overwritten, cut, extended) decode the
        /// same whichever path takes them.
        #[test]
        fn damaged_datagrams_decode_as_the_general_path_decodes_them(
            which in 0usize..9,
            edits in proptest::collection::vec((0usize..110, any::<u8>()), 0..4),
            cut in proptest::option::of(0usize..140),
            extra in proptest::collection::vec(any::<u8>(), 0..8),
            teredo_any_port in any::<bool>(),
        ) {
            let d = Decoder::new(DecapConfig { teredo_any_port, ..DecapConfig::default() });
            let mut p = templates().swap_remove(which);
            for (at, value) in edits {
                if let Some(b) = p.get_mut(at) {
                    *b = value;
                }
            }
            if let Some(n) = cut {
                p.truncate(n);
            }
            p.extend_from_slice(&extra);
            both(&d, &p);
        }

        /// The same for GWLB datagrams, damaged anywhere in their GENEVE,
        /// IPv4, UDP and VXLAN headers or the mirrored frame.
        #[test]
        fn damaged_gwlb_datagrams_decode_as_the_general_path_decodes_them(
            which in 0usize..9,
            edits in proptest::collection::vec((0usize..180, any::<u8>()), 0..4),
            cut in proptest::option::of(0usize..210),
            extra in proptest::collection::vec(any::<u8>(), 0..8),
        ) {
            let d = Decoder::new(DecapConfig::default());
            let mut p = gwlb(&templates().swap_remove(which));
            for (at, value) in edits {
                if let Some(b) = p.get_mut(at) {
                    *b = value;
                }
            }
            if let Some(n) = cut {
                p.truncate(n);
            }
            p.extend_from_slice(&extra);
            both_on(&d, UdpTunnel::Geneve, &p);
        }
    }
}

//! Byte-level cases of the replay encoder.

use super::*;
use crate::decap::UdpTunnel;
use crate::decap::headers::{parse_geneve, parse_vxlan};
use crate::decap::tunnel::{Encap, OuterAddrs};

fn tcp_ether(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(src, dst, 64)
        .tcp(sport, dport, 1, 1000)
        .write(&mut out, b"hello")
        .unwrap();
    out
}

fn frame(link: LinkType, data: &[u8]) -> RawFrame<'_> {
    RawFrame {
        ts_us: 0,
        link,
        data,
        orig_len: data.len() as u32,
    }
}

#[test]
fn vxlan_carries_the_frame_with_the_vni() {
    let f = tcp_ether([10, 0, 0, 1], 40000, [10, 0, 0, 2], 80);
    let mut enc = FrameEncoder::new(Encapsulation::Vxlan, 0x12_3456, 64);
    let mut out = Vec::with_capacity(4096);
    enc.encode(&frame(LinkType::Ethernet, &f), &mut out)
        .unwrap();
    assert_eq!(&out[..8], &[0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0]);
    let (vx, rest) = parse_vxlan(&out).unwrap();
    assert_eq!(vx.vni, 0x12_3456);
    assert_eq!(rest, &f[..]);
}

#[test]
fn raw_ip_and_cooked_frames_get_an_ethernet_header() {
    let f = tcp_ether([10, 0, 0, 1], 40000, [10, 0, 0, 2], 80);
    let ip = &f[14..];
    let mut sll = vec![0u8; 16];
    sll[14..16].copy_from_slice(&[0x08, 0x00]);
    sll.extend_from_slice(ip);
    let mut enc = FrameEncoder::new(Encapsulation::Vxlan, 1, 4);
    for (link, data) in [(LinkType::RawIp, ip), (LinkType::LinuxSll, &sll[..])] {
        let mut out = Vec::with_capacity(4096);
        enc.encode(&frame(link, data), &mut out).unwrap();
        let inner = &out[8..];
        assert_eq!(&inner[12..14], &[0x08, 0x00], "{link:?}");
        assert_eq!(&inner[14..], ip, "{link:?}");
    }
}

#[test]
fn unconvertible_link_types_are_skipped_and_leave_the_buffer() {
    let mut enc = FrameEncoder::new(Encapsulation::Vxlan, 1, 4);
    let mut out = vec![9u8; 3];
    let bad = [
        (LinkType::Unknown(147), &[1u8, 2, 3][..]),
        (LinkType::RawIp, &[0x50, 0, 0][..]),
        // Cooked capture of an 802.2 frame: protocol 0x0004 is no EtherType.
        (
            LinkType::LinuxSll,
            &[0u8, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 1, 2][..],
        ),
    ];
    for (link, data) in bad {
        assert_eq!(
            enc.encode(&frame(link, data), &mut out),
            Err(SkipReason::LinkType)
        );
    }
    assert_eq!(out, vec![9u8; 3]);
}

#[test]
fn the_two_directions_use_different_sockets_one_direction_always_the_same() {
    let mut enc = FrameEncoder::new(Encapsulation::Vxlan, 1, 64);
    for sport in 30000..30200 {
        let a = tcp_ether([10, 0, 0, 1], sport, [10, 0, 0, 2], 443);
        let b = tcp_ether([10, 0, 0, 2], 443, [10, 0, 0, 1], sport);
        let mut out = Vec::with_capacity(4096);
        let fa = enc
            .encode(&frame(LinkType::Ethernet, &a), &mut out)
            .unwrap();
        let fa2 = enc
            .encode(&frame(LinkType::Ethernet, &a), &mut out)
            .unwrap();
        let fb = enc
            .encode(&frame(LinkType::Ethernet, &b), &mut out)
            .unwrap();
        assert_eq!(fa, fa2);
        assert_ne!(fa, fb, "port {sport}");
        assert!(fa < 64 && fb < 64);
    }
}

#[test]
fn socket_index_spreads_flows_over_the_pool() {
    let mut used = [false; 16];
    for h in 0..1000u64 {
        let flow = FlowChoice {
            hash: h.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            reverse: false,
        };
        used[socket_index(flow, 16)] = true;
    }
    assert!(used.iter().all(|u| *u));
    let one = FlowChoice {
        hash: 7,
        reverse: true,
    };
    assert_eq!(socket_index(one, 1), 0);
}

#[test]
fn gwlb_is_geneve_with_the_aws_options_around_vxlan() {
    let a = tcp_ether([10, 0, 0, 1], 40000, [10, 0, 0, 2], 80);
    let b = tcp_ether([10, 0, 0, 2], 80, [10, 0, 0, 1], 40000);
    let mut enc = FrameEncoder::new(Encapsulation::Gwlb, 77, 64);
    let mut cookies = Vec::new();
    for f in [&a, &b] {
        let mut out = Vec::with_capacity(4096);
        enc.encode(&frame(LinkType::Ethernet, f), &mut out).unwrap();
        let (g, inner) = parse_geneve(&out).unwrap();
        assert_eq!(g.protocol, 0x0800);
        assert_eq!(g.gwlb.endpoint_id, Some(GWLB_ENDPOINT_ID));
        assert_eq!(g.gwlb.attachment_id, Some(GWLB_ATTACHMENT_ID));
        assert_eq!(g.option_count, 0);
        cookies.push(g.gwlb.flow_cookie.unwrap());
        // Inner IPv4/UDP to 4789 with checksum 0, then VXLAN and the frame.
        let ip = etherparse::Ipv4HeaderSlice::from_slice(inner).unwrap();
        assert_eq!(ip.source_addr(), GWLB_INNER_SRC);
        assert_eq!(ip.destination_addr(), GWLB_INNER_DST);
        assert_eq!(usize::from(ip.total_len()), inner.len());
        let udp = etherparse::UdpHeaderSlice::from_slice(&inner[20..]).unwrap();
        assert_eq!(udp.destination_port(), 4789);
        assert_eq!(udp.checksum(), 0);
        let (vx, ether) = parse_vxlan(&inner[28..]).unwrap();
        assert_eq!(vx.vni, 77);
        assert_eq!(ether, &f[..]);

        // The sensor's own decoder reads it as GENEVE then VXLAN.
        let d = Decoder::new(DecapConfig::default());
        let mut ctx = TunnelContext::new();
        let mut c = Counters::default();
        let outer = OuterAddrs {
            src: "127.0.0.1".parse().unwrap(),
            dst: "127.0.0.1".parse().unwrap(),
        };
        let got = d.decode_tunnel_payload(UdpTunnel::Geneve, outer, &out, &mut ctx, &mut c);
        assert!(matches!(got, Decoded::Packet(_)), "{got:?}");
        assert!(matches!(ctx.layers()[0], Encap::Geneve { .. }));
        assert!(matches!(ctx.layers()[1], Encap::Vxlan { vni: 77, .. }));
    }
    assert_eq!(cookies[0], cookies[1], "one cookie per flow");
}

#[test]
fn none_sends_the_udp_payload_of_tunnel_frames_only() {
    let inner = tcp_ether([10, 0, 0, 1], 40000, [10, 0, 0, 2], 80);
    let mut payload = vec![0x08, 0, 0, 0, 0, 0, 5, 0];
    payload.extend_from_slice(&inner);
    let mut tunnel = Vec::new();
    PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv4([192, 168, 0, 1], [192, 168, 0, 2], 64)
        .udp(51000, 4789)
        .write(&mut tunnel, &payload)
        .unwrap();
    let mut dns = Vec::new();
    PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv4([192, 168, 0, 1], [192, 168, 0, 2], 64)
        .udp(51000, 53)
        .write(&mut dns, b"q")
        .unwrap();
    let tcp = tcp_ether([10, 0, 0, 1], 1, [10, 0, 0, 2], 4789);
    let mut enc = FrameEncoder::new(Encapsulation::None, 0, 8);
    let mut out = Vec::with_capacity(4096);
    enc.encode(&frame(LinkType::Ethernet, &tunnel), &mut out)
        .unwrap();
    assert_eq!(out, payload);
    let mut out = Vec::new();
    assert_eq!(
        enc.encode(&frame(LinkType::Ethernet, &dns), &mut out),
        Err(SkipReason::NotTunnel)
    );
    assert_eq!(
        enc.encode(&frame(LinkType::Ethernet, &tcp), &mut out),
        Err(SkipReason::NotUdp)
    );
    assert!(out.is_empty());
}

#[test]
fn oversized_frames_are_skipped() {
    let big = vec![0u8; MAX_DATAGRAM_BYTES];
    let mut enc = FrameEncoder::new(Encapsulation::Vxlan, 0, 8);
    let mut out = Vec::new();
    assert_eq!(
        enc.encode(&frame(LinkType::Ethernet, &big), &mut out),
        Err(SkipReason::TooLarge)
    );
    let mut enc = FrameEncoder::new(Encapsulation::Gwlb, 0, 8);
    assert_eq!(
        enc.encode(
            &frame(LinkType::Ethernet, &big[..MAX_DATAGRAM_BYTES - 60]),
            &mut out
        ),
        Err(SkipReason::TooLarge)
    );
    assert!(out.is_empty());
}

#[test]
fn hostile_frames_never_panic() {
    let mut enc = FrameEncoder::new(Encapsulation::None, 0, 8);
    let mut enc_g = FrameEncoder::new(Encapsulation::Gwlb, 0, 8);
    let mut out = Vec::with_capacity(70_000);
    for len in 0..64usize {
        let data: Vec<u8> = (0..len).map(|i| (i * 37 + len) as u8).collect();
        for link in [
            LinkType::Ethernet,
            LinkType::RawIp,
            LinkType::LinuxSll,
            LinkType::LinuxSll2,
            LinkType::Null,
            LinkType::Ppp,
        ] {
            out.clear();
            let _ = enc.encode(&frame(link, &data), &mut out);
            out.clear();
            let _ = enc_g.encode(&frame(link, &data), &mut out);
        }
    }
}

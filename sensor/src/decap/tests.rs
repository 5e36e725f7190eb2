//! Byte-level decapsulation cases built with etherparse's packet builder.

use super::tunnel::Encap;
use super::*;
use crate::config::DecapConfig;
use etherparse::PacketBuilder;

fn udp_frame(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv4(src, dst, 64)
        .udp(sport, dport)
        .write(&mut out, payload)
        .unwrap();
    out
}

fn vxlan_hdr(vni: u32) -> Vec<u8> {
    let mut v = vec![0x08, 0, 0, 0];
    v.extend_from_slice(&vni.to_be_bytes()[1..]);
    v.push(0);
    v
}

fn decode(link: LinkType, data: &[u8]) -> (Option<(String, String, u8)>, Vec<Encap>, Counters) {
    let d = Decoder::new(DecapConfig::default());
    let mut ctx = TunnelContext::new();
    let mut c = Counters::default();
    let got = match d.decode(link, data, &mut ctx, &mut c) {
        Decoded::Packet(p) => Some((p.src.to_string(), p.dst.to_string(), p.proto)),
        _ => None,
    };
    (got, ctx.layers().to_vec(), c)
}

#[test]
fn geneve_wrapping_vxlan_as_a_gwlb_delivers_mirrored_traffic() {
    let inner = udp_frame([172, 16, 0, 1], [172, 16, 0, 2], 5353, 53, b"q");
    let mut vx = vxlan_hdr(77);
    vx.extend_from_slice(&inner);
    // The VXLAN packet as an IPv4 datagram inside GENEVE (protocol 0x0800).
    let mut vx_ip = Vec::new();
    PacketBuilder::ipv4([10, 0, 0, 5], [10, 0, 0, 9], 64)
        .udp(40000, 4789)
        .write(&mut vx_ip, &vx)
        .unwrap();
    let mut geneve = vec![0x02, 0, 0x08, 0x00, 0, 0, 0, 0];
    geneve.extend_from_slice(&[0x01, 0x08, 0x03, 0x01, 0xde, 0xad, 0xbe, 0xef]);
    geneve.extend_from_slice(&vx_ip);
    let outer = udp_frame([192, 168, 0, 1], [192, 168, 0, 2], 1111, 6081, &geneve);
    let (p, layers, _) = decode(LinkType::Ethernet, &outer);
    assert_eq!(p, Some(("172.16.0.1".into(), "172.16.0.2".into(), 17)));
    assert_eq!(layers.len(), 2);
    match layers[0] {
        Encap::Geneve { gwlb, .. } => assert_eq!(gwlb.flow_cookie, Some(0xdead_beef)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(layers[1], Encap::Vxlan { vni: 77, .. }));
}

#[test]
fn qinq_tags_are_kept_in_order() {
    let inner = udp_frame([1, 1, 1, 1], [2, 2, 2, 2], 1, 2, b"");
    let mut f = inner[..12].to_vec();
    f.extend_from_slice(&[0x88, 0xa8, 0x00, 0x64, 0x81, 0x00, 0x00, 0xc8]);
    f.extend_from_slice(&inner[12..]);
    let (p, layers, _) = decode(LinkType::Ethernet, &f);
    assert!(p.is_some());
    assert_eq!(
        layers,
        vec![
            Encap::Vlan {
                id: 100,
                tpid: 0x88a8
            },
            Encap::Vlan {
                id: 200,
                tpid: 0x8100
            }
        ]
    );
}

#[test]
fn truncated_inner_packet_is_used_and_the_cut_counted() {
    let inner = udp_frame([1, 1, 1, 1], [2, 2, 2, 2], 1, 2, &[7u8; 400]);
    let mut vx = vxlan_hdr(5);
    vx.extend_from_slice(&inner[..100]); // PacketLength cut the mirror copy
    let outer = udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 9, 4789, &vx);
    let d = Decoder::new(DecapConfig::default());
    let mut ctx = TunnelContext::new();
    let mut c = Counters::default();
    match d.decode(LinkType::Ethernet, &outer, &mut ctx, &mut c) {
        Decoded::Packet(p) => {
            assert_eq!(p.ip_len, 20 + 8 + 400);
            assert_eq!(p.truncated_bytes, 428 - 86);
            assert!(matches!(
                p.transport,
                Transport::Udp {
                    payload_len: 400,
                    ..
                }
            ));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.anomalies[Anomaly::IpTruncated as usize], 1);
}

#[test]
fn ipv6_with_extension_headers_reaches_the_transport() {
    let mut out = Vec::new();
    PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv6([1; 16], [2; 16], 64)
        .tcp(1000, 80, 5, 100)
        .syn()
        .write(&mut out, b"")
        .unwrap();
    // Insert a hop-by-hop header (8 bytes) after the IPv6 header.
    let mut f = out[..14 + 40].to_vec();
    f[14 + 6] = 0; // next header: hop-by-hop
    f[14 + 5] += 8; // payload length
    f.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]);
    f.extend_from_slice(&out[14 + 40..]);
    let (p, _, c) = decode(LinkType::Ethernet, &f);
    assert_eq!(p.map(|t| t.2), Some(6));
    assert_eq!(c.anomaly_summary(), "");
}

#[test]
fn gre_erspan_type_ii_and_mpls_are_peeled() {
    let inner = udp_frame([3, 3, 3, 3], [4, 4, 4, 4], 1, 2, b"x");
    let mut gre = vec![0x10, 0x00, 0x88, 0xbe, 0, 0, 0, 1];
    gre.extend_from_slice(&[0x10, 0x0a, 0x00, 0x05, 0, 0, 0, 0]);
    gre.extend_from_slice(&inner);
    let mut out = Vec::new();
    PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv4([9, 9, 9, 1], [9, 9, 9, 2], 64)
        .write(&mut out, etherparse::IpNumber::GRE, &gre)
        .unwrap();
    let (p, layers, _) = decode(LinkType::Ethernet, &out);
    assert_eq!(p.map(|t| t.0), Some("3.3.3.3".to_string()));
    assert!(matches!(
        layers[0],
        Encap::Erspan {
            version: 2,
            session_id: Some(5),
            vlan: Some(10),
            ..
        }
    ));

    // MPLS with two labels, then IPv4.
    let ip = &inner[14..];
    let mut f = inner[..12].to_vec();
    f.extend_from_slice(&[0x88, 0x47, 0x00, 0x01, 0x00, 0x40, 0x00, 0x02, 0x01, 0x40]);
    f.extend_from_slice(ip);
    let (p, layers, _) = decode(LinkType::Ethernet, &f);
    assert!(p.is_some());
    assert_eq!(
        layers,
        vec![Encap::Mpls { label: 16 }, Encap::Mpls { label: 32 }]
    );
}

#[test]
fn tunnels_deeper_than_the_limit_stop_at_the_limit() {
    let mut frame = udp_frame([1, 1, 1, 1], [2, 2, 2, 2], 1, 2, b"x");
    for _ in 0..12 {
        let mut vx = vxlan_hdr(1);
        vx.extend_from_slice(&frame);
        frame = udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 9, 4789, &vx);
    }
    let (p, layers, c) = decode(LinkType::Ethernet, &frame);
    assert!(p.is_some());
    assert_eq!(layers.len(), 8);
    assert_eq!(c.anomalies[Anomaly::TunnelTooDeep as usize], 1);
}

#[test]
fn arp_is_not_ip_and_garbage_is_counted() {
    let mut arp = vec![0xff; 12];
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.extend_from_slice(&[0; 28]);
    let d = Decoder::new(DecapConfig::default());
    let mut ctx = TunnelContext::new();
    let mut c = Counters::default();
    assert_eq!(
        d.decode(LinkType::Ethernet, &arp, &mut ctx, &mut c),
        Decoded::NotIp
    );
    assert_eq!(
        d.decode(LinkType::Ethernet, &[1, 2, 3], &mut ctx, &mut c),
        Decoded::Malformed
    );
    assert_eq!(
        d.decode(LinkType::RawIp, &[0x45, 0, 0], &mut ctx, &mut c),
        Decoded::Malformed
    );
    assert_eq!(c.anomalies[Anomaly::EthernetTruncated as usize], 1);
    assert_eq!(c.anomalies[Anomaly::IpMalformed as usize], 1);
}

#[test]
fn a_tunnel_payload_decodes_as_the_whole_captured_frame_does() {
    let d = Decoder::new(DecapConfig::default());
    let mut tcp = Vec::new();
    PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv4([172, 16, 0, 1], [172, 16, 0, 2], 64)
        .tcp(40000, 80, 7, 100)
        .write(&mut tcp, b"GET / HTTP/1.1\r\n")
        .unwrap();
    let mut v6 = Vec::new();
    PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv6([1; 16], [2; 16], 64)
        .udp(5353, 53)
        .write(&mut v6, b"query")
        .unwrap();
    // Tagged: the straight path must leave it to the general one.
    let mut tagged = tcp[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a]);
    tagged.extend_from_slice(&tcp[12..]);
    for inner in [tcp, v6, tagged] {
        let mut vx = vxlan_hdr(42);
        vx.extend_from_slice(&inner);
        let frame = udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 50000, 4789, &vx);
        let (mut whole_ctx, mut c) = (TunnelContext::new(), Counters::default());
        let whole = d.decode(LinkType::Ethernet, &frame, &mut whole_ctx, &mut c);
        let outer = OuterAddrs {
            src: "10.0.0.1".parse().unwrap(),
            dst: "10.0.0.2".parse().unwrap(),
        };
        let (mut ctx, mut c2) = (TunnelContext::new(), Counters::default());
        let payload = d.decode_tunnel_payload(UdpTunnel::Vxlan, outer, &vx, &mut ctx, &mut c2);
        assert!(matches!(whole, Decoded::Packet(_)), "{whole:?}");
        assert_eq!(payload, whole);
        assert_eq!(ctx, whole_ctx);
        assert_eq!(c2.anomaly_summary(), c.anomaly_summary());
    }
}

use super::*;
use crate::capture::RawFrame;
use crate::decap::LinkType;
use crate::replay::encap::{Encapsulation, FrameEncoder};
use etherparse::PacketBuilder;
use proptest::prelude::*;

#[derive(Debug, Clone, Copy)]
enum Kind {
    Tcp,
    Udp,
    /// UDP over IPv4 sent without a checksum (0).
    UdpNoChecksum,
    Icmp,
}

/// An Ethernet frame built by etherparse, checksums computed by it.
fn frame(v6: bool, src: [u8; 16], dst: [u8; 16], kind: Kind, payload: &[u8]) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let ip = if v6 {
        eth.ipv6(src, dst, 64)
    } else {
        let (s, d) = (src[..4].try_into().unwrap(), dst[..4].try_into().unwrap());
        eth.ipv4(s, d, 64)
    };
    let mut out = Vec::new();
    match kind {
        Kind::Tcp => ip
            .tcp(40_000, 80, 0x0102_0304, 1024)
            .ack(7)
            .write(&mut out, payload),
        Kind::Udp | Kind::UdpNoChecksum => ip.udp(40_000, 53).write(&mut out, payload),
        Kind::Icmp if v6 => ip.icmpv6_echo_request(1, 2).write(&mut out, payload),
        Kind::Icmp => ip.icmpv4_echo_request(1, 2).write(&mut out, payload),
    }
    .unwrap();
    if matches!(kind, Kind::UdpNoChecksum) && !v6 {
        out[14 + 20 + 6..14 + 20 + 8].fill(0);
    }
    out
}

fn moved(addr: [u8; 16], v6: bool, offset: u16) -> [u8; 16] {
    let mut a = addr;
    let at = if v6 { 14 } else { 2 };
    let low = u16::from_be_bytes([a[at], a[at + 1]]).wrapping_add(offset);
    a[at..at + 2].copy_from_slice(&low.to_be_bytes());
    a
}

fn vxlan(frame: &[u8]) -> Vec<u8> {
    let mut d = vec![0x08, 0, 0, 0, 0, 0x10, 0x92, 0];
    d.extend_from_slice(frame);
    d
}

/// Renumbering a packet gives exactly the packet built with the moved
/// addresses: addresses and every checksum right, nothing else touched.
fn check(v6: bool, src: [u8; 16], dst: [u8; 16], kind: Kind, payload: &[u8], offset: u16) {
    let mut d = vxlan(&frame(v6, src, dst, kind, payload));
    assert!(renumber(&mut d, TunnelHeader::Vxlan, offset));
    let expected = vxlan(&frame(
        v6,
        moved(src, v6, offset),
        moved(dst, v6, offset),
        kind,
        payload,
    ));
    if matches!(kind, Kind::UdpNoChecksum) && !v6 {
        assert_eq!(&d[8 + 14 + 20 + 6..8 + 14 + 20 + 8], &[0, 0]);
    }
    // One's complement has two zeros: a TCP or ICMPv6 checksum of 0x0000
    // and one of 0xffff both verify, and either may come out.
    let differ: Vec<usize> = (0..d.len()).filter(|&i| d[i] != expected[i]).collect();
    if d.len() == expected.len() && !differ.is_empty() {
        let at = differ[0] & !1;
        let pair = |b: &[u8]| u16::from_be_bytes([b[at], b[at + 1]]);
        assert!(
            differ.iter().all(|&i| i == at || i == at + 1)
                && matches!((pair(&d), pair(&expected)), (0, 0xffff) | (0xffff, 0)),
            "{kind:?} v6={v6} offset={offset}: bytes {differ:?} differ"
        );
        return;
    }
    assert_eq!(d, expected, "{kind:?} v6={v6} offset={offset}");
}

#[test]
fn each_transport_keeps_valid_checksums() {
    let a = [10, 0, 32, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xfe];
    let b = [192, 0, 2, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9];
    for v6 in [false, true] {
        for kind in [Kind::Tcp, Kind::Udp, Kind::UdpNoChecksum, Kind::Icmp] {
            for offset in [1, 2, 0x7fff, 0xffff] {
                check(v6, a, b, kind, b"GET / HTTP/1.1\r\n\r\n", offset);
            }
        }
    }
}

#[test]
fn offset_zero_and_unreadable_datagrams_are_left_alone() {
    let a = [10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let original = vxlan(&frame(false, a, a, Kind::Tcp, b"x"));
    let mut d = original.clone();
    assert!(!renumber(&mut d, TunnelHeader::Vxlan, 0));
    assert_eq!(d, original);
    // Cut inside the TCP header, before its checksum.
    let mut cut = original[..8 + 14 + 20 + 10].to_vec();
    let before = cut.clone();
    assert!(!renumber(&mut cut, TunnelHeader::Vxlan, 5));
    assert_eq!(cut, before);
    // Not IP behind the Ethernet header (ARP), and nothing at all.
    let mut arp = original.clone();
    arp[8 + 12..8 + 14].copy_from_slice(&[0x08, 0x06]);
    let before = arp.clone();
    assert!(!renumber(&mut arp, TunnelHeader::Vxlan, 5));
    assert_eq!(arp, before);
    assert!(!renumber(&mut [], TunnelHeader::Vxlan, 5));
    assert!(!renumber(&mut [0; 3], TunnelHeader::Geneve, 5));
}

#[test]
fn later_fragments_change_only_the_ip_header() {
    let a = [10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let b = [10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    let mut d = vxlan(&frame(false, a, b, Kind::Udp, &[0xab; 32]));
    let ip = 8 + 14;
    // Fragment offset 8 (64 bytes): the bytes behind the header are data.
    d[ip + 6..ip + 8].copy_from_slice(&8u16.to_be_bytes());
    let header = etherparse::Ipv4HeaderSlice::from_slice(&d[ip..])
        .unwrap()
        .to_header();
    let c = header.calc_header_checksum().to_be_bytes();
    d[ip + 10..ip + 12].copy_from_slice(&c);
    let data = d[ip + 20..].to_vec();
    assert!(renumber(&mut d, TunnelHeader::Vxlan, 3));
    assert_eq!(&d[ip + 20..], &data[..]);
    let header = etherparse::Ipv4HeaderSlice::from_slice(&d[ip..])
        .unwrap()
        .to_header();
    assert_eq!(header.source, [10, 0, 0, 4]);
    assert_eq!(header.destination, [10, 0, 0, 5]);
    assert_eq!(header.header_checksum, header.calc_header_checksum());
}

#[test]
fn ipv6_extension_headers_are_passed() {
    let a = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let b = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    let with_options = |src: [u8; 16], dst: [u8; 16]| {
        let plain = frame(true, src, dst, Kind::Udp, b"q");
        // Insert an 8-byte destination options header (PadN) before UDP.
        let mut f = plain[..14 + 40].to_vec();
        f[14 + 6] = 60;
        let len = u16::from_be_bytes([f[14 + 4], f[14 + 5]]) + 8;
        f[14 + 4..14 + 6].copy_from_slice(&len.to_be_bytes());
        f.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]);
        f.extend_from_slice(&plain[14 + 40..]);
        vxlan(&f)
    };
    let mut d = with_options(a, b);
    assert!(renumber(&mut d, TunnelHeader::Vxlan, 9));
    assert_eq!(d, with_options(moved(a, true, 9), moved(b, true, 9)));
    // A damaged extension chain: untouched.
    let mut bad = with_options(a, b);
    bad[8 + 14 + 40 + 1] = 200;
    let before = bad.clone();
    assert!(!renumber(&mut bad, TunnelHeader::Vxlan, 9));
    assert_eq!(bad, before);
}

/// The encoder's own datagrams: VXLAN, and GWLB (GENEVE around IPv4, UDP and
/// VXLAN), with VLAN tags in the mirrored frame.
#[test]
fn encoded_datagrams_of_every_mode_are_renumbered() {
    let a = [10, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let b = [10, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let tagged = |f: Vec<u8>| {
        let mut t = f[..12].to_vec();
        t.extend_from_slice(&[0x81, 0, 0, 7]);
        t.extend_from_slice(&f[12..]);
        t
    };
    for (mode, header, mirrored_at) in [
        (Encapsulation::Vxlan, TunnelHeader::Vxlan, 8),
        (Encapsulation::Gwlb, TunnelHeader::Geneve, 40 + 20 + 8 + 8),
    ] {
        let encode = |f: &[u8]| {
            let mut e = FrameEncoder::new(mode, 7, 1);
            let mut out = Vec::new();
            let raw = RawFrame {
                link: LinkType::Ethernet,
                ts_us: 0,
                data: f,
                orig_len: f.len() as u32,
            };
            e.encode(&raw, &mut out).unwrap();
            out
        };
        let original = tagged(frame(false, a, b, Kind::Tcp, b"body"));
        let expected = tagged(frame(
            false,
            moved(a, false, 300),
            moved(b, false, 300),
            Kind::Tcp,
            b"body",
        ));
        let mut d = encode(&original);
        assert!(renumber(&mut d, header, 300), "{mode:?}");
        assert_eq!(&d[mirrored_at..], &expected[..], "{mode:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    /// Any addresses, transport, payload and offset: the renumbered packet is
    /// the one built with the moved addresses.
    #[test]
    fn renumbered_packets_equal_packets_built_with_the_moved_addresses(
        v6 in any::<bool>(),
        src in any::<[u8; 16]>(),
        dst in any::<[u8; 16]>(),
        kind in prop::sample::select(vec![Kind::Tcp, Kind::Udp, Kind::UdpNoChecksum, Kind::Icmp]),
        payload in prop::collection::vec(any::<u8>(), 0..64),
        offset in 1u16..,
    ) {
        check(v6, src, dst, kind, &payload, offset);
    }

    /// Any bytes at all, under either header: no panic, and untouched
    /// unless an IP header was found.
    #[test]
    fn hostile_datagrams_are_survived(
        bytes in prop::collection::vec(any::<u8>(), 0..160),
        geneve in any::<bool>(),
        offset in any::<u16>(),
    ) {
        let header = if geneve { TunnelHeader::Geneve } else { TunnelHeader::Vxlan };
        let mut d = bytes.clone();
        if !renumber(&mut d, header, offset) {
            prop_assert_eq!(d, bytes);
        }
    }
}

/// A UDP checksum that comes to 0 after the move is sent as 0xffff (0 would
/// mean "no checksum").
#[test]
fn a_udp_checksum_that_comes_to_zero_is_sent_as_all_ones() {
    let a = [10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let b = [10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    for v6 in [false, true] {
        let at = 8 + 14 + if v6 { 40 } else { 20 } + 6;
        // The payload word that makes the moved packet's checksum 0.
        let payload = (0..=u16::MAX)
            .map(u16::to_be_bytes)
            .find(|p| {
                let built = vxlan(&frame(v6, moved(a, v6, 1), moved(b, v6, 1), Kind::Udp, p));
                built[at..at + 2] == [0xff, 0xff]
            })
            .expect("some payload word");
        let mut d = vxlan(&frame(v6, a, b, Kind::Udp, &payload));
        assert!(renumber(&mut d, TunnelHeader::Vxlan, 1));
        assert_eq!(&d[at..at + 2], &[0xff, 0xff], "v6={v6}");
    }
}

//! Building VXLAN datagram payloads by hand for tests that need control over
//! each packet (which socket sends it, in what order): the VXLAN header and
//! an Ethernet, IPv4 and TCP frame with valid checksums.
//!
//! Inputs: addresses, ports, flags, sequence numbers and payload. Output:
//! the bytes a VXLAN socket receives (outer IP and UDP are the kernel's).
//! It does not send anything.

use std::net::Ipv4Addr;

/// TCP flag bits.
pub mod flags {
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

/// One TCP segment of a test connection.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    /// Source address and port.
    pub src: (Ipv4Addr, u16),
    /// Destination address and port.
    pub dst: (Ipv4Addr, u16),
    /// Flag bits (see [`flags`]).
    pub flags: u8,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Payload.
    pub payload: &'a [u8],
}

/// The 8-byte VXLAN header (RFC 7348: I flag, 24-bit VNI) followed by an
/// Ethernet frame carrying `segment` over IPv4.
pub fn vxlan_tcp(vni: u32, segment: &Segment<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + 14 + 40 + segment.payload.len());
    out.extend_from_slice(&[0x08, 0, 0, 0]);
    out.extend_from_slice(&(vni << 8).to_be_bytes());
    out.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    out.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    out.extend_from_slice(&0x0800u16.to_be_bytes());
    out.extend_from_slice(&ipv4_tcp(segment));
    out
}

/// An IPv4 packet (no options) carrying `segment`.
pub fn ipv4_tcp(segment: &Segment<'_>) -> Vec<u8> {
    let tcp_len = 20 + segment.payload.len();
    let total = u16::try_from(20 + tcp_len).expect("test segments are small");
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0x40, 0, 64, 6, 0, 0]);
    ip.extend_from_slice(&segment.src.0.octets());
    ip.extend_from_slice(&segment.dst.0.octets());
    let checksum = internet_checksum(&[&ip]);
    ip[10..12].copy_from_slice(&checksum.to_be_bytes());

    let mut tcp = Vec::with_capacity(tcp_len);
    tcp.extend_from_slice(&segment.src.1.to_be_bytes());
    tcp.extend_from_slice(&segment.dst.1.to_be_bytes());
    tcp.extend_from_slice(&segment.seq.to_be_bytes());
    tcp.extend_from_slice(&segment.ack.to_be_bytes());
    tcp.extend_from_slice(&[0x50, segment.flags]);
    tcp.extend_from_slice(&65_535u16.to_be_bytes());
    tcp.extend_from_slice(&[0, 0, 0, 0]);
    tcp.extend_from_slice(segment.payload);
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&segment.src.0.octets());
    pseudo.extend_from_slice(&segment.dst.0.octets());
    pseudo.extend_from_slice(&[0, 6]);
    pseudo.extend_from_slice(&u16::try_from(tcp_len).unwrap_or(0).to_be_bytes());
    let checksum = internet_checksum(&[&pseudo, &tcp]);
    tcp[16..18].copy_from_slice(&checksum.to_be_bytes());

    ip.extend_from_slice(&tcp);
    ip
}

/// RFC 1071 one's-complement sum over the concatenation of `parts` (each
/// part but the last has an even length here).
fn internet_checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for part in parts {
        for pair in part.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(u16::try_from(sum).unwrap_or(0))
}

/// A complete client-server exchange: handshake, one request, one answer,
/// FIN both ways. Client sends 5 segments (10 payload bytes), the server 3
/// (20 payload bytes), every sequence number consistent. Each item: (from the client?, segment).
pub fn small_connection(
    client: (Ipv4Addr, u16),
    server: (Ipv4Addr, u16),
) -> Vec<(bool, Segment<'static>)> {
    use flags::*;
    let (c, s) = (1_000u32, 5_000u32);
    let seg = |from_client: bool, flags: u8, seq: u32, ack: u32, payload: &'static [u8]| {
        let (src, dst) = if from_client {
            (client, server)
        } else {
            (server, client)
        };
        (
            from_client,
            Segment {
                src,
                dst,
                flags,
                seq,
                ack,
                payload,
            },
        )
    };
    const REQUEST: &[u8] = b"GET /x\r\n\r\n";
    const ANSWER: &[u8] = b"HTTP/1.0 200 OK\r\n\r\n!";
    let (rq, an) = (REQUEST.len() as u32, ANSWER.len() as u32);
    vec![
        seg(true, SYN, c, 0, b""),
        seg(false, SYN | ACK, s, c + 1, b""),
        seg(true, ACK, c + 1, s + 1, b""),
        seg(true, PSH | ACK, c + 1, s + 1, REQUEST),
        seg(false, PSH | ACK, s + 1, c + 1 + rq, ANSWER),
        seg(false, FIN | ACK, s + 1 + an, c + 1 + rq, b""),
        seg(true, FIN | ACK, c + 1 + rq, s + 2 + an, b""),
        seg(true, ACK, c + 2 + rq, s + 2 + an, b""),
    ]
}

/// An Ethernet frame carrying `payload` in IPv4/UDP from 127.0.0.1:`sport`
/// to 127.0.0.1:`dport` with UDP checksum 0, as a VXLAN datagram looks on
/// the wire (for writing the reference capture of a live test).
pub fn outer_udp_frame(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let udp_len = u16::try_from(8 + payload.len()).expect("test datagrams are small");
    let total = udp_len + 20;
    let mut frame = Vec::with_capacity(14 + usize::from(total));
    frame.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00]);
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1]);
    let checksum = internet_checksum(&[&ip]);
    ip[10..12].copy_from_slice(&checksum.to_be_bytes());
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&sport.to_be_bytes());
    frame.extend_from_slice(&dport.to_be_bytes());
    frame.extend_from_slice(&udp_len.to_be_bytes());
    frame.extend_from_slice(&[0, 0]);
    frame.extend_from_slice(payload);
    frame
}

/// A classic pcap file (microseconds, Ethernet) of `frames` (time in
/// microseconds since the epoch, bytes).
pub fn pcap_bytes(frames: &[(i64, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65_535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (ts_us, frame) in frames {
        let secs = u32::try_from(ts_us.div_euclid(1_000_000)).unwrap_or(0);
        let micros = u32::try_from(ts_us.rem_euclid(1_000_000)).unwrap_or(0);
        let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        for word in [secs, micros, len, len] {
            out.extend_from_slice(&word.to_le_bytes());
        }
        out.extend_from_slice(frame);
    }
    out
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn checksums_verify() {
        let segment = Segment {
            src: (Ipv4Addr::new(10, 0, 0, 1), 40_000),
            dst: (Ipv4Addr::new(10, 0, 0, 2), 80),
            flags: flags::SYN,
            seq: 7,
            ack: 0,
            payload: b"abc",
        };
        let ip = ipv4_tcp(&segment);
        assert_eq!(internet_checksum(&[&ip[..20]]), 0, "IPv4 header checksum");
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&ip[12..20]);
        pseudo.extend_from_slice(&[0, 6, 0, 23]);
        assert_eq!(internet_checksum(&[&pseudo, &ip[20..]]), 0, "TCP checksum");
        let datagram = vxlan_tcp(0x00ab_cdef, &segment);
        assert_eq!(&datagram[4..8], &[0xab, 0xcd, 0xef, 0]);
        assert_eq!(datagram.len(), 8 + 14 + ip.len());
    }
}

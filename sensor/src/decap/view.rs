//! The values decapsulation produces: the innermost IP packet with its
//! transport layer, a fragment to reassemble, or why there is no packet.
//! Plain views borrowing the frame's bytes.

use std::net::IpAddr;

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

impl Transport<'_> {
    /// The ports as the packet carries them: source and destination for TCP
    /// and UDP, type and code for ICMP, zeros otherwise.
    pub fn ports(&self) -> (u16, u16) {
        match *self {
            Transport::Tcp {
                src_port, dst_port, ..
            }
            | Transport::Udp {
                src_port, dst_port, ..
            } => (src_port, dst_port),
            Transport::Icmp {
                icmp_type, code, ..
            } => (u16::from(icmp_type), u16::from(code)),
            Transport::Other { .. } => (0, 0),
        }
    }
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

/// One IP fragment, for [`super::defrag::Defragmenter`].
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

//! Turns one captured frame into the UDP payload AWS would deliver for it.
//!
//! Owns: the VXLAN header (RFC 7348), the GWLB GENEVE header with the three
//! AWS options of class 0x0108 (RFC 8926), the inner IPv4/UDP/VXLAN packet
//! a GWLB wraps, Ethernet headers synthesised for link types without one,
//! finding the UDP payload of an already encapsulated frame, and the choice
//! of outer source port (socket) from the inner 5-tuple. Input: a
//! [`RawFrame`]. Output: bytes appended to the caller's batch buffer and the
//! index of the socket to send them from, or a [`SkipReason`]. Does not: send
//! anything, pace, or allocate per frame (its scratch buffer is reused).

use crate::capture::RawFrame;
use crate::config::DecapConfig;
use crate::decap::headers::{AWS_GENEVE_CLASS, parse_ppp};
use crate::decap::tunnel::TunnelContext;
use crate::decap::{Decoded, Decoder, LinkType};
use crate::flow::key::{Endpoint, PacketTuple};
use crate::metrics::Counters;
use crate::replay::renumber::TunnelHeader;
use etherparse::{EtherType, LaxSlicedPacket, PacketBuilder, TransportSlice};
use foldhash::fast::FixedState;
use std::hash::BuildHasher;
use std::net::Ipv4Addr;

/// Largest UDP payload one datagram carries (IPv4: 65535 - 20 - 8).
pub const MAX_DATAGRAM_BYTES: usize = 65_507;
/// Most bytes [`FrameEncoder::encode`] adds to a frame: GENEVE with the AWS
/// options (40), inner IPv4 (20), UDP (8), VXLAN (8) and a synthesised
/// Ethernet header (14).
pub const MAX_OVERHEAD_BYTES: usize = 40 + 20 + 8 + 8 + 14;

/// VXLAN header length.
const VXLAN_BYTES: usize = 8;
/// GENEVE base header plus the three AWS options (12 + 12 + 8 bytes).
const GENEVE_GWLB_BYTES: usize = 8 + 32;
/// Synthetic GWLB endpoint ENI id (GENEVE option type 1).
pub const GWLB_ENDPOINT_ID: u64 = 0x0e5a_0000_0000_0001;
/// Synthetic GWLB attachment id (GENEVE option type 2).
pub const GWLB_ATTACHMENT_ID: u64 = 0x0a77_0000_0000_0002;
/// Inner IPv4 source of a GWLB-delivered VXLAN packet: the mirror source ENI.
pub const GWLB_INNER_SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 10);
/// Inner IPv4 destination: the mirror target (the GWLB endpoint).
pub const GWLB_INNER_DST: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 20);
/// Locally administered MACs of a synthesised Ethernet header.
const SYNTH_SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const SYNTH_DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
/// Seed of the flow hash: fixed, so a replay picks the same ports every run.
const FLOW_HASH_SEED: u64 = 0x6d69_7272_6f72_7270;

/// How each frame is wrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Encapsulation {
    /// VXLAN as AWS Traffic Mirroring sends it (to an NLB or ENI target).
    Vxlan,
    /// GENEVE with the AWS options wrapping the VXLAN packet, as a Gateway
    /// Load Balancer delivers mirrored traffic.
    Gwlb,
    /// The capture is already encapsulated: send each frame's UDP payload.
    None,
}

/// Why a frame was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Its link type cannot be turned into an Ethernet frame.
    LinkType,
    /// The datagram would exceed [`MAX_DATAGRAM_BYTES`].
    TooLarge,
    /// `--encap none`: the frame holds no UDP datagram.
    NotUdp,
    /// `--encap none`: UDP, but not to or from a VXLAN or GENEVE port.
    NotTunnel,
}

impl SkipReason {
    /// Every reason, in report order.
    pub const ALL: [SkipReason; 4] = [
        SkipReason::LinkType,
        SkipReason::TooLarge,
        SkipReason::NotUdp,
        SkipReason::NotTunnel,
    ];

    /// Name in the summary.
    pub fn name(self) -> &'static str {
        match self {
            SkipReason::LinkType => "link_type",
            SkipReason::TooLarge => "too_large",
            SkipReason::NotUdp => "not_udp",
            SkipReason::NotTunnel => "not_tunnel",
        }
    }
}

/// The inner flow of a frame: a hash of its 5-tuple with the endpoints in
/// canonical order (equal for both directions) and which direction this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowChoice {
    /// Symmetric hash of protocol and ordered endpoints.
    pub hash: u64,
    /// True when the sender is the higher endpoint.
    pub reverse: bool,
}

/// The socket (outer source port) of a direction. AWS hashes the ordered
/// 5-tuple, so the two directions of a connection usually get different
/// outer ports; here they always do when the pool has two sockets or more,
/// so a receiver that relies on outer ports to pair directions is caught.
pub fn socket_index(flow: FlowChoice, pool: usize) -> usize {
    let pool = pool.max(1) as u64;
    let forward = flow.hash % pool;
    if !flow.reverse || pool == 1 {
        return forward as usize;
    }
    let step = 1 + (flow.hash >> 32) % (pool - 1);
    ((forward + step) % pool) as usize
}

/// The link-layer view of a frame: already Ethernet, or an EtherType and
/// the layer-3 bytes to put behind a synthesised header.
enum EtherView<'a> {
    Ethernet(&'a [u8]),
    Bare(u16, &'a [u8]),
}

impl EtherView<'_> {
    fn len(&self) -> usize {
        match self {
            EtherView::Ethernet(b) => b.len(),
            EtherView::Bare(_, b) => 14 + b.len(),
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            EtherView::Ethernet(b) => out.extend_from_slice(b),
            EtherView::Bare(ethertype, b) => {
                out.extend_from_slice(&SYNTH_DST_MAC);
                out.extend_from_slice(&SYNTH_SRC_MAC);
                out.extend_from_slice(&ethertype.to_be_bytes());
                out.extend_from_slice(b);
            }
        }
    }
}

fn ethertype_of_ip(b: &[u8]) -> Option<u16> {
    match b.first().map(|v| v >> 4) {
        Some(4) => Some(0x0800),
        Some(6) => Some(0x86dd),
        _ => None,
    }
}

/// The Ethernet view of a frame of any link type the sensor reads. A cooked
/// capture's protocol field below 0x0600 is an 802.2 length or a Linux
/// pseudo-protocol, not an EtherType: not convertible.
fn ether_view(link: LinkType, data: &[u8]) -> Option<EtherView<'_>> {
    let be16 = |b: &[u8], at: usize| b.get(at..at + 2).map(|p| u16::from_be_bytes([p[0], p[1]]));
    fn bare(ethertype: u16, rest: &[u8]) -> Option<EtherView<'_>> {
        (ethertype >= 0x0600).then_some(EtherView::Bare(ethertype, rest))
    }
    match link {
        LinkType::Ethernet => (data.len() >= 14).then_some(EtherView::Ethernet(data)),
        LinkType::Ipv4 => Some(EtherView::Bare(0x0800, data)),
        LinkType::Ipv6 => Some(EtherView::Bare(0x86dd, data)),
        LinkType::RawIp => ethertype_of_ip(data).map(|t| EtherView::Bare(t, data)),
        LinkType::LinuxSll => bare(be16(data, 14)?, data.get(16..)?),
        LinkType::LinuxSll2 => bare(be16(data, 0)?, data.get(20..)?),
        LinkType::Null | LinkType::Loop => {
            let rest = data.get(4..)?;
            ethertype_of_ip(rest).map(|t| EtherView::Bare(t, rest))
        }
        LinkType::Ppp => match parse_ppp(data).ok()? {
            (0x0021, rest) => Some(EtherView::Bare(0x0800, rest)),
            (0x0057, rest) => Some(EtherView::Bare(0x86dd, rest)),
            _ => None,
        },
        LinkType::Unknown(_) => None,
    }
}

/// Encodes frames for one replay. Reuses its buffers; one per sending
/// thread.
pub struct FrameEncoder {
    mode: Encapsulation,
    vni: u32,
    pool: usize,
    decoder: Decoder,
    tunnel_ports: DecapConfig,
    ctx: TunnelContext,
    /// Anomalies the decoder finds while reading 5-tuples: not reported (the
    /// sensor reports them), but the decoder needs somewhere to put them.
    scratch_counters: Counters,
    hasher: FixedState,
    /// The VXLAN packet that a GWLB datagram wraps, built here first.
    scratch: Vec<u8>,
    /// The first header of the last datagram encoded.
    last_header: TunnelHeader,
}

impl FrameEncoder {
    /// An encoder for `mode`, with VXLAN network id `vni` (24 bits), choosing
    /// among `pool` sockets.
    pub fn new(mode: Encapsulation, vni: u32, pool: usize) -> Self {
        let cfg = DecapConfig::default();
        Self {
            mode,
            vni: vni & 0x00ff_ffff,
            pool: pool.max(1),
            decoder: Decoder::new(cfg.clone()),
            tunnel_ports: cfg,
            ctx: TunnelContext::new(),
            scratch_counters: Counters::default(),
            hasher: FixedState::with_seed(FLOW_HASH_SEED),
            scratch: Vec::with_capacity(MAX_DATAGRAM_BYTES + MAX_OVERHEAD_BYTES),
            last_header: TunnelHeader::Vxlan,
        }
    }

    /// The first header (VXLAN or GENEVE) of the datagram the last
    /// successful [`FrameEncoder::encode`] appended.
    pub fn last_header(&self) -> TunnelHeader {
        self.last_header
    }

    /// The inner flow of a frame (the innermost IP packet, as the sensor
    /// decodes it), or `None` for frames with no IP inside.
    pub fn flow_of(&mut self, frame: &RawFrame<'_>) -> Option<FlowChoice> {
        let tuple = match self.decoder.decode(
            frame.link,
            frame.data,
            &mut self.ctx,
            &mut self.scratch_counters,
        ) {
            Decoded::Packet(p) => PacketTuple::of(&p),
            Decoded::Fragment(f) => PacketTuple {
                proto: f.proto,
                src: Endpoint {
                    addr: f.src,
                    port: 0,
                },
                dst: Endpoint {
                    addr: f.dst,
                    port: 0,
                },
            },
            Decoded::NotIp | Decoded::Malformed => return None,
        };
        let reverse = tuple.src > tuple.dst;
        let (lo, hi) = if reverse {
            (tuple.dst, tuple.src)
        } else {
            (tuple.src, tuple.dst)
        };
        Some(FlowChoice {
            hash: self.hasher.hash_one((tuple.proto, lo, hi)),
            reverse,
        })
    }

    /// Appends the datagram payload for `frame` to `out` and returns the
    /// socket to send it from. On a skip `out` is left as it was. `out` must
    /// have room for `frame.data.len() + MAX_OVERHEAD_BYTES` more bytes
    /// (the caller's buffer is sized so that it never reallocates).
    pub fn encode(&mut self, frame: &RawFrame<'_>, out: &mut Vec<u8>) -> Result<usize, SkipReason> {
        let flow = self.flow_of(frame);
        let socket = flow.map_or(0, |f| socket_index(f, self.pool));
        match self.mode {
            Encapsulation::Vxlan => {
                let ether = ether_view(frame.link, frame.data).ok_or(SkipReason::LinkType)?;
                if VXLAN_BYTES + ether.len() > MAX_DATAGRAM_BYTES {
                    return Err(SkipReason::TooLarge);
                }
                push_vxlan_header(out, self.vni);
                ether.write(out);
                self.last_header = TunnelHeader::Vxlan;
            }
            Encapsulation::Gwlb => {
                let ether = ether_view(frame.link, frame.data).ok_or(SkipReason::LinkType)?;
                if GENEVE_GWLB_BYTES + 20 + 8 + VXLAN_BYTES + ether.len() > MAX_DATAGRAM_BYTES {
                    return Err(SkipReason::TooLarge);
                }
                self.scratch.clear();
                push_vxlan_header(&mut self.scratch, self.vni);
                ether.write(&mut self.scratch);
                let cookie = flow.map_or(0, |f| (f.hash >> 16) as u32);
                let start = out.len();
                push_geneve_gwlb_header(out, cookie);
                // The inner VXLAN source port is hashed per direction too.
                let inner_sport = flow.map_or(49_152, |f| {
                    49_152 + (self.hasher.hash_one((f.hash, f.reverse)) % 16_384) as u16
                });
                let built =
                    PacketBuilder::ipv4(GWLB_INNER_SRC.octets(), GWLB_INNER_DST.octets(), 64)
                        .udp(inner_sport, 4789)
                        .write(out, &self.scratch);
                if built.is_err() {
                    out.truncate(start);
                    return Err(SkipReason::TooLarge);
                }
                // AWS sends the VXLAN packet with UDP checksum 0.
                let csum = start + GENEVE_GWLB_BYTES + 20 + 6;
                if let Some(c) = out.get_mut(csum..csum + 2) {
                    c.fill(0);
                }
                self.last_header = TunnelHeader::Geneve;
            }
            Encapsulation::None => {
                let (payload, header) = self.tunnel_payload(frame)?;
                if payload.len() > MAX_DATAGRAM_BYTES {
                    return Err(SkipReason::TooLarge);
                }
                out.extend_from_slice(payload);
                self.last_header = header;
            }
        }
        Ok(socket)
    }

    /// The UDP payload of an encapsulated frame: the VXLAN or GENEVE header
    /// onward, as present in the capture, and which of the two it is (by
    /// the destination port, else the source port).
    fn tunnel_payload<'a>(
        &self,
        frame: &RawFrame<'a>,
    ) -> Result<(&'a [u8], TunnelHeader), SkipReason> {
        let sliced = match ether_view(frame.link, frame.data).ok_or(SkipReason::NotUdp)? {
            EtherView::Ethernet(b) => LaxSlicedPacket::from_ethernet(b).ok(),
            EtherView::Bare(t, b) => Some(LaxSlicedPacket::from_ether_type(EtherType(t), b)),
        };
        let Some(TransportSlice::Udp(udp)) = sliced.and_then(|s| s.transport) else {
            return Err(SkipReason::NotUdp);
        };
        let c = &self.tunnel_ports;
        let kind = |p: u16| {
            if c.vxlan_ports.contains(&p) {
                Some(TunnelHeader::Vxlan)
            } else if c.geneve_ports.contains(&p) {
                Some(TunnelHeader::Geneve)
            } else {
                None
            }
        };
        let header = kind(udp.destination_port())
            .or_else(|| kind(udp.source_port()))
            .ok_or(SkipReason::NotTunnel)?;
        Ok((udp.payload(), header))
    }
}

/// VXLAN header (RFC 7348 section 5): I flag, 24-bit VNI.
fn push_vxlan_header(out: &mut Vec<u8>, vni: u32) {
    let v = vni.to_be_bytes();
    out.extend_from_slice(&[0x08, 0, 0, 0, v[1], v[2], v[3], 0]);
}

/// GENEVE header (RFC 8926 section 3.4) carrying IPv4 (protocol 0x0800),
/// VNI 0, and the three AWS options of class 0x0108: endpoint id (type 1,
/// u64), attachment id (type 2, u64) and flow cookie (type 3, u32). Option
/// lengths count 4-byte words after the 4-byte option header.
fn push_geneve_gwlb_header(out: &mut Vec<u8>, cookie: u32) {
    let class = AWS_GENEVE_CLASS.to_be_bytes();
    let opt_words = ((GENEVE_GWLB_BYTES - 8) / 4) as u8;
    out.extend_from_slice(&[opt_words, 0, 0x08, 0x00, 0, 0, 0, 0]);
    out.extend_from_slice(&[class[0], class[1], 1, 2]);
    out.extend_from_slice(&GWLB_ENDPOINT_ID.to_be_bytes());
    out.extend_from_slice(&[class[0], class[1], 2, 2]);
    out.extend_from_slice(&GWLB_ATTACHMENT_ID.to_be_bytes());
    out.extend_from_slice(&[class[0], class[1], 3, 1]);
    out.extend_from_slice(&cookie.to_be_bytes());
}

#[cfg(test)]
#[path = "encap_tests.rs"]
mod tests;

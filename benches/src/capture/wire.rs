//! Bytes on the wire: builds each inner Ethernet frame with etherparse's
//! `PacketBuilder` (lengths and checksums included), writes it to
//! `plain.pcap`, wraps it as AWS Traffic Mirroring does and writes that to
//! `vxlan.pcap`.
//!
//! The wrapping (RFC 7348): outer Ethernet (VPC router → sensor), outer
//! IPv4 (source = the session's ENI IP, destination = the sensor), outer
//! UDP to 4789 with a source port hashed from the inner 5-tuple in packet
//! order (so the two directions of a connection differ) and checksum 0
//! (RFC 7348 §5 allows it; AWS sends 0), then the 8-byte VXLAN header with
//! the I flag (0x08) and the session's VNI.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use etherparse::{
    EtherType, Ethernet2Header, IpHeaders, IpNumber, Ipv4Header, Ipv6FlowLabel, Ipv6Header,
    PacketBuilder, PacketBuilderStep, TcpHeader, UdpHeader,
};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};

use super::topology::{Direction, Endpoints, FlowAddresses, Topology};

/// VXLAN's IANA port.
pub const VXLAN_PORT: u16 = 4789;
/// Bytes of a classic pcap file header and of each record header.
const PCAP_FILE_HEADER_BYTES: u64 = 24;
const PCAP_RECORD_HEADER_BYTES: u64 = 16;
/// Write buffer per output file.
const WRITE_BUFFER_BYTES: usize = 4 << 20;

/// The layer-4 part of one packet; the payload is passed beside it.
#[derive(Debug, Clone)]
pub enum Transport {
    /// A TCP segment with this header (lengths and checksum are filled in).
    Tcp(TcpHeader),
    /// A UDP datagram between the flow's ports.
    Udp,
    /// ICMP (v4 or v6 after the flow's address family) echo.
    Echo {
        /// Request (true) or reply.
        request: bool,
        /// Identifier.
        id: u16,
        /// Sequence number.
        seq: u16,
    },
}

/// One packet to write.
#[derive(Debug, Clone)]
pub struct OutgoingPacket<'a> {
    /// Nanoseconds on the packet clock.
    pub at_ns: u64,
    /// The flow's addresses.
    pub endpoints: &'a Endpoints,
    /// Which way it goes.
    pub direction: Direction,
    /// IPv4 identification (IPv6: unused).
    pub ip_id: u16,
    /// Layer 4 header.
    pub transport: Transport,
    /// Layer 4 payload.
    pub payload: &'a [u8],
}

/// Running totals of what was written.
#[derive(Debug, Clone, Default)]
pub struct WireTotals {
    /// Packets in each file (the same count in both).
    pub packets: u64,
    /// Sum of inner frame lengths.
    pub plain_frame_bytes: u64,
    /// Sum of VXLAN-wrapped frame lengths.
    pub vxlan_frame_bytes: u64,
    /// Size of `plain.pcap` so far.
    pub plain_file_bytes: u64,
    /// Size of `vxlan.pcap` so far.
    pub vxlan_file_bytes: u64,
}

/// The two pcap outputs and the scratch buffers to build packets in.
pub struct CaptureWriter {
    plain: PcapWriter<BufWriter<File>>,
    vxlan: PcapWriter<BufWriter<File>>,
    frame: Vec<u8>,
    wrapped: Vec<u8>,
    /// Unix time of capture time zero.
    epoch: Duration,
    /// What has been written so far.
    pub totals: WireTotals,
}

impl CaptureWriter {
    /// Creates (truncates) both files; time 0 of the packet clock is
    /// `epoch` after the Unix epoch.
    pub fn create(plain_path: &Path, vxlan_path: &Path, epoch: Duration) -> Result<Self> {
        let open = |path: &Path| -> Result<PcapWriter<BufWriter<File>>> {
            let file = File::create(path).with_context(|| format!("create {}", path.display()))?;
            let header = PcapHeader {
                endianness: pcap_file::Endianness::native(),
                ..PcapHeader::default()
            };
            PcapWriter::with_header(BufWriter::with_capacity(WRITE_BUFFER_BYTES, file), header)
                .with_context(|| format!("write pcap header to {}", path.display()))
        };
        Ok(Self {
            plain: open(plain_path)?,
            vxlan: open(vxlan_path)?,
            frame: Vec::with_capacity(16 * 1024),
            wrapped: Vec::with_capacity(16 * 1024),
            epoch,
            totals: WireTotals {
                plain_file_bytes: PCAP_FILE_HEADER_BYTES,
                vxlan_file_bytes: PCAP_FILE_HEADER_BYTES,
                ..WireTotals::default()
            },
        })
    }

    /// Builds one inner frame and writes it to both files.
    pub fn write(&mut self, topology: &Topology, packet: OutgoingPacket<'_>) -> Result<()> {
        let OutgoingPacket {
            at_ns,
            endpoints,
            direction,
            ip_id,
            transport,
            payload,
        } = packet;
        self.frame.clear();
        build_inner_frame(
            &mut self.frame,
            endpoints,
            direction,
            ip_id,
            transport,
            payload,
        )?;
        self.wrap(topology, endpoints, direction)?;

        let timestamp = self.epoch + Duration::from_nanos(at_ns);
        let plain_len = self.frame.len() as u32;
        let vxlan_len = self.wrapped.len() as u32;
        self.plain
            .write_packet(&PcapPacket::new(timestamp, plain_len, &self.frame))
            .context("write plain.pcap")?;
        self.vxlan
            .write_packet(&PcapPacket::new(timestamp, vxlan_len, &self.wrapped))
            .context("write vxlan.pcap")?;

        let totals = &mut self.totals;
        totals.packets += 1;
        totals.plain_frame_bytes += u64::from(plain_len);
        totals.vxlan_frame_bytes += u64::from(vxlan_len);
        totals.plain_file_bytes += PCAP_RECORD_HEADER_BYTES + u64::from(plain_len);
        totals.vxlan_file_bytes += PCAP_RECORD_HEADER_BYTES + u64::from(vxlan_len);
        Ok(())
    }

    /// Flushes and closes both files.
    pub fn finish(self) -> Result<WireTotals> {
        use std::io::Write;
        for (name, writer) in [("plain", self.plain), ("vxlan", self.vxlan)] {
            writer
                .into_writer()
                .flush()
                .with_context(|| format!("flush {name}.pcap"))?;
        }
        Ok(self.totals)
    }

    /// Fills `self.wrapped` with the mirrored form of `self.frame`.
    fn wrap(
        &mut self,
        topology: &Topology,
        endpoints: &Endpoints,
        direction: Direction,
    ) -> Result<()> {
        let session = &topology.sessions[endpoints.session];
        let udp_len = UdpHeader::LEN + 8 + self.frame.len();
        let mut ip = Ipv4Header::new(
            udp_len as u16,
            64,
            IpNumber::UDP,
            session.eni_ipv4,
            topology.sensor_ipv4,
        )
        .context("outer IPv4 length")?;
        ip.dont_fragment = false;
        let udp = UdpHeader {
            source_port: outer_source_port(endpoints, direction),
            destination_port: VXLAN_PORT,
            length: udp_len as u16,
            checksum: 0,
        };
        let ethernet = Ethernet2Header {
            source: topology.router_mac,
            destination: topology.sensor_mac,
            ether_type: EtherType::IPV4,
        };
        self.wrapped.clear();
        ethernet
            .write(&mut self.wrapped)
            .context("outer Ethernet")?;
        // Ipv4Header::write computes the header checksum.
        ip.write(&mut self.wrapped).context("outer IPv4")?;
        udp.write(&mut self.wrapped).context("outer UDP")?;
        let vni = session.vni.to_be_bytes();
        self.wrapped
            .extend_from_slice(&[0x08, 0, 0, 0, vni[1], vni[2], vni[3], 0]);
        self.wrapped.extend_from_slice(&self.frame);
        Ok(())
    }
}

/// Writes the inner Ethernet frame of one packet into `out`.
fn build_inner_frame(
    out: &mut Vec<u8>,
    endpoints: &Endpoints,
    direction: Direction,
    ip_id: u16,
    transport: Transport,
    payload: &[u8],
) -> Result<()> {
    let side = direction.sender_index();
    let (source_mac, destination_mac) = match direction {
        Direction::ToServer => (endpoints.client_mac, endpoints.server_mac),
        Direction::ToClient => (endpoints.server_mac, endpoints.client_mac),
    };
    let ip = match endpoints.addresses {
        FlowAddresses::V4 { client, server } => {
            let (source, destination) = ordered(direction, client, server);
            let mut header =
                Ipv4Header::new(0, endpoints.ttl[side], IpNumber::TCP, source, destination)
                    .context("inner IPv4")?;
            header.identification = ip_id;
            IpHeaders::Ipv4(header, Default::default())
        }
        FlowAddresses::V6 { client, server } => {
            let (source, destination) = ordered(direction, client, server);
            IpHeaders::Ipv6(
                Ipv6Header {
                    traffic_class: 0,
                    flow_label: Ipv6FlowLabel::try_new(u32::from(ip_id) & 0xfffff)
                        .context("flow label")?,
                    payload_length: 0,
                    next_header: IpNumber::TCP,
                    hop_limit: endpoints.ttl[side],
                    source,
                    destination,
                },
                Default::default(),
            )
        }
    };
    let is_v6 = matches!(endpoints.addresses, FlowAddresses::V6 { .. });
    let step: PacketBuilderStep<IpHeaders> =
        PacketBuilder::ethernet2(source_mac, destination_mac).ip(ip);
    let (source_port, destination_port) =
        ordered(direction, endpoints.client_port, endpoints.server_port);
    let written = match transport {
        Transport::Tcp(header) => step.tcp_header(header).write_to_vec(out, payload),
        Transport::Udp => step
            .udp(source_port, destination_port)
            .write_to_vec(out, payload),
        Transport::Echo { request, id, seq } => match (is_v6, request) {
            (false, true) => step.icmpv4_echo_request(id, seq).write_to_vec(out, payload),
            (false, false) => step.icmpv4_echo_reply(id, seq).write_to_vec(out, payload),
            (true, true) => step.icmpv6_echo_request(id, seq).write_to_vec(out, payload),
            (true, false) => step.icmpv6_echo_reply(id, seq).write_to_vec(out, payload),
        },
    };
    written.map_err(|error| anyhow::anyhow!("build inner frame: {error:?}"))
}

/// `(source, destination)` of a packet going `direction`.
fn ordered<T>(direction: Direction, client: T, server: T) -> (T, T) {
    match direction {
        Direction::ToServer => (client, server),
        Direction::ToClient => (server, client),
    }
}

/// AWS derives the outer UDP source port from the inner 5-tuple; it does
/// not promise symmetry, so hash the tuple in packet order (FNV-1a) into the
/// dynamic port range.
fn outer_source_port(endpoints: &Endpoints, direction: Direction) -> u16 {
    let mut hash: u32 = 0x811c_9dc5;
    let mut eat = |bytes: &[u8]| {
        for &byte in bytes {
            hash = (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193);
        }
    };
    match endpoints.addresses {
        FlowAddresses::V4 { client, server } => {
            let (source, destination) = ordered(direction, client, server);
            eat(&source);
            eat(&destination);
        }
        FlowAddresses::V6 { client, server } => {
            let (source, destination) = ordered(direction, client, server);
            eat(&source);
            eat(&destination);
        }
    }
    let (source_port, destination_port) =
        ordered(direction, endpoints.client_port, endpoints.server_port);
    eat(&source_port.to_be_bytes());
    eat(&destination_port.to_be_bytes());
    49152 + (hash % 16384) as u16
}

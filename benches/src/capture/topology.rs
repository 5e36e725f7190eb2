//! Who talks to whom: the mirrored ENIs (one per mirror session), their
//! peers, and the addresses of one flow.
//!
//! The model is a VPC 10.0.0.0/16 with IPv6 from an AWS /56. Each mirror
//! session copies the traffic of one monitored instance; the outer source IP
//! of its VXLAN packets is that instance's primary private IP (the source
//! ENI's), as AWS Traffic Mirroring does. Peers are load balancer nodes and
//! other instances inside the VPC, or hosts outside it (documentation
//! ranges, so the capture names no real third party).

use super::rng::Rng;

/// The session (monitored ENI) that mirrors a flow, and its addresses.
#[derive(Debug, Clone)]
pub struct MirrorSession {
    /// Primary private IPv4 of the source ENI: the inner address of the
    /// monitored instance and the outer source IP of the mirrored packets.
    pub eni_ipv4: [u8; 4],
    /// The instance's IPv6 address.
    pub eni_ipv6: [u8; 16],
    /// The ENI's MAC address (AWS ENIs use locally administered MACs).
    pub eni_mac: [u8; 6],
    /// VXLAN network identifier of the session (24 bits).
    pub vni: u32,
}

/// Fixed addresses of the whole capture.
#[derive(Debug, Clone)]
pub struct Topology {
    /// One entry per mirror session.
    pub sessions: Vec<MirrorSession>,
    /// MAC of the VPC router: the other end of every inner frame, and the
    /// outer source MAC of mirrored packets as they reach the sensor.
    pub router_mac: [u8; 6],
    /// The sensor's MAC (outer destination).
    pub sensor_mac: [u8; 6],
    /// The sensor's IP (outer destination; VXLAN target).
    pub sensor_ipv4: [u8; 4],
}

/// The Amazon-provided DNS resolver: VPC base + 2.
pub const RESOLVER_IPV4: [u8; 4] = [10, 0, 0, 2];
/// The Amazon-provided DNS resolver over IPv6 (fd00:ec2::253).
pub const RESOLVER_IPV6: [u8; 16] = [
    0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x53,
];
/// The VPC's IPv6 /56 prefix (first 7 bytes; the 8th picks the subnet).
const VPC_IPV6_PREFIX: [u8; 7] = [0x26, 0x00, 0x1f, 0x18, 0x04, 0xa3, 0x6a];

impl Topology {
    /// Draws `session_count` monitored ENIs with distinct IPs and VNIs.
    pub fn new(rng: &mut Rng, session_count: usize) -> Self {
        let sessions = (0..session_count)
            .map(|index| {
                let host = 10 + index as u8 % 240;
                let subnet = 10 + (index / 240) as u8;
                let mut eni_ipv6 = [0u8; 16];
                eni_ipv6[..7].copy_from_slice(&VPC_IPV6_PREFIX);
                eni_ipv6[7] = subnet;
                eni_ipv6[8..].copy_from_slice(&rng.next_u64().to_be_bytes());
                MirrorSession {
                    eni_ipv4: [10, 0, subnet, host],
                    eni_ipv6,
                    eni_mac: aws_mac(rng),
                    // Distinct VNIs: a random high part plus the index.
                    vni: ((rng.next_u32() & 0x00ff_f000) | index as u32) & 0x00ff_ffff,
                }
            })
            .collect();
        Self {
            sessions,
            router_mac: aws_mac(rng),
            sensor_mac: aws_mac(rng),
            sensor_ipv4: [10, 0, 200, 10],
        }
    }
}

/// A locally administered unicast MAC in the style AWS gives ENIs (0e:…).
fn aws_mac(rng: &mut Rng) -> [u8; 6] {
    let bytes = rng.next_u64().to_be_bytes();
    [0x0e, bytes[0], bytes[1], bytes[2], bytes[3], bytes[4]]
}

/// Where the peer of a monitored instance sits; decides MTU and latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerPlace {
    /// Inside the VPC (load balancer node or instance): jumbo MTU possible,
    /// sub-millisecond latency.
    InVpc,
    /// Outside: MTU 1500, milliseconds to tens of milliseconds away.
    Internet,
}

/// An IPv4 peer address.
pub fn peer_ipv4(rng: &mut Rng, place: PeerPlace) -> [u8; 4] {
    match place {
        // 10.0.32.0/19 and up: clear of the monitored ENIs and the resolver.
        PeerPlace::InVpc => [10, 0, rng.range(32, 127) as u8, rng.range(4, 254) as u8],
        PeerPlace::Internet => {
            let prefixes: [[u8; 3]; 3] = [[192, 0, 2], [198, 51, 100], [203, 0, 113]];
            let prefix = rng.pick(&prefixes);
            [prefix[0], prefix[1], prefix[2], rng.range(1, 254) as u8]
        }
    }
}

/// An IPv6 peer address.
pub fn peer_ipv6(rng: &mut Rng, place: PeerPlace) -> [u8; 16] {
    let mut address = [0u8; 16];
    match place {
        PeerPlace::InVpc => {
            address[..7].copy_from_slice(&VPC_IPV6_PREFIX);
            address[7] = rng.range(32, 127) as u8;
        }
        PeerPlace::Internet => {
            address[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
            address[4..8].copy_from_slice(&rng.next_u32().to_be_bytes());
        }
    }
    address[8..].copy_from_slice(&rng.next_u64().to_be_bytes());
    address
}

/// An ephemeral port as Linux picks them (32768-60999).
pub fn ephemeral_port(rng: &mut Rng) -> u16 {
    rng.range(32768, 60999) as u16
}

/// The inner network addresses of one flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowAddresses {
    /// IPv4 client and server.
    V4 {
        /// Initiator.
        client: [u8; 4],
        /// Responder.
        server: [u8; 4],
    },
    /// IPv6 client and server.
    V6 {
        /// Initiator.
        client: [u8; 16],
        /// Responder.
        server: [u8; 16],
    },
}

/// Which way a packet goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the initiator to the responder.
    ToServer,
    /// From the responder to the initiator.
    ToClient,
}

impl Direction {
    /// The opposite direction.
    pub fn reverse(self) -> Self {
        match self {
            Self::ToServer => Self::ToClient,
            Self::ToClient => Self::ToServer,
        }
    }

    /// 0 for the client's side, 1 for the server's: an index into
    /// per-side state arrays.
    pub fn sender_index(self) -> usize {
        match self {
            Self::ToServer => 0,
            Self::ToClient => 1,
        }
    }
}

/// Everything fixed about one flow's inner headers.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// Inner IP addresses.
    pub addresses: FlowAddresses,
    /// Initiator's port (ICMP: unused).
    pub client_port: u16,
    /// Responder's port (ICMP: unused).
    pub server_port: u16,
    /// Initiator's MAC as seen on the monitored ENI's link.
    pub client_mac: [u8; 6],
    /// Responder's MAC as seen on the monitored ENI's link.
    pub server_mac: [u8; 6],
    /// IP TTL (hop limit) of packets from the client, then from the server,
    /// as they are seen at the monitored ENI.
    pub ttl: [u8; 2],
    /// Index of the mirror session that copies this flow.
    pub session: usize,
}

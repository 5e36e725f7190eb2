//! ICMP (v4 or v6) echo: a monitored instance pings a peer a few times, one
//! second apart, with Linux `ping`'s 56-byte payload (a timeval then the
//! bytes 0x10, 0x11, …). Some peers never answer.

use super::flow::{Flow, PacketPlan, PlanBody};
use super::rng::Rng;
use super::topology::{
    Direction, Endpoints, FlowAddresses, PeerPlace, Topology, peer_ipv4, peer_ipv6,
};

/// Plans an echo series starting at `start_ns`; returns the flow and
/// whether it is over IPv6.
pub fn plan_ping(rng: &mut Rng, topology: &Topology, epoch_s: u64, start_ns: u64) -> (Flow, bool) {
    let session_index = rng.range(0, topology.sessions.len() as u64 - 1) as usize;
    let session = &topology.sessions[session_index];
    let place = if rng.chance(0.5) {
        PeerPlace::InVpc
    } else {
        PeerPlace::Internet
    };
    let ipv6 = rng.chance(0.2);
    let addresses = if ipv6 {
        FlowAddresses::V6 {
            client: session.eni_ipv6,
            server: peer_ipv6(rng, place),
        }
    } else {
        FlowAddresses::V4 {
            client: session.eni_ipv4,
            server: peer_ipv4(rng, place),
        }
    };
    let endpoints = Endpoints {
        addresses,
        client_port: 0,
        server_port: 0,
        client_mac: session.eni_mac,
        server_mac: topology.router_mac,
        ttl: [
            64,
            if place == PeerPlace::InVpc {
                64
            } else {
                64 - rng.range(6, 20) as u8
            },
        ],
        session: session_index,
    };
    let mut flow = Flow::new(endpoints);
    flow.ip_id = [rng.next_u32() as u16, rng.next_u32() as u16];
    let id = rng.next_u32() as u16;
    let answers = rng.chance(0.9);
    let rtt_ns = match place {
        PeerPlace::InVpc => rng.range(80_000, 500_000),
        PeerPlace::Internet => rng.range(4_000_000, 80_000_000),
    };
    for seq in 1..=rng.range(3, 5) as u16 {
        let at_ns = start_ns + u64::from(seq - 1) * 1_000_000_000 + rng.range(0, 300_000);
        let unix_ns = epoch_s * 1_000_000_000 + at_ns;
        let mut payload = Vec::with_capacity(56);
        payload.extend_from_slice(&(unix_ns / 1_000_000_000).to_le_bytes());
        payload.extend_from_slice(&(unix_ns % 1_000_000_000 / 1_000).to_le_bytes());
        payload.extend(0x10u8..0x38);
        flow.datagrams.push(payload);
        let payload = (flow.datagrams.len() - 1) as u16;
        flow.plans.push_back(PacketPlan {
            at_ns,
            direction: Direction::ToServer,
            body: PlanBody::Echo {
                request: true,
                id,
                seq,
                payload,
            },
        });
        if answers {
            flow.plans.push_back(PacketPlan {
                at_ns: at_ns + rtt_ns + rng.range(0, rtt_ns / 10),
                direction: Direction::ToClient,
                body: PlanBody::Echo {
                    request: false,
                    id,
                    seq,
                    payload,
                },
            });
        }
    }
    flow.sort_plans();
    (flow, ipv6)
}

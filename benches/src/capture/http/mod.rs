//! HTTP/1.1 connections: who connects to whom, what is asked and answered
//! (start lines, real-looking headers, bodies of web-like sizes), and the
//! connection's life (handshake, keep-alive requests with think time, FIN
//! teardown from either side, RST, refused connections).

mod exchange;

pub use exchange::{Exchange, Persona};

use crate::capture::flow::Flow;
use crate::capture::rng::Rng;
use crate::capture::tcp::{FinalAck, TcpPath, TcpPlanner};
use crate::capture::topology::{
    Direction, Endpoints, FlowAddresses, PeerPlace, Topology, ephemeral_port, peer_ipv4, peer_ipv6,
};

/// Inner frame size of jumbo sessions: a 9001-byte VPC MTU leaves room
/// for the mirroring overhead under this.
const JUMBO_FRAME_BYTES: u16 = 8900;
/// TCP payload per segment on a 1500-byte MTU with timestamps.
const STANDARD_SEGMENT_PAYLOAD: u16 = 1448;

/// How a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    ClientFin,
    ServerFin,
    ClientReset,
}

/// What [`plan_http`] reports about the connection it planned.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpShape {
    /// Inner frames up to 8900 bytes.
    pub jumbo: bool,
    /// SYN answered by RST.
    pub refused: bool,
    /// Ends with RST.
    pub reset: bool,
    /// Over IPv6.
    pub ipv6: bool,
}

/// Plans a whole HTTP/1.1 connection starting at `start_ns`; `think_mean_ns`
/// is the mean pause between a response and the next request.
pub fn plan_http(
    rng: &mut Rng,
    topology: &Topology,
    epoch_s: u64,
    start_ns: u64,
    think_mean_ns: f64,
) -> (Flow, HttpShape) {
    let session_index = rng.range(0, topology.sessions.len() as u64 - 1) as usize;
    let session = &topology.sessions[session_index];
    let monitored_is_server = rng.chance(0.55);
    let place = if rng.chance(if monitored_is_server { 0.7 } else { 0.4 }) {
        PeerPlace::InVpc
    } else {
        PeerPlace::Internet
    };
    let ipv6 = rng.chance(0.12);
    let addresses = match (ipv6, monitored_is_server) {
        (false, true) => FlowAddresses::V4 {
            client: peer_ipv4(rng, place),
            server: session.eni_ipv4,
        },
        (false, false) => FlowAddresses::V4 {
            client: session.eni_ipv4,
            server: peer_ipv4(rng, place),
        },
        (true, true) => FlowAddresses::V6 {
            client: peer_ipv6(rng, place),
            server: session.eni_ipv6,
        },
        (true, false) => FlowAddresses::V6 {
            client: session.eni_ipv6,
            server: peer_ipv6(rng, place),
        },
    };
    let remote_ttl = match place {
        PeerPlace::InVpc => 64,
        PeerPlace::Internet => *rng.pick(&[64u8, 128, 255]) - rng.range(6, 22) as u8,
    };
    let (client_mac, server_mac, ttl) = if monitored_is_server {
        (topology.router_mac, session.eni_mac, [remote_ttl, 64])
    } else {
        (session.eni_mac, topology.router_mac, [64, remote_ttl])
    };
    let endpoints = Endpoints {
        addresses,
        client_port: ephemeral_port(rng),
        server_port: if place == PeerPlace::InVpc && rng.chance(0.3) {
            8080
        } else {
            80
        },
        client_mac,
        server_mac,
        ttl,
        session: session_index,
    };
    let jumbo = place == PeerPlace::InVpc && rng.chance(0.35);
    let monitored_delay = rng.range(5_000, 30_000);
    let peer_delay = match place {
        PeerPlace::InVpc => rng.range(40_000, 250_000),
        PeerPlace::Internet => rng.range(2_000_000, 40_000_000),
    };
    let ip_and_tcp_bytes = if ipv6 { 40 + 32 } else { 20 + 32 };
    let path = TcpPath {
        delay_ns: if monitored_is_server {
            [peer_delay, monitored_delay]
        } else {
            [monitored_delay, peer_delay]
        },
        link_mbps: if place == PeerPlace::InVpc {
            10_000
        } else {
            rng.range(500, 5_000)
        },
        segment_payload: if jumbo {
            JUMBO_FRAME_BYTES - 14 - ip_and_tcp_bytes
        } else {
            STANDARD_SEGMENT_PAYLOAD - if ipv6 { 20 } else { 0 }
        },
    };

    let mut flow = Flow::new(endpoints);
    flow.tcp.window = [rng.range(400, 3000) as u16, rng.range(400, 3000) as u16];
    flow.tcp.ts_origin = [rng.next_u32(), rng.next_u32()];
    flow.ip_id = [rng.next_u32() as u16, rng.next_u32() as u16];
    let shape = plan_exchanges(rng, &mut flow, path, epoch_s, start_ns, think_mean_ns);
    flow.sort_plans();
    (
        flow,
        HttpShape {
            jumbo,
            ipv6,
            ..shape
        },
    )
}

fn plan_exchanges(
    rng: &mut Rng,
    flow: &mut Flow,
    path: TcpPath,
    epoch_s: u64,
    start_ns: u64,
    think_mean_ns: f64,
) -> HttpShape {
    let mut planner = TcpPlanner::new(flow, path, rng);
    if rng.chance(0.03) {
        planner.refused(rng, start_ns);
        return HttpShape {
            refused: true,
            ..HttpShape::default()
        };
    }
    let ending = match rng.weighted(&[60, 28, 12]) {
        0 => Ending::ClientFin,
        1 => Ending::ServerFin,
        _ => Ending::ClientReset,
    };
    let mut requests = 1;
    while requests < 16 && rng.chance(0.45) {
        requests += 1;
    }
    let persona = Persona::draw(rng);

    let mut now = planner.handshake(rng, start_ns) + rng.range(2_000, 60_000);
    let mut last_segment_at = now;
    for index in 0..requests {
        let exchange = Exchange::draw(rng);
        let closing = index + 1 == requests && ending == Ending::ServerFin;
        let request = exchange.request(rng, &persona);
        let date_s = epoch_s + now / 1_000_000_000;
        let response = exchange.response(rng, &persona, date_s, closing);
        let message = planner.add_message(request);
        planner.add_message(response);
        let request_seen =
            planner.send(rng, Direction::ToServer, message, now, FinalAck::Piggyback);
        let processing = rng.log_uniform(100_000, 30_000_000);
        let response_at = planner.answer_at(1, request_seen, processing);
        let final_ack = if closing {
            FinalAck::Piggyback
        } else {
            FinalAck::Pure
        };
        last_segment_at = planner.send(
            rng,
            Direction::ToClient,
            message + 1,
            response_at,
            final_ack,
        );
        now = last_segment_at + rng.exponential(think_mean_ns) as u64;
    }
    match ending {
        Ending::ServerFin => {
            let fin_at = last_segment_at + rng.range(5_000, 50_000);
            planner.close(rng, Direction::ToClient, fin_at);
        }
        Ending::ClientFin => {
            planner.close(rng, Direction::ToServer, now);
        }
        Ending::ClientReset => planner.reset(rng, Direction::ToServer, now),
    }
    HttpShape {
        reset: ending == Ending::ClientReset,
        ..HttpShape::default()
    }
}

//! Reference flows: tshark's packets (see [`crate::tshark`]) grouped into
//! flows the way Zeek and the sensor define them: one flow per direction-free
//! 5-tuple and innermost VNI, ended by an idle timeout, with the originator
//! chosen by Zeek's rules.

use std::collections::BTreeMap;

use crate::flow::{Endpoint, FlowKey};
use crate::tshark::RefPacket;

/// TCP ports Zeek's base scripts add to `likely_server_ports`: when a
/// connection's start was not seen, a first packet from one of these ports
/// (to a port that is not one) comes from the responder.
pub const LIKELY_SERVER_PORTS_TCP: &[u16] = &[
    21, 22, 25, 53, 80, 81, 88, 135, 139, 143, 389, 443, 445, 502, 563, 585, 587, 614, 631, 636,
    989, 990, 992, 993, 995, 1080, 1883, 2811, 3128, 3268, 3389, 5222, 5223, 5269, 5432, 6379,
    6666, 6667, 6668, 6669, 8000, 8080, 8888, 20000,
];

/// UDP ports of the protocols Zeek analyses by default, used the same way.
pub const LIKELY_SERVER_PORTS_UDP: &[u16] = &[
    53, 67, 69, 88, 111, 123, 137, 161, 162, 443, 514, 2049, 2123, 2152, 3544, 4789, 5072, 5353,
    5355, 6081, 20000,
];

/// Idle time after which a flow ends and a later packet starts a new one
/// (Zeek's defaults: TCP 5 min, UDP, ICMP and others 1 min).
pub fn idle_timeout_micros(proto: u8) -> i64 {
    match proto {
        6 => 300_000_000,
        _ => 60_000_000,
    }
}

/// Who opened a flow, by Zeek's rules (`TCPAnalyzer::WantConnection`,
/// `UDPAnalyzer::WantConnection`, and the flip of a connection that began
/// with a lone SYN-ACK, Zeek >= 5.1):
/// - the sender of a pure SYN, when the flow has one;
/// - else, when the first packet is a SYN-ACK and an ACK or data follows,
///   its receiver;
/// - else the sender of the first packet, unless it comes from a likely
///   server port: then its receiver, provided the destination port is not
///   one too (TCP, both likely: flip only a non-SYN toward the lower port).
fn opener(members: &[&RefPacket]) -> (Endpoint, Endpoint) {
    if let Some(syn) = members.iter().find(|p| p.syn && !p.ack) {
        return (syn.src, syn.dst);
    }
    let first = members[0];
    let answered = members[1..]
        .iter()
        .any(|p| p.ack || p.payload_bytes.unwrap_or(0) > 0);
    if first.syn && first.ack && answered {
        return (first.dst, first.src);
    }
    let (src, dst) = (first.src.port, first.dst.port);
    let flip = match first.proto {
        6 => {
            let likely = |port| LIKELY_SERVER_PORTS_TCP.contains(&port);
            likely(src) && (!likely(dst) || (!first.syn && src < dst))
        }
        17 => {
            let likely = |port| LIKELY_SERVER_PORTS_UDP.contains(&port);
            likely(src) && !likely(dst)
        }
        _ => false,
    };
    if flip {
        (first.dst, first.src)
    } else {
        (first.src, first.dst)
    }
}

/// A reference flow: the packets of one 5-tuple (and VNI), oriented.
#[derive(Debug, Clone)]
pub struct RefFlow {
    /// Direction-free key.
    pub key: FlowKey,
    /// Innermost VNI shared by the flow's packets, if tunneled.
    pub vni: Option<u32>,
    /// Originator, by Zeek's rules (see `opener`).
    pub src: Endpoint,
    /// Responder.
    pub dst: Endpoint,
    /// Time of the first packet, microseconds since the epoch.
    pub first_micros: i64,
    /// Frame numbers of the flow's packets.
    pub frames: Vec<u64>,
    /// Packets from the originator.
    pub orig_pkts: u64,
    /// Packets from the responder.
    pub resp_pkts: u64,
    /// IP bytes from the originator.
    pub orig_ip_bytes: u64,
    /// IP bytes from the responder.
    pub resp_ip_bytes: u64,
    /// Payload bytes (UDP length - 8, TCP segment length) from the originator.
    pub orig_payload_bytes: u64,
    /// Payload bytes from the responder.
    pub resp_payload_bytes: u64,
}

/// Groups packets into flows by (5-tuple, VNI), splitting a flow where it
/// was idle for its [`idle_timeout_micros`], ordered by first packet.
pub fn group_flows(packets: &[RefPacket]) -> Vec<RefFlow> {
    /// A flow's 5-tuple and innermost VNI.
    type GroupKey = (FlowKey, Option<u32>);
    let mut by_key: BTreeMap<GroupKey, Vec<&RefPacket>> = BTreeMap::new();
    for packet in packets {
        let key = FlowKey::new(packet.proto, packet.src, packet.dst);
        by_key.entry((key, packet.vni)).or_default().push(packet);
    }
    let mut groups: Vec<(GroupKey, Vec<&RefPacket>)> = Vec::new();
    for (key, members) in by_key {
        let timeout = idle_timeout_micros(key.0.proto);
        let mut current: Vec<&RefPacket> = Vec::new();
        for packet in members {
            if current
                .last()
                .is_some_and(|last| packet.ts_micros - last.ts_micros >= timeout)
            {
                groups.push((key, std::mem::take(&mut current)));
            }
            current.push(packet);
        }
        groups.push((key, current));
    }
    let mut flows: Vec<RefFlow> = groups
        .into_iter()
        .map(|((key, vni), members)| {
            let (src, dst) = opener(&members);
            let mut flow = RefFlow {
                key,
                vni,
                src,
                dst,
                first_micros: members[0].ts_micros,
                frames: Vec::new(),
                orig_pkts: 0,
                resp_pkts: 0,
                orig_ip_bytes: 0,
                resp_ip_bytes: 0,
                orig_payload_bytes: 0,
                resp_payload_bytes: 0,
            };
            for packet in members {
                flow.frames.push(packet.frame);
                let payload = packet.payload_bytes.unwrap_or(0);
                if packet.src == src && packet.dst == dst {
                    flow.orig_pkts += 1;
                    flow.orig_ip_bytes += packet.ip_bytes;
                    flow.orig_payload_bytes += payload;
                } else {
                    flow.resp_pkts += 1;
                    flow.resp_ip_bytes += packet.ip_bytes;
                    flow.resp_payload_bytes += payload;
                }
            }
            flow
        })
        .collect();
    flows.sort_by_key(|f| (f.first_micros, f.frames[0]));
    flows
}

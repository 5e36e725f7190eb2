//! DNS over UDP in real wire format (RFC 1035): a monitored instance asks
//! the VPC resolver for A and/or AAAA records (glibc sends both from one
//! socket); answers use name compression (§4.1.4), some go through a CNAME,
//! some are NXDOMAIN or NODATA with an SOA in the authority section.

use super::flow::{Flow, PacketPlan, PlanBody};
use super::rng::Rng;
use super::topology::{
    Direction, Endpoints, FlowAddresses, RESOLVER_IPV4, RESOLVER_IPV6, Topology, ephemeral_port,
};

const ZONES: &[&str] = &[
    "example.com",
    "example.net",
    "example.org",
    "svc.example.internal",
];
const HOSTS: &[&str] = &[
    "www", "api", "cdn", "auth", "static", "images", "db", "queue", "metrics",
];
const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_SOA: u16 = 6;
const TYPE_AAAA: u16 = 28;
const TYPE_OPT: u16 = 41;
const CLASS_IN: u16 = 1;
/// Offset of the question name in a message: right after the header.
const QUESTION_NAME_OFFSET: u16 = 12;

/// Plans one DNS exchange (one or two queries) starting at `start_ns`.
/// Returns the flow and whether it is over IPv6.
pub fn plan_dns(rng: &mut Rng, topology: &Topology, start_ns: u64) -> (Flow, bool) {
    let session_index = rng.range(0, topology.sessions.len() as u64 - 1) as usize;
    let session = &topology.sessions[session_index];
    let ipv6 = rng.chance(0.15);
    let addresses = if ipv6 {
        FlowAddresses::V6 {
            client: session.eni_ipv6,
            server: RESOLVER_IPV6,
        }
    } else {
        FlowAddresses::V4 {
            client: session.eni_ipv4,
            server: RESOLVER_IPV4,
        }
    };
    let endpoints = Endpoints {
        addresses,
        client_port: ephemeral_port(rng),
        server_port: 53,
        client_mac: session.eni_mac,
        server_mac: topology.router_mac,
        ttl: [64, 64],
        session: session_index,
    };
    let mut flow = Flow::new(endpoints);
    flow.ip_id = [rng.next_u32() as u16, rng.next_u32() as u16];

    let zone = *rng.pick(ZONES);
    let name = if rng.chance(0.3) {
        format!("node-{}.cluster.{zone}", rng.range(1, 9999))
    } else {
        format!("{}.{zone}", rng.pick(HOSTS))
    };
    let types: &[u16] = match rng.weighted(&[45, 15, 40]) {
        0 => &[TYPE_A],
        1 => &[TYPE_AAAA],
        _ => &[TYPE_A, TYPE_AAAA],
    };
    let edns = rng.chance(0.5);
    let nxdomain = rng.chance(0.08);
    let cname = !nxdomain && rng.chance(0.3);
    // A cache hit answers in well under a millisecond; a miss goes out.
    let resolve_ns = if rng.chance(0.8) {
        rng.range(80_000, 600_000)
    } else {
        rng.range(2_000_000, 40_000_000)
    };
    let mut at_ns = start_ns;
    for &qtype in types {
        let id = rng.next_u32() as u16;
        let query = build_query(id, &name, qtype, edns);
        let answers = if nxdomain || (qtype == TYPE_AAAA && rng.chance(0.5)) {
            0
        } else {
            rng.range(1, 4) as usize
        };
        let shape = AnswerShape {
            qtype,
            nxdomain,
            cname,
            answers,
            edns,
        };
        let response = build_response(rng, &query, &name, zone, shape);
        flow.datagrams.push(query);
        flow.plans.push_back(PacketPlan {
            at_ns,
            direction: Direction::ToServer,
            body: PlanBody::Datagram((flow.datagrams.len() - 1) as u16),
        });
        flow.datagrams.push(response);
        flow.plans.push_back(PacketPlan {
            at_ns: at_ns + resolve_ns + rng.range(0, 50_000),
            direction: Direction::ToClient,
            body: PlanBody::Datagram((flow.datagrams.len() - 1) as u16),
        });
        at_ns += rng.range(10_000, 60_000);
    }
    flow.sort_plans();
    (flow, ipv6)
}

fn put_u16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_be_bytes());
}

/// Writes `name` as labels; returns the offset of each label's start.
fn put_name(out: &mut Vec<u8>, name: &str) -> Vec<u16> {
    let mut starts = Vec::new();
    for label in name.split('.') {
        starts.push(out.len() as u16);
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    starts
}

/// A compression pointer to `offset`.
fn put_pointer(out: &mut Vec<u8>, offset: u16) {
    put_u16(out, 0xc000 | offset);
}

fn put_opt(out: &mut Vec<u8>) {
    out.push(0); // root name
    put_u16(out, TYPE_OPT);
    put_u16(out, 1232); // UDP payload size, the DNS flag day 2020 value
    out.extend_from_slice(&[0, 0, 0, 0]); // extended RCODE, version, flags
    put_u16(out, 0);
}

fn build_query(id: u16, name: &str, qtype: u16, edns: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    put_u16(&mut out, id);
    put_u16(&mut out, 0x0100); // RD
    for count in [1, 0, 0, u16::from(edns)] {
        put_u16(&mut out, count);
    }
    put_name(&mut out, name);
    put_u16(&mut out, qtype);
    put_u16(&mut out, CLASS_IN);
    if edns {
        put_opt(&mut out);
    }
    out
}

/// What an answer holds.
#[derive(Debug, Clone, Copy)]
struct AnswerShape {
    qtype: u16,
    nxdomain: bool,
    cname: bool,
    /// Address records (0: NXDOMAIN or NODATA, with an SOA instead).
    answers: usize,
    edns: bool,
}

fn build_response(
    rng: &mut Rng,
    query: &[u8],
    name: &str,
    zone: &str,
    shape: AnswerShape,
) -> Vec<u8> {
    let AnswerShape {
        qtype,
        nxdomain,
        cname,
        answers,
        edns,
    } = shape;
    let mut out = Vec::with_capacity(256);
    put_u16(&mut out, u16::from_be_bytes([query[0], query[1]]));
    put_u16(&mut out, if nxdomain { 0x8183 } else { 0x8180 }); // QR RD RA, RCODE
    let answer_count = if answers == 0 {
        0
    } else {
        answers + usize::from(cname)
    };
    let authority_count = u16::from(answers == 0);
    for count in [1, answer_count as u16, authority_count, u16::from(edns)] {
        put_u16(&mut out, count);
    }
    let label_starts = put_name(&mut out, name);
    put_u16(&mut out, qtype);
    put_u16(&mut out, CLASS_IN);

    let mut owner = QUESTION_NAME_OFFSET;
    if answers > 0 && cname {
        put_pointer(&mut out, QUESTION_NAME_OFFSET);
        put_u16(&mut out, TYPE_CNAME);
        put_u16(&mut out, CLASS_IN);
        out.extend_from_slice(&(rng.range(60, 3600) as u32).to_be_bytes());
        let rdlength_at = out.len();
        put_u16(&mut out, 0);
        owner = out.len() as u16;
        // The alias lives under the same zone: "edge-N" + pointer to zone.
        let alias = format!("edge-{}", rng.range(1, 99));
        out.push(alias.len() as u8);
        out.extend_from_slice(alias.as_bytes());
        put_pointer(&mut out, zone_offset(&label_starts, name, zone));
        let rdlength = (out.len() - rdlength_at - 2) as u16;
        out[rdlength_at..rdlength_at + 2].copy_from_slice(&rdlength.to_be_bytes());
    }
    for _ in 0..answers {
        put_pointer(&mut out, owner);
        put_u16(&mut out, qtype);
        put_u16(&mut out, CLASS_IN);
        out.extend_from_slice(&(rng.range(20, 300) as u32).to_be_bytes());
        if qtype == TYPE_AAAA {
            put_u16(&mut out, 16);
            out.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
            out.extend_from_slice(&rng.next_u32().to_be_bytes());
            out.extend_from_slice(&rng.next_u64().to_be_bytes());
        } else {
            put_u16(&mut out, 4);
            out.extend_from_slice(&[203, 0, 113, rng.range(1, 254) as u8]);
        }
    }
    if answers == 0 {
        put_soa(&mut out, zone_offset(&label_starts, name, zone));
    }
    if edns {
        put_opt(&mut out);
    }
    out
}

/// The zone's SOA, its names compressed against the question.
fn put_soa(out: &mut Vec<u8>, zone_at: u16) {
    put_pointer(out, zone_at);
    put_u16(out, TYPE_SOA);
    put_u16(out, CLASS_IN);
    out.extend_from_slice(&900u32.to_be_bytes());
    let rdlength_at = out.len();
    put_u16(out, 0);
    for label in ["ns-1", "hostmaster"] {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
        put_pointer(out, zone_at);
    }
    for value in [2024060101u32, 7200, 900, 1_209_600, 86_400] {
        out.extend_from_slice(&value.to_be_bytes());
    }
    let rdlength = (out.len() - rdlength_at - 2) as u16;
    out[rdlength_at..rdlength_at + 2].copy_from_slice(&rdlength.to_be_bytes());
}

/// Offset of the first label of `zone` within the question name.
fn zone_offset(label_starts: &[u16], name: &str, zone: &str) -> u16 {
    let skip = name
        .split('.')
        .count()
        .saturating_sub(zone.split('.').count());
    label_starts
        .get(skip)
        .copied()
        .unwrap_or(QUESTION_NAME_OFFSET)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_compresses_against_question() {
        let mut rng = Rng::new(5);
        let query = build_query(0x1234, "www.example.com", TYPE_A, false);
        let shape = AnswerShape {
            qtype: TYPE_A,
            nxdomain: false,
            cname: false,
            answers: 1,
            edns: false,
        };
        let response = build_response(&mut rng, &query, "www.example.com", "example.com", shape);
        // header 12 + name 17 + type/class 4, then the answer's owner name
        // is a pointer to offset 12.
        assert_eq!(&response[33..35], &[0xc0, 0x0c]);
        assert_eq!(&response[..2], &[0x12, 0x34]);
        assert_eq!(response.len(), 33 + 2 + 10 + 4);
    }

    #[test]
    fn zone_offset_points_at_zone_label() {
        let mut out = vec![0u8; 12];
        let starts = put_name(&mut out, "a.b.example.com");
        assert_eq!(zone_offset(&starts, "a.b.example.com", "example.com"), 16);
    }
}

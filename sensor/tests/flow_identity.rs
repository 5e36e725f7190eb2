//! What makes two packets one flow, beyond the 5-tuple: VLAN trunks where a
//! router answers on another VLAN, and idle timeouts that end a flow at
//! packet time even between two sweeps. Users rely on a request and its
//! answer being one record, and on a connection idle past its timeout not
//! absorbing later traffic.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{ethernet_frame as frame, flows, run, tcp_frame};
use etherparse::PacketBuilder;
use sensor::config::PipelineConfig;

fn udp_on_vlan(vlan: u16, src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2([2; 6], [4; 6])
        .single_vlan(vlan.try_into().unwrap())
        .ipv4(src, dst, 64)
        .udp(sport, dport)
        .write(&mut out, b"dns")
        .unwrap();
    out
}

#[test]
fn an_answer_on_another_vlan_of_a_trunk_joins_its_request() {
    let (c, s) = ([10, 0, 34, 5], [10, 0, 47, 53]);
    let frames = vec![
        frame(1_000_000, udp_on_vlan(34, c, 40000, s, 53)),
        frame(1_000_300, udp_on_vlan(47, s, 53, c, 40000)),
    ];
    let records = run(&PipelineConfig::default(), &frames);
    let f = flows(&records);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!((f[0].orig_pkts, f[0].resp_pkts), (1, 1));
    assert_eq!(f[0].conn_state, "SF");
}

#[test]
fn conversations_on_two_vlans_stay_two_flows() {
    let (c, s) = ([10, 0, 0, 5], [10, 0, 0, 53]);
    let frames = vec![
        frame(1_000_000, udp_on_vlan(34, c, 40000, s, 53)),
        frame(1_000_100, udp_on_vlan(34, s, 53, c, 40000)),
        frame(1_000_200, udp_on_vlan(47, c, 40000, s, 53)),
        frame(1_000_300, udp_on_vlan(47, s, 53, c, 40000)),
    ];
    let records = run(&PipelineConfig::default(), &frames);
    assert_eq!(flows(&records).len(), 2);
}

#[test]
fn a_packet_at_the_idle_timeout_starts_a_new_flow() {
    let (c, s) = ([10, 0, 0, 1], [10, 0, 0, 2]);
    let t0 = 1_000_000_030i64;
    let frames = vec![
        frame(t0, tcp_frame(c, 51889, s, 80, 100, 5, "PA", 1, b"x")),
        frame(t0 + 10, tcp_frame(s, 80, c, 51889, 5, 101, "A", 2, b"")),
        // Exactly the TCP inactivity timeout (300 s) later, inside the same
        // sweep second as the timeout.
        frame(
            t0 + 10 + 300_000_000,
            tcp_frame(c, 51889, s, 80, 101, 5, "PA", 3, b"y"),
        ),
    ];
    let records = run(&PipelineConfig::default(), &frames);
    let f = flows(&records);
    assert_eq!(f.len(), 2, "{f:#?}");
    assert_eq!(f.iter().map(|x| x.orig_pkts + x.resp_pkts).sum::<u64>(), 3);
}

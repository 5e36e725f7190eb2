//! Both endpoints of a connection mirrored: AWS delivers every packet twice,
//! through two mirror sessions (different outer source and VNI). Users rely
//! on the sensor counting such a connection once and saying it saw it from
//! two vantage points, while two different connections that merely share
//! addresses in two VPCs (two VNIs) stay two flows, and the two directions
//! of one connection meet although AWS gives them different outer ports.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{ethernet_frame as frame, flows, run, tcp_frame, vxlan};
use sensor::config::PipelineConfig;

const CLIENT: [u8; 4] = [10, 1, 0, 5];
const SERVER: [u8; 4] = [10, 2, 0, 7];
const SENSOR: [u8; 4] = [10, 9, 9, 9];

/// The inner packets of a short TCP connection: (from client?, frame).
fn connection(seq0: u32, id0: u16) -> Vec<(bool, Vec<u8>)> {
    let c = |seq, ack, flags, id, p: &[u8]| {
        (
            true,
            tcp_frame(CLIENT, 40000, SERVER, 443, seq, ack, flags, id, p),
        )
    };
    let s = |seq, ack, flags, id, p: &[u8]| {
        (
            false,
            tcp_frame(SERVER, 443, CLIENT, 40000, seq, ack, flags, id, p),
        )
    };
    let srv0 = 9000u32;
    vec![
        c(seq0, 0, "S", id0, b""),
        s(srv0, seq0 + 1, "SA", id0 + 100, b""),
        c(seq0 + 1, srv0 + 1, "A", id0 + 1, b""),
        c(seq0 + 1, srv0 + 1, "PA", id0 + 2, b"hello"),
        s(srv0 + 1, seq0 + 6, "PA", id0 + 101, b"world!"),
        c(seq0 + 6, srv0 + 7, "FA", id0 + 3, b""),
        s(srv0 + 7, seq0 + 7, "FA", id0 + 102, b""),
        c(seq0 + 7, srv0 + 8, "A", id0 + 4, b""),
    ]
}

#[test]
fn a_connection_mirrored_at_both_ends_is_one_flow_with_two_vantages() {
    let mut frames = Vec::new();
    let mut t = 1_700_000_000_000_000i64;
    for (i, (_, inner)) in connection(1000, 1).into_iter().enumerate() {
        let a = frame(t, vxlan(&inner, CLIENT, SENSOR, 50000 + i as u16, 100));
        let b = frame(
            t + 150,
            vxlan(&inner, SERVER, SENSOR, 51000 + i as u16, 200),
        );
        // Copies arrive in either order behind a load balancer.
        if i % 3 == 1 {
            frames.push(b);
            frames.push(a);
        } else {
            frames.push(a);
            frames.push(b);
        }
        t += 10_000;
    }
    let records = run(&PipelineConfig::default(), &frames);
    let f = flows(&records);
    assert_eq!(f.len(), 1, "{f:#?}");
    let f = f[0];
    assert_eq!(f.vantages, 2);
    assert_eq!(
        f.orig_pkts + f.resp_pkts,
        8,
        "each inner packet counted once"
    );
    assert_eq!(f.duplicate_pkts, 8);
    assert_eq!(f.src_ip.to_string(), "10.1.0.5");
    assert_eq!(f.dst_port, 443);
}

#[test]
fn same_addresses_in_two_vpcs_stay_two_flows() {
    let mut frames = Vec::new();
    let mut t = 1_700_000_000_000_000i64;
    // Two unrelated connections with the same 5-tuple in two VPCs, at the
    // same time, each mirrored once at the client.
    let one = connection(1000, 1);
    let two = connection(777_777, 5000);
    for (i, ((_, x), (_, y))) in one.into_iter().zip(two).enumerate() {
        frames.push(frame(t, vxlan(&x, CLIENT, SENSOR, 50000 + i as u16, 100)));
        frames.push(frame(
            t + 100,
            vxlan(&y, [10, 77, 0, 5], SENSOR, 52000 + i as u16, 300),
        ));
        t += 10_000;
    }
    let records = run(&PipelineConfig::default(), &frames);
    let f = flows(&records);
    assert_eq!(f.len(), 2, "{f:#?}");
    for flow in f {
        assert_eq!(flow.vantages, 1);
        assert_eq!(flow.orig_pkts + flow.resp_pkts, 8);
        assert_eq!(flow.duplicate_pkts, 0);
    }
}

#[test]
fn directions_with_different_outer_ports_form_one_flow() {
    let mut frames = Vec::new();
    let mut t = 1_700_000_000_000_000i64;
    for (from_client, inner) in connection(1000, 1) {
        // AWS hashes the inner 5-tuple into the outer source port per
        // direction; the two directions get different ports.
        let port = if from_client { 61000 } else { 3333 };
        frames.push(frame(t, vxlan(&inner, CLIENT, SENSOR, port, 100)));
        t += 1_000;
    }
    let records = run(&PipelineConfig::default(), &frames);
    let f = flows(&records);
    assert_eq!(f.len(), 1);
    assert_eq!((f[0].orig_pkts, f[0].resp_pkts), (5, 3));
    assert_eq!(
        (f[0].orig_ip_bytes, f[0].resp_ip_bytes),
        (5 * 40 + 5, 3 * 40 + 6)
    );
}

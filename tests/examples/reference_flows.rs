//! Prints the tshark reference flows of captures, as `encap_vs_tshark`
//! computes them: `cargo run -p sensor-tests --example reference_flows -- FILE...`.

// Test code: a failed expectation must stop the test with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;

use sensor_tests::reference::group_flows;
use sensor_tests::tshark::{SENSOR_TUNNELS, reference_packets};

fn main() {
    for file in std::env::args().skip(1) {
        println!("== {file}");
        let packets = reference_packets(Path::new(&file), SENSOR_TUNNELS);
        for flow in group_flows(&packets) {
            println!(
                "{} -> {} proto {} vni {:?}: orig {} pkts {} ip_bytes {} payload, resp {} pkts {} ip_bytes {} payload, frames {:?}",
                flow.src,
                flow.dst,
                flow.key.proto,
                flow.vni,
                flow.orig_pkts,
                flow.orig_ip_bytes,
                flow.orig_payload_bytes,
                flow.resp_pkts,
                flow.resp_ip_bytes,
                flow.resp_payload_bytes,
                flow.frames
            );
        }
    }
}

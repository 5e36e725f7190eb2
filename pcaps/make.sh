#!/usr/bin/env bash
# Regenerates the captures in pcaps/ with the project's own deterministic
# traffic generator (benches/src/capture): the same seed gives the same bytes.
#
# aws-mirror/vxlan.pcap: 8 mirror sessions (one VNI and source ENI address
#   each) delivering VXLAN to the sensor as AWS Traffic Mirroring does
#   (outer UDP 4789, source port hashed per direction, checksum 0), inner
#   HTTP/1.1, DNS and ICMP traffic, IPv4 and IPv6, ~1 MB.
# aws-mirror/plain.pcap: the same inner frames without VXLAN.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release -q -p benches --bin gen-capture -- \
    --out pcaps/aws-mirror --seed 20261122 --size-mb 1 --flows 60 --sessions 8 --offered-mbps 20

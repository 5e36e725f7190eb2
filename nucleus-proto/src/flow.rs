//! The flow record: one bidirectional flow (a connection for TCP) and
//! what it arrived in.
//!
//! Owns: [`FlowRecord`] (counters, Zeek's conn_state and history, sizes,
//! vantage points), the encapsulation layers of its first packet
//! ([`TunnelLayer`], with the AWS GWLB and other GENEVE options) and the
//! EC2 instance a mirrored flow came from ([`Instance`]). Inputs: values
//! the sensor's flow table fills in. Outputs: their JSON view (`serde`).
//!
//! Does not: say how a flow is tracked or when it ends (the sensor's
//! `flow` stage does), nor how it travels on the wire (`crate::convert`).

use crate::json;
use crate::{Proto, TimestampMicros};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

/// One layer of encapsulation the packets of a flow arrived in, outermost
/// first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TunnelLayer {
    /// VXLAN (RFC 7348), as AWS Traffic Mirroring sends it.
    Vxlan {
        /// VXLAN network identifier (the mirror session's VirtualNetworkId).
        vni: u32,
        /// Outer source address (the mirrored ENI's primary IP on AWS).
        #[serde(serialize_with = "json::serialize_ip")]
        outer_src: IpAddr,
        /// Outer destination address.
        #[serde(serialize_with = "json::serialize_ip")]
        outer_dst: IpAddr,
    },
    /// GENEVE (RFC 8926), as a Gateway Load Balancer sends it.
    Geneve {
        /// Virtual network identifier.
        vni: u32,
        /// Outer source address.
        #[serde(serialize_with = "json::serialize_ip")]
        outer_src: IpAddr,
        /// Outer destination address.
        #[serde(serialize_with = "json::serialize_ip")]
        outer_dst: IpAddr,
        /// The AWS Gateway Load Balancer options (class 0x0108), when present.
        #[serde(skip_serializing_if = "Option::is_none")]
        aws_gwlb: Option<AwsGwlb>,
        /// Other options, as class/type/length.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        options: Vec<GeneveOption>,
    },
    /// An 802.1Q tag (or the outer 802.1ad tag of a QinQ pair).
    Vlan {
        /// VLAN identifier (12 bits).
        id: u16,
        /// The tag's EtherType: 0x8100 (802.1Q), 0x88a8 (802.1ad) or 0x9100.
        tpid: u16,
    },
    /// MPLS label stack entry.
    Mpls {
        /// The 20-bit label.
        label: u32,
    },
    /// Generic Routing Encapsulation (RFC 2784/2890), without ERSPAN.
    Gre {
        /// Outer source address.
        #[serde(serialize_with = "json::serialize_ip")]
        outer_src: IpAddr,
        /// Outer destination address.
        #[serde(serialize_with = "json::serialize_ip")]
        outer_dst: IpAddr,
        /// The GRE protocol type of the payload.
        protocol: u16,
        /// GRE key, when present.
        #[serde(skip_serializing_if = "Option::is_none")]
        key: Option<u32>,
    },
    /// ERSPAN (type I, II or III), how switches mirror on premises.
    Erspan {
        /// ERSPAN type: 1, 2 or 3.
        version: u8,
        /// Mirror session id (absent for type I).
        #[serde(skip_serializing_if = "Option::is_none")]
        session_id: Option<u16>,
        /// Original VLAN of the mirrored frame (types II and III).
        #[serde(skip_serializing_if = "Option::is_none")]
        vlan: Option<u16>,
        /// Outer source address.
        #[serde(serialize_with = "json::serialize_ip")]
        outer_src: IpAddr,
        /// Outer destination address.
        #[serde(serialize_with = "json::serialize_ip")]
        outer_dst: IpAddr,
    },
    /// IP directly in IP (IPv4 protocol 4 or 41, IPv6 next header 4 or 41).
    IpInIp {
        /// Outer source address.
        #[serde(serialize_with = "json::serialize_ip")]
        outer_src: IpAddr,
        /// Outer destination address.
        #[serde(serialize_with = "json::serialize_ip")]
        outer_dst: IpAddr,
    },
    /// Teredo: IPv6 in UDP (RFC 4380).
    Teredo {
        /// Outer source address.
        #[serde(serialize_with = "json::serialize_ip")]
        outer_src: IpAddr,
        /// Outer destination address.
        #[serde(serialize_with = "json::serialize_ip")]
        outer_dst: IpAddr,
    },
    /// AYIYA: IP in UDP.
    Ayiya {
        /// Outer source address.
        #[serde(serialize_with = "json::serialize_ip")]
        outer_src: IpAddr,
        /// Outer destination address.
        #[serde(serialize_with = "json::serialize_ip")]
        outer_dst: IpAddr,
    },
    /// GTP-U: a mobile network's user plane.
    Gtp {
        /// Tunnel endpoint id.
        teid: u32,
        /// Outer source address.
        #[serde(serialize_with = "json::serialize_ip")]
        outer_src: IpAddr,
        /// Outer destination address.
        #[serde(serialize_with = "json::serialize_ip")]
        outer_dst: IpAddr,
    },
}

/// The three options AWS Gateway Load Balancer adds to GENEVE (class 0x0108).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AwsGwlb {
    /// Option type 1: the GWLB endpoint's id as AWS names it (`vpce-` and 17
    /// hexadecimal digits of the 64-bit value).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_id: Option<String>,
    /// Option type 2: the attachment id (64 bits, hexadecimal with `0x`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attachment_id: Option<String>,
    /// Option type 3: the flow cookie.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_cookie: Option<u32>,
}

/// A GENEVE option other than the AWS ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GeneveOption {
    /// Option class.
    pub class: u16,
    /// Option type (the critical bit included).
    #[serde(rename = "type")]
    pub option_type: u8,
    /// Length of the option data in bytes.
    pub len: u16,
}

/// A bidirectional flow, with the meaning of each field as in Zeek's
/// `conn.log` where Zeek has it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowRecord {
    /// Time of the first packet.
    pub ts: TimestampMicros,
    /// Time of the last packet.
    pub end_ts: TimestampMicros,
    /// Unique, deterministic id of the flow (`C` and base62).
    pub uid: String,
    /// Community ID v1 of the inner 5-tuple.
    pub community_id: String,
    /// Transport protocol.
    pub proto: Proto,
    /// Originator address (the side that sent the first packet, or the SYN).
    #[serde(serialize_with = "json::serialize_ip")]
    pub src_ip: IpAddr,
    /// Originator port (ICMP: the type).
    pub src_port: u16,
    /// Responder address.
    #[serde(serialize_with = "json::serialize_ip")]
    pub dst_ip: IpAddr,
    /// Responder port (ICMP: the code).
    pub dst_port: u16,
    /// Packets from the originator.
    pub orig_pkts: u64,
    /// Payload bytes from the originator (TCP: by sequence numbers).
    pub orig_bytes: u64,
    /// IP bytes (sum of IP total lengths) from the originator.
    pub orig_ip_bytes: u64,
    /// Packets from the responder.
    pub resp_pkts: u64,
    /// Payload bytes from the responder (TCP: by sequence numbers).
    pub resp_bytes: u64,
    /// IP bytes from the responder.
    pub resp_ip_bytes: u64,
    /// TCP flags seen from the originator, as letters (`FSRPAUEC`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orig_tcp_flags: Option<String>,
    /// TCP flags seen from the responder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resp_tcp_flags: Option<String>,
    /// Zeek's connection state (`S0`, `SF`, `REJ`, ...).
    pub conn_state: String,
    /// Zeek's history string.
    pub history: String,
    /// Bytes missed: sequence gaps in TCP streams.
    pub missed_bytes: u64,
    /// Bytes the capture or the mirror session cut off (caplen or AWS
    /// PacketLength shorter than the packet).
    pub truncated_bytes: u64,
    /// Seconds between the first and the last packet.
    pub duration: f64,
    /// Application protocol, once known.
    pub service: Option<String>,
    /// Encapsulation of the flow's first packet, outermost first.
    pub tunnel: Vec<TunnelLayer>,
    /// Number of distinct mirror sessions (vantage points) that delivered the
    /// flow.
    pub vantages: u32,
    /// Packets that arrived a second time through another vantage point and
    /// were not counted again.
    pub duplicate_pkts: u64,
    /// The workload the flow was mirrored from: the instance of the mirror
    /// session's source interface, found by the outer source address and
    /// VNI of the flow's VXLAN layer. Absent when the sensor does not know
    /// it (no enrollment inventory, not AWS mirroring, an unknown source).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_instance"
    )]
    pub vantage: Option<Arc<Instance>>,
}

/// An EC2 instance as enrollment describes it: which workload a mirrored
/// interface belongs to. Shared (`Arc`) by every flow of that interface.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Default)]
pub struct Instance {
    /// `i-…`.
    pub instance_id: String,
    /// The mirrored network interface (`eni-…`).
    pub eni_id: String,
    /// `vpc-…`.
    pub vpc_id: String,
    /// The interface's subnet (`subnet-…`).
    pub subnet_id: String,
    /// Availability zone (`us-east-1a`).
    pub availability_zone: String,
    /// The instance's tags the sensor is configured to report (`[enroll]
    /// enrich_tags`), by key.
    pub tags: BTreeMap<String, String>,
}

fn serialize_instance<S: serde::Serializer>(
    v: &Option<Arc<Instance>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(i) => s.serialize_some(i.as_ref()),
        None => s.serialize_none(),
    }
}

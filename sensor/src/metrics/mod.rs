//! Counters of what the pipeline saw, dropped and found odd, by named
//! reason. Owned per worker as plain integers (no atomics, no locks on the
//! packet path) and merged when reported.
//!
//! Layout: the reasons and [`Counters`] here; what the live sensor's
//! threads publish for the health endpoints ([`LiveStats`], per-thread
//! snapshots and histograms) in `live.rs`.

mod live;

pub use live::{Gauges, LiveStats, ThreadRole, ThreadSnapshot, ThreadStats};

use std::fmt::Write as _;

macro_rules! reasons {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident => $s:literal,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(usize)]
        pub enum $name { $($(#[$vm])* $v,)* }
        impl $name {
            /// Every reason, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$v,)*];
            /// Number of reasons.
            pub const COUNT: usize = Self::ALL.len();
            /// The reason's name in metrics and `--stats`.
            pub fn name(self) -> &'static str {
                match self { $($name::$v => $s,)* }
            }
        }
    };
}

reasons! {
    /// Malformed or surprising input that was counted and survived.
    Anomaly {
        /// Ethernet header cut short.
        EthernetTruncated => "ethernet_truncated",
        /// VLAN tag cut short.
        VlanTruncated => "vlan_truncated",
        /// MPLS stack cut short.
        MplsTruncated => "mpls_truncated",
        /// PPP or PPPoE header malformed.
        PppMalformed => "ppp_malformed",
        /// IP header unreadable (bad version, bad IHL, cut short).
        IpMalformed => "ip_malformed",
        /// IPv6 extension header chain unreadable; decoding stopped there.
        Ipv6ExtensionMalformed => "ipv6_extension_malformed",
        /// IP total length larger than the bytes captured (cut by the capture
        /// or by the mirror session's PacketLength).
        IpTruncated => "ip_truncated",
        /// TCP header cut short: the packet cannot be keyed to a flow.
        TcpHeaderTruncated => "tcp_header_truncated",
        /// UDP header cut short.
        UdpTruncated => "udp_truncated",
        /// VXLAN header cut short or without the I flag.
        VxlanMalformed => "vxlan_malformed",
        /// VXLAN reserved fields not zero (decoded anyway).
        VxlanReservedBits => "vxlan_reserved_bits",
        /// GENEVE header cut short or of an unknown version.
        GeneveMalformed => "geneve_malformed",
        /// GENEVE options beyond what is kept, or malformed.
        GeneveOptionsDropped => "geneve_options_dropped",
        /// GENEVE payload protocol not Ethernet, IPv4 or IPv6.
        GeneveUnknownProtocol => "geneve_unknown_protocol",
        /// GRE header cut short or using routing / an unknown version.
        GreMalformed => "gre_malformed",
        /// GRE payload protocol not understood.
        GreUnknownProtocol => "gre_unknown_protocol",
        /// ERSPAN header cut short or of an unknown version.
        ErspanMalformed => "erspan_malformed",
        /// More layers than `decap.max_depth`.
        TunnelTooDeep => "tunnel_too_deep",
        /// Capture link type the sensor does not decode.
        UnknownLinkType => "unknown_link_type",
        /// Fragment with inconsistent offset, length or end.
        FragmentInvalid => "fragment_invalid",
        /// Reassembled datagram larger than 65535 bytes.
        FragmentTooBig => "fragment_too_big",
        /// Packet timestamps going backwards by more than the sweep interval.
        TimeWentBackwards => "time_went_backwards",
        /// Capture file records that could not be read.
        CaptureRecordMalformed => "capture_record_malformed",
        /// Datagram longer than `live.buffer_bytes` (MSG_TRUNC): decoded as
        /// far as it goes, its inner packet counted as truncated.
        DatagramTruncated => "datagram_truncated",
        /// TCP bytes sent twice with different content (the first copy is
        /// kept, as the reassembly policy says).
        TcpOverlapDiffering => "tcp_overlap_differing",
        /// Packet processed after a later packet from another receive thread:
        /// it reached its worker more than `live.reorder_window` after it.
        PacketLate => "packet_late",
        /// Packet released before its reorder window ended because the worker
        /// held `live.reorder_max_batches` batches.
        ReorderHeldCap => "reorder_held_cap",
    }
}

reasons! {
    /// Packets or state given up because a configured cap was reached.
    Drop {
        /// A new flow could not be created: `flows.max_flows` reached.
        FlowTableFull => "flow_table_full",
        /// A new fragmented datagram could not be tracked: `defrag.max_datagrams`.
        DefragTableFull => "defrag_table_full",
        /// A source had `defrag.max_datagrams_per_source` datagrams in progress.
        DefragPerSourceCap => "defrag_per_source_cap",
        /// Buffered fragment bytes reached `defrag.max_bytes`.
        DefragBytesCap => "defrag_bytes_cap",
        /// A datagram had more than `defrag.max_fragments_per_datagram` pieces.
        DefragFragmentsCap => "defrag_fragments_cap",
        /// A datagram was incomplete when `defrag.timeout` ran out (its
        /// fragments are discarded).
        DefragTimeout => "defrag_timeout",
        /// A flow had more vantage points than it can list.
        VantagesCap => "vantages_cap",
        /// Datagrams the kernel dropped because a receive socket's buffer was
        /// full (SO_RXQ_OVFL).
        KernelSocketOverflow => "kernel_socket_overflow",
        /// Datagrams a receiver dropped because a worker's queue was full (the
        /// receiver never waits).
        WorkerQueueFull => "worker_queue_full",
        /// Records dropped because the output queue was full.
        OutputQueueFull => "output_queue_full",
        /// Records that could not be written (output error).
        OutputError => "output_error",
        /// A TCP hole given up (delivered as a gap) because one direction
        /// held `reassembly.max_stream_bytes` or `max_stream_segments`.
        ReassemblyStreamCap => "reassembly_stream_cap",
        /// A TCP hole given up, or out-of-order data not held, because the
        /// worker held `reassembly.max_bytes`.
        ReassemblyBudgetCap => "reassembly_budget_cap",
    }
}

/// Plain counters of one worker (or the sum of several).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counters {
    /// Packets read (outer, as captured or received).
    pub packets: u64,
    /// Bytes of those packets on the wire (original length).
    pub bytes: u64,
    /// Packets with no IP inside (ARP, LLDP, ...): not flows.
    pub non_ip_packets: u64,
    /// IP fragments received.
    pub fragments: u64,
    /// Datagrams rebuilt from fragments.
    pub reassembled: u64,
    /// Packets recognised as copies delivered by a second mirror session.
    pub duplicate_vantage_packets: u64,
    /// Flows created.
    pub flows_created: u64,
    /// Flows ended (timeout, close or end of input).
    pub flows_expired: u64,
    /// Records emitted.
    pub records: u64,
    /// Bytes cut off by the capture or the mirror session.
    pub truncated_bytes: u64,
    /// Anomalies by reason.
    pub anomalies: [u64; Anomaly::COUNT],
    /// Drops by reason.
    pub drops: [u64; Drop::COUNT],
    /// TCP segments that arrived ahead of a hole in their stream.
    pub tcp_out_of_order_segments: u64,
    /// TCP stream bytes delivered to dissectors as gaps (missing).
    pub tcp_gap_bytes: u64,
    /// Application records (DNS, HTTP, ...) emitted, by protocol.
    pub app_records: Vec<(&'static str, u64)>,
    /// Dissector anomalies by (protocol, reason); a few fixed names each.
    pub app_anomalies: Vec<(&'static str, &'static str, u64)>,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            packets: 0,
            bytes: 0,
            non_ip_packets: 0,
            fragments: 0,
            reassembled: 0,
            duplicate_vantage_packets: 0,
            flows_created: 0,
            flows_expired: 0,
            records: 0,
            truncated_bytes: 0,
            anomalies: [0; Anomaly::COUNT],
            drops: [0; Drop::COUNT],
            tcp_out_of_order_segments: 0,
            tcp_gap_bytes: 0,
            app_records: Vec::new(),
            app_anomalies: Vec::new(),
        }
    }
}

impl Counters {
    /// Counts one anomaly.
    #[inline]
    pub fn anomaly(&mut self, a: Anomaly) {
        self.anomalies[a as usize] += 1;
    }

    /// Counts `n` drops of one reason.
    #[inline]
    pub fn drop_n(&mut self, d: Drop, n: u64) {
        self.drops[d as usize] += n;
    }

    /// Adds another set of counters into this one.
    pub fn merge(&mut self, o: &Counters) {
        self.packets += o.packets;
        self.bytes += o.bytes;
        self.non_ip_packets += o.non_ip_packets;
        self.fragments += o.fragments;
        self.reassembled += o.reassembled;
        self.duplicate_vantage_packets += o.duplicate_vantage_packets;
        self.flows_created += o.flows_created;
        self.flows_expired += o.flows_expired;
        self.records += o.records;
        self.truncated_bytes += o.truncated_bytes;
        for (a, b) in self.anomalies.iter_mut().zip(o.anomalies.iter()) {
            *a += b;
        }
        for (a, b) in self.drops.iter_mut().zip(o.drops.iter()) {
            *a += b;
        }
        self.tcp_out_of_order_segments += o.tcp_out_of_order_segments;
        self.tcp_gap_bytes += o.tcp_gap_bytes;
        for &(p, n) in &o.app_records {
            self.app_record_n(p, n);
        }
        for &(p, r, n) in &o.app_anomalies {
            self.app_anomaly_n(p, r, n);
        }
    }

    /// Counts `n` application records of `protocol`.
    pub fn app_record_n(&mut self, protocol: &'static str, n: u64) {
        match self.app_records.iter_mut().find(|(p, _)| *p == protocol) {
            Some((_, c)) => *c += n,
            None => self.app_records.push((protocol, n)),
        }
    }

    /// Counts `n` anomalies of `protocol` for `reason`.
    pub fn app_anomaly_n(&mut self, protocol: &'static str, reason: &'static str, n: u64) {
        match self
            .app_anomalies
            .iter_mut()
            .find(|(p, r, _)| *p == protocol && *r == reason)
        {
            Some((_, _, c)) => *c += n,
            None => self.app_anomalies.push((protocol, reason, n)),
        }
    }

    /// `protocol/reason=count` pairs of the dissectors' anomalies.
    pub fn app_anomaly_summary(&self) -> String {
        let mut v: Vec<String> = self
            .app_anomalies
            .iter()
            .map(|(p, r, n)| format!("{p}/{r}={n}"))
            .collect();
        v.sort();
        v.join(" ")
    }

    /// `protocol=count` pairs of the application records.
    pub fn app_record_summary(&self) -> String {
        let mut v: Vec<String> = self
            .app_records
            .iter()
            .map(|(p, n)| format!("{p}={n}"))
            .collect();
        v.sort();
        v.join(" ")
    }

    /// Total drops over every reason.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// `reason=count` pairs of the non-zero anomalies.
    pub fn anomaly_summary(&self) -> String {
        let mut s = String::new();
        for a in Anomaly::ALL {
            let n = self.anomalies[*a as usize];
            if n > 0 {
                let _ = write!(
                    s,
                    "{}{}={}",
                    if s.is_empty() { "" } else { " " },
                    a.name(),
                    n
                );
            }
        }
        s
    }

    /// `reason=count` pairs of the non-zero drops.
    pub fn drop_summary(&self) -> String {
        let mut s = String::new();
        for d in Drop::ALL {
            let n = self.drops[*d as usize];
            if n > 0 {
                let _ = write!(
                    s,
                    "{}{}={}",
                    if s.is_empty() { "" } else { " " },
                    d.name(),
                    n
                );
            }
        }
        s
    }
}

//! The per-worker flow table.
//!
//! This file: the table, its configuration and the per-packet path
//! ([`FlowTable::process`]). `app_feed`: handing payload to a flow's
//! application layer and turning what it emits into records. `lifecycle`:
//! adoption across vantages and VLANs, creation within the cap, timeouts,
//! sweeps and a flow's end.
//!
//! Invariants: every key in `index` points at a live slot; a slot's primary
//! key and aliases are exactly the keys that point at it; `live` counts the
//! occupied slots and never exceeds `flows.max_flows`.

use crate::config::{FlowConfig, PipelineConfig};
use crate::decap::tunnel::{Encap, TunnelContext};
use crate::decap::{InnerPacket, Transport};
use crate::flow::app::AppShared;
use crate::flow::community_id::CommunityId;
use crate::flow::context::ContextCache;
use crate::flow::index::FlowIndex;
use crate::flow::key::{FlowKey, PacketTuple, TupleKey};
use crate::flow::state::{Adoption, AppSlot, FINGERPRINT_L4_BYTES, Flow, Identity, PortSet};
use crate::flow::tcp_state::{RoleChange, TcpConnection, TcpSegment};
use crate::metrics::Counters;
use crate::packet::Direction;
use foldhash::fast::FixedState;
use hashbrown::HashMap;
use nucleus_proto::Record;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

mod app_feed;
mod lifecycle;

/// Flows of one worker.
#[derive(Debug)]
pub struct FlowTable {
    cfg: FlowConfig,
    hasher: FixedState,
    /// Every key of every flow (its own and its aliases) → its slot.
    index: FlowIndex,
    by_tuple: HashMap<TupleKey, u32, FixedState>,
    /// Boxed: a flow is about a kilobyte, and the slot vector grows with
    /// the number of concurrent flows (no kilobyte moves on each doubling).
    slots: Vec<Option<Box<Flow>>>,
    free: Vec<u32>,
    live: usize,
    community_id: CommunityId,
    server_ports_tcp: PortSet,
    server_ports_udp: PortSet,
    /// The configured durations in microseconds, converted once: they are
    /// compared on every packet.
    us: DurationsUs,
    /// Dissector settings, reassembly budget and scratch space.
    app: AppShared,
    /// The identities of recent tunnel contexts: the packets of one mirror
    /// session share their layers, so their three hashes are computed once.
    contexts: ContextCache,
    /// Tunnel layer lists recently given to new flows, most recent first,
    /// at most `SHARED_LAYERS`: flows of one mirror session share one.
    shared_layers: Vec<Arc<[Encap]>>,
}

/// Distinct tunnel contexts remembered for sharing (mirror sessions
/// interleave; a few dozen cover a busy sensor's, and a miss only costs
/// an allocation).
const SHARED_LAYERS: usize = 32;

/// `FlowConfig`'s durations in microseconds of packet time.
#[derive(Debug, Clone, Copy)]
struct DurationsUs {
    tcp: i64,
    tcp_closed: i64,
    tcp_attempt: i64,
    udp: i64,
    icmp: i64,
    other: i64,
    /// The least of the idle timeouts above.
    shortest: i64,
    duplicate_window: i64,
}

impl DurationsUs {
    fn new(cfg: &FlowConfig) -> Self {
        let us = |d: std::time::Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
        let idle = [
            cfg.tcp_timeout,
            cfg.tcp_closed_timeout,
            cfg.udp_timeout,
            cfg.icmp_timeout,
            cfg.other_timeout,
        ];
        Self {
            tcp: us(cfg.tcp_timeout),
            tcp_closed: us(cfg.tcp_closed_timeout),
            tcp_attempt: us(cfg.tcp_attempt_timeout),
            udp: us(cfg.udp_timeout),
            icmp: us(cfg.icmp_timeout),
            other: us(cfg.other_timeout),
            shortest: idle.into_iter().map(us).min().unwrap_or(0),
            duplicate_window: us(cfg.duplicate_window),
        }
    }
}

impl FlowTable {
    /// An empty table.
    pub fn new(pipeline: &PipelineConfig) -> Self {
        let cfg = pipeline.flows.clone();
        let cid = &pipeline.community_id;
        let seed = 0x6d69_7272_6f72;
        Self {
            hasher: FixedState::with_seed(seed),
            index: FlowIndex::new(seed ^ 1),
            by_tuple: HashMap::with_hasher(FixedState::with_seed(seed ^ 2)),
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            community_id: CommunityId::new(cid.seed, cid.base64),
            server_ports_tcp: PortSet::new(&cfg.likely_server_ports_tcp),
            server_ports_udp: PortSet::new(&cfg.likely_server_ports_udp),
            us: DurationsUs::new(&cfg),
            app: AppShared::new(&pipeline.reassembly, &pipeline.dissect),
            contexts: ContextCache::new(),
            shared_layers: Vec::new(),
            cfg,
        }
    }

    /// Out-of-order TCP bytes held by the table's streams now.
    pub fn reassembly_bytes(&self) -> usize {
        self.app.budget.used
    }

    /// Flows tracked now.
    pub fn len(&self) -> usize {
        self.live
    }

    /// True when no flow is tracked.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The hasher used for tunnel domains and vantages.
    pub fn hasher(&self) -> &FixedState {
        &self.hasher
    }

    /// What identifies the packet among those of its 5-tuple: fingerprints
    /// are only ever compared between packets of one unordered tuple, so
    /// its direction (`from_lo`) stands for its two addresses. Fed to the
    /// hasher as 128-bit words (one multiply each), not as a tuple of small
    /// fields and a byte slice; a last partial word is padded with zeros
    /// (the first word holds the length, so no two inputs pad alike), and
    /// none is fed when there is none (most packets: 32 or 48 bytes).
    fn fingerprint(&self, p: &InnerPacket<'_>, from_lo: bool) -> u64 {
        let mut h = self.hasher.build_hasher();
        let l4 = &p.l4_bytes[..p.l4_bytes.len().min(FINGERPRINT_L4_BYTES)];
        h.write_u128(
            u128::from(p.ip_id) << 64
                | u128::from(p.ip_len) << 32
                | (l4.len() as u128) << 16
                | u128::from(p.proto) << 8
                | u128::from(from_lo),
        );
        let mut words = l4.chunks_exact(16);
        for w in &mut words {
            if let Ok(w) = <[u8; 16]>::try_from(w) {
                h.write_u128(u128::from_le_bytes(w));
            }
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 16];
            last[..rest.len()].copy_from_slice(rest);
            h.write_u128(u128::from_le_bytes(last));
        }
        h.finish()
    }

    /// Accounts one packet at packet time `ts_us`. A flow that ends because
    /// its 5-tuple is reused by a new connection appends its record to `out`.
    pub fn process(
        &mut self,
        p: &InnerPacket<'_>,
        ctx: &TunnelContext,
        ts_us: i64,
        out: &mut Vec<Record>,
        counters: &mut Counters,
    ) {
        let ids = self.contexts.identities(ctx, &self.hasher);
        let (domain, novlan_domain, vantage) = (ids.domain, ids.novlan_domain, ids.vantage);
        let (key, src_is_lo) = FlowKey::of_packet(domain, p);
        let fingerprint = if vantage != 0 {
            self.fingerprint(p, src_is_lo)
        } else {
            0
        };
        let window_us = self.us.duplicate_window;

        let mut slot = self.index.get(&self.slots, &key);
        if let Some(s) = slot {
            // A flow that ended between two sweeps (idle past its timeout at
            // this packet's time), or whose 5-tuple a new SYN reuses (Zeek's
            // IsReuse), ends here; the packet starts a new flow.
            let ended = self.slots[s as usize].as_ref().is_some_and(|f| {
                self.is_due(f, ts_us)
                    || tcp_segment(p)
                        .is_some_and(|seg| f.tcp.as_ref().is_some_and(|t| t.is_reuse(&seg)))
            });
            if ended {
                self.end(s as usize, out, counters);
                slot = None;
            }
        }
        let slot = match slot {
            Some(s) => s,
            None => {
                let tuple = PacketTuple::of(p);
                let id = Identity {
                    key,
                    tuple,
                    novlan_domain,
                    fingerprint,
                    vantage,
                    ts_us,
                };
                let adopted = if domain != 0 {
                    self.adopt(&id, window_us, counters)
                } else {
                    Adoption::None
                };
                match adopted {
                    Adoption::Duplicate => return,
                    Adoption::Alias(s) => s,
                    Adoption::None => {
                        let flip = self.starts_flipped(p, &tuple);
                        match self.create(&id, flip, ctx, counters) {
                            Some(s) => s,
                            None => return,
                        }
                    }
                }
            }
        };
        let Some(flow) = self.slots.get_mut(slot as usize).and_then(Option::as_mut) else {
            return;
        };
        if vantage != 0 {
            // A flow seen from this vantage only (nearly every flow) lists
            // it already and holds no copy to match.
            if flow.vantages.as_slice() != [vantage] {
                if flow.is_copy(fingerprint, vantage, ts_us, window_us) {
                    flow.duplicate_pkts += 1;
                    counters.duplicate_vantage_packets += 1;
                    flow.add_vantage(vantage, counters);
                    flow.last_us = flow.last_us.max(ts_us);
                    return;
                }
                flow.add_vantage(vantage, counters);
            }
            flow.remember(fingerprint, vantage, ts_us);
        }
        let dir = if src_is_lo == flow.orig_is_lo {
            Direction::Originator
        } else {
            Direction::Responder
        };
        let d = &mut flow.dirs[dir as usize];
        d.pkts += 1;
        d.ip_bytes += u64::from(p.ip_len);
        d.truncated_bytes += u64::from(p.truncated_bytes);
        counters.truncated_bytes += u64::from(p.truncated_bytes);
        let mut moves_clock = true;
        let mut dir = dir;
        // Read from the packet here, not before the lookup: its fields would
        // be carried (on the stack) across the lookup.
        match tcp_segment(p) {
            Some(seg) => {
                d.tcp_flags |= seg.flags;
                // Set at creation for every TCP flow; a match, not
                // `get_or_insert_with`, keeps the default's construction
                // out of the per-packet path.
                let tcp = match &mut flow.tcp {
                    Some(t) => t,
                    None => flow.tcp.insert(TcpConnection::new()),
                };
                // Zeek stops moving a connection's last-seen time once both
                // sides closed.
                moves_clock = !tcp.both_closed();
                if tcp.on_segment(dir, &seg) == RoleChange::Flip {
                    std::mem::swap(&mut flow.orig, &mut flow.resp);
                    flow.orig_is_lo = flow.orig == flow.key.lo();
                    flow.dirs.swap(0, 1);
                    dir = dir.reverse();
                    if let AppSlot::Active(a) = &mut flow.app {
                        a.flip();
                    }
                }
            }
            None => match p.transport {
                Transport::Udp { payload_len, .. }
                | Transport::Icmp { payload_len, .. }
                | Transport::Other { payload_len }
                | Transport::Tcp { payload_len, .. } => d.payload_bytes += u64::from(payload_len),
            },
        }
        if moves_clock {
            flow.last_us = flow.last_us.max(ts_us);
        }
        if !matches!(flow.app, AppSlot::Finished) {
            self.feed_app(slot, dir, p, ts_us, out, counters);
        }
    }
}

/// The TCP header fields the tracker reads, for a TCP packet.
#[inline(always)]
fn tcp_segment(p: &InnerPacket<'_>) -> Option<TcpSegment> {
    match p.transport {
        Transport::Tcp {
            flags,
            seq,
            ack,
            window,
            payload_len,
            ..
        } => Some(TcpSegment {
            flags,
            seq,
            ack,
            window,
            payload_len,
            // Checksums are not verified (see ARCHITECTURE.md); a cut
            // packet's payload is unknown to the tracker.
            checksum_ok: if p.truncated_bytes > 0 {
                None
            } else {
                Some(true)
            },
        }),
        _ => None,
    }
}

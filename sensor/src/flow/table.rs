//! The per-worker flow table.
//!
//! Invariants: every key in `index` points at a live slot; a slot's primary
//! key and aliases are exactly the keys that point at it; `live` counts the
//! occupied slots and never exceeds `flows.max_flows`.

use super::app::{AppShared, AppState, Outcome};
use super::community_id::CommunityId;
use super::context::ContextCache;
use super::index::{FlowIndex, IndexEntry};
use super::key::{FlowKey, PacketTuple};
use super::reassembly::Segment;
use super::state::{
    Adoption, AppSlot, DirStats, FINGERPRINT_L4_BYTES, Flow, Identity, MAX_VANTAGES, PortSet,
    RECENT, Recent,
};
use super::tcp_state::{PortHint, RoleChange, TcpConnection, TcpSegment};
use super::to_record::{app_record, flow_record, remember_identity};
use crate::config::{FlowConfig, PipelineConfig};
use crate::decap::tunnel::{Encap, TunnelContext};
use crate::decap::{InnerPacket, Transport};
use crate::dissect::L4;
use crate::metrics::{Counters, Drop};
use crate::packet::Direction;
use arrayvec::ArrayVec;
use foldhash::fast::FixedState;
use hashbrown::HashMap;
use nucleus_proto::Record;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

/// Flows of one worker.
#[derive(Debug)]
pub struct FlowTable {
    cfg: FlowConfig,
    hasher: FixedState,
    /// Every key of every flow (its own and its aliases) → its slot.
    index: FlowIndex,
    by_tuple: HashMap<FlowKey, u32, FixedState>,
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
    /// fields and a byte slice.
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
        h.write(words.remainder());
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
        let tuple = PacketTuple::of(p);
        let ids = self.contexts.identities(ctx, &self.hasher);
        let (domain, novlan_domain, vantage) = (ids.domain, ids.novlan_domain, ids.vantage);
        let key = FlowKey::new(domain, &tuple);
        let fingerprint = if vantage != 0 {
            self.fingerprint(p, tuple.src == key.lo)
        } else {
            0
        };
        let window_us = self.us.duplicate_window;

        let seg = match p.transport {
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
        };
        let mut slot = self.index.get(&self.slots, &key);
        if let Some(s) = slot {
            // A flow that ended between two sweeps (idle past its timeout at
            // this packet's time), or whose 5-tuple a new SYN reuses (Zeek's
            // IsReuse), ends here; the packet starts a new flow.
            let ended = self.slots[s as usize].as_ref().is_some_and(|f| {
                self.is_due(f, ts_us)
                    || seg
                        .as_ref()
                        .is_some_and(|seg| f.tcp.as_ref().is_some_and(|t| t.is_reuse(seg)))
            });
            if ended {
                self.end(s as usize, out, counters);
                slot = None;
            }
        }
        let slot = match slot {
            Some(s) => s,
            None => {
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
        let dir = if tuple.src == flow.orig {
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
        match seg {
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

    /// Hands a packet's payload to the flow's application layer (creating
    /// it at the first packet that matters), then turns what it emitted
    /// into records.
    fn feed_app(
        &mut self,
        slot: u32,
        dir: Direction,
        p: &InnerPacket<'_>,
        ts_us: i64,
        out: &mut Vec<Record>,
        counters: &mut Counters,
    ) {
        let Some(flow) = self.slots.get_mut(slot as usize).and_then(Option::as_mut) else {
            return;
        };
        let (l4, segment, datagram) = match p.transport {
            Transport::Tcp {
                flags,
                seq,
                payload,
                payload_len,
                ..
            } => {
                let syn = flags & crate::decap::tcp_flags::SYN != 0;
                let fin = flags & crate::decap::tcp_flags::FIN != 0;
                let rst = flags & crate::decap::tcp_flags::RST != 0;
                if payload_len == 0 && !syn && !fin && !rst {
                    return;
                }
                let seg = Segment {
                    seq,
                    syn,
                    fin,
                    rst,
                    payload,
                    claimed_len: payload_len,
                };
                (L4::Tcp, Some(seg), None)
            }
            Transport::Udp { payload, .. } if !payload.is_empty() => (L4::Udp, None, Some(payload)),
            _ => return,
        };
        if matches!(flow.app, AppSlot::NotYet) {
            flow.app = if self.app.wants(l4) {
                AppSlot::Active(Box::new(AppState::new(
                    l4,
                    (flow.orig.port, flow.resp.port),
                )))
            } else {
                AppSlot::Finished
            };
        }
        let AppSlot::Active(app) = &mut flow.app else {
            return;
        };
        let outcome = match (segment, datagram) {
            (Some(seg), _) => app.tcp_segment(&mut self.app, dir, &seg, ts_us),
            (None, Some(payload)) => app.udp_datagram(&mut self.app, dir, payload, ts_us),
            (None, None) => Outcome::Continue,
        };
        match outcome {
            Outcome::Continue => {}
            Outcome::Identified(name) => flow.service = Some(name),
            Outcome::Finished => {
                if let AppSlot::Active(a) = &flow.app {
                    flow.service = flow.service.or(a.service());
                }
                flow.app = AppSlot::Finished;
            }
        }
        if self.app_output_pending() {
            self.take_app_output(slot as usize, out, counters);
        }
    }

    /// True when the application layer emitted or counted something (for
    /// most packets it did not, and the call below is skipped).
    #[inline]
    fn app_output_pending(&self) -> bool {
        !self.app.emitted.is_empty()
            || !self.app.anomalies.is_empty()
            || self.app.stats != Default::default()
    }

    /// Moves what the application layer emitted and counted into `out` and
    /// `counters`.
    fn take_app_output(&mut self, slot: usize, out: &mut Vec<Record>, counters: &mut Counters) {
        // Counted only now and then: look before moving them out.
        if self.app.stats != Default::default() {
            let st = std::mem::take(&mut self.app.stats);
            counters.tcp_out_of_order_segments += st.out_of_order_segments;
            counters.tcp_gap_bytes += st.gap_bytes;
            counters.anomalies[crate::metrics::Anomaly::TcpOverlapDiffering as usize] +=
                st.overlap_differing;
            counters.drop_n(Drop::ReassemblyStreamCap, st.stream_cap_hits);
            counters.drop_n(Drop::ReassemblyBudgetCap, st.budget_cap_hits);
        }
        if self.app.emitted.is_empty() && self.app.anomalies.is_empty() {
            return;
        }
        let Some(flow) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
            self.app.emitted.clear();
            self.app.anomalies.clear();
            return;
        };
        let protocol = flow.service.unwrap_or("unknown");
        for reason in self.app.anomalies.drain(..) {
            counters.app_anomaly_n(protocol, reason, 1);
        }
        if !self.app.emitted.is_empty() {
            remember_identity(flow, &self.community_id);
        }
        for e in self.app.emitted.drain(..) {
            let r = app_record(flow, &self.community_id, e);
            counters.records += 1;
            counters.app_record_n(protocol, 1);
            flow.app_seq += 1;
            out.push(r);
        }
    }

    /// A packet of an unknown (domain, tuple) whose 5-tuple a flow in
    /// another domain already has. Two cases join that flow, under an alias
    /// key for the new domain:
    /// - a copy of one of its recent packets, from another vantage: both
    ///   ends of the connection are mirrored (the copy is not counted again);
    /// - the first answer to a flow that has none, in a domain that differs
    ///   only by VLAN ids: a trunk capture where the router answers on
    ///   another VLAN (the packet is counted normally).
    ///
    /// Anything else (equal addresses in two VPCs) stays a separate flow.
    fn adopt(&mut self, id: &Identity, window_us: i64, counters: &mut Counters) -> Adoption {
        let Identity {
            key,
            tuple,
            novlan_domain,
            fingerprint,
            vantage,
            ts_us,
        } = *id;
        let Some(&slot) = self.by_tuple.get(&key.without_domain()) else {
            return Adoption::None;
        };
        let Some(flow) = self.slots.get_mut(slot as usize).and_then(Option::as_mut) else {
            return Adoption::None;
        };
        if flow.key.domain == key.domain || flow.aliases.len() >= MAX_VANTAGES - 1 {
            return Adoption::None;
        }
        if flow.is_copy(fingerprint, vantage, ts_us, window_us) {
            flow.aliases.push(key);
            let which = flow.aliases.len() as u8;
            flow.duplicate_pkts += 1;
            flow.add_vantage(vantage, counters);
            flow.last_us = flow.last_us.max(ts_us);
            counters.duplicate_vantage_packets += 1;
            self.index
                .insert(&self.slots, &key, IndexEntry { slot, key: which });
            return Adoption::Duplicate;
        }
        let answers = tuple.src == flow.resp && tuple.dst == flow.orig;
        if flow.novlan_domain == novlan_domain
            && answers
            && flow.dirs[Direction::Responder as usize].pkts == 0
        {
            flow.aliases.push(key);
            let which = flow.aliases.len() as u8;
            self.index
                .insert(&self.slots, &key, IndexEntry { slot, key: which });
            return Adoption::Alias(slot);
        }
        Adoption::None
    }

    /// Zeek's rule for a UDP flow whose start was not seen: when the first
    /// packet comes from a likely server port (to one that is not), its
    /// sender is the responder. TCP's version of the rule lives in the TCP
    /// tracker, which is given the port hint at creation.
    fn starts_flipped(&self, p: &InnerPacket<'_>, t: &PacketTuple) -> bool {
        let (sp, dp) = (t.src.port, t.dst.port);
        match p.transport {
            Transport::Udp { .. } => {
                self.server_ports_udp.contains(sp) && !self.server_ports_udp.contains(dp)
            }
            _ => false,
        }
    }

    fn create(
        &mut self,
        id: &Identity,
        flipped: bool,
        ctx: &TunnelContext,
        counters: &mut Counters,
    ) -> Option<u32> {
        let Identity {
            key,
            tuple,
            novlan_domain,
            ts_us,
            ..
        } = *id;
        if self.live >= self.cfg.max_flows {
            counters.drop_n(Drop::FlowTableFull, 1);
            return None;
        }
        let flow = Flow {
            key,
            aliases: Vec::new(),
            proto: tuple.proto,
            orig: if flipped { tuple.dst } else { tuple.src },
            resp: if flipped { tuple.src } else { tuple.dst },
            flipped,
            novlan_domain,
            first_us: ts_us,
            last_us: ts_us,
            dirs: [DirStats::default(); 2],
            tcp: (tuple.proto == 6).then(|| {
                TcpConnection::with_ports(PortHint {
                    src_port: tuple.src.port,
                    dst_port: tuple.dst.port,
                    src_likely_server: self.server_ports_tcp.contains(tuple.src.port),
                    dst_likely_server: self.server_ports_tcp.contains(tuple.dst.port),
                })
            }),
            tunnel: self.shared_layers(ctx),
            vantages: ArrayVec::new(),
            recent: [Recent::default(); RECENT],
            recent_next: 0,
            duplicate_pkts: 0,
            app: AppSlot::NotYet,
            service: None,
            app_seq: 0,
            ident: None,
        };
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = Some(Box::new(flow));
                s
            }
            None => {
                let s = u32::try_from(self.slots.len()).ok()?;
                self.slots.push(Some(Box::new(flow)));
                s
            }
        };
        self.index
            .insert(&self.slots, &key, IndexEntry { slot, key: 0 });
        if key.domain != 0 {
            self.by_tuple.entry(key.without_domain()).or_insert(slot);
        }
        self.live += 1;
        counters.flows_created += 1;
        Some(slot)
    }

    /// True when `f` has ended by packet time `now_us`: idle past its
    /// timeout, or a TCP attempt unanswered past `tcp_attempt_timeout`.
    /// Asked for every packet, so the cheap comparisons come first: most
    /// packets arrive within the shortest timeout of their flow's last one.
    #[inline]
    fn is_due(&self, f: &Flow, now_us: i64) -> bool {
        let idle = now_us.saturating_sub(f.last_us);
        (idle >= self.us.shortest && idle >= self.timeout_us(f))
            || now_us.saturating_sub(f.first_us) >= self.us.tcp_attempt
                && f.tcp.as_ref().is_some_and(|t| t.awaiting_reply())
    }

    fn timeout_us(&self, f: &Flow) -> i64 {
        match f.proto {
            6 => match &f.tcp {
                Some(t) if t.is_closed() => self.us.tcp_closed,
                _ => self.us.tcp,
            },
            17 => self.us.udp,
            1 | 58 => self.us.icmp,
            _ => self.us.other,
        }
    }

    /// Ends every flow idle past its timeout at packet time `now_us`,
    /// appending their records to `out`.
    pub fn expire(&mut self, now_us: i64, out: &mut Vec<Record>, counters: &mut Counters) {
        for slot in 0..self.slots.len() {
            let due = match &self.slots[slot] {
                Some(f) => self.is_due(f, now_us),
                None => false,
            };
            if due {
                self.end(slot, out, counters);
            }
        }
    }

    /// The layers of `ctx` as a list shared with earlier flows that
    /// arrived in the same ones.
    fn shared_layers(&mut self, ctx: &TunnelContext) -> Arc<[Encap]> {
        let layers = ctx.layers();
        if let Some(i) = self.shared_layers.iter().position(|l| **l == *layers) {
            let found = self.shared_layers.remove(i);
            self.shared_layers.insert(0, Arc::clone(&found));
            return found;
        }
        let made: Arc<[Encap]> = Arc::from(layers);
        self.shared_layers.truncate(SHARED_LAYERS - 1);
        self.shared_layers.insert(0, Arc::clone(&made));
        made
    }

    /// Ends every flow (end of input), appending their records to `out`.
    pub fn flush(&mut self, out: &mut Vec<Record>, counters: &mut Counters) {
        for slot in 0..self.slots.len() {
            if self.slots[slot].is_some() {
                self.end(slot, out, counters);
            }
        }
        self.slots.clear();
        self.free.clear();
    }

    fn end(&mut self, slot: usize, out: &mut Vec<Record>, counters: &mut Counters) {
        // The application layer reports what is pending first (its records
        // start before the flow's own, which is written when it ends).
        if let Some(flow) = self.slots.get_mut(slot).and_then(Option::as_mut)
            && let AppSlot::Active(app) = &mut flow.app
        {
            app.close(&mut self.app, flow.last_us);
            flow.service = flow.service.or(app.service());
            flow.app = AppSlot::Finished;
            self.take_app_output(slot, out, counters);
        }
        // Index entries first: finding them reads the flow's keys.
        let keys = self
            .slots
            .get(slot)
            .and_then(Option::as_deref)
            .map_or(0, |f| 1 + f.aliases.len());
        for which in 0..keys {
            self.index.remove(&self.slots, slot as u32, which as u8);
        }
        let Some(mut flow) = self.slots.get_mut(slot).and_then(Option::take) else {
            return;
        };
        if self.by_tuple.get(&flow.key.without_domain()) == Some(&(slot as u32)) {
            self.by_tuple.remove(&flow.key.without_domain());
        }
        self.free.push(slot as u32);
        self.live -= 1;
        counters.flows_expired += 1;
        counters.records += 1;
        out.push(Record::Flow(Box::new(flow_record(
            &mut flow,
            &self.community_id,
        ))));
    }
}

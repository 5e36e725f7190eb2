//! The per-worker flow table.
//!
//! Invariants: every key in `index` points at a live slot; a slot's primary
//! key and aliases are exactly the keys that point at it; `live` counts the
//! occupied slots and never exceeds `flows.max_flows`.

use super::community_id::CommunityId;
use super::key::{Endpoint, FlowKey, PacketTuple};
use super::tcp_state::{PortHint, RoleChange, TcpConnection, TcpSegment};
use crate::config::{CommunityIdConfig, FlowConfig};
use crate::decap::tunnel::{Encap, TunnelContext};
use crate::decap::{InnerPacket, Transport, tcp_flags};
use crate::metrics::{Counters, Drop};
use crate::packet::Direction;
use arrayvec::ArrayVec;
use foldhash::fast::FixedState;
use hashbrown::HashMap;
use nucleus_proto::{FlowRecord, Proto, Record, TimestampMicros, TunnelLayer};
use std::hash::{BuildHasher, Hash, Hasher};

/// Vantage points (mirror sessions) listed per flow.
const MAX_VANTAGES: usize = 4;
/// Recent packet identities kept per flow to recognise copies.
const RECENT: usize = 8;
/// Bytes of the transport layer that identify a packet.
const FINGERPRINT_L4_BYTES: usize = 48;

#[derive(Debug, Clone, Copy, Default)]
struct DirStats {
    pkts: u64,
    ip_bytes: u64,
    payload_bytes: u64,
    tcp_flags: u8,
    truncated_bytes: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Recent {
    fingerprint: u64,
    vantage: u64,
    ts_us: i64,
}

/// What identifies one packet to the table.
#[derive(Debug, Clone, Copy)]
struct Identity {
    key: FlowKey,
    tuple: PacketTuple,
    /// The domain without VLAN ids.
    novlan_domain: u64,
    /// Hash of the packet's own content (0 when not encapsulated).
    fingerprint: u64,
    /// Which mirror session delivered it (0 when not encapsulated).
    vantage: u64,
    ts_us: i64,
}

/// How a packet of an unknown key joined an existing flow.
enum Adoption {
    /// It did not.
    None,
    /// A copy from a second mirror session: accounted, not counted again.
    Duplicate,
    /// The answer seen on another VLAN: process it as part of this flow.
    Alias(u32),
}

/// One tracked flow.
#[derive(Debug, Clone)]
struct Flow {
    key: FlowKey,
    aliases: ArrayVec<FlowKey, { MAX_VANTAGES - 1 }>,
    proto: u8,
    orig: Endpoint,
    resp: Endpoint,
    /// Roles were swapped from the first packet's (Zeek's `^`).
    flipped: bool,
    /// The domain without VLAN ids.
    novlan_domain: u64,
    first_us: i64,
    last_us: i64,
    dirs: [DirStats; 2],
    tcp: Option<TcpConnection>,
    tunnel: Vec<Encap>,
    vantages: ArrayVec<u64, MAX_VANTAGES>,
    recent: [Recent; RECENT],
    recent_next: usize,
    duplicate_pkts: u64,
}

impl Flow {
    fn is_copy(&self, fingerprint: u64, vantage: u64, ts_us: i64, window_us: i64) -> bool {
        self.recent.iter().any(|r| {
            r.fingerprint == fingerprint
                && r.vantage != vantage
                && r.vantage != 0
                && (ts_us - r.ts_us).abs() <= window_us
        })
    }

    fn remember(&mut self, fingerprint: u64, vantage: u64, ts_us: i64) {
        self.recent[self.recent_next] = Recent {
            fingerprint,
            vantage,
            ts_us,
        };
        self.recent_next = (self.recent_next + 1) % RECENT;
    }

    fn add_vantage(&mut self, vantage: u64, counters: &mut Counters) {
        if vantage != 0
            && !self.vantages.contains(&vantage)
            && self.vantages.try_push(vantage).is_err()
        {
            counters.drop_n(Drop::VantagesCap, 1);
        }
    }
}

/// Flows of one worker.
#[derive(Debug)]
pub struct FlowTable {
    cfg: FlowConfig,
    hasher: FixedState,
    index: HashMap<FlowKey, u32, FixedState>,
    by_tuple: HashMap<FlowKey, u32, FixedState>,
    slots: Vec<Option<Flow>>,
    free: Vec<u32>,
    live: usize,
    community_id: CommunityId,
    server_ports_tcp: PortSet,
    server_ports_udp: PortSet,
}

/// A set of ports as a bitmap: one lookup per new flow, no hashing.
#[derive(Debug, Clone)]
struct PortSet(Box<[u64; 1024]>);

impl PortSet {
    fn new(ports: &[u16]) -> Self {
        let mut bits = Box::new([0u64; 1024]);
        for &p in ports {
            bits[usize::from(p >> 6)] |= 1 << (p & 63);
        }
        Self(bits)
    }

    fn contains(&self, p: u16) -> bool {
        self.0[usize::from(p >> 6)] & (1 << (p & 63)) != 0
    }
}

fn micros(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl FlowTable {
    /// An empty table.
    pub fn new(cfg: FlowConfig, cid: &CommunityIdConfig) -> Self {
        let seed = 0x6d69_7272_6f72;
        Self {
            hasher: FixedState::with_seed(seed),
            index: HashMap::with_hasher(FixedState::with_seed(seed ^ 1)),
            by_tuple: HashMap::with_hasher(FixedState::with_seed(seed ^ 2)),
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            community_id: CommunityId::new(cid.seed, cid.base64),
            server_ports_tcp: PortSet::new(&cfg.likely_server_ports_tcp),
            server_ports_udp: PortSet::new(&cfg.likely_server_ports_udp),
            cfg,
        }
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

    fn fingerprint(&self, p: &InnerPacket<'_>) -> u64 {
        let mut h = self.hasher.build_hasher();
        (p.ip_id, p.ip_len, p.proto, p.src, p.dst).hash(&mut h);
        let n = p.l4_bytes.len().min(FINGERPRINT_L4_BYTES);
        h.write(&p.l4_bytes[..n]);
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
        let domain = ctx.domain_hash(&self.hasher);
        let novlan_domain = ctx.domain_hash_without_vlans(&self.hasher);
        let vantage = ctx.vantage_hash(&self.hasher);
        let key = FlowKey::new(domain, &tuple);
        let fingerprint = if vantage != 0 { self.fingerprint(p) } else { 0 };
        let window_us = micros(self.cfg.duplicate_window);
        let id = Identity {
            key,
            tuple,
            novlan_domain,
            fingerprint,
            vantage,
            ts_us,
        };

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
        let mut slot = self.index.get(&key).copied();
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
            if flow.is_copy(fingerprint, vantage, ts_us, window_us) {
                flow.duplicate_pkts += 1;
                counters.duplicate_vantage_packets += 1;
                flow.add_vantage(vantage, counters);
                flow.last_us = flow.last_us.max(ts_us);
                return;
            }
            flow.remember(fingerprint, vantage, ts_us);
            flow.add_vantage(vantage, counters);
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
        match (p.transport, seg) {
            (Transport::Tcp { flags, .. }, Some(seg)) => {
                d.tcp_flags |= flags;
                let tcp = flow.tcp.get_or_insert_with(TcpConnection::new);
                // Zeek stops moving a connection's last-seen time once both
                // sides closed.
                moves_clock = !tcp.both_closed();
                if tcp.on_segment(dir, &seg) == RoleChange::Flip {
                    std::mem::swap(&mut flow.orig, &mut flow.resp);
                    flow.dirs.swap(0, 1);
                }
            }
            (Transport::Udp { payload_len, .. }, _)
            | (Transport::Icmp { payload_len, .. }, _)
            | (Transport::Other { payload_len }, _)
            | (Transport::Tcp { payload_len, .. }, None) => {
                d.payload_bytes += u64::from(payload_len)
            }
        }
        if moves_clock {
            flow.last_us = flow.last_us.max(ts_us);
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
        if flow.key.domain == key.domain || flow.aliases.is_full() {
            return Adoption::None;
        }
        if flow.is_copy(fingerprint, vantage, ts_us, window_us) {
            flow.aliases.push(key);
            flow.duplicate_pkts += 1;
            flow.add_vantage(vantage, counters);
            flow.last_us = flow.last_us.max(ts_us);
            counters.duplicate_vantage_packets += 1;
            self.index.insert(key, slot);
            return Adoption::Duplicate;
        }
        let answers = tuple.src == flow.resp && tuple.dst == flow.orig;
        if flow.novlan_domain == novlan_domain
            && answers
            && flow.dirs[Direction::Responder as usize].pkts == 0
        {
            flow.aliases.push(key);
            self.index.insert(key, slot);
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
            aliases: ArrayVec::new(),
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
            tunnel: ctx.layers().to_vec(),
            vantages: ArrayVec::new(),
            recent: [Recent::default(); RECENT],
            recent_next: 0,
            duplicate_pkts: 0,
        };
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = Some(flow);
                s
            }
            None => {
                let s = u32::try_from(self.slots.len()).ok()?;
                self.slots.push(Some(flow));
                s
            }
        };
        self.index.insert(key, slot);
        if key.domain != 0 {
            self.by_tuple.entry(key.without_domain()).or_insert(slot);
        }
        self.live += 1;
        counters.flows_created += 1;
        Some(slot)
    }

    /// True when `f` has ended by packet time `now_us`: idle past its
    /// timeout, or a TCP attempt unanswered past `tcp_attempt_timeout`.
    fn is_due(&self, f: &Flow, now_us: i64) -> bool {
        now_us.saturating_sub(f.last_us) >= self.timeout_us(f)
            || f.tcp.as_ref().is_some_and(|t| t.awaiting_reply())
                && now_us.saturating_sub(f.first_us) >= micros(self.cfg.tcp_attempt_timeout)
    }

    fn timeout_us(&self, f: &Flow) -> i64 {
        let d = match f.proto {
            6 => match &f.tcp {
                Some(t) if t.is_closed() => self.cfg.tcp_closed_timeout,
                _ => self.cfg.tcp_timeout,
            },
            17 => self.cfg.udp_timeout,
            1 | 58 => self.cfg.icmp_timeout,
            _ => self.cfg.other_timeout,
        };
        micros(d)
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
        let Some(flow) = self.slots.get_mut(slot).and_then(Option::take) else {
            return;
        };
        self.index.remove(&flow.key);
        for a in &flow.aliases {
            self.index.remove(a);
        }
        if self.by_tuple.get(&flow.key.without_domain()) == Some(&(slot as u32)) {
            self.by_tuple.remove(&flow.key.without_domain());
        }
        self.free.push(slot as u32);
        self.live -= 1;
        counters.flows_expired += 1;
        counters.records += 1;
        out.push(Record::Flow(self.record(&flow)));
    }

    fn uid(&self, f: &Flow) -> String {
        let mut h1 = FixedState::with_seed(0x7569_6431).build_hasher();
        let mut h2 = FixedState::with_seed(0x7569_6432).build_hasher();
        for h in [&mut h1, &mut h2] {
            (f.key, f.first_us).hash(h);
        }
        let mut v = (u128::from(h1.finish()) << 64) | u128::from(h2.finish());
        const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let mut s = String::with_capacity(19);
        s.push('C');
        for _ in 0..18 {
            s.push(char::from(ALPHABET[(v % 62) as usize]));
            v /= 62;
        }
        s
    }

    fn record(&self, f: &Flow) -> FlowRecord {
        let [o, r] = f.dirs;
        let (conn_state, history, orig_bytes, resp_bytes, missed) = match &f.tcp {
            Some(t) => (
                t.conn_state().to_string(),
                t.history().to_string(),
                t.payload_bytes(Direction::Originator),
                t.payload_bytes(Direction::Responder),
                t.missed_bytes(),
            ),
            None => {
                let state = match (f.proto, o.pkts > 0, r.pkts > 0) {
                    (17, true, true) => "SF",
                    (17, true, false) => "S0",
                    (17, false, true) => "SHR",
                    _ => "OTH",
                };
                let mut hist = String::new();
                if f.flipped {
                    hist.push('^');
                }
                if f.proto == 17 {
                    if o.pkts > 0 {
                        hist.push('D');
                    }
                    if r.pkts > 0 {
                        hist.push('d');
                    }
                }
                (state.to_string(), hist, o.payload_bytes, r.payload_bytes, 0)
            }
        };
        let flags = |v: u8| {
            (f.proto == 6).then(|| {
                let mut s = String::new();
                for (bit, c) in [
                    (tcp_flags::FIN, 'F'),
                    (tcp_flags::SYN, 'S'),
                    (tcp_flags::RST, 'R'),
                    (tcp_flags::PSH, 'P'),
                    (tcp_flags::ACK, 'A'),
                    (0x20, 'U'),
                    (0x40, 'E'),
                    (0x80, 'C'),
                ] {
                    if v & bit != 0 {
                        s.push(c);
                    }
                }
                s
            })
        };
        let tunnel: Vec<TunnelLayer> = {
            let mut t = TunnelContext::new();
            for l in &f.tunnel {
                t.push(*l);
            }
            t.to_records()
        };
        FlowRecord {
            ts: TimestampMicros(f.first_us),
            end_ts: TimestampMicros(f.last_us),
            uid: self.uid(f),
            community_id: self.community_id.compute(
                f.orig.addr,
                f.resp.addr,
                f.proto,
                f.orig.port,
                f.resp.port,
            ),
            proto: Proto(f.proto),
            src_ip: f.orig.addr,
            src_port: f.orig.port,
            dst_ip: f.resp.addr,
            dst_port: f.resp.port,
            orig_pkts: o.pkts,
            orig_bytes,
            orig_ip_bytes: o.ip_bytes,
            resp_pkts: r.pkts,
            resp_bytes,
            resp_ip_bytes: r.ip_bytes,
            orig_tcp_flags: flags(o.tcp_flags),
            resp_tcp_flags: flags(r.tcp_flags),
            conn_state,
            history,
            missed_bytes: missed,
            truncated_bytes: o.truncated_bytes + r.truncated_bytes,
            duration: (f.last_us - f.first_us) as f64 / 1e6,
            service: None,
            tunnel,
            vantages: u32::try_from(f.vantages.len().max(1)).unwrap_or(u32::MAX),
            duplicate_pkts: f.duplicate_pkts,
        }
    }
}

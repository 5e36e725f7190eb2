//! A flow's life in the table: joining an existing flow from another
//! vantage or VLAN (adoption), creation within the cap, timeouts, expiry
//! sweeps, and the end that writes its record.

use super::{FlowTable, SHARED_LAYERS};
use crate::decap::tunnel::{Encap, TunnelContext};
use crate::decap::{InnerPacket, Transport};
use crate::flow::index::IndexEntry;
use crate::flow::key::PacketTuple;
use crate::flow::state::{
    Adoption, AppSlot, DirStats, Flow, Identity, MAX_VANTAGES, RECENT, Recent,
};
use crate::flow::tcp_state::{PortHint, TcpConnection};
use crate::flow::to_record::flow_record;
use crate::metrics::{Counters, Drop};
use crate::packet::Direction;
use arrayvec::ArrayVec;
use nucleus_proto::Record;
use std::sync::Arc;

impl FlowTable {
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
    /// Out of line, as is `create`: once per flow, and its state would weigh
    /// on every packet's.
    #[inline(never)]
    pub(super) fn adopt(
        &mut self,
        id: &Identity,
        window_us: i64,
        counters: &mut Counters,
    ) -> Adoption {
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
    pub(super) fn starts_flipped(&self, p: &InnerPacket<'_>, t: &PacketTuple) -> bool {
        let (sp, dp) = (t.src.port, t.dst.port);
        match p.transport {
            Transport::Udp { .. } => {
                self.server_ports_udp.contains(sp) && !self.server_ports_udp.contains(dp)
            }
            _ => false,
        }
    }

    #[inline(never)]
    pub(super) fn create(
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
        let orig = if flipped { tuple.dst } else { tuple.src };
        let flow = Flow {
            key,
            orig_is_lo: orig == key.lo(),
            aliases: Vec::new(),
            proto: tuple.proto,
            orig,
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
    /// Always inlined: out of line, its call costs more than its body.
    #[inline(always)]
    pub(super) fn is_due(&self, f: &Flow, now_us: i64) -> bool {
        (elapsed_at_least(now_us, f.last_us, self.us.shortest)
            && elapsed_at_least(now_us, f.last_us, self.timeout_us(f)))
            || elapsed_at_least(now_us, f.first_us, self.us.tcp_attempt)
                && f.tcp.as_ref().is_some_and(|t| t.awaiting_reply())
    }

    pub(super) fn timeout_us(&self, f: &Flow) -> i64 {
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
    /// arrived in the same ones. Layers with a GWLB flow cookie are the
    /// flow's own (the load balancer gives each flow its cookie): they are
    /// neither looked for nor kept.
    pub(super) fn shared_layers(&mut self, ctx: &TunnelContext) -> Arc<[Encap]> {
        let layers = ctx.layers();
        let per_flow = layers
            .iter()
            .any(|l| matches!(l, Encap::Geneve { gwlb, .. } if gwlb.flow_cookie.is_some()));
        if per_flow {
            return Arc::from(layers);
        }
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

    pub(super) fn end(&mut self, slot: usize, out: &mut Vec<Record>, counters: &mut Counters) {
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

/// `now_us.saturating_sub(since_us) >= limit_us` for a limit that is not
/// negative (a duration), with the overflow (only hostile timestamps) on a
/// branch of its own instead of a clamp on every packet: a difference too
/// large for `i64` is at least any limit when positive, below it when
/// negative.
#[inline]
fn elapsed_at_least(now_us: i64, since_us: i64, limit_us: i64) -> bool {
    now_us
        .checked_sub(since_us)
        .map_or(now_us > since_us, |d| d >= limit_us)
}

#[cfg(test)]
mod tests {
    use super::elapsed_at_least;

    #[test]
    fn elapsed_at_least_is_the_saturating_comparison() {
        let times = [
            i64::MIN,
            i64::MIN + 1,
            -5_000_000,
            -1,
            0,
            1,
            7,
            5_000_000,
            i64::MAX - 1,
            i64::MAX,
        ];
        let limits = [0, 1, 5_000_000, i64::MAX];
        for now in times {
            for since in times {
                for limit in limits {
                    assert_eq!(
                        elapsed_at_least(now, since, limit),
                        now.saturating_sub(since) >= limit,
                        "{now} {since} {limit}"
                    );
                }
            }
        }
    }
}

//! The flow table's side of the application layer: handing a packet's
//! payload to the flow's `AppState` (created at the first packet that
//! matters) and turning what the dissectors emitted into records with the
//! flow's identity.

use super::FlowTable;
use crate::decap::{InnerPacket, Transport};
use crate::dissect::L4;
use crate::flow::app::{AppState, Outcome};
use crate::flow::reassembly::Segment;
use crate::flow::state::AppSlot;
use crate::flow::to_record::{app_record, remember_identity};
use crate::metrics::{Counters, Drop};
use crate::packet::Direction;
use nucleus_proto::Record;

impl FlowTable {
    /// Hands a packet's payload to the flow's application layer (creating
    /// it at the first packet that matters), then turns what it emitted
    /// into records.
    pub(super) fn feed_app(
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
        let fin = segment.as_ref().is_some_and(|s| s.fin);
        let mut outcome = match (segment, datagram) {
            (Some(seg), _) => app.tcp_segment(&mut self.app, dir, &seg, ts_us),
            (None, Some(payload)) => app.udp_datagram(&mut self.app, dir, payload, ts_us),
            (None, None) => Outcome::Continue,
        };
        // Both streams delivered up to their FINs: nothing can come, so the
        // dissector closes now and its state is freed, not held for the
        // flow's close delay (5 s by default) while a busy sensor takes
        // new flows.
        if fin
            && matches!(outcome, Outcome::Continue | Outcome::Identified(_))
            && app.both_ways_complete()
        {
            if let Outcome::Identified(name) = outcome {
                flow.service = Some(name);
            }
            app.close(&mut self.app, ts_us);
            outcome = Outcome::Finished;
        }
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
    pub(super) fn app_output_pending(&self) -> bool {
        !self.app.emitted.is_empty()
            || !self.app.anomalies.is_empty()
            || self.app.stats != Default::default()
    }

    /// Moves what the application layer emitted and counted into `out` and
    /// `counters`.
    pub(super) fn take_app_output(
        &mut self,
        slot: usize,
        out: &mut Vec<Record>,
        counters: &mut Counters,
    ) {
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
}

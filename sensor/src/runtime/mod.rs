//! Runtime: wires capture, decapsulation, flows and output together, on one
//! thread or across workers.
//!
//! The two halves of every pipeline:
//! - [`Frontend`]: frame → decapsulation → fragment reassembly → inner
//!   packet; it owns the only state that must see every packet of a
//!   datagram (fragments), so there is one per input.
//! - [`Worker`]: inner packets of its shard → flow table → records.
//!
//! Time is the packets' own: a [`Clock`] turns packet timestamps into sweep
//! ticks at fixed boundaries of `flows.sweep_interval`, so flows end at the
//! same points whatever the number of workers, and each sweep's records are
//! written sorted. That is what makes the output byte-identical with one
//! worker or many.

pub mod live;
pub mod offline;

use crate::capture::RawFrame;
use crate::config::PipelineConfig;
use crate::decap::defrag::Defragmenter;
use crate::decap::tunnel::OuterAddrs;
use crate::decap::tunnel::TunnelContext;
use crate::decap::{Decoded, Decoder, Fragment, InnerPacket, UdpTunnel};
use crate::flow::FlowTable;
use crate::metrics::Counters;
use foldhash::fast::FixedState;
use nucleus_proto::Record;

/// Where an inner packet came from, so a worker on another thread can
/// decode it again from bytes it owns.
pub enum Origin<'a> {
    /// Straight from the frame.
    Frame,
    /// From a datagram rebuilt from fragments; `base` holds the layers
    /// outside the fragmented IP header.
    Reassembled {
        /// The rebuilt IP datagram.
        bytes: &'a [u8],
        /// The tunnel layers around it.
        base: &'a TunnelContext,
    },
}

/// Decapsulation and reassembly for one input.
pub struct Frontend {
    decoder: Decoder,
    defrag: Defragmenter,
    ctx: TunnelContext,
    hasher: FixedState,
    /// What this frontend counted.
    pub counters: Counters,
}

/// Most nested reassemblies per frame (a fragment inside a reassembled
/// datagram inside ...).
const MAX_NESTED_REASSEMBLY: usize = 4;

impl Frontend {
    /// A frontend for the configuration.
    pub fn new(cfg: &PipelineConfig) -> Self {
        Self {
            decoder: Decoder::new(cfg.decap.clone()),
            defrag: Defragmenter::new(cfg.defrag.clone()),
            ctx: TunnelContext::new(),
            hasher: FixedState::with_seed(0x0066_726f_6e74),
            counters: Counters::default(),
        }
    }

    /// The decoder (workers on other threads use a clone).
    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    /// Decodes one frame and hands every inner packet it yields to `sink`.
    pub fn ingest<F>(&mut self, frame: &RawFrame<'_>, sink: F)
    where
        F: FnMut(&InnerPacket<'_>, &TunnelContext, Origin<'_>),
    {
        self.counters.packets += 1;
        self.counters.bytes += u64::from(frame.orig_len);
        let decoded =
            self.decoder
                .decode(frame.link, frame.data, &mut self.ctx, &mut self.counters);
        self.finish(decoded, frame.ts_us, sink);
    }

    /// Decodes the payload of one datagram received on a live tunnel socket
    /// (`wire_len`: the datagram's length, counted as received bytes) and
    /// hands every inner packet it yields to `sink`. Inlined: the live loop
    /// calls it once per datagram.
    #[inline]
    pub fn ingest_datagram<F>(
        &mut self,
        tunnel: UdpTunnel,
        outer: OuterAddrs,
        payload: &[u8],
        wire_len: u32,
        ts_us: i64,
        sink: F,
    ) where
        F: FnMut(&InnerPacket<'_>, &TunnelContext, Origin<'_>),
    {
        self.counters.packets += 1;
        self.counters.bytes += u64::from(wire_len);
        let decoded = self.decoder.decode_tunnel_payload(
            tunnel,
            outer,
            payload,
            &mut self.ctx,
            &mut self.counters,
        );
        self.finish(decoded, ts_us, sink);
    }

    #[inline(always)]
    fn finish<F>(&mut self, decoded: Decoded<'_>, ts_us: i64, mut sink: F)
    where
        F: FnMut(&InnerPacket<'_>, &TunnelContext, Origin<'_>),
    {
        // By reference: the packet is handed on where decoding wrote it.
        match &decoded {
            Decoded::Packet(p) => sink(p, &self.ctx, Origin::Frame),
            Decoded::NotIp => self.counters.non_ip_packets += 1,
            Decoded::Malformed => {}
            Decoded::Fragment(f) => self.reassemble(f, ts_us, sink),
        }
    }

    /// Hands a fragment to reassembly and decodes what it completes. Out of
    /// line: rare, and its state would weigh on every packet's frame.
    #[inline(never)]
    fn reassemble<F>(&mut self, f: &Fragment<'_>, ts_us: i64, mut sink: F)
    where
        F: FnMut(&InnerPacket<'_>, &TunnelContext, Origin<'_>),
    {
        let domain = self.ctx.domain_hash(&self.hasher);
        let mut pending = self.defrag.push(f, domain, ts_us, &mut self.counters);
        let mut rounds = 0;
        while let Some(buf) = pending.take() {
            rounds += 1;
            if rounds > MAX_NESTED_REASSEMBLY {
                break;
            }
            let base = self.ctx.clone();
            match self
                .decoder
                .decode_ip(&buf, &mut self.ctx, &mut self.counters)
            {
                Decoded::Packet(p) => sink(
                    &p,
                    &self.ctx,
                    Origin::Reassembled {
                        bytes: &buf,
                        base: &base,
                    },
                ),
                Decoded::Fragment(inner) => {
                    let domain = self.ctx.domain_hash(&self.hasher);
                    pending = self.defrag.push(&inner, domain, ts_us, &mut self.counters);
                }
                Decoded::NotIp => self.counters.non_ip_packets += 1,
                Decoded::Malformed => {}
            }
        }
    }

    /// Datagrams being reassembled and the bytes they hold.
    pub fn defrag_usage(&self) -> (usize, usize) {
        (self.defrag.in_progress(), self.defrag.buffered_bytes())
    }

    /// Sweep at packet time `now_us`: forgets stale fragments.
    pub fn tick(&mut self, now_us: i64) {
        self.defrag.expire(now_us, &mut self.counters);
    }
}

/// The flow stage of one shard.
pub struct Worker {
    flows: FlowTable,
    /// What this worker counted.
    pub counters: Counters,
    out: Vec<Record>,
}

impl Worker {
    /// A worker for the configuration.
    pub fn new(cfg: &PipelineConfig) -> Self {
        Self {
            flows: FlowTable::new(cfg),
            counters: Counters::default(),
            out: Vec::new(),
        }
    }

    /// Accounts one inner packet.
    #[inline]
    pub fn process(&mut self, p: &InnerPacket<'_>, ctx: &TunnelContext, ts_us: i64) {
        self.flows
            .process(p, ctx, ts_us, &mut self.out, &mut self.counters);
    }

    /// Sweep at packet time `now_us`; returns the records of flows that
    /// ended, sorted.
    pub fn tick(&mut self, now_us: i64) -> Vec<Record> {
        self.flows.expire(now_us, &mut self.out, &mut self.counters);
        self.take_sorted()
    }

    /// End of input: every flow ends; returns their records, sorted.
    pub fn finish(&mut self) -> Vec<Record> {
        self.flows.flush(&mut self.out, &mut self.counters);
        self.take_sorted()
    }

    /// The records produced since the last hand-off, sorted, once there
    /// are at least `n` of them; `None` before. The live threads call it
    /// after every receive batch, so records reach the output while still
    /// in the cache and at most about `n` wait for a sweep; `sensor pcap`
    /// hands them over per sweep only, for one sorted order per sweep.
    pub fn take_at_least(&mut self, n: usize) -> Option<Vec<Record>> {
        (self.out.len() >= n).then(|| self.take_sorted())
    }

    /// Flows tracked now.
    pub fn active_flows(&self) -> usize {
        self.flows.len()
    }

    /// The worker's state gauges.
    pub fn gauges(&self) -> crate::metrics::Gauges {
        crate::metrics::Gauges {
            active_flows: self.flows.len() as u64,
            reassembly_bytes: self.flows.reassembly_bytes() as u64,
        }
    }

    fn take_sorted(&mut self) -> Vec<Record> {
        // Sorted in place, then moved into a vector of the exact size: the
        // worker's own buffer keeps its capacity for the next sweep instead
        // of growing again from empty.
        crate::record::sort_records(&mut self.out);
        self.out.drain(..).collect()
    }
}

/// Packet-time sweep boundaries.
#[derive(Debug, Clone)]
pub struct Clock {
    interval_us: i64,
    next_tick_us: Option<i64>,
}

impl Clock {
    /// A clock ticking every `interval` of packet time (at least 1 ms).
    pub fn new(interval: std::time::Duration) -> Self {
        let us = i64::try_from(interval.as_micros())
            .unwrap_or(i64::MAX)
            .max(1_000);
        Self {
            interval_us: us,
            next_tick_us: None,
        }
    }

    /// Advances to a packet's time; returns the tick to run first, if a
    /// boundary was crossed. Time going backwards never ticks.
    pub fn advance(&mut self, ts_us: i64) -> Option<i64> {
        // Nearly every packet stays before the next boundary: no division.
        if self.next_tick_us.is_some_and(|next| ts_us < next) {
            return None;
        }
        let boundary = ts_us.div_euclid(self.interval_us) * self.interval_us;
        let first = self.next_tick_us.is_none();
        self.next_tick_us = Some(boundary.saturating_add(self.interval_us));
        (!first).then_some(boundary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nucleus_proto::{AppRecord, FlowRef, HttpRecord, Proto, TimestampMicros, TlsRecord};
    use proptest::prelude::*;
    use std::time::Duration;

    /// Uids that tie on the first 8 bytes, are prefixes of one another, or
    /// end in a zero byte: the cases where the sort's uid head alone cannot
    /// decide.
    const UIDS: [&str; 7] = [
        "C",
        "C\0",
        "C0",
        "CAAAAAAAAAAAAAAAAAA",
        "CAAAAAAAAAAAAAAAAAB",
        "CAAAAAAA",
        "CAAAAAAAB",
    ];

    /// A record of `kind` (0 flow, 1 HTTP, 2 TLS); `tag` (the source port)
    /// tells equal keys apart, so the result shows whether ties kept their
    /// input order.
    fn record(kind: u8, ts: i64, uid: &str, seq: u64, tag: u16) -> Record {
        let mut flow = crate::record::flow_record(tag);
        flow.ts = TimestampMicros(ts);
        flow.uid = uid.into();
        let flow_ref = FlowRef {
            uid: uid.into(),
            community_id: String::new(),
            proto: Proto(6),
            src_ip: flow.src_ip,
            src_port: tag,
            dst_ip: flow.dst_ip,
            dst_port: 80,
        };
        let ts = TimestampMicros(ts);
        match kind {
            0 => Record::Flow(Box::new(flow)),
            1 => Record::Http(Box::new(AppRecord {
                ts,
                flow: flow_ref,
                seq,
                body: HttpRecord::default(),
            })),
            _ => Record::Tls(Box::new(AppRecord {
                ts,
                flow: flow_ref,
                seq,
                body: TlsRecord::default(),
            })),
        }
    }

    proptest! {
        #[test]
        fn sorted_records_are_in_the_stable_order_of_their_keys(
            specs in proptest::collection::vec((0u8..3, 0i64..4, 0usize..UIDS.len(), 0u64..3), 0..60)
        ) {
            let records: Vec<Record> = specs
                .iter()
                .enumerate()
                .map(|(tag, &(kind, ts, uid, seq))| record(kind, ts, UIDS[uid], seq, tag as u16))
                .collect();
            let mut expected = records.clone();
            expected.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
            let mut sorted = records;
            crate::record::sort_records(&mut sorted);
            prop_assert_eq!(sorted, expected);
        }
    }

    /// The live threads' hand-off: nothing before `n` records are held,
    /// then all of them, sorted, and none stays behind for the sweep.
    #[test]
    fn records_are_handed_off_sorted_once_enough_are_held() {
        let mut w = Worker::new(&PipelineConfig::default());
        w.out
            .extend([record(1, 3, "Cb", 0, 1), record(0, 1, "Ca", 0, 2)]);
        assert!(w.take_at_least(3).is_none());
        assert_eq!(w.out.len(), 2, "held until there are enough");
        w.out.push(record(2, 2, "Cc", 0, 3));
        let mut expected = w.out.clone();
        crate::record::sort_records(&mut expected);
        assert_eq!(w.take_at_least(3), Some(expected));
        assert!(w.out.is_empty());
        assert!(
            w.tick(10_000_000).is_empty(),
            "the sweep has nothing left to send"
        );
    }

    #[test]
    fn clock_ticks_once_per_crossed_boundary() {
        let mut c = Clock::new(Duration::from_secs(1));
        assert_eq!(c.advance(10_500_000), None);
        assert_eq!(c.advance(10_900_000), None);
        assert_eq!(c.advance(11_000_001), Some(11_000_000));
        assert_eq!(c.advance(10_000_000), None);
        assert_eq!(c.advance(15_200_000), Some(15_000_000));
        assert_eq!(c.advance(15_300_000), None);
    }
}

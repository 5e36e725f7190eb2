//! Conversions between the domain records (crate root: what the sensor's
//! pipeline builds and the JSON view serialises) and the wire schema
//! (`crate::pb`, generated from `proto/nucleus.proto`).
//!
//! Owns: the mapping both ways, lossless for every domain value: a value
//! left out of the wire (a Community ID, a duration) is left out only when
//! the receiver recomputes it exactly, and sent otherwise. Inputs: domain
//! records, or wire records from a decoded block. Outputs: the other form.
//! Does not: compress, frame or do I/O (`crate::batch`, `crate::frame`).
//!
//! Times travel as deltas from the record before (`ts_delta_us`), so a
//! record converts within a sequence: [`Encoder`] and [`Decoder`] carry the
//! previous time and the Community ID settings of the block.

mod app;
pub(crate) mod columns;
pub(crate) mod compact;
mod flow;

use crate::community_id::CommunityId;
use crate::{Instance, Record, TimestampMicros, TunnelLayer, pb};
use std::collections::HashMap;
use std::sync::Arc;

/// Most distinct tunnel stacks one block lists; flows past it carry their
/// layers inline.
const MAX_TUNNEL_STACKS: usize = 1024;

/// A wire record that does not make a domain record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// A message that must hold one of its fields holds none.
    #[error("{0} is empty")]
    Missing(&'static str),
    /// An address that is neither 4 nor 16 bytes.
    #[error("{field}: an address of {len} bytes")]
    BadAddress {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
    },
    /// A number too large for its field.
    #[error("{field}: {value} is out of range")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// The value on the wire.
        value: u64,
    },
    /// A column whose length disagrees with the number of flows, or a
    /// sparse column whose gaps run past the last flow.
    #[error("flow column {field} does not fit the block's flows")]
    BadColumn {
        /// The column.
        field: &'static str,
    },
    /// A packed uid that is not 14 bytes below 62^18.
    #[error("a packed uid of the wrong length or value")]
    BadUid,
}

/// One record in its wire form: an element of one of a RecordBlock's
/// per-type lists.
#[derive(Debug, Clone, PartialEq)]
pub enum WireRecord {
    /// `RecordBlock.flows`.
    Flow(pb::Flow),
    /// `RecordBlock.dns`.
    Dns(pb::Dns),
    /// `RecordBlock.http`.
    Http(pb::Http),
    /// `RecordBlock.tls`.
    Tls(pb::Tls),
    /// `RecordBlock.quic`.
    Quic(pb::Quic),
    /// `RecordBlock.ssh`.
    Ssh(pb::Ssh),
}

impl WireRecord {
    /// The record's byte in `RecordBlock.kinds`.
    pub fn kind(&self) -> pb::RecordKind {
        match self {
            WireRecord::Flow(_) => pb::RecordKind::Flow,
            WireRecord::Dns(_) => pb::RecordKind::Dns,
            WireRecord::Http(_) => pb::RecordKind::Http,
            WireRecord::Tls(_) => pb::RecordKind::Tls,
            WireRecord::Quic(_) => pb::RecordKind::Quic,
            WireRecord::Ssh(_) => pb::RecordKind::Ssh,
        }
    }
}

/// Turns domain records into wire records, one after another in block order.
#[derive(Debug, Clone)]
pub struct Encoder {
    community_id: CommunityId,
    prev_ts: i64,
    stacks: Vec<Vec<TunnelLayer>>,
    /// The block's instances in first-use order, and each one's index.
    /// Not capped: there are at most as many as flows in the block.
    instances: Vec<Arc<Instance>>,
    instance_index: HashMap<Arc<Instance>, u32>,
}

impl Encoder {
    /// An encoder for a block whose base time is `base_ts_us`, with the
    /// sensor's Community ID settings.
    pub fn new(community_id: CommunityId, base_ts_us: i64) -> Self {
        Self {
            community_id,
            prev_ts: base_ts_us,
            stacks: Vec::new(),
            instances: Vec::new(),
            instance_index: HashMap::new(),
        }
    }

    /// The instances the encoded flows refer to, for the block's
    /// `instances`.
    pub fn instances(&self) -> Vec<pb::Instance> {
        self.instances
            .iter()
            .map(|i| pb::Instance::from(i.as_ref()))
            .collect()
    }

    /// A flow's `vantage_ref`: 1 + the instance's index, 0 for none.
    fn vantage_ref(&mut self, vantage: Option<&Arc<Instance>>) -> u32 {
        let Some(v) = vantage else {
            return 0;
        };
        if let Some(&i) = self.instance_index.get(v) {
            return i + 1;
        }
        // One instance per flow at most, and a block's flows are counted
        // in a u32 (Batch.record_count): the index fits.
        let i = u32::try_from(self.instances.len()).unwrap_or(u32::MAX - 1);
        self.instances.push(Arc::clone(v));
        self.instance_index.insert(Arc::clone(v), i);
        i + 1
    }

    /// The tunnel stacks the encoded flows refer to, for the block's
    /// `tunnel_stacks`.
    pub fn into_tunnel_stacks(self) -> Vec<pb::TunnelStack> {
        self.stacks
            .iter()
            .map(|s| pb::TunnelStack {
                layers: s.iter().map(pb::TunnelLayer::from).collect(),
            })
            .collect()
    }

    /// A flow's (tunnel_ref, inline layers).
    fn tunnel(&mut self, layers: &[TunnelLayer]) -> (u32, Vec<pb::TunnelLayer>) {
        if layers.is_empty() {
            return (0, Vec::new());
        }
        let i = match self.stacks.iter().position(|s| s == layers) {
            Some(i) => i,
            None if self.stacks.len() < MAX_TUNNEL_STACKS => {
                self.stacks.push(layers.to_vec());
                self.stacks.len() - 1
            }
            None => return (0, layers.iter().map(pb::TunnelLayer::from).collect()),
        };
        (i as u32 + 1, Vec::new())
    }

    /// The wire form of the next record of the block.
    pub fn record(&mut self, r: &Record) -> WireRecord {
        use WireRecord as W;
        match r {
            Record::Flow(f) => W::Flow(flow::encode(self, f)),
            Record::Dns(a) => W::Dns(app::encode_dns(self, a)),
            Record::Http(a) => W::Http(app::encode_http(self, a)),
            Record::Tls(a) => W::Tls(app::encode_tls(self, a)),
            Record::Quic(a) => W::Quic(app::encode_quic(self, a)),
            Record::Ssh(a) => W::Ssh(app::encode_ssh(self, a)),
        }
    }

    /// The delta of `ts` from the previous record's time (wrapping, so
    /// every pair of times has one).
    fn ts_delta(&mut self, ts: TimestampMicros) -> i64 {
        let d = ts.0.wrapping_sub(self.prev_ts);
        self.prev_ts = ts.0;
        d
    }

    /// `Some(id)` when `id` is not the one computed from the tuple.
    fn community_id(&self, id: &str, t: &Tuple) -> Option<String> {
        let computed = t.community_id(&self.community_id);
        (computed != id).then(|| id.to_string())
    }
}

/// Turns wire records back into domain records, in block order.
#[derive(Debug, Clone)]
pub struct Decoder {
    community_id: CommunityId,
    prev_ts: i64,
    stacks: Vec<Vec<TunnelLayer>>,
    instances: Vec<Arc<Instance>>,
}

impl Decoder {
    /// A decoder for a block whose base time is `base_ts_us`, with the
    /// Community ID settings and the tunnel stacks the block names.
    pub fn new(
        community_id: CommunityId,
        base_ts_us: i64,
        stacks: Vec<pb::TunnelStack>,
    ) -> Result<Self, ConvertError> {
        let stacks = stacks
            .into_iter()
            .map(|s| s.layers.into_iter().map(TunnelLayer::try_from).collect())
            .collect::<Result<_, _>>()?;
        Ok(Self {
            community_id,
            prev_ts: base_ts_us,
            stacks,
            instances: Vec::new(),
        })
    }

    /// The block's `instances`, which flows name by `vantage_ref`.
    pub fn with_instances(mut self, instances: Vec<pb::Instance>) -> Self {
        self.instances = instances
            .into_iter()
            .map(|i| Arc::new(Instance::from(i)))
            .collect();
        self
    }

    /// A flow's instance from its `vantage_ref`.
    fn vantage(&self, vantage_ref: u32) -> Result<Option<Arc<Instance>>, ConvertError> {
        let Some(i) = vantage_ref.checked_sub(1) else {
            return Ok(None);
        };
        self.instances
            .get(i as usize)
            .cloned()
            .map(Some)
            .ok_or(ConvertError::OutOfRange {
                field: "vantage_ref",
                value: u64::from(vantage_ref),
            })
    }

    /// A flow's layers from its (tunnel_ref, inline layers).
    fn tunnel(
        &self,
        tunnel_ref: u32,
        inline: Vec<pb::TunnelLayer>,
    ) -> Result<Vec<TunnelLayer>, ConvertError> {
        if tunnel_ref == 0 {
            return inline.into_iter().map(TunnelLayer::try_from).collect();
        }
        self.stacks
            .get(tunnel_ref as usize - 1)
            .cloned()
            .ok_or(ConvertError::OutOfRange {
                field: "tunnel_ref",
                value: u64::from(tunnel_ref),
            })
    }

    /// The domain form of the next record of the block.
    pub fn record(&mut self, w: WireRecord) -> Result<Record, ConvertError> {
        use WireRecord as W;
        Ok(match w {
            W::Flow(f) => Record::Flow(Box::new(flow::decode(self, f)?)),
            W::Dns(a) => Record::Dns(Box::new(app::decode_dns(self, a)?)),
            W::Http(a) => Record::Http(Box::new(app::decode_http(self, a)?)),
            W::Tls(a) => Record::Tls(Box::new(app::decode_tls(self, a)?)),
            W::Quic(a) => Record::Quic(Box::new(app::decode_quic(self, a)?)),
            W::Ssh(a) => Record::Ssh(Box::new(app::decode_ssh(self, a)?)),
        })
    }

    fn ts(&mut self, delta: i64) -> TimestampMicros {
        self.prev_ts = self.prev_ts.wrapping_add(delta);
        TimestampMicros(self.prev_ts)
    }

    fn community_id(&self, sent: Option<String>, t: &Tuple) -> String {
        sent.unwrap_or_else(|| t.community_id(&self.community_id))
    }
}

/// The 5-tuple a Community ID is computed from.
struct Tuple {
    proto: u8,
    src: std::net::IpAddr,
    src_port: u16,
    dst: std::net::IpAddr,
    dst_port: u16,
}

impl Tuple {
    fn community_id(&self, c: &CommunityId) -> String {
        c.compute(self.src, self.dst, self.proto, self.src_port, self.dst_port)
    }
}

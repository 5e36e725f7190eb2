//! Flow tracking: bidirectional flows keyed by tunnel domain and inner
//! 5-tuple, their counters and TCP state, their expiry in packet time, and
//! their records.
//!
//! Owns: the per-worker flow table (capped), duplicate recognition when both
//! ends of a connection are mirrored, Community ID and uid. Input: decoded
//! inner packets with their tunnel context and timestamp. Output: flow
//! records when flows end, and the application records of their payload
//! (`app`: protocol identification, TCP `reassembly`, the dissectors of
//! `crate::dissect`). Does not: read the clock (time is the packet's).

pub mod app;
pub mod community_id;
mod context;
mod index;
pub mod key;
pub mod reassembly;
mod state;
pub mod table;
pub mod tcp_state;
mod to_record;

pub(crate) use state::PortSet;
pub use table::FlowTable;

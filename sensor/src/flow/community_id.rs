//! Community ID v1: the calculator lives in `nucleus-proto`, where the
//! Nucleus's receiver recomputes the IDs the wire leaves out; re-exported
//! here so the flow stage keeps its path.

pub use nucleus_proto::community_id::{CommunityId, icmp_ports};

//! The mirror sensor: decapsulates AWS VPC Traffic Mirroring (VXLAN, GENEVE
//! from a Gateway Load Balancer) and on-premises mirroring (GRE, ERSPAN),
//! tracks flows, and writes activity records.
//!
//! The data path, stage by stage (see ARCHITECTURE.md):
//! [`capture`] → [`decap`] (with [`decap::defrag`]) → [`flow`] → [`record`],
//! wired together by [`runtime`]; [`metrics`] counts everything by reason;
//! [`config`] holds every cap; [`enroll`] turns mirroring on for the
//! instances in scope (control plane, off the data path).

pub mod capture;
pub mod config;
pub mod decap;
pub mod dissect;
pub mod enroll;
pub mod export;
pub mod flow;
pub mod health;
pub mod metrics;
pub mod packet;
pub mod record;
pub mod replay;
pub mod runtime;

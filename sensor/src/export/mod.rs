//! Export: moving records from the pipeline to the Nucleus.
//!
//! `store` keeps sealed batches until the Nucleus acknowledges them: in
//! memory (`memory`) or in a disk spool of segment files (`spool`) that
//! survives a restart or a kill of the sensor.

mod memory;
mod spool;
pub mod store;

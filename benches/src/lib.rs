//! End-to-end benchmark of the mirror sensor against `ndpiReader`.
//!
//! [`capture`] generates the traffic (the same packets with and without
//! the VXLAN layer); [`mod@bench`] runs both programs on it and reports their
//! rates. The binaries `gen-capture` and `pipeline-bench` are thin
//! command-line fronts to these.

pub mod bench;
pub mod capture;

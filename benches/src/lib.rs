//! End-to-end benchmark of the mirror sensor against `ndpiReader`.
//!
//! [`capture`] generates the traffic (the same packets with and without
//! the VXLAN layer); [`mod@bench`] runs both programs on it and reports their
//! rates; [`live`] measures the live appliance's loss-free receive rate
//! against a bare recvmmsg drain; [`wire`] counts the bytes of records on
//! the Nucleus wire. The binaries `gen-capture`, `pipeline-bench`,
//! `live-bench` and `wire-size` are thin command-line fronts to these.

pub mod bench;
pub mod capture;
pub mod live;
pub mod wire;

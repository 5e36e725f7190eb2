//! The wire schema's Rust types, generated at build time from
//! `proto/nucleus.proto` (protox + prost-build). These are the bytes on the
//! wire; the domain types at the crate root are what the pipeline builds
//! and what the JSON view serialises. `crate::convert` maps one to the
//! other.

#![allow(missing_docs)]
#![allow(clippy::all)]

include!(concat!(env!("OUT_DIR"), "/nucleus.v1.rs"));

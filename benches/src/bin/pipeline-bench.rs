//! `pipeline-bench`: placeholder.
fn main() {}

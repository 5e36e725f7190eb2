//! Registered names of DNS numbers: the tables live in `nucleus-proto`
//! (the Nucleus's receiver turns the numbers on the wire back into the
//! same mnemonics); re-exported here with the dissector's own helpers.

pub use nucleus_proto::dns_names::{OPT, known_opcode, opcode, rcode, rtype, rtype_name};

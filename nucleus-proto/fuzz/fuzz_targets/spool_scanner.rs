//! Fuzz target: the spool segment scanner, over one slice and through a
//! window read in pieces whose size the first byte chooses; the two must
//! find the same entries and account for every byte
//! (`nucleus_proto::spool::fuzz_input`). Seeds: `corpus/spool_scanner/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    nucleus_proto::spool::fuzz_input(data);
});

//! Fuzz target: the Nucleus stream decoder (preamble, frames, and every
//! batch opened under small limits) fed in pieces whose size the first
//! byte chooses (`nucleus_proto::frame::fuzz_input`). Seeds:
//! `corpus/frame_decoder/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    nucleus_proto::frame::fuzz_input(data);
});

//! Fuzz target: the SSH dissector (banners, binary packets, KEXINIT) over
//! a sequence of stream chunks and gaps (`sensor::dissect::ssh::fuzz_input`).
//! Seeds: `corpus/ssh/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sensor::dissect::ssh::fuzz_input(data);
});

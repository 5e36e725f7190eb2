//! Fuzz target: the QUIC dissector (long headers, Initial decryption,
//! frames, CRYPTO reassembly, ClientHello) over a sequence of datagrams
//! (`sensor::dissect::quic::fuzz_input`). Seeds: `corpus/quic_initial/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sensor::dissect::quic::fuzz_input(data);
});

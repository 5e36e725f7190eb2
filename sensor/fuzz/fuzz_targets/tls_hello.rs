//! Fuzz target: TLS hello, certificate and record parsing
//! (`sensor::dissect::tls::fuzz_input`). Seeds: `corpus/tls_hello/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sensor::dissect::tls::fuzz_input(data);
});

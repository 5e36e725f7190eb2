//! Fuzz target: the TLS dissector over a client then a server stream
//! (`sensor::dissect::tls::fuzz_records`). Seeds: `corpus/tls_records/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sensor::dissect::tls::fuzz_records(data);
});

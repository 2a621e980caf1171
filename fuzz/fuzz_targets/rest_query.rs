//! Any query string on a REST endpoint: parsing never panics.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chat_protocol::fuzzing::rest_query(data));

//! Any bytes a client sends as a text frame: decoding never panics, and what it accepts
//! carries valid ids.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chat_protocol::fuzzing::client_frame(data));

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| idnode_fuzz::handle_request(data));

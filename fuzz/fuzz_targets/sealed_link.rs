#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sekisho_fuzz::sealed_link(data));

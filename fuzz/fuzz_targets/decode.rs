//! `cargo fuzz run decode`: see `ctreplay_fuzz::decode` for what the input is and what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ctreplay_fuzz::decode(data));

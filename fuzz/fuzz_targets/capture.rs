//! `cargo fuzz run capture`: see `ctreplay_fuzz::capture` for what the input is and what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ctreplay_fuzz::capture(data));

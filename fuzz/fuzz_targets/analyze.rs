//! `cargo fuzz run analyze`: see `ctreplay_fuzz::analyze` for what the input is and what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ctreplay_fuzz::analyze(data));

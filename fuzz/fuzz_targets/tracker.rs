//! `cargo fuzz run tracker`: see `ctreplay_fuzz::tracker` for what the input is and what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ctreplay_fuzz::tracker(data));

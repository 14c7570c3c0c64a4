#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ccd_fuzz::run("spec", data));

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| routerd::fuzzing::backup_archive(data));

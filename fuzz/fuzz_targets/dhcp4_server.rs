#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| routerd::fuzzing::dhcp4_server(data));

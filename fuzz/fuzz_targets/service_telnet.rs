//! The telnet session state machine on arbitrary client bytes, split at fuzzer-chosen sizes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: decnet_fuzz::warm_service("telnet"),
    |data: &[u8]| decnet_fuzz::drive_service("telnet", data)
);

//! The ssh authentication and connection layers on arbitrary decrypted payloads.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| decnet_fuzz::drive_ssh_layers(data));

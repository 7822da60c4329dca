//! The ssh transport (identification, packet framing, KEXINIT, key exchange messages) on
//! arbitrary client bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: decnet_fuzz::warm_ssh_transport(),
    |data: &[u8]| decnet_fuzz::drive_ssh_transport(data)
);

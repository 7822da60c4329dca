//! SSH banner + KEXINIT stream parser (HASSH), client and server side.
#![no_main]

use decnet_dataplane::fingerprint::ssh;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for server in [false, true] {
        if let Ok(Some(hello)) = ssh::parse_stream(data, server)
            && let Some(k) = hello.kexinit
        {
            let _ = k.hassh();
            let _ = k.hassh_server();
        }
    }
    let _ = ssh::parse_kexinit(data);
});

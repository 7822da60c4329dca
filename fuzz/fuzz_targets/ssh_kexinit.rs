//! SSH banner + KEXINIT stream parser (HASSH), client and server side.
#![no_main]

use decnet_dataplane::fingerprint::ssh;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for server in [false, true] {
        // What a stream waits for lies ahead of what it has.
        match ssh::parse_stream_need(data, server) {
            Ok((_, ssh::SshNeed::Len(n) | ssh::SshNeed::LineEnd(n))) => {
                assert!(n > data.len(), "need {n} of {}", data.len());
            }
            Ok((hello, ssh::SshNeed::Nothing)) => {
                assert!(hello.is_some_and(|h| h.kexinit.is_some()));
            }
            Err(_) => {}
        }
        if let Ok(Some(hello)) = ssh::parse_stream(data, server)
            && let Some(k) = hello.kexinit
        {
            let _ = k.hassh();
            let _ = k.hassh_server();
        }
    }
    let _ = ssh::parse_kexinit(data);
});

//! TLS record joining and the ClientHello / ServerHello / Certificate parsers.
#![no_main]

use decnet_dataplane::fingerprint::{der, tls};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(ch) = tls::parse_client_hello(data) {
        let _ = ch.ja3();
        let _ = ch.ja4();
    }
    if let Ok(sh) = tls::parse_server_hello(data) {
        let _ = sh.ja3s();
    }
    if let Ok(certs) = tls::parse_certificate_list(data) {
        for c in certs {
            let _ = der::certificate_summary(c);
        }
    }
    let _ = der::certificate_summary(data);
    if let Ok(hs) = tls::handshake_messages(data) {
        // What a stream waits for lies ahead of what it has (or nothing more comes in clear).
        assert!(
            hs.ended || hs.need > data.len(),
            "need {} of {}",
            hs.need,
            data.len()
        );
        for (_, body) in hs.messages {
            let _ = tls::parse_client_hello(&body);
        }
    }
});

//! RFC 5424 parsing, conversion to an event, and the formatter on what the parser accepted.
#![no_main]

use decnet_dataplane::syslog::{self, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Ok(message) = syslog::rfc5424::parse(data, &limits) {
        let event = message.to_event(0);
        // Whatever the parser accepted, the formatter must write back as valid RFC 5424.
        // Escaping and mined key=value fields can make the line longer than the input.
        let line = decnet_store::rfc5424::format(&event);
        let unbounded = Limits {
            max_message_len: usize::MAX,
            ..limits
        };
        if let Err(e) = syslog::rfc5424::parse(&line, &unbounded) {
            panic!(
                "formatter output rejected ({e}): {}",
                String::from_utf8_lossy(&line)
            );
        }
    }
    // The lenient entry point takes every non-empty input within the size limit.
    match syslog::parse(data, &limits, 0) {
        Ok(parsed) => {
            let _ = parsed.message.to_event(0);
            if let Some(e) = parsed.degraded {
                let _ = (e.kind(), e.to_string());
            }
        }
        Err(e) => assert!(
            data.is_empty() || data.len() > limits.max_message_len,
            "{e}"
        ),
    }
});

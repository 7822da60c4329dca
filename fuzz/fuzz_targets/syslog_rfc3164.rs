//! RFC 3164 parsing, which must accept anything non-empty, for any receive time.
#![no_main]

use decnet_dataplane::syslog::{self, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first 8 bytes choose the receive time, so year inference sees extreme clocks too.
    let (received_ns, line) = match data.split_first_chunk::<8>() {
        Some((head, rest)) => (i64::from_le_bytes(*head), rest),
        None => (0, data),
    };
    let limits = Limits::default();
    match syslog::rfc3164::parse(line, &limits, received_ns) {
        Ok(message) => {
            assert_eq!(message.raw, line);
            let event = message.to_event(received_ns);
            let _ = decnet_store::rfc5424::format(&event);
        }
        Err(e) => assert!(
            line.is_empty() || line.len() > limits.max_message_len,
            "{e}"
        ),
    }
});

//! The segment encoding of events, read back from arbitrary (damaged or hostile) bytes: never a
//! panic, and whatever decodes re-encodes to the same event.
#![no_main]

use decnet_store::codec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = codec::decode(data) {
        let again = codec::decode(&codec::to_bytes(&event)).expect("re-encoded event decodes");
        assert_eq!(again, event);
    }
});

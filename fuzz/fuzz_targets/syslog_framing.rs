//! RFC 6587 / RFC 5425 framing over arbitrary streams cut into arbitrary chunks.
#![no_main]

use decnet_dataplane::syslog::FrameDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Byte 0 sets the frame limit (small, so limits are hit often), byte 1 the chunk size.
    let Some((&[limit, chunk], stream)) = data.split_first_chunk::<2>() else {
        return;
    };
    let max = usize::from(limit) * 4;
    let chunk = usize::from(chunk).max(1);
    let mut decoder = FrameDecoder::new(max);
    for piece in stream.chunks(chunk) {
        decoder.push(piece);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => assert!(frame.len() <= max),
                Ok(None) => break,
                Err(e) if e.is_fatal() => return,
                Err(_) => {}
            }
        }
        // Drained after every push, the decoder holds at most one frame and its count.
        assert!(decoder.buffered() <= max + 32);
    }
    loop {
        match decoder.finish() {
            Ok(Some(frame)) => assert!(frame.len() <= max),
            Ok(None) => break,
            Err(e) if e.is_fatal() => break,
            Err(_) => {}
        }
    }
});

use super::*;

const MAX: usize = 1024;

/// Feeds `stream` split at `cuts`, collecting frames and errors in order.
fn decode_split(stream: &[u8], cuts: &[usize], max: usize) -> Vec<Result<Vec<u8>, FrameError>> {
    let mut decoder = FrameDecoder::new(max);
    let mut out = Vec::new();
    let mut last = 0;
    for &cut in cuts.iter().chain(std::iter::once(&stream.len())) {
        decoder.push(&stream[last..cut]);
        last = cut;
        if drain(&mut decoder, &mut out) {
            return out;
        }
    }
    loop {
        match decoder.finish() {
            Ok(Some(f)) => out.push(Ok(f.to_vec())),
            Ok(None) => break,
            Err(e) => {
                out.push(Err(e));
                break;
            }
        }
    }
    out
}

/// Collects frames until more input is needed; true when a fatal error ended the stream.
fn drain(decoder: &mut FrameDecoder, out: &mut Vec<Result<Vec<u8>, FrameError>>) -> bool {
    loop {
        match decoder.next_frame() {
            Ok(Some(f)) => out.push(Ok(f.to_vec())),
            Ok(None) => return false,
            Err(e) => {
                let fatal = e.is_fatal();
                out.push(Err(e));
                if fatal {
                    return true;
                }
            }
        }
    }
}

fn frames(list: &[&[u8]]) -> Vec<Result<Vec<u8>, FrameError>> {
    list.iter().map(|f| Ok(f.to_vec())).collect()
}

/// Every split of `stream` into two and three chunks gives `expected`.
fn at_every_boundary(stream: &[u8], expected: &[Result<Vec<u8>, FrameError>]) {
    assert_eq!(decode_split(stream, &[], MAX), expected, "whole");
    for i in 0..=stream.len() {
        assert_eq!(decode_split(stream, &[i], MAX), expected, "cut at {i}");
        for j in i..=stream.len() {
            assert_eq!(
                decode_split(stream, &[i, j], MAX),
                expected,
                "cuts at {i},{j}"
            );
        }
    }
    let bytes: Vec<usize> = (1..stream.len()).collect();
    assert_eq!(decode_split(stream, &bytes, MAX), expected, "byte by byte");
}

const A: &[u8] =
    b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - 'su root' failed";
const B: &[u8] = br#"<134>1 2026-04-18T12:00:00.5+00:00 decky-03 redis - auth [relay@55555 src="203.0.113.9" password="hunter2"]"#;

#[test]
fn octet_counting_at_every_byte_boundary() {
    let mut stream = Vec::new();
    encode_octet_counted(A, &mut stream);
    encode_octet_counted(B, &mut stream);
    // A counted frame may hold LF; only the count delimits it.
    encode_octet_counted(b"<13>1 - - - - - - two\nlines", &mut stream);
    at_every_boundary(&stream, &frames(&[A, B, b"<13>1 - - - - - - two\nlines"]));
}

#[test]
fn non_transparent_at_every_byte_boundary() {
    let mut stream = Vec::new();
    for line in [A, B] {
        stream.extend_from_slice(line);
        stream.push(b'\n');
    }
    stream.extend_from_slice(b"<13>crlf line\r\n\n\nunterminated tail");
    at_every_boundary(
        &stream,
        &frames(&[A, B, b"<13>crlf line", b"unterminated tail"]),
    );
}

#[test]
fn detection_uses_the_first_byte() {
    let mut d = FrameDecoder::new(MAX);
    assert_eq!(d.framing(), None);
    d.push(b"\r\n");
    assert_eq!(d.next_frame(), Ok(None));
    assert_eq!(d.framing(), None);
    d.push(b"5 hello");
    assert_eq!(d.next_frame(), Ok(Some(&b"hello"[..])));
    assert_eq!(d.framing(), Some(Framing::OctetCounting));

    let mut d = FrameDecoder::new(MAX);
    d.push(b"Use the BFG!\n");
    assert_eq!(d.next_frame(), Ok(Some(&b"Use the BFG!"[..])));
    assert_eq!(d.framing(), Some(Framing::NonTransparent));
    // Detected once per connection: a later digit does not switch framing.
    d.push(b"5 hello\n");
    assert_eq!(d.next_frame(), Ok(Some(&b"5 hello"[..])));
}

#[test]
fn octet_counting_tolerates_lf_between_frames() {
    assert_eq!(
        decode_split(b"5 hello\n5 world\n", &[], MAX),
        frames(&[b"hello", b"world"])
    );
}

#[test]
fn bad_counts_are_fatal() {
    let fatal = |stream: &[u8], e: FrameError| {
        assert_eq!(
            decode_split(stream, &[], MAX),
            [Err(e.clone())],
            "{stream:?}"
        );
        // And the decoder stays failed.
        let mut d = FrameDecoder::new(MAX);
        d.push(stream);
        assert_eq!(d.next_frame(), Err(e.clone()));
        d.push(b"5 hello");
        assert_eq!(d.next_frame(), Err(e.clone()));
        assert_eq!(d.finish(), Err(e));
        assert_eq!(d.buffered(), 0);
    };
    fatal(b"0 ", FrameError::ZeroLength);
    fatal(b"05 hello", FrameError::LeadingZero);
    fatal(b"00 ", FrameError::LeadingZero);
    fatal(b"5x hello", FrameError::BadCount(b'x'));
    fatal(b"5\nhello", FrameError::BadCount(b'\n'));
    fatal(b"0\n", FrameError::BadCount(b'\n'));
    fatal(b"12345 ", FrameError::CountTooLong { max: MAX });
    // After a good frame, a frame without a count.
    assert_eq!(
        decode_split(b"5 hello<13>1 - - - - - -", &[], MAX),
        [Ok(b"hello".to_vec()), Err(FrameError::BadCount(b'<'))]
    );
}

#[test]
fn huge_counts_fail_before_buffering() {
    let max = 1024;
    // 4 digits are enough for 1024; the fifth digit is rejected without waiting for more.
    let mut d = FrameDecoder::new(max);
    d.push(b"99999");
    assert_eq!(d.next_frame(), Err(FrameError::CountTooLong { max }));
    let mut d = FrameDecoder::new(max);
    d.push(b"1025 ");
    assert_eq!(
        d.next_frame(),
        Err(FrameError::FrameTooLarge { len: 1025, max })
    );
    let mut d = FrameDecoder::new(max);
    d.push(b"1024");
    assert_eq!(d.next_frame(), Ok(None));
    d.push(b" ");
    assert_eq!(d.next_frame(), Ok(None));
    let mut d = FrameDecoder::new(usize::MAX);
    d.push(b"99999999999999999999999999 ");
    assert_eq!(
        d.next_frame(),
        Err(FrameError::CountTooLong { max: usize::MAX })
    );
    let mut d = FrameDecoder::new(usize::MAX);
    d.push(b"99999999999999999999 ");
    assert_eq!(
        d.next_frame(),
        Err(FrameError::CountTooLong { max: usize::MAX })
    );
}

#[test]
fn counted_frame_cut_by_close() {
    assert_eq!(
        decode_split(b"10 hello", &[3], MAX),
        [Err(FrameError::Truncated { buffered: 8 })]
    );
    assert_eq!(
        decode_split(b"5 hello12", &[], MAX),
        [
            Ok(b"hello".to_vec()),
            Err(FrameError::Truncated { buffered: 2 })
        ]
    );
}

#[test]
fn long_lines_are_skipped_to_the_next_lf() {
    let max = 8;
    let stream = b"<1>short\n<1>this line is too long\n<1>ok\n";
    let expected = vec![
        Ok(b"<1>short".to_vec()),
        Err(FrameError::LineTooLong { max }),
        Ok(b"<1>ok".to_vec()),
    ];
    assert_eq!(decode_split(stream, &[], max), expected);
    for i in 0..=stream.len() {
        let bytes: Vec<usize> = (i..stream.len()).collect();
        assert_eq!(
            decode_split(stream, &bytes, max),
            expected,
            "from {i} byte by byte"
        );
    }
    // A line of exactly the limit, with CRLF, is fine.
    assert_eq!(
        decode_split(b"<1>45678\r\n", &[], max),
        frames(&[b"<1>45678"])
    );
    assert_eq!(
        decode_split(b"<1>tail too long", &[], max),
        [Err(FrameError::LineTooLong { max })]
    );
}

#[test]
fn undrained_pushes_overflow() {
    let mut d = FrameDecoder::new(16);
    d.push(b"<1>");
    for _ in 0..10 {
        d.push(b"xxxxxxxx");
    }
    assert!(matches!(d.next_frame(), Err(FrameError::Overflow { .. })));
    assert_eq!(d.buffered(), 0);
}

#[test]
fn empty_input() {
    assert_eq!(decode_split(b"", &[], MAX), []);
    let mut d = FrameDecoder::new(MAX);
    d.push(b"");
    assert_eq!(d.next_frame(), Ok(None));
    assert_eq!(d.finish(), Ok(None));
}

#[test]
fn errors_have_labels() {
    assert_eq!(FrameError::LeadingZero.kind(), "leading_zero");
    assert!(!FrameError::LineTooLong { max: 1 }.is_fatal());
    assert!(FrameError::ZeroLength.is_fatal());
}

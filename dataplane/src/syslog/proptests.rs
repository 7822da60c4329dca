//! Properties over arbitrary input: no panics anywhere, and formatter and parser agree.

use std::net::IpAddr;

use decnet_store::{Event, Severity};
use proptest::prelude::*;

use super::*;

const NOW: i64 = 1_776_513_600_000_000_000;

/// Keys the parser lifts into address members; normal-form events carry them only when the
/// member is set (see `normal_event`).
const ADDRESS_KEYS: [&str; 10] = [
    "src_ip",
    "src",
    "client_ip",
    "remote_ip",
    "remote_addr",
    "target_ip",
    "ip",
    "src_port",
    "dst_ip",
    "dst_port",
];

fn header_value(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[!-~]{{0,{max}}}"))
        .unwrap()
        .prop_filter("'-' is NILVALUE", |s| s != "-")
}

fn field_name() -> impl Strategy<Value = String> {
    "[A-Za-z_][A-Za-z0-9_.@-]{0,31}"
        .prop_filter("address keys are lifted", |k| {
            !ADDRESS_KEYS.contains(&k.as_str())
        })
        .prop_filter("msg is MSG", |k| k != MSG_FIELD)
}

/// Any single-line text, including the characters SD values must escape and NUL (the
/// formatter turns CR/LF into spaces so line-framed transports stay safe).
fn value() -> impl Strategy<Value = String> {
    "[^\r\n]{0,40}"
}

fn severity() -> impl Strategy<Value = Severity> {
    (0u8..8).prop_map(|c| Severity::from_code(c).unwrap_or(Severity::Debug))
}

/// Events in the form parsing produces: address members are also present as fields, kinds are
/// set (an empty kind asks the parser to mine MSG for `key=value`), a non-empty `msg` is last.
fn normal_event() -> impl Strategy<Value = Event> {
    (
        -4_000_000_000_000_000_000i64..4_000_000_000_000_000_000,
        header_value(255),
        header_value(48),
        header_value(32).prop_filter("kind is set", |k| !k.is_empty()),
        severity(),
        (
            any::<Option<IpAddr>>(),
            any::<Option<u16>>(),
            any::<Option<IpAddr>>(),
            any::<Option<u16>>(),
        ),
        proptest::collection::vec((field_name(), value()), 0..12),
        proptest::option::of("[^\r\n]{1,80}"),
    )
        .prop_map(|(ts, decky, service, kind, sev, addrs, fields, msg)| {
            let mut e = Event::new(ts, decky, service, kind, sev);
            let (src_ip, src_port, dst_ip, dst_port) = addrs;
            e.src_ip = src_ip;
            e.src_port = src_port;
            e.dst_ip = dst_ip;
            e.dst_port = dst_port;
            let addresses = [
                ("src_ip", src_ip.map(|v| v.to_string())),
                ("src_port", src_port.map(|v| v.to_string())),
                ("dst_ip", dst_ip.map(|v| v.to_string())),
                ("dst_port", dst_port.map(|v| v.to_string())),
            ];
            for (key, v) in addresses {
                if let Some(v) = v {
                    e.push_field(key, &v).unwrap();
                }
            }
            for (k, v) in &fields {
                e.push_field(k, v).unwrap();
            }
            if let Some(msg) = msg {
                e.push_field(MSG_FIELD, &msg).unwrap();
            }
            e
        })
}

/// Any event at all, with field names that clash, need sanitising, or name addresses.
fn any_event() -> impl Strategy<Value = Event> {
    (
        -4_000_000_000_000_000_000i64..4_000_000_000_000_000_000,
        ".{0,300}",
        ".{0,60}",
        ".{1,40}".prop_filter("kind is set", |k| k != "-"),
        severity(),
        any::<(Option<IpAddr>, Option<u16>, Option<IpAddr>, Option<u16>)>(),
        proptest::collection::vec(
            (
                prop_oneof![
                    "[^\n]{1,16}",
                    proptest::sample::select(&ADDRESS_KEYS[..]).prop_map(str::to_owned),
                    Just(MSG_FIELD.to_owned()),
                ],
                prop_oneof![value(), any::<IpAddr>().prop_map(|ip| ip.to_string())],
            ),
            0..40,
        ),
    )
        .prop_map(|(ts, decky, service, kind, sev, addrs, fields)| {
            let mut e = Event::new(ts, decky, service, kind, sev);
            (e.src_ip, e.src_port, e.dst_ip, e.dst_port) = addrs;
            for (k, v) in &fields {
                e.push_field(k, v).unwrap();
            }
            e
        })
}

fn reparse(line: &[u8]) -> Event {
    rfc5424::parse(line, &Limits::default())
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(line)))
        .to_event(NOW)
}

/// Feeds `stream` in chunks of the given sizes (cycled), then finishes.
/// The borrowed path the intake takes encodes exactly what the owned event encodes to.
fn draft_encodes_like_the_event(bytes: &[u8], limits: &Limits) -> Result<(), TestCaseError> {
    if let Ok(parsed) = parse(bytes, limits, NOW) {
        let owned = decnet_store::codec::to_bytes(&parsed.message.to_event(NOW));
        let drafted = parsed.message.with_draft(NOW, encode_draft);
        prop_assert_eq!(drafted.as_bytes(), owned.as_slice());
    }
    Ok(())
}

fn decode(stream: &[u8], sizes: &[usize], max: usize) -> Vec<Result<Vec<u8>, FrameError>> {
    let mut decoder = FrameDecoder::new(max);
    let mut out = Vec::new();
    let mut rest = stream;
    let mut sizes = sizes.iter().copied().cycle();
    let pull = |decoder: &mut FrameDecoder, out: &mut Vec<_>, at_end: bool| loop {
        let next = if at_end {
            decoder.finish()
        } else {
            decoder.next_frame()
        };
        match next {
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
    };
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
        decoder.push(&rest[..n]);
        rest = &rest[n..];
        if pull(&mut decoder, &mut out, false) {
            return out;
        }
        assert!(decoder.buffered() <= max + 32);
    }
    pull(&mut decoder, &mut out, true);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let limits = Limits::default();
        if let Ok(parsed) = parse(&bytes, &limits, NOW) {
            let event = parsed.message.to_event(NOW);
            prop_assert_eq!(event.raw(), &bytes[..bytes.len().min(decnet_store::MAX_RAW_BYTES)]);
            let _ = decnet_store::rfc5424::format(&event);
        }
        let _ = rfc5424::parse(&bytes, &limits);
        let _ = rfc3164::parse(&bytes, &limits, NOW);
        draft_encodes_like_the_event(&bytes, &limits)?;
    }

    #[test]
    fn parsing_near_valid_bytes_never_panics(
        prefix in prop_oneof![
            Just(&b"<134>1 "[..]),
            Just(&b"<134>1 2026-04-18T12:00:00.5+00:00 d s - k "[..]),
            Just(&b"<134>1 - d s - k [relay@55555 "[..]),
            Just(&b"<13>Oct 11 22:14:15 "[..]),
        ],
        tail in proptest::collection::vec(
            prop_oneof![
                any::<u8>(),
                proptest::sample::select(&b" []=\"\\-:.+0123456789TZ"[..]),
            ],
            0..200,
        ),
    ) {
        let bytes = [prefix, &tail].concat();
        let limits = Limits { max_sd_elements: 4, max_sd_params: 8, ..Limits::default() };
        draft_encodes_like_the_event(&bytes, &limits)?;
        if let Ok(parsed) = parse(&bytes, &limits, NOW) {
            let _ = parsed.message.to_event(NOW);
            if let Some(e) = parsed.degraded {
                prop_assert!(!e.kind().is_empty());
                prop_assert!(!e.to_string().is_empty());
            }
        }
    }

    #[test]
    fn format_then_parse_returns_the_event(event in normal_event()) {
        let line = decnet_store::rfc5424::format(&event);
        let back = reparse(&line);
        let mut expected = event.clone();
        expected.ts_ns = event.ts_ns.div_euclid(1_000) * 1_000;
        expected.set_raw(&line);
        prop_assert_eq!(back, expected);
    }

    #[test]
    fn formatting_any_event_parses_and_is_stable(event in any_event()) {
        let first = decnet_store::rfc5424::format(&event);
        let once = reparse(&first);
        let second = decnet_store::rfc5424::format(&once);
        prop_assert_eq!(String::from_utf8_lossy(&second), String::from_utf8_lossy(&first));
        prop_assert_eq!(once.severity, event.severity);
        prop_assert_eq!(once.ts_ns, event.ts_ns.div_euclid(1_000) * 1_000);
        for (got, want) in [(once.src_ip, event.src_ip), (once.dst_ip, event.dst_ip)] {
            if want.is_some() {
                prop_assert_eq!(got, want);
            }
        }
        for (got, want) in [(once.src_port, event.src_port), (once.dst_port, event.dst_port)] {
            if want.is_some() {
                prop_assert_eq!(got, want);
            }
        }
    }

    #[test]
    fn the_store_emitter_output_parses(event in any_event()) {
        // Services emit through `decnet_store::rfc5424::format`; the intake must read all of it.
        let line = decnet_store::rfc5424::format(&event);
        draft_encodes_like_the_event(&line, &Limits::default())?;
        let back = reparse(&line);
        prop_assert_eq!(back.severity, event.severity);
        prop_assert_eq!(back.ts_ns, event.ts_ns.div_euclid(1_000) * 1_000);
        for (got, want) in [(back.src_ip, event.src_ip), (back.dst_ip, event.dst_ip)] {
            if want.is_some() {
                prop_assert_eq!(got, want);
            }
        }
        for (got, want) in [(back.src_port, event.src_port), (back.dst_port, event.dst_port)] {
            if want.is_some() {
                prop_assert_eq!(got, want);
            }
        }
    }

    #[test]
    fn octet_counted_frames_survive_any_chunking(
        messages in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..300), 0..8),
        sizes in proptest::collection::vec(1usize..64, 1..8),
    ) {
        let mut stream = Vec::new();
        for m in &messages {
            framing::encode_octet_counted(m, &mut stream);
        }
        let expected: Vec<_> = messages.into_iter().map(Ok).collect();
        prop_assert_eq!(decode(&stream, &sizes, 300), expected);
    }

    #[test]
    fn lf_frames_survive_any_chunking(
        messages in proptest::collection::vec("<[0-9]{1,3}>[^\r\n]{0,200}", 0..8),
        sizes in proptest::collection::vec(1usize..64, 1..8),
        crlf in any::<bool>(),
    ) {
        let trailer: &[u8] = if crlf { b"\r\n" } else { b"\n" };
        let stream: Vec<u8> = messages.iter().flat_map(|m| [m.as_bytes(), trailer].concat()).collect();
        let expected: Vec<_> = messages.into_iter().map(|m| Ok(m.into_bytes())).collect();
        prop_assert_eq!(decode(&stream, &sizes, 1024), expected);
    }

    #[test]
    fn framing_arbitrary_bytes_never_panics(
        stream in proptest::collection::vec(any::<u8>(), 0..2000),
        sizes in proptest::collection::vec(1usize..300, 1..8),
        max in 0usize..400,
    ) {
        for frame in decode(&stream, &sizes, max).into_iter().flatten() {
            prop_assert!(frame.len() <= max);
        }
    }
}

/// `EventDraft::encode` as a function generic over the draft's lifetime (a method path is
/// not, so it cannot be passed to `with_draft`).
pub(super) fn encode_draft(d: &decnet_store::EventDraft<'_>) -> decnet_store::codec::Encoded {
    d.encode()
}

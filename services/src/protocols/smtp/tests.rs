use proptest::prelude::*;
use sha2::{Digest, Sha256};

use super::*;
use crate::protocols::sasl::b64_encode;

fn server(relay: bool, extra: &[(&str, &str)]) -> Smtp {
    let mut pairs = vec![("NODE_NAME", "mx01"), ("HOSTNAME", "mx01.corp.local")];
    pairs.extend_from_slice(extra);
    Smtp::from_persona(&Persona::from_pairs(&pairs), relay)
}

fn session(relay: bool, extra: &[(&str, &str)]) -> SmtpSession {
    let mut s = server(relay, extra).session_seeded(7);
    let mut step = Step::default();
    s.start(&mut step);
    assert_eq!(
        step.out,
        b"220 mx01.corp.local ESMTP Postfix (Debian/GNU)\r\n"
    );
    s
}

fn drive(s: &mut SmtpSession, input: &[u8]) -> Step {
    let mut step = Step::default();
    s.receive(input, &mut step);
    step
}

fn text(step: &Step) -> String {
    String::from_utf8_lossy(&step.out).into_owned()
}

const EHLO: &str = "250-mx01.corp.local\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n\
                    250-ETRN\r\n250-AUTH PLAIN LOGIN\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n\
                    250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n";
const AUTH_FAILED: &str = "535 5.7.8 Error: authentication failed: authentication failure\r\n";

#[test]
fn greeting_ehlo_and_overrides() {
    let mut s = session(false, &[]);
    let step = drive(&mut s, b"ehlo attacker.example\r\nHELO x y\r\n");
    assert_eq!(text(&step), format!("{EHLO}250 mx01.corp.local\r\n"));
    assert_eq!(step.events[0].kind, "ehlo");
    assert_eq!(step.events[0].field("domain"), Some("attacker.example"));
    assert_eq!(step.events[1].field("domain"), Some("x y"));
    let custom = server(
        false,
        &[
            ("SMTP_MTA", "mail.acme.io"),
            ("SMTP_BANNER", "220 mail.acme.io ESMTP"),
        ],
    );
    let mut s = custom.session_seeded(1);
    let mut step = Step::default();
    s.start(&mut step);
    assert_eq!(step.out, b"220 mail.acme.io ESMTP\r\n");
    let step = drive(&mut s, b"HELO a\r\n");
    assert_eq!(step.out, b"250 mail.acme.io\r\n");
    for (distro, banner) in [
        ("ubuntu22", "220 mx01.corp.local ESMTP Postfix (Ubuntu)\r\n"),
        ("rocky9", "220 mx01.corp.local ESMTP Postfix\r\n"),
    ] {
        let mut s = server(false, &[("DISTRO", distro)]).session_seeded(1);
        let mut step = Step::default();
        s.start(&mut step);
        assert_eq!(String::from_utf8(step.out).unwrap(), banner);
    }
}

#[test]
fn smtplib_login_tries_plain_then_login_and_both_are_captured() {
    // smtplib.login(): AUTH PLAIN with an initial response, then AUTH LOGIN on failure.
    let mut s = session(false, &[]);
    drive(&mut s, b"ehlo attacker.example\r\n");
    let plain = b64_encode(b"\0admin\0Summer2024!");
    let step = drive(&mut s, format!("AUTH PLAIN {plain}\r\n").as_bytes());
    assert_eq!(text(&step), AUTH_FAILED);
    let ev = &step.events[0];
    assert_eq!(ev.kind, "auth_attempt");
    assert_eq!(ev.severity, Severity::Warning);
    assert_eq!(
        ev.fields,
        [
            ("username".into(), "admin".into()),
            ("password".into(), "Summer2024!".into()),
            ("mechanism".into(), "PLAIN".into()),
            ("success".into(), "false".into())
        ]
    );
    let step = drive(
        &mut s,
        format!("AUTH LOGIN {}\r\n", b64_encode(b"admin")).as_bytes(),
    );
    assert_eq!(text(&step), "334 UGFzc3dvcmQ6\r\n");
    let step = drive(&mut s, format!("{}\r\n", b64_encode(b"hunter2")).as_bytes());
    assert_eq!(text(&step), AUTH_FAILED);
    assert_eq!(step.events[0].field("username"), Some("admin"));
    assert_eq!(step.events[0].field("password"), Some("hunter2"));
    assert_eq!(step.events[0].field("mechanism"), Some("LOGIN"));
}

#[test]
fn auth_continuations_and_aborts() {
    let mut s = session(false, &[]);
    let step = drive(
        &mut s,
        format!(
            "EHLO x\r\nAUTH PLAIN\r\n{}\r\nAUTH LOGIN\r\n{}\r\n{}\r\nAUTH LOGIN\r\n*\r\nAUTH CRAM-MD5\r\nAUTH PLAIN !!!\r\nAUTH\r\n",
            b64_encode(b"boss\0boss\0pw1"),
            b64_encode(b"root"),
            b64_encode(b"toor"),
        )
        .as_bytes(),
    );
    assert_eq!(
        text(&step),
        format!(
            "{EHLO}334 \r\n{AUTH_FAILED}334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n{AUTH_FAILED}\
             334 VXNlcm5hbWU6\r\n501 5.7.0 Authentication aborted\r\n\
             535 5.7.8 Error: authentication failed: Invalid authentication mechanism\r\n\
             535 5.7.8 Error: authentication failed: Invalid base64 data in initial response\r\n\
             501 5.5.4 Syntax: AUTH mechanism\r\n"
        )
    );
    let attempts: Vec<_> = step
        .events
        .iter()
        .filter(|e| e.kind == "auth_attempt")
        .collect();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].field("authzid"), Some("boss"));
    assert_eq!(attempts[1].field("password"), Some("toor"));
}

#[test]
fn relay_is_denied_but_local_mail_is_taken() {
    let mut s = session(false, &[]);
    let step = drive(
        &mut s,
        b"ehlo x\r\nmail FROM:<spam@evil.example> size=120\r\nrcpt TO:<victim@gmail.com>\r\ndata\r\nrset\r\n",
    );
    assert_eq!(
        text(&step),
        format!(
            "{EHLO}250 2.1.0 Ok\r\n454 4.7.1 <victim@gmail.com>: Relay access denied\r\n\
             554 5.5.1 Error: no valid recipients\r\n250 2.0.0 Ok\r\n"
        )
    );
    let kinds: Vec<_> = step.events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["ehlo", "mail_from", "rcpt_denied", "data_rejected"]);
    assert_eq!(step.events[1].field("address"), Some("spam@evil.example"));
    assert_eq!(step.events[2].field("address"), Some("victim@gmail.com"));
    let step = drive(
        &mut s,
        b"MAIL FROM:<a@b.c>\r\nRCPT TO:<nosuch@mx01.corp.local>\r\nRCPT TO:<Postmaster@MX01.corp.local>\r\nDATA\r\nSubject: hello\r\n\r\nhi\r\n.\r\n",
    );
    assert_eq!(
        text(&step),
        "250 2.1.0 Ok\r\n550 5.1.1 <nosuch@mx01.corp.local>: Recipient address rejected: User \
         unknown in local recipient table\r\n250 2.1.5 Ok\r\n\
         354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: queued as 6AA8F8BB1E\r\n"
    );
    let accepted = step.events.last().unwrap();
    assert_eq!(accepted.kind, "message_accepted");
    assert_eq!(accepted.field("subject"), Some("hello"));
    assert_eq!(
        accepted.field("stored_as"),
        Some(""),
        "no quarantine configured"
    );
    assert!(step.artifacts.is_empty());
}

#[test]
fn vrfy_etrn_and_protocol_errors_read_like_postfix() {
    let mut s = session(false, &[]);
    let step = drive(
        &mut s,
        b"VRFY root\r\nVRFY <bob@mx01.corp.local>\r\nVRFY x@y.z\r\nVRFY\r\nETRN\r\nETRN example.com\r\n\
          RCPT TO:<a@b>\r\nDATA\r\nMAIL FROM:a@b\r\nMAIL FROM:<c@d>\r\nMAIL FROM:<e@f> SIZE=99999999\r\n\
          RSET\r\nMAIL FROM:<e@f> XYZ=1\r\nMAIL TO:<x>\r\nRCPT TO:<>\r\nFOO bar\r\n\r\nSTARTTLS\r\nNOOP\r\nQUIT\r\n",
    );
    assert_eq!(
        text(&step),
        "252 2.0.0 root\r\n\
         550 5.1.1 <bob@mx01.corp.local>: Recipient address rejected: User unknown in local recipient table\r\n\
         454 4.7.1 <x@y.z>: Relay access denied\r\n501 5.5.4 Syntax: VRFY address\r\n\
         500 Syntax: ETRN domain\r\n459 <example.com>: service unavailable\r\n\
         503 5.5.1 Error: need MAIL command\r\n503 5.5.1 Error: need RCPT command\r\n\
         250 2.1.0 Ok\r\n503 5.5.1 Error: nested MAIL command\r\n503 5.5.1 Error: nested MAIL command\r\n\
         250 2.0.0 Ok\r\n555 5.5.4 Unsupported option: XYZ=1\r\n\
         501 5.5.4 Syntax: MAIL FROM:<address>\r\n503 5.5.1 Error: need MAIL command\r\n\
         502 5.5.2 Error: command not recognized\r\n500 5.5.2 Error: bad syntax\r\n\
         502 5.5.1 Error: command not implemented\r\n250 2.0.0 Ok\r\n221 2.0.0 Bye\r\n"
    );
    assert!(step.close);
    let unknown = step
        .events
        .iter()
        .find(|e| e.kind == "unknown_command")
        .unwrap();
    assert_eq!(unknown.field("command"), Some("FOO bar"));
    let vrfy: Vec<_> = step.events.iter().filter(|e| e.kind == "vrfy").collect();
    assert_eq!(vrfy[0].field("exists"), Some("true"));
    let mut s = session(false, &[]);
    let step = drive(&mut s, b"MAIL FROM:<e@f> SIZE=99999999\r\n");
    assert_eq!(
        text(&step),
        "552 5.3.4 Message size exceeds fixed limit\r\n"
    );
}

#[test]
fn smtp_relay_accepts_auth_and_any_recipient_and_quarantines() {
    let mut s = session(true, &[("QUARANTINE_DIR", "/q")]);
    let plain = b64_encode(b"\0relay@corp.local\0p4ss");
    let body = "From: Billing <billing@paypa1.example>\r\nSubject: Your account is on hold\r\n\r\n\
                Click http://203.0.113.7/login\r\n..dot line\r\n.\r\n";
    let step = drive(
        &mut s,
        format!(
            "EHLO bulk.example\r\nAUTH PLAIN {plain}\r\nMAIL FROM:<billing@paypa1.example>\r\n\
             RCPT TO:<a@gmail.com>\r\nRCPT TO:<b@yahoo.com> NOTIFY=NEVER\r\nDATA\r\n{body}QUIT\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(
        text(&step),
        format!(
            "{EHLO}235 2.7.0 Authentication successful\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n\
             250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n\
             250 2.0.0 Ok: queued as 6AA8F8BB1E\r\n221 2.0.0 Bye\r\n"
        )
    );
    let stored =
        b"From: Billing <billing@paypa1.example>\r\nSubject: Your account is on hold\r\n\r\n\
                   Click http://203.0.113.7/login\r\n.dot line\r\n";
    let sha = hex(&Sha256::digest(stored));
    let auth = step
        .events
        .iter()
        .find(|e| e.kind == "auth_attempt")
        .unwrap();
    assert_eq!(auth.field("success"), Some("true"));
    let accepted = step
        .events
        .iter()
        .find(|e| e.kind == "message_accepted")
        .unwrap();
    assert_eq!(
        accepted.fields,
        [
            ("mail_from".into(), "billing@paypa1.example".into()),
            ("rcpt_to".into(), "a@gmail.com,b@yahoo.com".into()),
            ("rcpt_count".into(), "2".into()),
            ("size".into(), stored.len().to_string()),
            ("sha256".into(), sha.clone()),
            ("subject".into(), "Your account is on hold".into()),
            ("queue_id".into(), "6AA8F8BB1E".into()),
            ("stored_as".into(), format!("{sha}.eml")),
        ]
    );
    assert_eq!(step.artifacts.len(), 1);
    assert_eq!(step.artifacts[0].name, format!("{sha}.eml"));
    assert_eq!(step.artifacts[0].bytes, stored);
    let step = drive(&mut session(true, &[]), b"EHLO x\r\nAUTH PLAIN =\r\n");
    assert!(
        text(&step).ends_with(AUTH_FAILED),
        "an empty PLAIN message is malformed"
    );
}

#[test]
fn bdat_chunks_are_assembled() {
    let mut s = session(true, &[]);
    let step = drive(
        &mut s,
        b"EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nBDAT 7\r\nSubjectRCPT TO:<g@h.i>\r\n\
          BDAT 6 LAST\r\n: hi\r\nBDAT 0 LAST\r\nBDAT 0\r\nBDAT 5 X\r\nNOOP\r\n",
    );
    assert!(
        text(&step).ends_with(
            "250 2.0.0 Ok: 7 bytes\r\n503 5.5.1 Error: RCPT after BDAT\r\n\
             250 2.0.0 Ok: queued as 6AA8F8BB1E\r\n503 5.5.1 Error: need RCPT command\r\n\
             551 5.7.1 Null BDAT request\r\n501 5.5.4 Syntax: BDAT count [LAST]\r\n\
             250 2.0.0 Ok\r\n"
        ),
        "{}",
        text(&step)
    );
    let accepted = step
        .events
        .iter()
        .find(|e| e.kind == "message_accepted")
        .unwrap();
    assert_eq!(accepted.field("size"), Some("13"));
    assert_eq!(accepted.field("subject"), Some("hi"));
    let step = drive(&mut s, b"BDAT x\r\n");
    assert_eq!(text(&step), "521 5.5.4 Syntax: BDAT count [LAST]\r\n");
    assert!(step.close);
}

#[test]
fn errors_slow_down_then_hang_up() {
    let mut s = session(false, &[]);
    let step = drive(&mut s, &b"XXXX\r\n".repeat(9));
    assert_eq!(step.delay, None);
    let step = drive(&mut s, b"XXXX\r\nXXXX\r\n");
    assert_eq!(
        step.delay,
        Some(Duration::from_secs(1)),
        "the 11th reply waits"
    );
    let mut rest = Step::default();
    s.receive(&b"XXXX\r\n".repeat(20), &mut rest);
    assert!(text(&rest).ends_with("421 4.7.0 mx01.corp.local Error: too many errors\r\n"));
    assert_eq!(text(&rest).matches("502 5.5.2").count(), 9);
    assert!(rest.close);
}

#[test]
fn http_and_headers_as_commands_end_the_session() {
    for probe in [
        &b"GET / HTTP/1.0\r\n"[..],
        b"Subject: hi\r\n",
        b"CONNECT a:443 HTTP/1.1\r\n",
    ] {
        let mut s = session(false, &[]);
        let step = drive(&mut s, probe);
        assert_eq!(
            text(&step),
            "221 2.7.0 Error: I can break rules, too. Goodbye.\r\n"
        );
        assert!(step.close);
        assert_eq!(step.events[0].kind, "unknown_command");
    }
}

#[test]
fn hostile_lines() {
    let mut s = session(false, &[]);
    let mut long = b"NOOP ".to_vec();
    long.extend(std::iter::repeat_n(b'x', 5000));
    long.extend_from_slice(b"\r\nNOOP\r\n");
    let step = drive(&mut s, &long);
    assert_eq!(
        text(&step),
        "250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n",
        "cut at 2048, not lost"
    );
    let step = drive(&mut s, b"\xff\xfe\x00\x01\r\n\x16\x03\x01\x00\r\n");
    assert_eq!(
        text(&step),
        "500 5.5.2 Error: bad UTF-8 syntax\r\n502 5.5.2 Error: command not recognized\r\n"
    );
}

#[test]
fn recipients_and_messages_are_bounded() {
    let mut s = session(true, &[]);
    let mut input = b"EHLO x\r\nMAIL FROM:<a@b>\r\n".to_vec();
    for i in 0..=MAX_RECIPIENTS {
        input.extend_from_slice(format!("RCPT TO:<u{i}@x.y>\r\n").as_bytes());
    }
    let step = drive(&mut s, &input);
    assert!(text(&step).ends_with("250 2.1.5 Ok\r\n452 4.5.3 Error: too many recipients\r\n"));
    let step = drive(&mut s, b"DATA\r\n");
    assert_eq!(text(&step), "354 End data with <CR><LF>.<CR><LF>\r\n");
    let line = vec![b'a'; 1_000_000];
    for _ in 0..11 {
        drive(&mut s, &line);
    }
    let step = drive(&mut s, b"\r\n.\r\n");
    assert_eq!(text(&step), "552 5.3.4 Error: message file too big\r\n");
    assert_eq!(step.events[0].kind, "data_rejected");
    if let Mode::Data(r) = &s.mode {
        panic!("still in DATA with {} bytes", r.message.bytes.len());
    }
}

#[test]
fn byte_at_a_time_gives_the_same_result() {
    let input = format!(
        "EHLO x\r\nAUTH LOGIN\r\n{}\r\n{}\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\nSubject: s\r\n\r\n.hi\r\n.\r\nBDAT 3 LAST\r\nabcQUIT\r\n",
        b64_encode(b"u"),
        b64_encode(b"p")
    );
    let mut whole = session(true, &[]);
    let expected = drive(&mut whole, input.as_bytes());
    let mut split = session(true, &[]);
    let mut out = Vec::new();
    let mut events = Vec::new();
    for b in input.as_bytes() {
        let step = drive(&mut split, std::slice::from_ref(b));
        out.extend(step.out);
        events.extend(step.events);
    }
    assert_eq!(String::from_utf8_lossy(&out), text(&expected));
    assert_eq!(events, expected.events);
    assert!(expected.close);
}

proptest! {
    #[test]
    fn never_panics_and_stays_bounded(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 0..16),
        relay in any::<bool>(),
        preamble in any::<bool>(),
    ) {
        let mut s = session(relay, &[]);
        if preamble {
            drive(&mut s, b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<root>\r\n");
        }
        for c in &chunks {
            let step = drive(&mut s, c);
            prop_assert!(step.out.len() < 1 << 20);
        }
        prop_assert!(s.lines.pending() <= MAX_LINE);
    }

    #[test]
    fn command_soup_never_panics(cmds in proptest::collection::vec(
        (prop::sample::select(vec![
            "EHLO", "HELO", "MAIL FROM:", "RCPT TO:", "DATA", "BDAT", "AUTH PLAIN", "AUTH LOGIN",
            "VRFY", "ETRN", "RSET", "NOOP", "QUIT", ".", "*",
        ]), "[ -~]{0,24}"),
        0..40,
    )) {
        let mut s = session(true, &[]);
        let mut input = Vec::new();
        for (c, a) in &cmds {
            input.extend_from_slice(format!("{c}{a}\r\n").as_bytes());
        }
        let step = drive(&mut s, &input);
        prop_assert!(step.out.len() < 1 << 20);
    }
}

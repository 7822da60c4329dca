use proptest::prelude::*;

use super::*;

const NOW: i64 = 1_715_680_000;

fn server(extra: &[(&str, &str)]) -> Pop3 {
    let mut pairs = vec![("NODE_NAME", "mx01"), ("HOSTNAME", "mx01.corp.local")];
    pairs.extend_from_slice(extra);
    Pop3::with_clock(&Persona::from_pairs(&pairs), NOW)
}

fn session() -> (Pop3Session, String) {
    let mut s = server(&[]).session_for();
    let mut step = Step::default();
    s.start(&mut step);
    (s, String::from_utf8(step.out).unwrap())
}

fn drive(s: &mut Pop3Session, input: &[u8]) -> Step {
    let mut step = Step::default();
    s.receive(input, &mut step);
    step
}

fn text(step: &Step) -> String {
    String::from_utf8(step.out.clone()).unwrap()
}

fn logged_in() -> Pop3Session {
    let (mut s, _) = session();
    let step = drive(&mut s, b"USER admin\r\nPASS admin123\r\n");
    assert_eq!(text(&step), "+OK\r\n+OK Logged in.\r\n");
    s
}

#[test]
fn greeting_is_dovecot_and_configurable() {
    let (_, greeting) = session();
    assert_eq!(greeting, "+OK Dovecot (Debian) ready.\r\n");
    let mut s = server(&[("POP3_BANNER", "Mail server ready.")]).session_for();
    let mut step = Step::default();
    s.start(&mut step);
    assert_eq!(step.out, b"+OK Mail server ready.\r\n");
}

#[test]
fn poplib_session_logs_in_lists_and_retrieves() {
    let mut s = logged_in();
    let step = drive(&mut s, b"STAT\r\nLIST\r\n");
    let out = text(&step);
    let store = Arc::clone(&s.store);
    let inbox = store.inbox();
    let total: usize = inbox.mails.iter().map(mailbox::Mail::size).sum();
    assert!(
        out.starts_with(&format!("+OK 10 {total}\r\n+OK 10 messages:\r\n1 ")),
        "{out}"
    );
    assert!(out.ends_with("\r\n.\r\n"));
    let step = drive(&mut s, b"RETR 4\r\n");
    let out = text(&step);
    let mail = &inbox.mails[3];
    assert!(
        out.starts_with(&format!("+OK {} octets\r\nReturn-Path: ", mail.size())),
        "{out}"
    );
    assert!(out.ends_with("\r\n.\r\n"));
    assert!(out.contains("AKIA"), "{out}");
    let retr = step.events.iter().find(|e| e.kind == "retr").unwrap();
    assert_eq!(retr.field("message_num"), Some("4"));
    assert_eq!(
        retr.field("subject"),
        Some("AWS keys for the backup bucket")
    );
    let step = drive(&mut s, b"QUIT\r\n");
    assert_eq!(step.out, b"+OK Logging out.\r\n");
    assert!(step.close);
}

#[test]
fn login_attempts_are_captured_with_the_password() {
    let (mut s, _) = session();
    let step = drive(&mut s, b"USER root\r\nPASS hunter2\r\n");
    assert_eq!(text(&step), "+OK\r\n-ERR [AUTH] Authentication failed.\r\n");
    let auth = step.events.iter().find(|e| e.kind == "auth").unwrap();
    assert_eq!(auth.field("username"), Some("root"));
    assert_eq!(auth.field("password"), Some("hunter2"));
    assert_eq!(auth.field("status"), Some("failed"));
    assert_eq!(auth.field("mechanism"), Some("USER"));
    assert_eq!(auth.severity, Severity::Warning);
    // The password never shows up in the command event.
    let pass = step
        .events
        .iter()
        .find(|e| e.field("cmd") == Some("PASS"))
        .unwrap();
    assert_eq!(pass.field("args"), Some(""));
    let step = drive(&mut s, b"PASS again\r\n");
    assert_eq!(step.out, b"-ERR No username given.\r\n");
    let step = drive(&mut s, b"USER root\r\nPASS toor\r\n");
    assert!(text(&step).ends_with("+OK Logged in.\r\n"));
    let auth = step.events.iter().find(|e| e.kind == "auth").unwrap();
    assert_eq!(auth.field("status"), Some("success"));
}

#[test]
fn users_come_from_the_persona() {
    let mut s = server(&[("POP3_USERS", "alice:wonder")]).session_for();
    let step = drive(
        &mut s,
        b"USER admin\r\nPASS admin123\r\nUSER alice\r\nPASS wonder\r\n",
    );
    assert_eq!(
        text(&step),
        "+OK\r\n-ERR [AUTH] Authentication failed.\r\n+OK\r\n+OK Logged in.\r\n"
    );
}

#[test]
fn auth_plain_with_continuation_and_initial_response() {
    let (mut s, _) = session();
    let step = drive(&mut s, b"AUTH PLAIN\r\n");
    assert_eq!(step.out, b"+ \r\n");
    // "\0admin\0nope"
    let step = drive(&mut s, b"AGFkbWluAG5vcGU=\r\n");
    assert_eq!(step.out, b"-ERR [AUTH] Authentication failed.\r\n");
    let auth = &step.events[0];
    assert_eq!(
        (
            auth.field("username"),
            auth.field("password"),
            auth.field("mechanism")
        ),
        (Some("admin"), Some("nope"), Some("PLAIN"))
    );
    let step = drive(&mut s, b"AUTH PLAIN\r\n*\r\n");
    assert_eq!(
        text(&step),
        "+ \r\n-ERR Authentication aborted by client.\r\n"
    );
    let step = drive(&mut s, b"AUTH PLAIN !!!\r\n");
    assert_eq!(
        text(&step),
        "-ERR [AUTH] Invalid base64 data in initial response\r\n"
    );
    let step = drive(&mut s, b"AUTH LOGIN\r\nAUTH\r\n");
    assert_eq!(
        text(&step),
        "-ERR [AUTH] Unsupported authentication mechanism.\r\n+OK\r\nPLAIN\r\n.\r\n"
    );
    // "\0admin\0admin123"
    let step = drive(&mut s, b"AUTH PLAIN AGFkbWluAGFkbWluMTIz\r\n");
    assert_eq!(step.out, b"+OK Logged in.\r\n");
}

#[test]
fn apop_and_stls_are_refused_like_a_default_install() {
    let (mut s, _) = session();
    let step = drive(
        &mut s,
        b"APOP admin c4c9334bac560ecc979e58001b3e22fb\r\nSTLS\r\n",
    );
    assert_eq!(
        text(&step),
        "-ERR APOP not enabled.\r\n-ERR TLS support isn't enabled.\r\n"
    );
    let auth = step.events.iter().find(|e| e.kind == "auth").unwrap();
    assert_eq!(auth.field("mechanism"), Some("APOP"));
    assert_eq!(
        auth.field("digest"),
        Some("c4c9334bac560ecc979e58001b3e22fb")
    );
}

#[test]
fn capabilities_match_dovecot_before_and_after_login() {
    let (mut s, _) = session();
    assert_eq!(
        text(&drive(&mut s, b"CAPA\r\n")),
        "+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\nUSER\r\nSASL PLAIN\r\n.\r\n"
    );
    let mut s = logged_in();
    assert_eq!(
        text(&drive(&mut s, b"capa\r\n")),
        "+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\n.\r\n"
    );
}

#[test]
fn bad_commands_before_login_follow_the_three_strikes_rule() {
    // nmap's GenericLines probe: the reply it expects from Dovecot.
    let (mut s, _) = session();
    let step = drive(&mut s, b"\r\n\r\n");
    assert_eq!(
        text(&step),
        "-ERR Unknown command.\r\n-ERR Unknown command.\r\n"
    );
    assert!(!step.close);
    let step = drive(&mut s, b"STAT\r\nLIST\r\n");
    assert_eq!(
        text(&step),
        "-ERR Unknown command.\r\n-ERR Too many invalid bad commands.\r\n"
    );
    assert!(step.close);
    assert!(
        drive(&mut s, b"CAPA\r\n").out.is_empty(),
        "nothing after close"
    );
    // A good command resets the count.
    let (mut s, _) = session();
    let step = drive(&mut s, b"X\r\nY\r\nNOOP\r\n");
    assert!(step.close);
    let (mut s, _) = session();
    let step = drive(&mut s, b"X\r\nY\r\nUSER a\r\nZ\r\n");
    assert!(!step.close);
}

#[test]
fn transaction_errors_use_dovecot_texts() {
    let mut s = logged_in();
    let out = text(&drive(
        &mut s,
        b"FOO bar\r\nRETR\r\nRETR x\r\nRETR 0\r\nRETR 99\r\nRETR 1x\r\nLIST 99999999999\r\nTOP 1\r\nTOP 1 z\r\nUSER a\r\n",
    ));
    assert_eq!(
        out,
        "-ERR Unknown command: FOO\r\n\
         -ERR Invalid message number: \r\n\
         -ERR Invalid message number: x\r\n\
         -ERR There's no message 0.\r\n\
         -ERR There's no message 99.\r\n\
         -ERR Noise after message number: x\r\n\
         -ERR Message number too large: 99999999999\r\n\
         -ERR Noise after message number: \r\n\
         -ERR Invalid size: z\r\n\
         -ERR Unknown command: USER\r\n"
    );
}

#[test]
fn top_uidl_dele_rset() {
    let mut s = logged_in();
    let out = text(&drive(&mut s, b"TOP 2 1\r\n"));
    let store = Arc::clone(&s.store);
    let mail = &store.inbox().mails[1];
    let first_line = mail.body().split("\r\n").next().unwrap();
    assert_eq!(
        out,
        format!("+OK\r\n{}{first_line}\r\n.\r\n", mail.header())
    );
    let out = text(&drive(&mut s, b"UIDL 1\r\n"));
    let store = Arc::clone(&s.store);
    let inbox = store.inbox();
    assert_eq!(
        out,
        format!(
            "+OK 1 {:08X}{:08X}\r\n",
            inbox.mails[0].uid, inbox.uidvalidity
        )
    );
    let step = drive(&mut s, b"DELE 1\r\nDELE 1\r\nSTAT\r\nLIST 1\r\n");
    let out = text(&step);
    assert!(
        out.starts_with("+OK Marked to be deleted.\r\n-ERR Message is deleted.\r\n+OK 9 "),
        "{out}"
    );
    assert!(out.ends_with("-ERR Message is deleted.\r\n"));
    assert!(
        step.events
            .iter()
            .any(|e| e.kind == "delete" && e.field("message_num") == Some("1"))
    );
    let out = text(&drive(&mut s, b"UIDL\r\n"));
    assert!(
        out.starts_with("+OK\r\n2 ") && out.ends_with("\r\n.\r\n"),
        "{out}"
    );
    let out = text(&drive(&mut s, b"DELE 3\r\nQUIT\r\n"));
    assert!(out.ends_with("+OK Logging out, messages deleted.\r\n"));
    let mut s = logged_in();
    let out = text(&drive(&mut s, b"DELE 3\r\nRSET\r\nNOOP\r\nSTAT\r\n"));
    assert!(out.contains("+OK\r\n+OK\r\n+OK 10 "), "{out}");
}

#[test]
fn dot_stuffing() {
    assert_eq!(
        dot_stuff("A: b\r\n\r\n", ".hidden\r\nok\r\n", None),
        b"A: b\r\n\r\n..hidden\r\nok\r\n.\r\n"
    );
    assert_eq!(
        dot_stuff("A: b\r\n\r\n", "x", Some(0)),
        b"A: b\r\n\r\n.\r\n"
    );
}

#[test]
fn byte_at_a_time_gives_the_same_result() {
    let input = b"CAPA\r\nUSER admin\r\nPASS admin123\r\nSTAT\r\nRETR 1\r\nAUTH PLAIN\r\nQUIT\r\n";
    let (mut whole, _) = session();
    let expected = drive(&mut whole, input);
    let (mut split, _) = session();
    let mut out = Vec::new();
    let mut events = Vec::new();
    for b in input {
        let step = drive(&mut split, std::slice::from_ref(b));
        out.extend(step.out);
        events.extend(step.events);
    }
    assert_eq!(String::from_utf8(out).unwrap(), text(&expected));
    assert_eq!(events, expected.events);
    assert!(expected.close);
}

#[test]
fn overlong_lines_end_the_connection() {
    let (mut s, _) = session();
    let step = drive(&mut s, &vec![b'A'; MAX_LOGIN_LINE + 10]);
    assert_eq!(step.out, b"-ERR Input buffer full, aborting\r\n");
    assert!(step.close);
    let mut s = logged_in();
    let mut line = b"NOOP ".to_vec();
    line.extend(vec![b'x'; MAX_LINE]);
    line.extend_from_slice(b"\r\n");
    let step = drive(&mut s, &line);
    assert_eq!(step.out, b"-ERR Input line too long.\r\n");
    assert!(step.close);
}

proptest! {
    #[test]
    fn never_panics(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 0..12), login in any::<bool>()) {
        let mut s = if login { logged_in() } else { session().0 };
        for c in &chunks {
            let step = drive(&mut s, c);
            prop_assert!(step.out.len() < 1 << 20);
        }
        prop_assert!(s.lines.pending() <= MAX_LOGIN_LINE);
    }

    #[test]
    fn command_soup_never_panics(cmds in proptest::collection::vec((prop::sample::select(vec!["USER", "PASS", "AUTH", "APOP", "RETR", "TOP", "LIST", "UIDL", "DELE", "RSET", "STAT", "CAPA", "NOOP"]), "[ -~]{0,24}"), 0..30)) {
        let mut s = logged_in();
        let (mut fresh, _) = session();
        for (c, a) in &cmds {
            let line = format!("{c} {a}\r\n");
            let _ = drive(&mut s, line.as_bytes());
            let _ = drive(&mut fresh, line.as_bytes());
        }
    }
}

use proptest::prelude::*;

use super::*;

const NOW: i64 = 1_715_680_000;
const GREETING: &str = "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN] Dovecot (Debian) ready.\r\n";

fn server(extra: &[(&str, &str)]) -> Imap {
    let mut pairs = vec![("NODE_NAME", "mx01"), ("HOSTNAME", "mx01.corp.local")];
    pairs.extend_from_slice(extra);
    Imap::with_clock(&Persona::from_pairs(&pairs), NOW)
}

fn session() -> ImapSession {
    let mut s = server(&[]).session_with(StdRng::seed_from_u64(7));
    let mut step = Step::default();
    s.start(&mut step);
    assert_eq!(String::from_utf8(step.out).unwrap(), GREETING);
    s
}

fn drive(s: &mut ImapSession, input: &[u8]) -> Step {
    let mut step = Step::default();
    s.receive(input, &mut step);
    step
}

/// The reply text with Dovecot's timing suffixes taken out.
fn text(step: &Step) -> String {
    let raw = String::from_utf8(step.out.clone()).unwrap();
    let mut out = String::new();
    let mut rest = raw.as_str();
    while let Some(start) = rest.find(" (0.") {
        let Some(len) = rest[start..].find("secs).") else {
            break;
        };
        let timing = &rest[start..start + len];
        assert!(
            timing.bytes().all(|b| b" (0.123456789+".contains(&b)),
            "{timing}"
        );
        out.push_str(&rest[..start]);
        out.push('.');
        rest = &rest[start + len + "secs).".len()..];
    }
    out.push_str(rest);
    out
}

fn logged_in() -> ImapSession {
    let mut s = session();
    let step = drive(&mut s, b"a1 LOGIN admin admin123\r\n");
    assert!(
        text(&step).starts_with("a1 OK [CAPABILITY IMAP4rev1 SASL-IR"),
        "{}",
        text(&step)
    );
    s
}

fn selected() -> ImapSession {
    let mut s = logged_in();
    let _ = drive(&mut s, b"s1 SELECT INBOX\r\n");
    s
}

#[test]
fn banner_is_configurable() {
    let mut s =
        server(&[("IMAP_BANNER", "IMAP server ready.")]).session_with(StdRng::seed_from_u64(1));
    let mut step = Step::default();
    s.start(&mut step);
    assert!(
        String::from_utf8(step.out)
            .unwrap()
            .ends_with("AUTH=PLAIN] IMAP server ready.\r\n")
    );
}

#[test]
fn imaplib_session() {
    let mut s = session();
    let step = drive(&mut s, b"KDGF1 CAPABILITY\r\n");
    assert_eq!(
        text(&step),
        "* CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN\r\n\
         KDGF1 OK Pre-login capabilities listed, post-login capabilities have more.\r\n"
    );
    let step = drive(&mut s, b"KDGF2 LOGIN admin \"admin123\"\r\n");
    assert_eq!(
        text(&step),
        format!("KDGF2 OK [CAPABILITY {CAPS}] Logged in\r\n")
    );
    let auth = step.events.iter().find(|e| e.kind == "auth").unwrap();
    assert_eq!(auth.field("status"), Some("success"));
    assert_eq!(auth.field("password"), Some("admin123"));
    let step = drive(&mut s, b"KDGF3 LIST \"\" *\r\n");
    assert_eq!(
        text(&step),
        "* LIST (\\HasNoChildren) \".\" INBOX\r\n\
         * LIST (\\HasNoChildren \\Sent) \".\" Sent\r\n\
         * LIST (\\HasNoChildren \\Drafts) \".\" Drafts\r\n\
         * LIST (\\HasNoChildren) \".\" Archive\r\n\
         KDGF3 OK List completed.\r\n"
    );
    let step = drive(&mut s, b"KDGF4 SELECT INBOX\r\n");
    let inbox = s.store.inbox().clone();
    assert_eq!(
        text(&step),
        format!(
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n\
             * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted.\r\n\
             * 10 EXISTS\r\n* 0 RECENT\r\n* OK [UNSEEN 8] First unseen.\r\n\
             * OK [UIDVALIDITY {}] UIDs valid\r\n* OK [UIDNEXT {}] Predicted next UID\r\n\
             KDGF4 OK [READ-WRITE] Select completed.\r\n",
            inbox.uidvalidity,
            inbox.uidnext()
        )
    );
    assert!(
        String::from_utf8(step.out)
            .unwrap()
            .contains("Select completed (0.0")
    );
    let step = drive(&mut s, b"KDGF5 SEARCH ALL\r\n");
    assert_eq!(
        text(&step),
        "* SEARCH 1 2 3 4 5 6 7 8 9 10\r\nKDGF5 OK Search completed.\r\n"
    );
    let step = drive(&mut s, b"KDGF6 FETCH 4 (RFC822)\r\n");
    let mail = &inbox.mails[3];
    assert_eq!(
        text(&step),
        format!(
            "* 4 FETCH (RFC822 {{{}}}\r\n{})\r\nKDGF6 OK Fetch completed.\r\n",
            mail.size(),
            mail.raw
        )
    );
    let fetch = step.events.iter().find(|e| e.kind == "fetch").unwrap();
    assert_eq!(fetch.field("mailbox"), Some("INBOX"));
    assert_eq!(fetch.field("uids"), Some(mail.uid.to_string().as_str()));
    assert_eq!(fetch.severity, Severity::Warning);
    let step = drive(&mut s, b"KDGF7 CLOSE\r\nKDGF8 LOGOUT\r\n");
    assert_eq!(
        text(&step),
        "KDGF7 OK Close completed.\r\n* BYE Logging out\r\nKDGF8 OK Logout completed.\r\n"
    );
    assert!(step.close);
}

#[test]
fn failed_logins_are_captured_and_delayed() {
    let mut s = session();
    let step = drive(&mut s, b"a LOGIN root hunter2\r\n");
    assert_eq!(
        text(&step),
        "a NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"
    );
    assert_eq!(step.delay, Some(mailbox::AUTH_FAILURE_DELAY));
    let auth = step.events.iter().find(|e| e.kind == "auth").unwrap();
    assert_eq!(
        (
            auth.field("username"),
            auth.field("password"),
            auth.field("status"),
            auth.field("mechanism")
        ),
        (Some("root"), Some("hunter2"), Some("failed"), Some("LOGIN"))
    );
    let cmd = step.events.iter().find(|e| e.kind == "command").unwrap();
    assert_eq!(
        (cmd.field("cmd"), cmd.field("state"), cmd.field("args")),
        (Some("LOGIN"), Some("NOT_AUTH"), Some("root"))
    );
    // Users come from the persona.
    let mut s = server(&[("IMAP_USERS", "bob:pw1")]).session_with(StdRng::seed_from_u64(1));
    assert!(
        text(&drive(
            &mut s,
            b"a LOGIN admin admin123\r\nb LOGIN bob pw1\r\n"
        ))
        .contains("b OK [CAPABILITY")
    );
}

#[test]
fn login_with_literals() {
    let mut s = session();
    let step = drive(&mut s, b"a LOGIN {5}\r\n");
    assert_eq!(step.out, b"+ OK\r\n");
    let step = drive(&mut s, b"admin {8+}\r\nadmin123\r\n");
    assert!(text(&step).starts_with("a OK [CAPABILITY"));
}

#[test]
fn authenticate_plain() {
    let mut s = session();
    assert_eq!(drive(&mut s, b"a AUTHENTICATE PLAIN\r\n").out, b"+ \r\n");
    let step = drive(&mut s, b"AGFkbWluAG5vcGU=\r\n");
    assert_eq!(
        text(&step),
        "a NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"
    );
    assert_eq!(step.events[0].field("password"), Some("nope"));
    assert_eq!(step.events[0].field("mechanism"), Some("PLAIN"));
    let step = drive(
        &mut s,
        b"b AUTHENTICATE PLAIN\r\n*\r\nc AUTHENTICATE CRAM-MD5\r\n",
    );
    assert_eq!(
        text(&step),
        "+ \r\nb BAD Authentication aborted by client.\r\nc NO [ALERT] Unsupported authentication mechanism.\r\n"
    );
    let step = drive(&mut s, b"d AUTHENTICATE PLAIN AGFkbWluAGFkbWluMTIz\r\n");
    assert!(text(&step).starts_with("d OK [CAPABILITY"));
}

#[test]
fn pre_login_errors_match_imap_login() {
    // nmap's GetRequest probe gets what it expects from Dovecot.
    let mut s = session();
    let step = drive(&mut s, b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(
        text(&step),
        "GET BAD Error in IMAP command received by server.\r\n* BAD Error in IMAP command received by server.\r\n"
    );
    let step = drive(&mut s, b"a SELECT INBOX\r\n");
    assert_eq!(text(&step), "* BYE Too many invalid IMAP commands.\r\n");
    assert!(step.close);
    let mut s = session();
    let step = drive(
        &mut s,
        b"LOGIN admin admin\r\na LOGIN \"x\r\nb NOOP\r\nc ID NIL\r\nd ENABLE X\r\ne STARTTLS\r\n",
    );
    assert_eq!(
        text(&step),
        format!(
            "LOGIN BAD {LOGIN_TAG_HINT}\r\na BAD Missing '\"'\r\nb OK NOOP completed.\r\n\
             * ID (\"name\" \"Dovecot\")\r\nc OK ID completed.\r\n* ENABLED\r\n\
             d OK ENABLE ignored in non-authenticated state.\r\ne BAD TLS support isn't enabled.\r\n"
        )
    );
    let step = drive(&mut s, b"f LOGOUT\r\n");
    assert_eq!(
        text(&step),
        "* BYE Logging out\r\nf OK Logout completed.\r\n"
    );
    assert!(step.close);
}

#[test]
fn post_login_errors_match_the_imap_process() {
    let mut s = logged_in();
    let step = drive(
        &mut s,
        b"b FOO\r\nc FETCH 1 FLAGS\r\nd SELECT Nope\r\ne STATUS INBOX (BOGUS)\r\n",
    );
    assert_eq!(
        text(&step),
        "b BAD Error in IMAP command FOO: Unknown command.\r\n\
         c BAD No mailbox selected.\r\n\
         d NO Mailbox doesn't exist: Nope.\r\n\
         e BAD Error in IMAP command STATUS: Invalid status item BOGUS.\r\n"
    );
    let raw = String::from_utf8(step.out).unwrap();
    assert!(
        raw.contains("b BAD Error in IMAP command FOO: Unknown command (0.00"),
        "{raw}"
    );
    let step = drive(&mut s, b"f LOGIN a b\r\n");
    assert_eq!(
        text(&step),
        "f BAD Error in IMAP command LOGIN: Unknown command.\r\n"
    );
    let mut s = logged_in();
    let mut input = Vec::new();
    for i in 0..MAX_BAD {
        input.extend_from_slice(format!("x{i} BOGUS\r\n").as_bytes());
    }
    let step = drive(&mut s, &input);
    assert!(text(&step).ends_with("* BYE Too many invalid IMAP commands.\r\n"));
    assert!(step.close);
}

#[test]
fn status_lsub_namespace_examine() {
    let mut s = logged_in();
    let inbox = s.store.inbox().clone();
    let step = drive(&mut s, b"a STATUS INBOX (MESSAGES UNSEEN UIDNEXT)\r\nb LSUB \"\" \"*\"\r\nc NAMESPACE\r\nd LIST \"\" \"\"\r\n");
    assert_eq!(
        text(&step),
        format!(
            "* STATUS INBOX (MESSAGES 10 UNSEEN 3 UIDNEXT {})\r\na OK Status completed.\r\n\
             * LSUB () \".\" INBOX\r\n* LSUB () \".\" Sent\r\n* LSUB () \".\" Drafts\r\n* LSUB () \".\" Archive\r\n\
             b OK Lsub completed.\r\n* NAMESPACE ((\"\" \".\")) NIL NIL\r\nc OK Namespace completed.\r\n\
             * LIST (\\Noselect) \".\" \"\"\r\nd OK List completed.\r\n",
            inbox.uidnext()
        )
    );
    let step = drive(&mut s, b"e EXAMINE Drafts\r\nf FETCH 1 (FLAGS)\r\n");
    let out = text(&step);
    assert!(
        out.contains("* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n"),
        "{out}"
    );
    assert!(out.contains("e OK [READ-ONLY] Examine completed.\r\n"));
    assert!(
        out.contains("* 1 FETCH (FLAGS (\\Seen \\Draft))\r\n"),
        "{out}"
    );
}

#[test]
fn fetch_items_and_uid_commands() {
    let mut s = selected();
    let inbox = s.store.inbox().clone();
    let m = &inbox.mails[9];
    let step = drive(&mut s, b"a UID FETCH 1:* (UID FLAGS)\r\n");
    let out = text(&step);
    assert_eq!(out.matches(" FETCH (UID ").count(), 10, "{out}");
    assert!(out.contains(&format!("* 10 FETCH (UID {} FLAGS ())\r\n", m.uid)));
    assert_eq!(
        step.events
            .iter()
            .find(|e| e.kind == "fetch")
            .unwrap()
            .severity,
        Severity::Info
    );
    let step = drive(
        &mut s,
        format!(
            "b UID FETCH {} (BODY.PEEK[HEADER.FIELDS (Subject)] RFC822.SIZE)\r\n",
            m.uid
        )
        .as_bytes(),
    );
    let subject = format!("Subject: {}\r\n\r\n", m.subject);
    assert_eq!(
        text(&step),
        format!(
            "* 10 FETCH (UID {} BODY[HEADER.FIELDS (SUBJECT)] {{{}}}\r\n{subject} RFC822.SIZE {})\r\nb OK Fetch completed.\r\n",
            m.uid,
            subject.len(),
            m.size()
        )
    );
    // Reading the body of an unread message marks it seen, and says so.
    let step = drive(&mut s, b"c FETCH 10 (BODY[]<0.10>)\r\nd FETCH 10 FLAGS\r\n");
    assert_eq!(
        text(&step),
        format!(
            "* 10 FETCH (BODY[]<0> {{10}}\r\n{} FLAGS (\\Seen))\r\nc OK Fetch completed.\r\n* 10 FETCH (FLAGS (\\Seen))\r\nd OK Fetch completed.\r\n",
            &m.raw[..10]
        )
    );
    let step = drive(
        &mut s,
        b"e FETCH 1 (ENVELOPE BODYSTRUCTURE INTERNALDATE)\r\n",
    );
    let out = text(&step);
    assert!(out.starts_with("* 1 FETCH (ENVELOPE (\""), "{out}");
    assert!(
        out.contains("BODYSTRUCTURE (\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" ")
    );
    assert!(out.contains("INTERNALDATE \""));
    let step = drive(
        &mut s,
        b"f FETCH 11 FLAGS\r\ng FETCH 1 BOGUS\r\nh UID FETCH 999999 FLAGS\r\n",
    );
    assert_eq!(
        text(&step),
        "f BAD Error in IMAP command FETCH: Invalid messageset.\r\n\
         g BAD Error in IMAP command FETCH: Unknown parameter BOGUS.\r\n\
         h OK Fetch completed.\r\n"
    );
}

#[test]
fn search_store_expunge() {
    let mut s = selected();
    let inbox = s.store.inbox().clone();
    let step = drive(&mut s, b"a SEARCH UNSEEN\r\nb UID SEARCH SUBJECT \"aws keys\"\r\nc SEARCH OR FROM hr NOT SEEN\r\nd SEARCH FROB\r\n");
    let uid = inbox
        .mails
        .iter()
        .find(|m| m.subject.contains("AWS"))
        .unwrap()
        .uid;
    let out = text(&step);
    assert!(
        out.starts_with(&format!(
            "* SEARCH 8 9 10\r\na OK Search completed.\r\n* SEARCH {uid}\r\n"
        )),
        "{out}"
    );
    assert!(out.ends_with("d BAD Error in IMAP command SEARCH: Unknown argument FROB.\r\n"));
    let step = drive(&mut s, b"e STORE 1:2 +FLAGS (\\Deleted)\r\nf STORE 3 +FLAGS.SILENT \\Flagged\r\ng EXPUNGE\r\nh SEARCH ALL\r\n");
    assert_eq!(
        text(&step),
        "* 1 FETCH (FLAGS (\\Deleted \\Seen))\r\n* 2 FETCH (FLAGS (\\Deleted \\Seen))\r\ne OK Store completed.\r\n\
         f OK Store completed.\r\n* 1 EXPUNGE\r\n* 1 EXPUNGE\r\ng OK Expunge completed.\r\n\
         * SEARCH 1 2 3 4 5 6 7 8\r\nh OK Search completed.\r\n"
    );
    // Another session still sees everything.
    let mut other = selected();
    assert!(
        text(&drive(&mut other, b"x SEARCH ALL\r\n"))
            .starts_with("* SEARCH 1 2 3 4 5 6 7 8 9 10\r\n")
    );
}

#[test]
fn idle_append_and_friends() {
    let mut s = selected();
    assert_eq!(drive(&mut s, b"a IDLE\r\n").out, b"+ idling\r\n");
    assert_eq!(
        text(&drive(&mut s, b"DONE\r\n")),
        "a OK Idle completed.\r\n"
    );
    let step = drive(&mut s, b"b APPEND Sent (\\Seen) {11+}\r\nHello there\r\nc CREATE Junk\r\nd DELETE INBOX\r\ne ENABLE CONDSTORE\r\n");
    let out = text(&step);
    assert!(out.starts_with("b OK [APPENDUID "), "{out}");
    assert!(out.ends_with("c OK Create completed.\r\nd NO INBOX can't be deleted.\r\n* ENABLED CONDSTORE\r\ne OK Enabled.\r\n"), "{out}");
    let append = step.events.iter().find(|e| e.kind == "append").unwrap();
    assert_eq!(
        (append.field("mailbox"), append.field("size")),
        (Some("Sent"), Some("11"))
    );
}

#[test]
fn list_patterns() {
    assert!(list_match(b"*", b"INBOX"));
    assert!(list_match(b"%", b"Sent"));
    assert!(!list_match(b"%", b"a.b"));
    assert!(list_match(b"a.%", b"a.b"));
    assert!(list_match(b"inbox", b"INBOX"));
    assert!(!list_match(b"S*x", b"Sent"));
    assert!(list_match(b"", b"") && !list_match(b"", b"a") && list_match(b"%*%", b""));
}

/// The recursive matcher `list_match` replaced: the specification, exponential on some patterns.
fn list_match_by_recursion(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.first() {
        None => name.is_empty(),
        Some(b'*') => (0..=name.len()).any(|i| list_match_by_recursion(&pattern[1..], &name[i..])),
        Some(b'%') => (0..=name.len())
            .take_while(|&i| i == 0 || name[i - 1] != b'.')
            .any(|i| list_match_by_recursion(&pattern[1..], &name[i..])),
        Some(p) => name.first().is_some_and(|n| {
            n.eq_ignore_ascii_case(p) && list_match_by_recursion(&pattern[1..], &name[1..])
        }),
    }
}

proptest! {
    /// Small alphabets (both cases, the separator), so wildcards and separators interact.
    #[test]
    fn list_match_matches_the_recursive_definition(
        pattern in proptest::collection::vec(prop_oneof![Just(b'*'), Just(b'%'), Just(b'.'), Just(b'a'), Just(b'B')], 0..9),
        name in proptest::collection::vec(prop_oneof![Just(b'.'), Just(b'A'), Just(b'b')], 0..10),
    ) {
        prop_assert_eq!(list_match(&pattern, &name), list_match_by_recursion(&pattern, &name));
    }
}

#[test]
fn list_match_takes_polynomial_time_on_many_wildcards() {
    // Tens of millions of splits for the recursive matcher (seconds in a debug build, see the
    // ignored test below; hours a few wildcards more); a few hundred steps now.
    let pattern = [b'*'; 12].iter().chain(b"x").copied().collect::<Vec<_>>();
    let started = std::time::Instant::now();
    assert!(!list_match(&pattern, b"INBOX.Sent.Drafts"));
    assert!(list_match(b"*%*.a%", b"x.y.A"));
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
}

#[test]
#[ignore = "shows what the pattern above costs the recursive matcher: seconds"]
fn list_match_by_recursion_is_exponential() {
    let pattern = [b'*'; 12].iter().chain(b"x").copied().collect::<Vec<_>>();
    let started = std::time::Instant::now();
    assert!(!list_match_by_recursion(&pattern, b"INBOX.Sent.Drafts"));
    eprintln!("recursive matcher: {:?}", started.elapsed());
}

#[test]
fn byte_at_a_time_gives_the_same_result() {
    let input: &[u8] = b"a CAPABILITY\r\nb LOGIN {5}\r\nadmin \"admin123\"\r\nc SELECT INBOX\r\nd FETCH 1:3 (FLAGS BODY.PEEK[HEADER])\r\ne LOGOUT\r\n";
    let mut whole = session();
    let expected = drive(&mut whole, input);
    let mut split = session();
    let mut out = Step::default();
    for b in input {
        let step = drive(&mut split, std::slice::from_ref(b));
        out.out.extend(step.out);
        out.events.extend(step.events);
        out.close |= step.close;
    }
    assert_eq!(text(&out), text(&expected));
    assert_eq!(out.events, expected.events);
    assert!(out.close);
}

/// A line fed a byte at a time is searched once, and a burst of short lines moves the rest of
/// the buffer once, not once per line (both were quadratic in the buffered bytes).
#[test]
fn framing_work_is_linear_in_the_input() {
    use super::syntax::{Frame, Framer};
    let mut f = Framer::new(65_536);
    let mut line = vec![b'x'; 60_000];
    line.extend_from_slice(b"\r\n");
    let mut frames = Vec::new();
    for b in &line {
        frames.extend(f.push(std::slice::from_ref(b)));
    }
    assert_eq!(frames, [Frame::Command(vec![b'x'; 60_000])]);
    assert!(
        f.searched() <= line.len(),
        "{} bytes searched",
        f.searched()
    );
    let mut f = Framer::new(65_536);
    let burst = b"a NOOP\r\n".repeat(2_000);
    assert_eq!(f.push(&burst).len(), 2_000);
    assert!(
        f.searched() <= burst.len(),
        "{} bytes searched",
        f.searched()
    );
    assert_eq!(f.pending(), 0);
}

#[test]
fn hostile_sizes_end_the_connection() {
    let mut s = session();
    let step = drive(&mut s, b"a LOGIN {999999999}\r\n");
    assert_eq!(step.out, b"* BYE Literal size too large\r\n");
    assert!(step.close);
    let mut s = session();
    let step = drive(&mut s, &vec![b'a'; MAX_LOGIN_COMMAND + 1]);
    assert_eq!(step.out, b"* BYE Input buffer full, aborting\r\n");
    // Logged in, commands may be longer.
    let mut s = logged_in();
    let mut long = b"a NOOP ".to_vec();
    long.extend(vec![b'x'; MAX_LOGIN_COMMAND * 2]);
    long.extend_from_slice(b"\r\n");
    assert_eq!(text(&drive(&mut s, &long)), "a OK NOOP completed.\r\n");
}

proptest! {
    #[test]
    fn never_panics(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 0..12), state in 0..3u8) {
        let mut s = match state { 0 => session(), 1 => logged_in(), _ => selected() };
        for c in &chunks {
            let step = drive(&mut s, c);
            prop_assert!(step.out.len() < 1 << 22);
        }
        prop_assert!(s.framer.pending() <= MAX_COMMAND + 600);
    }

    #[test]
    fn command_soup_never_panics(cmds in proptest::collection::vec((prop::sample::select(vec![
        "FETCH", "UID FETCH", "UID SEARCH", "SEARCH", "STORE", "UID STORE", "SELECT", "EXAMINE", "STATUS",
        "LIST", "LSUB", "APPEND", "EXPUNGE", "CLOSE", "ID", "ENABLE", "LOGIN", "AUTHENTICATE", "IDLE", "COPY",
    ]), "[ -~]{0,40}"), 0..30)) {
        let mut s = selected();
        let mut fresh = session();
        for (i, (c, a)) in cmds.iter().enumerate() {
            let line = format!("t{i} {c} {a}\r\n");
            let _ = drive(&mut s, line.as_bytes());
            let _ = drive(&mut fresh, line.as_bytes());
        }
    }
}

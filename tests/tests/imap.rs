//! The imap emulator against Python's imaplib and `nmap -sV`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use decnet_e2e::{Decky, msgid, sd_param};

const CLIENT: &str = r#"
import imaplib, sys
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]), timeout=10)
print(m.welcome.decode())
try:
    m.login("root", "toor!")
except imaplib.IMAP4.error as e:
    print("FAILED", e)
print(m.login("mail", "mail")[0])
typ, boxes = m.list()
print(typ, [b.decode() for b in boxes])
print(m.select("INBOX"))
typ, nums = m.search(None, "ALL")
print("SEARCH", nums[0].decode())
typ, data = m.fetch("4", "(RFC822)")
print(data[0][1].decode())
print(m.close()[0])
print(m.logout()[0])
"#;

#[test]
fn imaplib_login_list_and_fetch_are_captured() {
    let decky = Decky::start("imap", &[("IMAP_USERS", "mail:mail")]);
    let text = decnet_e2e::python_client(CLIENT, decky.port);
    assert!(
        text.starts_with("* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN] Dovecot (Debian) ready.\n"),
        "{text}"
    );
    assert!(
        text.contains("FAILED b'[AUTHENTICATIONFAILED] Authentication failed.'"),
        "{text}"
    );
    assert!(
        text.contains(
            "\nOK\nOK ['(\\\\HasNoChildren) \".\" INBOX', '(\\\\HasNoChildren \\\\Sent) \".\" Sent'"
        ),
        "{text}"
    );
    assert!(text.contains("('OK', [b'10'])"), "{text}");
    assert!(text.contains("SEARCH 1 2 3 4 5 6 7 8 9 10"), "{text}");
    assert!(
        text.contains("Subject: AWS keys for the backup bucket"),
        "{text}"
    );
    assert!(text.contains("aws_secret_access_key = "), "{text}");
    assert!(text.ends_with("OK\nBYE\n"), "{text}");

    let lines = decky.wait_for(|l| l.iter().any(|x| x.contains(" disconnect ")));
    let auths: Vec<&String> = lines.iter().filter(|l| msgid(l) == Some("auth")).collect();
    assert_eq!(auths.len(), 2, "{lines:#?}");
    let expect = [("root", "toor!", "failed"), ("mail", "mail", "success")];
    for (line, (user, pass, status)) in auths.iter().zip(expect) {
        assert_eq!(sd_param(line, "username").as_deref(), Some(user));
        assert_eq!(sd_param(line, "password").as_deref(), Some(pass));
        assert_eq!(sd_param(line, "status").as_deref(), Some(status));
        assert_eq!(sd_param(line, "src_ip").as_deref(), Some("127.0.0.1"));
        assert!(sd_param(line, "src_port").unwrap().parse::<u16>().unwrap() > 0);
        assert!(line.starts_with("<132>1 "), "{line}");
        assert!(line.contains(" e2e-host imap - auth "), "{line}");
    }
    let fetch = lines
        .iter()
        .find(|l| msgid(l) == Some("fetch"))
        .expect("fetch event");
    assert_eq!(sd_param(fetch, "mailbox").as_deref(), Some("INBOX"));
    assert!(sd_param(fetch, "uids").unwrap().parse::<u32>().unwrap() > 0);
    assert_eq!(sd_param(fetch, "items").as_deref(), Some("RFC822"));
    let commands: Vec<(String, String)> = lines
        .iter()
        .filter(|l| msgid(l) == Some("command"))
        .map(|l| (sd_param(l, "cmd").unwrap(), sd_param(l, "state").unwrap()))
        .collect();
    let expected = [
        ("CAPABILITY", "NOT_AUTH"),
        ("LOGIN", "NOT_AUTH"),
        ("LOGIN", "NOT_AUTH"),
        ("LIST", "AUTH"),
        ("SELECT", "AUTH"),
        ("SEARCH", "SELECTED"),
        ("FETCH", "SELECTED"),
        ("CLOSE", "SELECTED"),
        ("LOGOUT", "AUTH"),
    ];
    assert_eq!(
        commands,
        expected.map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    decnet_e2e::assert_neutral(&lines);
}

#[test]
fn nmap_identifies_dovecot_imapd() {
    let decky = Decky::start("imap", &[]);
    let Some(line) = decnet_e2e::nmap_version_row(decky.port) else {
        return;
    };
    let text = &line;
    assert!(
        line.contains("imap") && line.contains("Dovecot imapd"),
        "{text}"
    );
}

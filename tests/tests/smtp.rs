//! The smtp and smtp_relay emulators against Python's smtplib and nmap.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use decnet_e2e::{Decky, msgid, sd_param};
use serde_json::{Value, json};

const HARVESTER: &str = r#"
import json, smtplib, sys
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), local_hostname='attacker.example', timeout=10)
out = {'port': s.sock.getsockname()[1]}
code, msg = s.ehlo()
out['ehlo'] = [code, msg.decode()]
out['auth'] = s.esmtp_features.get('auth')
try:
    s.login('admin', 'Summer2024!')
except smtplib.SMTPAuthenticationError as e:
    out['login'] = [e.smtp_code, e.smtp_error.decode()]
try:
    s.login('root', 'toor', initial_response_ok=False)
except smtplib.SMTPAuthenticationError as e:
    out['login_continued'] = [e.smtp_code, e.smtp_error.decode()]
try:
    s.sendmail('spam@evil.example', ['victim@gmail.com'], 'Subject: hi\r\n\r\nbuy now\r\n')
except smtplib.SMTPRecipientsRefused as e:
    out['refused'] = {k: [v[0], v[1].decode()] for k, v in e.recipients.items()}
code, msg = s.quit()
out['quit'] = [code, msg.decode()]
print(json.dumps(out))
"#;

const RELAY: &str = r#"
import hashlib, json, smtplib, sys
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), local_hostname='bulk.example', timeout=10)
out = {'port': s.sock.getsockname()[1]}
s.ehlo()
code, msg = s.login('relay@corp.local', 'p4ss')
out['login'] = [code, msg.decode()]
body = ('From: Billing <billing@paypa1.example>\r\nTo: undisclosed-recipients:;\r\n'
        'Subject: Your account is on hold\r\n\r\nVerify at http://203.0.113.7/login\r\n'
        '.a line that starts with a dot\r\n')
out['mail'] = s.mail('billing@paypa1.example')[0]
out['rcpt'] = [s.rcpt('a@gmail.com')[0], s.rcpt('b@yahoo.com')[0]]
code, msg = s.data(body)
out['data'] = [code, msg.decode()]
out['sha'] = hashlib.sha256(body.encode()).hexdigest()
out['size'] = len(body)
s.quit()
print(json.dumps(out))
"#;

fn python(script: &str, port: u16) -> Value {
    serde_json::from_str(&decnet_e2e::python_client(script, port)).unwrap()
}

fn of_connection(lines: &[String], port: &Value) -> Vec<String> {
    let port = port.as_u64().unwrap().to_string();
    lines
        .iter()
        .filter(|l| sd_param(l, "src_port").as_deref() == Some(port.as_str()))
        .cloned()
        .collect()
}

fn kinds(lines: &[String]) -> Vec<&str> {
    lines.iter().filter_map(|l| msgid(l)).collect()
}

fn assert_stealthy(text: &str) {
    let lower = text.to_ascii_lowercase();
    for word in ["decnet", "honeypot", "decoy", "fake"] {
        assert!(!lower.contains(word), "{word:?} visible in {text}");
    }
}

#[test]
fn smtplib_credentials_are_harvested_and_relay_is_denied() {
    let decky = Decky::start("smtp", &[]);
    let out = python(HARVESTER, decky.port);
    assert_eq!(
        out["ehlo"],
        json!([
            250,
            "SRV-WEB-42\nPIPELINING\nSIZE 10240000\nVRFY\nETRN\nAUTH PLAIN LOGIN\n\
             ENHANCEDSTATUSCODES\n8BITMIME\nDSN\nSMTPUTF8\nCHUNKING"
        ])
    );
    let failed = json!([
        535,
        "5.7.8 Error: authentication failed: authentication failure"
    ]);
    assert_eq!(out["login"], failed);
    assert_eq!(out["login_continued"], failed);
    assert_eq!(
        out["refused"],
        json!({"victim@gmail.com": [454, "4.7.1 <victim@gmail.com>: Relay access denied"]})
    );
    assert_eq!(out["quit"], json!([221, "2.0.0 Bye"]));
    assert_stealthy(&out.to_string());

    let lines = decky.wait_for(|l| l.iter().any(|x| x.contains(" disconnect ")));
    let conn = of_connection(&lines, &out["port"]);
    assert_eq!(
        kinds(&conn),
        [
            "connect",
            "ehlo",
            "auth_attempt",
            "auth_attempt",
            "auth_attempt",
            "auth_attempt",
            "mail_from",
            "rcpt_denied",
            "disconnect"
        ]
    );
    for line in &conn {
        assert_eq!(sd_param(line, "src_ip").as_deref(), Some("127.0.0.1"));
        assert_eq!(sd_param(line, "dst_port").unwrap(), decky.port.to_string());
        assert!(line.contains(" e2e-host smtp - "), "{line}");
        assert_stealthy(line);
    }
    assert_eq!(
        sd_param(&conn[1], "domain").as_deref(),
        Some("attacker.example")
    );
    let attempts: Vec<(String, String, String)> = conn[2..6]
        .iter()
        .map(|l| {
            assert!(l.starts_with("<132>1 "), "auth is a warning: {l}");
            assert_eq!(sd_param(l, "success").as_deref(), Some("false"));
            (
                sd_param(l, "mechanism").unwrap(),
                sd_param(l, "username").unwrap(),
                sd_param(l, "password").unwrap(),
            )
        })
        .collect();
    let expected = [
        ("PLAIN", "admin", "Summer2024!"),
        ("LOGIN", "admin", "Summer2024!"),
        ("PLAIN", "root", "toor"),
        ("LOGIN", "root", "toor"),
    ];
    assert_eq!(
        attempts,
        expected.map(|(m, u, p)| (m.to_owned(), u.to_owned(), p.to_owned()))
    );
    assert_eq!(
        sd_param(&conn[6], "address").as_deref(),
        Some("spam@evil.example")
    );
    assert_eq!(
        sd_param(&conn[7], "address").as_deref(),
        Some("victim@gmail.com")
    );
}

#[test]
fn smtp_relay_accepts_and_quarantines_a_message() {
    let q = tempfile::tempdir().unwrap();
    let decky = Decky::start(
        "smtp_relay",
        &[
            ("SMTP_MTA", "mail.corp.local"),
            ("QUARANTINE_DIR", q.path().to_str().unwrap()),
        ],
    );
    let out = python(RELAY, decky.port);
    assert_eq!(
        out["login"],
        json!([235, "2.7.0 Authentication successful"])
    );
    assert_eq!(out["mail"], 250);
    assert_eq!(out["rcpt"], json!([250, 250]));
    assert_eq!(out["data"][0], 250);
    let reply = out["data"][1].as_str().unwrap();
    let queue_id = reply
        .strip_prefix("2.0.0 Ok: queued as ")
        .expect("Postfix's queued reply");
    assert!(
        (10..=12).contains(&queue_id.len())
            && queue_id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)),
        "{queue_id}"
    );

    let lines = decky.wait_for(|l| l.iter().any(|x| x.contains(" disconnect ")));
    let conn = of_connection(&lines, &out["port"]);
    assert_eq!(
        kinds(&conn),
        [
            "connect",
            "ehlo",
            "auth_attempt",
            "mail_from",
            "rcpt_to",
            "rcpt_to",
            "message_accepted",
            "disconnect"
        ]
    );
    assert!(conn[0].contains(" e2e-host smtp_relay - connect "));
    assert_eq!(sd_param(&conn[2], "success").as_deref(), Some("true"));
    assert_eq!(
        sd_param(&conn[2], "username").as_deref(),
        Some("relay@corp.local")
    );
    let accepted = &conn[6];
    let sha = out["sha"].as_str().unwrap();
    let field = |k| sd_param(accepted, k).unwrap();
    assert_eq!(field("mail_from"), "billing@paypa1.example");
    assert_eq!(field("rcpt_to"), "a@gmail.com,b@yahoo.com");
    assert_eq!(field("size"), out["size"].as_u64().unwrap().to_string());
    assert_eq!(field("sha256"), sha);
    assert_eq!(field("subject"), "Your account is on hold");
    assert_eq!(field("queue_id"), queue_id);
    assert_eq!(field("stored_as"), format!("{sha}.eml"));
    assert_eq!(sd_param(accepted, "src_ip").as_deref(), Some("127.0.0.1"));
    let stored = std::fs::read(q.path().join(format!("{sha}.eml"))).unwrap();
    assert!(stored.ends_with(b"\r\n.a line that starts with a dot\r\n"));
    assert_eq!(
        stored.len() as u64,
        out["size"].as_u64().unwrap(),
        "dot-unstuffed back to what the client meant"
    );
}

#[test]
fn nmap_identifies_postfix_smtpd() {
    for slug in ["smtp", "smtp_relay"] {
        let decky = Decky::start(slug, &[]);
        let Some(line) = decnet_e2e::nmap_version_row(decky.port) else {
            return;
        };
        assert!(line.contains(" open "), "{line}");
        assert!(line.contains("smtp"), "{line}");
        assert!(line.ends_with("Postfix smtpd"), "{slug}: {line}");
    }
}

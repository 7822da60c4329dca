//! The pop3 emulator against Python's poplib and `nmap -sV`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use decnet_e2e::{Decky, msgid, sd_param};

const CLIENT: &str = r#"
import poplib, sys
port = int(sys.argv[1])
p = poplib.POP3("127.0.0.1", port, timeout=10)
print(p.getwelcome().decode())
p.user("root")
try:
    p.pass_("letmein")
except poplib.error_proto as e:
    print("FAILED", e)
p.quit()
p = poplib.POP3("127.0.0.1", port, timeout=10)
print(sorted(p.capa()))
p.user("admin")
print(p.pass_("admin123").decode())
count, size = p.stat()
print("STAT", count, size)
print(p.list()[0].decode())
print(b"\n".join(p.retr(4)[1]).decode())
p.quit()
"#;

#[test]
fn poplib_login_list_and_retrieve_are_captured() {
    let decky = Decky::start("pop3", &[]);
    let text = decnet_e2e::python_client(CLIENT, decky.port);
    assert!(text.starts_with("+OK Dovecot (Debian) ready.\n"), "{text}");
    assert!(
        text.contains("FAILED b'-ERR [AUTH] Authentication failed.'"),
        "{text}"
    );
    assert!(text.contains("'SASL', 'TOP', 'UIDL', 'USER'"), "{text}");
    assert!(text.contains("+OK Logged in.\nSTAT 10 "), "{text}");
    assert!(text.contains("+OK 10 messages:"), "{text}");
    assert!(
        text.contains("Subject: AWS keys for the backup bucket"),
        "{text}"
    );
    assert!(text.contains("aws_access_key_id     = AKIA"), "{text}");

    let lines = decky.wait_for(|l| l.iter().filter(|x| x.contains(" disconnect ")).count() >= 2);
    let auths: Vec<&String> = lines.iter().filter(|l| msgid(l) == Some("auth")).collect();
    assert_eq!(auths.len(), 2, "{lines:#?}");
    let expect = [
        ("root", "letmein", "failed"),
        ("admin", "admin123", "success"),
    ];
    for (line, (user, pass, status)) in auths.iter().zip(expect) {
        assert_eq!(sd_param(line, "username").as_deref(), Some(user));
        assert_eq!(sd_param(line, "password").as_deref(), Some(pass));
        assert_eq!(sd_param(line, "status").as_deref(), Some(status));
        assert_eq!(sd_param(line, "mechanism").as_deref(), Some("USER"));
        assert_eq!(sd_param(line, "src_ip").as_deref(), Some("127.0.0.1"));
        assert!(sd_param(line, "src_port").unwrap().parse::<u16>().unwrap() > 0);
        assert_eq!(sd_param(line, "dst_port").unwrap(), decky.port.to_string());
        assert!(line.starts_with("<132>1 "), "auth is a warning: {line}");
        assert!(line.contains(" e2e-host pop3 - auth "), "{line}");
    }
    let retr = lines
        .iter()
        .find(|l| msgid(l) == Some("retr"))
        .expect("retr event");
    assert_eq!(sd_param(retr, "message_num").as_deref(), Some("4"));
    assert_eq!(
        sd_param(retr, "subject").as_deref(),
        Some("AWS keys for the backup bucket")
    );
    let commands: Vec<String> = lines
        .iter()
        .filter(|l| msgid(l) == Some("command"))
        .filter_map(|l| sd_param(l, "cmd"))
        .collect();
    assert_eq!(
        commands,
        [
            "USER", "PASS", "QUIT", "CAPA", "USER", "PASS", "STAT", "LIST", "RETR", "QUIT"
        ]
    );
    assert_eq!(
        lines.iter().filter(|l| msgid(l) == Some("connect")).count(),
        2
    );
    decnet_e2e::assert_neutral(&lines);
}

#[test]
fn nmap_identifies_dovecot_pop3d() {
    let decky = Decky::start("pop3", &[]);
    let Some(line) = decnet_e2e::nmap_version_row(decky.port) else {
        return;
    };
    let text = &line;
    assert!(
        line.contains("pop3") && line.contains("Dovecot pop3d"),
        "{text}"
    );
}

//! The telnet emulator against Python's telnetlib client and `nmap -sV`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use decnet_e2e::{Decky, msgid, sd_param};

const CLIENT: &str = r##"
import sys, telnetlib, warnings
warnings.simplefilter("ignore")
t = telnetlib.Telnet("127.0.0.1", int(sys.argv[1]), timeout=10)
t.read_until(b"login: ")
t.write(b"root\r\n"); t.read_until(b"Password: ")
t.write(b"letmein\r\n"); t.read_until(b"login: ")
t.write(b"root\r\n"); t.read_until(b"Password: ")
t.write(b"admin\r\n"); print(t.read_until(b"# ").decode(errors="replace"))
t.write(b"uname -a; cat /etc/hostname\r\n"); print(t.read_until(b"# ").decode(errors="replace"))
t.write(b"exit\r\n"); print(t.read_all().decode(errors="replace"))
"##;

#[test]
fn telnetlib_login_and_shell_are_captured() {
    let decky = Decky::start(
        "telnet",
        &[("DISTRO", "debian"), ("KERNEL", "6.1.0-27-amd64")],
    );
    let text = decnet_e2e::python_client(CLIENT, decky.port);
    assert!(text.contains("root@SRV-WEB-42:~# "), "{text}");
    assert!(
        text.contains("Linux SRV-WEB-42 6.1.0-27-amd64 #1 SMP PREEMPT_DYNAMIC Debian"),
        "{text}"
    );
    assert!(text.contains("SRV-WEB-42\r\n"), "{text}");
    assert!(text.contains("logout"), "{text}");

    let lines = decky.wait_for(|l| l.iter().any(|x| x.contains(" disconnect ")));
    let auths: Vec<&String> = lines
        .iter()
        .filter(|l| msgid(l) == Some("auth_attempt"))
        .collect();
    assert_eq!(auths.len(), 2, "{lines:#?}");
    assert_eq!(sd_param(auths[0], "password").as_deref(), Some("letmein"));
    assert_eq!(sd_param(auths[0], "success").as_deref(), Some("false"));
    assert_eq!(sd_param(auths[1], "success").as_deref(), Some("true"));
    assert_eq!(sd_param(auths[1], "src_ip").as_deref(), Some("127.0.0.1"));
    let commands: Vec<String> = lines
        .iter()
        .filter(|l| msgid(l) == Some("command"))
        .filter_map(|l| sd_param(l, "cmd"))
        .collect();
    assert_eq!(commands, ["uname -a; cat /etc/hostname", "exit"]);
}

#[test]
fn nmap_identifies_linux_telnetd() {
    let decky = Decky::start("telnet", &[]);
    let Some(line) = decnet_e2e::nmap_version_row(decky.port) else {
        return;
    };
    let text = &line;
    assert!(line.contains("Linux telnetd"), "{text}");
}

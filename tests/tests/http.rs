//! The http emulator against real `curl` and `nmap -sV`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::process::Command;

use decnet_e2e::{Decky, msgid, sd_param};

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-s", "-i", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn curl_sees_apache_and_wordpress_logins_are_captured() {
    let decky = Decky::start("http", &[("SITE_APP", "wordpress")]);
    let base = format!("http://127.0.0.1:{}", decky.port);
    let front = curl(&[&format!("{base}/")]);
    assert!(front.starts_with("HTTP/1.1 200 OK\r\n"), "{front}");
    assert!(front.contains("\r\nServer: Apache/2.4.62 (Debian)\r\n"));
    let missing = curl(&[&format!("{base}/.env")]);
    assert!(
        missing.starts_with("HTTP/1.1 403 Forbidden\r\n"),
        "{missing}"
    );
    assert!(missing.contains(&format!(
        "<address>Apache/2.4.62 (Debian) Server at 127.0.0.1 Port {}</address>",
        decky.port
    )));
    let login = curl(&[
        "-A",
        "Mozilla/5.0 (X11; Linux x86_64)",
        "-d",
        "log=admin&pwd=Winter2025!",
        &format!("{base}/wp-login.php"),
    ]);
    assert!(
        login.contains("The password you entered is incorrect."),
        "{login}"
    );

    let lines = decky.wait_for(|l| l.iter().filter(|x| x.contains(" disconnect ")).count() >= 3);
    let requests: Vec<&String> = lines
        .iter()
        .filter(|l| msgid(l) == Some("request"))
        .collect();
    assert_eq!(requests.len(), 3, "{lines:#?}");
    assert_eq!(sd_param(requests[1], "path").as_deref(), Some("/.env"));
    assert_eq!(sd_param(requests[1], "status").as_deref(), Some("403"));
    assert!(
        sd_param(requests[0], "user_agent")
            .unwrap()
            .starts_with("curl/")
    );
    let attempt = lines
        .iter()
        .find(|l| msgid(l) == Some("login_attempt"))
        .expect("login event");
    assert_eq!(sd_param(attempt, "username").as_deref(), Some("admin"));
    assert_eq!(
        sd_param(attempt, "password").as_deref(),
        Some("Winter2025!")
    );
    assert_eq!(sd_param(attempt, "src_ip").as_deref(), Some("127.0.0.1"));
    assert!(sd_param(attempt, "src_port").is_some());
    for line in &lines {
        let lower = line.to_ascii_lowercase();
        assert!(
            !lower.contains("decnet") && !lower.contains("honeypot"),
            "{line}"
        );
    }
}

#[test]
fn nmap_identifies_apache_httpd() {
    if Command::new("nmap").arg("--version").output().is_err() {
        eprintln!("SKIPPED: nmap is not installed (scripts/test.sh installs it)");
        return;
    }
    let decky = Decky::start("http", &[]);
    let out = Command::new("nmap")
        .args([
            "-sV",
            "-Pn",
            "-n",
            "--version-light",
            "-p",
            &decky.port.to_string(),
            "127.0.0.1",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("/tcp"))
        .unwrap_or_default()
        .to_owned();
    eprintln!("nmap: {line}");
    assert!(line.contains("Apache httpd 2.4.62 ((Debian))"), "{text}");
}

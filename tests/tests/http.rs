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
    decnet_e2e::assert_neutral(&lines);
}

#[test]
fn nmap_identifies_apache_httpd() {
    let decky = Decky::start("http", &[]);
    let Some(line) = decnet_e2e::nmap_version_row(decky.port) else {
        return;
    };
    let text = &line;
    assert!(line.contains("Apache httpd 2.4.62 ((Debian))"), "{text}");
}

#[test]
fn https_serves_the_site_behind_a_plain_self_signed_certificate() {
    let decky = Decky::start("https", &[("HOSTNAME", "web01.corp.local")]);
    let url = format!("https://web01.corp.local:{}/", decky.port);
    let resolve = format!("web01.corp.local:{}:127.0.0.1", decky.port);
    let out = Command::new("curl")
        .args([
            "-s",
            "-i",
            "-k",
            "-v",
            "--max-time",
            "10",
            "--resolve",
            &resolve,
            &url,
        ])
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    let trace = String::from_utf8_lossy(&out.stderr);
    assert!(body.starts_with("HTTP/1.1 200 OK\r\n"), "{body}\n{trace}");
    assert!(body.contains("Apache2 Debian Default Page"));
    assert!(trace.contains("subject: CN=web01.corp.local"), "{trace}");
    assert!(trace.contains("issuer: CN=web01.corp.local"), "{trace}");
    assert!(trace.contains("ALPN: server accepted http/1.1"), "{trace}");
    let lower = trace.to_ascii_lowercase();
    assert!(
        !lower.contains("rcgen") && !lower.contains("decnet"),
        "{trace}"
    );

    let lines = decky.wait_for(|l| l.iter().any(|x| msgid(x) == Some("request")));
    let hello = lines
        .iter()
        .find(|l| msgid(l) == Some("tls_client_hello"))
        .expect("hello event");
    assert_eq!(sd_param(hello, "sni").as_deref(), Some("web01.corp.local"));
    assert!(sd_param(hello, "alpn").unwrap().contains("http/1.1"));
    let request = lines.iter().find(|l| msgid(l) == Some("request")).unwrap();
    assert_eq!(
        sd_param(request, "host").unwrap(),
        format!("web01.corp.local:{}", decky.port)
    );
    assert!(request.contains(" https - request "), "{request}");

    // A plain-text client gets no HTTP answer, and the failed handshake is an event.
    let plain = curl(&[&format!("http://127.0.0.1:{}/", decky.port)]);
    assert!(!plain.contains("HTTP/1.1"), "{plain}");
    let lines = decky.wait_for(|l| l.iter().any(|x| msgid(x) == Some("tls_error")));
    assert!(
        lines.iter().any(|l| msgid(l) == Some("tls_error")),
        "{lines:#?}"
    );
}

#[test]
fn nmap_identifies_apache_over_tls() {
    let decky = Decky::start("https", &[]);
    let Some(line) = decnet_e2e::nmap_version_row(decky.port) else {
        return;
    };
    let text = &line;
    assert!(
        line.contains("ssl/http") && line.contains("Apache httpd 2.4.62 ((Debian))"),
        "{text}"
    );
}

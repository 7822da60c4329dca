//! What the tests that drive `decnet serve` over HTTP share (tests/tests/web.rs,
//! tests/tests/browser.rs): start the binary, plain std TCP HTTP/1.1, intake events over UDP.
#![allow(dead_code)] // each test crate uses a subset

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream, UdpSocket},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::Value;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A loopback UDP port nobody holds (for `serve --udp`).
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Serve {
    pub child: Child,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

impl Serve {
    /// The admin password the first start printed once on stderr.
    pub fn admin_password(&self) -> String {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .find_map(|l| {
                l.split("with password ")
                    .nth(1)
                    .map(|p| p.trim().to_owned())
            })
            .expect("the first start prints the generated admin password")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `decnet serve` on loopback with fast flushes and a 1 s profiler pass; `env` is added to
/// the child's environment. Returns once the listener is up.
pub fn start_serve(data: &std::path::Path, port: u16, udp: u16, env: &[(&str, &str)]) -> Serve {
    start_serve_with(data, port, udp, env, &[])
}

/// [`start_serve`] with more arguments for `serve`.
pub fn start_serve_with(
    data: &std::path::Path,
    port: u16,
    udp: u16,
    env: &[(&str, &str)],
    extra: &[&str],
) -> Serve {
    let mut child = Command::new(decnet_e2e::workspace_bin("decnet"))
        .args([
            "serve",
            "--no-unix",
            "--progress-secs",
            "0",
            "--durable-window-ms",
            "50",
        ])
        .args([
            "--segment-max-age-ms",
            "100",
            "--profile-interval-secs",
            "1",
        ])
        .arg("--udp")
        .arg(format!("127.0.0.1:{udp}"))
        .arg("--port")
        .arg(port.to_string())
        .arg("--data-dir")
        .arg(data)
        .args(extra)
        .env_remove("DECNET_DB_TYPE")
        .env_remove("DECNET_DB_URL")
        .env_remove("DECNET_ADMIN_PASSWORD")
        .env_remove("DECNET_WEB_PORT")
        .env_remove("DECNET_WEB_HOST")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let reader = BufReader::new(child.stderr.take().unwrap());
    {
        let lines = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in reader.lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
    }
    let serve = Serve {
        child,
        stderr: lines,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !serve
        .stderr
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("API and dashboard on"))
    {
        assert!(
            Instant::now() < deadline,
            "serve did not start: {:?}",
            serve.stderr.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    serve
}

/// The admin's token after the forced first password change from `first_password` (the
/// `DECNET_ADMIN_PASSWORD` the server started with) to `new_password`.
pub fn admin_token(port: u16, first_password: &str, new_password: &str) -> String {
    let login = |pw: &str| {
        let (st, body) = http(
            port,
            "POST",
            "/api/v1/auth/login",
            None,
            Some(&serde_json::json!({"username": "admin", "password": pw})),
        );
        assert_eq!(st, 200, "{body}");
        json_of(&body)["access_token"].as_str().unwrap().to_owned()
    };
    let first = login(first_password);
    let (st, body) = http(
        port,
        "POST",
        "/api/v1/auth/change-password",
        Some(&first),
        Some(&serde_json::json!({"old_password": first_password, "new_password": new_password})),
    );
    assert_eq!(st, 200, "{body}");
    login(new_password)
}

/// One HTTP/1.1 request with `Connection: close`; returns (status, body).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, String) {
    http_timeout(port, method, path, token, body, Duration::from_secs(10))
}

/// [`http`] with a chosen read timeout.
pub fn http_timeout(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
    timeout: Duration,
) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // Some servers (chromedriver) keep the connection open despite `Connection: close`: stop
    // at Content-Length when there is one instead of waiting for EOF.
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if length.is_some_and(|len| raw.len() >= end + 4 + len) {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split(' ').nth(1).unwrap().parse().unwrap();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    (status, body)
}

pub fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

pub fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// One RFC 5424 line into the intake's UDP listener.
pub fn send_line(udp: u16, line: &str) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.send_to(line.as_bytes(), ("127.0.0.1", udp)).unwrap();
}

pub fn send_event(udp: u16, ip: &str, user: &str) {
    send_line(
        udp,
        &format!(
            "<134>1 2026-11-27T05:00:00Z web01 ssh - auth_attempt [relay@55555 src_ip=\"{ip}\" username=\"{user}\"] login attempt"
        ),
    );
}

pub fn wait_total(port: u16, token: &str, want: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (st, body) = http(port, "GET", "/api/v1/logs?limit=1", Some(token), None);
        assert_eq!(st, 200, "{body}");
        if json_of(&body)["total"].as_i64().unwrap() >= want {
            return;
        }
        assert!(Instant::now() < deadline, "event never reached /logs");
        std::thread::sleep(Duration::from_millis(100));
    }
}

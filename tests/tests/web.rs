//! `decnet serve` as a process: first start prints the admin password once, the forced
//! password change gates the API, an event sent to the intake shows up in /logs and on the
//! live stream, and a reconnect with Last-Event-ID resumes after what was seen. Plain std TCP
//! HTTP/1.1 (no client library), against the real binary on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::{
    io::{Read, Write},
    net::TcpStream,
    process::Command,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

#[path = "support/web.rs"]
mod support;
use support::{free_port, free_udp_port, http, json_of, send_event, start_serve, wait_total};

/// Open the stream and return the first `event: logs` frame's (id, data).
fn first_logs_frame(port: u16, token: &str, last_event_id: Option<&str>) -> (String, Value) {
    let (st, body) = http(port, "POST", "/api/v1/auth/ticket", Some(token), None);
    assert_eq!(st, 200, "{body}");
    let ticket = json_of(&body)["ticket"].as_str().unwrap().to_owned();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let resume = last_event_id
        .map(|id| format!("Last-Event-ID: {id}\r\n"))
        .unwrap_or_default();
    write!(s, "GET /api/v1/stream?ticket={ticket} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n{resume}\r\n").unwrap();
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "stream closed: {text}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        if let Some(pos) = text.find("event: logs\n") {
            let frame = &text[pos..];
            if let Some(end) = frame.find("\n\n") {
                let frame = &frame[..end];
                let id = frame
                    .lines()
                    .find_map(|l| l.strip_prefix("id: "))
                    .unwrap()
                    .to_owned();
                let data = frame
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .unwrap();
                return (id, json_of(data));
            }
        }
        assert!(Instant::now() < deadline, "no logs frame: {text}");
    }
}

#[test]
fn serve_first_login_forced_change_logs_and_stream_resume() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let udp = free_udp_port();
    let serve = start_serve(dir.path(), port, udp, &[]);
    let password = serve.admin_password();
    // The secret is private.
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.path().join("secrets/jwt.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    let (st, body) = http(port, "GET", "/", None, None);
    assert_eq!(st, 200);
    assert!(body.contains("/assets/app.js"));
    let (st, _) = http(port, "GET", "/api/v1/stats", None, None);
    assert_eq!(st, 401);

    let login = |pw: &str| {
        http(
            port,
            "POST",
            "/api/v1/auth/login",
            None,
            Some(&json!({"username": "admin", "password": pw})),
        )
    };
    let (st, body) = login(&password);
    assert_eq!(st, 200, "{body}");
    let v = json_of(&body);
    assert_eq!(v["must_change_password"], true);
    let token = v["access_token"].as_str().unwrap().to_owned();
    let (st, body) = http(port, "GET", "/api/v1/stats", Some(&token), None);
    assert_eq!(st, 403, "{body}");
    assert_eq!(json_of(&body)["error"]["code"], "must_change_password");
    let (st, body) = http(
        port,
        "POST",
        "/api/v1/auth/change-password",
        Some(&token),
        Some(&json!({"old_password": password, "new_password": "a-much-better-one"})),
    );
    assert_eq!(st, 200, "{body}");
    let (st, body) = login("a-much-better-one");
    assert_eq!(st, 200);
    let token = json_of(&body)["access_token"].as_str().unwrap().to_owned();

    // An event through the intake reaches SQL and the stream.
    send_event(udp, "203.0.113.7", "root");
    wait_total(port, &token, 1);
    let (st, body) = http(
        port,
        "GET",
        "/api/v1/logs?search=attacker:203.0.113.7",
        Some(&token),
        None,
    );
    assert_eq!(st, 200);
    let v = json_of(&body);
    assert_eq!(v["total"], 1);
    assert_eq!(v["data"][0]["fields"]["username"], "root");
    let first_id = v["data"][0]["id"].as_i64().unwrap();

    // While no stream is open a second event is flushed; resuming from the first id
    // delivers exactly the second.
    send_event(udp, "203.0.113.8", "oracle");
    wait_total(port, &token, 2);
    let (id, data) = first_logs_frame(port, &token, Some(&first_id.to_string()));
    let ips: Vec<&str> = data
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["attacker_ip"].as_str().unwrap())
        .collect();
    assert_eq!(ips, ["203.0.113.8"]);
    assert_eq!(id.parse::<i64>().unwrap(), first_id + 1);

    // The profiler inside serve turns both events into attackers.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (st, body) = http(port, "GET", "/api/v1/attackers", Some(&token), None);
        assert_eq!(st, 200, "{body}");
        let v = json_of(&body);
        if v["total"] == 2 {
            let ips: Vec<&str> = v["data"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|a| a["ip"].as_str())
                .collect();
            assert!(
                ips.contains(&"203.0.113.7") && ips.contains(&"203.0.113.8"),
                "{v}"
            );
            // The profiler's session of that attacker is served with the attacker.
            let uuid = v["data"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["ip"] == "203.0.113.7")
                .and_then(|a| a["uuid"].as_str())
                .unwrap()
                .to_owned();
            let (st, body) = http(
                port,
                "GET",
                &format!("/api/v1/attackers/{uuid}/sessions"),
                Some(&token),
                None,
            );
            assert_eq!(st, 200, "{body}");
            let s = json_of(&body);
            assert_eq!(s["total"], 1, "{s}");
            assert_eq!(s["data"][0]["service"], "ssh", "{s}");
            assert_eq!(s["data"][0]["decky"], "web01", "{s}");
            // The stored lists are served as JSON, not as strings holding JSON.
            assert!(s["data"][0]["commands"].is_array(), "{s}");
            assert!(s["data"][0]["credentials"].is_array(), "{s}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "profiler did not run in serve: {v}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Without Docker the deploy route says what is missing instead of pretending.
    let (st, body) = http(
        port,
        "POST",
        "/api/v1/deckies/deploy",
        Some(&token),
        Some(&json!({"ini_content": "[web01]\nservices = nosuchservice\n"})),
    );
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("nosuchservice"), "{body}");

    // Metrics and OpenAPI.
    let (st, body) = http(port, "GET", "/metrics", Some(&token), None);
    assert_eq!(st, 200);
    assert!(body.contains("decnet_events 2"), "{body}");
    // serve adds the store's and the intake's stage counters, grouped into typed families.
    assert!(
        body.contains("# TYPE decnet_component_received_events_total counter\n"),
        "{body}"
    );
    assert!(
        body.contains("decnet_component_received_events_total{component=\"syslog_intake\"}"),
        "{body}"
    );
    assert!(
        body.contains("decnet_component_sent_events_total{component=\"segment_writer\"}"),
        "{body}"
    );
    let (st, body) = http(port, "GET", "/api/v1/openapi.json", None, None);
    assert_eq!(st, 200);
    assert!(json_of(&body)["paths"]["/api/v1/logs"]["get"].is_object());

    // Logout revokes.
    let (st, _) = http(port, "POST", "/api/v1/auth/logout", Some(&token), None);
    assert_eq!(st, 204);
    let (st, _) = http(port, "GET", "/api/v1/stats", Some(&token), None);
    assert_eq!(st, 401);

    // SIGTERM: a clean stop.
    let mut serve = serve;
    let killed = Command::new("kill")
        .args(["-TERM", &serve.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = serve.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "serve did not stop: {:?}",
            serve.stderr.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "{status}: {:?}",
        serve.stderr.lock().unwrap()
    );
}

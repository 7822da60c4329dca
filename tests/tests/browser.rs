//! The embedded dashboard in a real browser: headless Chromium driven over WebDriver
//! (Debian's `chromedriver`, plain std TCP HTTP/1.1, no client library) against `decnet serve`.
//!
//! Walks what an operator does on first start: the login page, the forced password change,
//! an event sent to the intake appearing live on the overview within 2 s, the fleet page
//! refusing an invalid INI inline (with `DOCKER_HOST` pointing nowhere, so a refusal that
//! reached the engine would read differently), and the attacker detail page listing the
//! commands of the attacker's session once the profiler inside `serve` has run. Every page is
//! saved as a PNG under `<target dir>/browser-screenshots/` (the path is printed).
//!
//! Skips (loudly) when `chromium` or `chromedriver` is absent, unless `DECNET_REQUIRE_BROWSER=1`
//! (scripts/test.sh sets it after installing both), which turns the skip into a failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use base64::Engine as _;
use serde_json::{Value, json};

#[path = "support/web.rs"]
mod support;
use support::{
    free_port, free_udp_port, http, http_timeout, json_of, send_event, send_line, start_serve,
};

/// A loaded 2-core CI machine can take many seconds to start Chromium.
const DRIVER_TIMEOUT: Duration = Duration::from_secs(90);

/// W3C WebDriver's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

struct Driver {
    child: Child,
    port: u16,
    session: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            // Closes Chromium; killing chromedriver alone would orphan it.
            let _ = std::panic::catch_unwind(|| {
                http(
                    self.port,
                    "DELETE",
                    &format!("/session/{}", self.session),
                    None,
                    None,
                )
            });
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    fn start(chromedriver: &Path) -> Self {
        let port = free_port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut d = Self {
            child,
            port,
            session: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = d.child.try_wait().unwrap() {
                panic!("chromedriver exited: {status}");
            }
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        // CI runs as root in a container: no sandbox, no GPU, no /dev/shm to speak of.
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1366,900", "--no-first-run", "--disable-extensions",
            ]},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let (st, body) = http_timeout(port, "POST", "/session", None, Some(&caps), DRIVER_TIMEOUT);
        assert_eq!(st, 200, "chromedriver refused a session: {body}");
        json_of(&body)["value"]["sessionId"]
            .as_str()
            .unwrap()
            .clone_into(&mut d.session);
        d
    }

    fn cmd(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (st, text) = http_timeout(
            self.port,
            method,
            &format!("/session/{}{path}", self.session),
            None,
            body,
            DRIVER_TIMEOUT,
        );
        assert_eq!(st, 200, "{method} {path}: {text}");
        json_of(&text)["value"].clone()
    }

    fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(&json!({ "url": url })));
    }

    fn js(&self, script: &str, args: &[Value]) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(&json!({"script": script, "args": args})),
        )
    }

    /// Text of the first element matching `css`, or None when there is none yet.
    fn text(&self, css: &str) -> Option<String> {
        self.js(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
            &[json!(css)],
        )
        .as_str()
        .map(str::to_owned)
    }

    /// Waits until the text of `css` satisfies `ok`; returns it.
    fn wait_text(&self, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let t = self.text(css);
            if let Some(t) = t.as_deref().filter(|t| ok(t)) {
                return t.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "{what}: `{css}` is {t:?}; page: {:?}; console: {:?}",
                self.text("#main"),
                self.console()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn element(&self, css: &str) -> String {
        let v = self.cmd(
            "POST",
            "/element",
            Some(&json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_owned()
    }

    fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css);
        self.cmd("POST", &format!("/element/{e}/clear"), Some(&json!({})));
        self.cmd(
            "POST",
            &format!("/element/{e}/value"),
            Some(&json!({ "text": text })),
        );
    }

    fn click(&self, css: &str) {
        let e = self.element(css);
        self.cmd("POST", &format!("/element/{e}/click"), Some(&json!({})));
    }

    /// The browser console since the last call (chromedriver's log endpoint).
    fn console(&self) -> Vec<String> {
        let (st, text) = http(
            self.port,
            "POST",
            &format!("/session/{}/se/log", self.session),
            None,
            Some(&json!({"type": "browser"})),
        );
        if st != 200 {
            return vec![format!("(no console log: {st} {text})")];
        }
        json_of(&text)["value"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| format!("{} {}", e["level"], e["message"]))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Saves the viewport as `<dir>/<name>.png` and checks it is a real, non-empty PNG.
    fn screenshot(&self, dir: &Path, name: &str) {
        let b64 = self.cmd("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap();
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000,
            "{name}: not a PNG"
        );
        // IHDR: width and height, big-endian, right after the signature and chunk header.
        let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
        let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
        assert!(width > 0 && height > 0, "{name}: {width}x{height}");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, &png).unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() > 1000);
    }
}

/// `<target dir>/browser-screenshots`: CARGO_TARGET_DIR when set, else two levels above this
/// test executable (`<target>/<profile>/deps/`).
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || {
            std::env::current_exe()
                .unwrap()
                .ancestors()
                .nth(3)
                .unwrap()
                .to_path_buf()
        },
        PathBuf::from,
    );
    let dir = target.join("browser-screenshots");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn dashboard_in_headless_chromium() {
    let browser = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|b| on_path(b));
    let driver = on_path("chromedriver");
    let (Some(_), Some(chromedriver)) = (browser, driver) else {
        assert!(
            std::env::var("DECNET_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "DECNET_REQUIRE_BROWSER=1 but chromium or chromedriver is not on PATH \
             (apt-get install chromium chromium-driver)"
        );
        eprintln!(
            "SKIPPED: the browser test needs `chromium` and `chromedriver` on PATH \
             (apt-get install chromium chromium-driver)"
        );
        return;
    };
    let t0 = Instant::now();
    let shots = screenshot_dir();
    eprintln!("browser screenshots: {}", shots.display());

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let udp = free_udp_port();
    // No engine answers there: a deploy that got past validation would fail differently.
    let serve = start_serve(
        dir.path(),
        port,
        udp,
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    let password = serve.admin_password();
    let base = format!("http://127.0.0.1:{port}");
    eprintln!("serve up after {:?}", t0.elapsed());
    let b = Driver::start(&chromedriver);
    eprintln!("browser up after {:?}", t0.elapsed());

    // Login, then the forced password change (the current password is carried over).
    b.goto(&format!("{base}/"));
    b.wait_text("#login-submit", "login page", |t| t == "Sign in");
    b.screenshot(&shots, "login");
    b.type_into("#username", "admin");
    b.type_into("#password", "wrong-password");
    b.click("#login-submit");
    b.wait_text("#login-error", "wrong password refused", |t| !t.is_empty());
    // The browser logs that refused login's 401; only what follows must be clean.
    b.console();
    b.type_into("#password", &password);
    b.click("#login-submit");
    b.wait_text("#pw-submit", "forced password change", |t| {
        t == "Change password"
    });
    b.type_into("#new-password", "browser-pass-1");
    b.type_into("#new-password2", "browser-pass-2");
    b.click("#pw-submit");
    b.wait_text("#pw-error", "mismatch refused", |t| t.contains("differ"));
    b.type_into("#new-password2", "browser-pass-1");
    b.click("#pw-submit");

    // Overview: live once the stream is open; an intake event shows up within 2 s.
    b.wait_text("#live-state", "overview stream", |t| t == "live");
    b.wait_text("#whoami", "nav", |t| t.contains("admin"));
    let sent = Instant::now();
    send_event(udp, "198.51.100.23", "root");
    b.wait_text("#live-feed", "live event", |t| t.contains("198.51.100.23"));
    let latency = sent.elapsed();
    eprintln!("intake → overview live feed: {latency:?}");
    assert!(latency < Duration::from_secs(2), "{latency:?}");
    b.wait_text("#stat-total_logs", "stats card", |t| t != "–" && t != "0");
    b.screenshot(&shots, "overview");

    // Fleet: an invalid INI is refused inline, before any engine is involved.
    b.goto(&format!("{base}/#/fleet"));
    b.wait_text("#deploy", "fleet page", |t| t == "Deploy");
    b.type_into("#ini", "[web01]\nservices = nosuchservice\n");
    b.click("#deploy");
    let err = b.wait_text("#deploy-error", "deploy refusal", |t| !t.is_empty());
    assert!(err.contains("nosuchservice"), "{err}");
    assert!(
        !err.contains("DOCKER_HOST") && !err.contains("nonexistent"),
        "the engine was reached: {err}"
    );
    b.screenshot(&shots, "fleet");
    // The refusal's 400 is logged by the browser; what follows must be clean.
    let logged = b.console();
    assert!(
        logged
            .iter()
            .all(|l| !l.contains("SEVERE") || l.contains("deckies/deploy")),
        "browser console errors: {logged:?}"
    );

    // A credential and a shell session; the profiler (1 s passes) makes the attacker.
    let ts = now_rfc3339();
    send_line(
        udp,
        &format!(
            "<134>1 {ts} web01 ssh - auth_attempt [relay@55555 src_ip=\"198.51.100.23\" username=\"root\" password=\"hunter2\"] login"
        ),
    );
    for cmd in ["uname -a", "cat /etc/passwd"] {
        send_line(
            udp,
            &format!(
                "<134>1 {ts} web01 telnet - command [relay@55555 src_ip=\"198.51.100.23\" cmd=\"{cmd}\"] shell"
            ),
        );
    }
    let token = b
        .js("return sessionStorage.getItem('token');", &[])
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (st, body) = http(
            port,
            "GET",
            "/api/v1/attackers?search=198.51.100.23",
            Some(&token),
            None,
        );
        assert_eq!(st, 200, "{body}");
        let v = json_of(&body);
        if v["data"][0]["event_count"].as_i64() >= Some(4) {
            break;
        }
        assert!(Instant::now() < deadline, "profiler never caught up: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }

    b.goto(&format!("{base}/#/logs"));
    b.wait_text("#log-rows", "logs page", |t| t.contains("cat /etc/passwd"));
    b.screenshot(&shots, "logs");

    b.goto(&format!("{base}/#/bounty"));
    b.wait_text("#bounty-rows", "bounty page", |t| t.contains("hunter2"));
    b.screenshot(&shots, "bounty");

    b.goto(&format!("{base}/#/attackers"));
    b.wait_text("#attacker-rows", "attackers page", |t| {
        t.contains("198.51.100.23")
    });
    b.screenshot(&shots, "attackers");
    b.click("#attacker-rows tr.click");
    b.wait_text("#commands", "attacker commands", |t| {
        t.contains("uname -a") && t.contains("cat /etc/passwd")
    });
    let sessions = b.wait_text("#sessions", "attacker sessions", |t| t.contains("telnet"));
    assert!(sessions.contains("cat /etc/passwd"), "{sessions}");
    b.screenshot(&shots, "attacker-detail");

    b.goto(&format!("{base}/#/config"));
    b.wait_text("#users", "config page", |t| t.contains("admin"));
    b.screenshot(&shots, "config");

    // Nothing went wrong in the page along the way.
    let severe: Vec<String> = b
        .console()
        .into_iter()
        .filter(|l| l.contains("SEVERE"))
        .collect();
    assert!(severe.is_empty(), "browser console errors: {severe:?}");

    let saved = std::fs::read_dir(&shots).unwrap().count();
    assert_eq!(saved, 8, "one PNG per page in {}", shots.display());
    eprintln!(
        "{saved} screenshots in {} ({:?} in all)",
        shots.display(),
        t0.elapsed()
    );
}

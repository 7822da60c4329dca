//! End-to-end tests that cross crates.
//!
//! The tests in `tests/` drive the real `decnet` binary (and, as later issues land, real
//! network namespaces, Docker and a browser) and check what a user would see. This library
//! holds what those tests share.

use std::{path::PathBuf, process::Command, sync::OnceLock};

/// Path of a freshly built binary of this workspace.
///
/// Cargo builds another package's binaries for our tests only as a side effect, so a stale
/// `decnet` could be tested; this builds it (once per test process) with the same cargo,
/// profile and target directory, and returns its path. Panics with cargo's output on failure:
/// a test cannot run without the binary.
#[allow(clippy::panic)] // test support: a missing binary must fail the test loudly
pub fn workspace_bin(name: &'static str) -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        // The runtime value first: another checkout sharing the target directory may have
        // compiled this library, baking its own path into `env!`.
        let manifest = PathBuf::from(
            std::env::var_os("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("../Cargo.toml");
        // The test executable lives in <target>/<profile>/deps/; binaries one level up.
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .ok_or("test executable has no parent directory")?
            .to_path_buf();
        // Another checkout sharing this target directory may have replaced the binaries there
        // while ours count as fresh; removing them makes cargo link this checkout's again.
        for bin in ["decnet", "decky"] {
            let _ = std::fs::remove_file(dir.join(bin));
        }
        let out = Command::new(cargo)
            // Every package that ships a binary the tests run.
            .args([
                "build",
                "--quiet",
                "--bins",
                "-p",
                "decnet",
                "-p",
                "decnet-services",
            ])
            .arg("--manifest-path")
            .arg(&manifest)
            .output()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(dir)
    });
    match built {
        Ok(dir) => dir.join(name),
        Err(e) => panic!("building the workspace binaries failed:\n{e}"),
    }
}

/// A `decky serve <slug>` process on a loopback port, with its events collected from a unix
/// datagram socket; killed on drop.
#[derive(Debug)]
pub struct Decky {
    child: std::process::Child,
    pub port: u16,
    events: std::os::unix::net::UnixDatagram,
    _dir: tempfile::TempDir,
}

impl Decky {
    /// Start `slug` with persona variables `env` on a free loopback port and wait until it
    /// accepts connections.
    #[allow(clippy::panic)] // test support: a decky that does not start fails the test loudly
    pub fn start(slug: &str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let sock = dir.path().join("events.sock");
        let events = std::os::unix::net::UnixDatagram::bind(&sock)
            .unwrap_or_else(|e| panic!("bind {}: {e}", sock.display()));
        events
            .set_read_timeout(Some(std::time::Duration::from_millis(200)))
            .unwrap_or_else(|e| panic!("timeout: {e}"));
        let port = free_port();
        let child = Command::new(workspace_bin("decky"))
            .args(["serve", slug])
            .env_clear()
            .env("NODE_NAME", "e2e-host")
            .env("HOSTNAME", "SRV-WEB-42")
            .env("EVENT_SINK", format!("unix:{}", sock.display()))
            .env("LISTEN_ADDR", "127.0.0.1")
            .env("PORTS", port.to_string())
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn decky: {e}"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "decky serve {slug} did not listen"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let decky = Self {
            child,
            port,
            events,
            _dir: dir,
        };
        // The readiness probe itself is a connection: drain its connect/disconnect events.
        decky.wait_for(|lines| lines.iter().filter(|l| l.contains(" disconnect ")).count() >= 1);
        decky
    }

    /// Every event line received so far (RFC 5424 text).
    pub fn drain(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = self.events.recv(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        out
    }

    /// Collect event lines until `done` says the set is complete (at most 10 s).
    pub fn wait_for(&self, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut lines = Vec::new();
        while !done(&lines) && std::time::Instant::now() < deadline {
            lines.extend(self.drain());
        }
        lines
    }
}

impl Drop for Decky {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port free on loopback right now.
#[allow(clippy::panic)] // test support
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or_else(|e| panic!("no free port: {e}"), |a| a.port())
}

/// The value of SD parameter `key` in an RFC 5424 event line.
pub fn sd_param(line: &str, key: &str) -> Option<String> {
    let needle = format!(" {key}=\"");
    let start = line.find(&needle)? + needle.len();
    let mut value = String::new();
    let mut chars = line[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => value.push(chars.next()?),
            '"' => return Some(value),
            c => value.push(c),
        }
    }
    None
}

/// The MSGID (event kind) of an RFC 5424 event line.
pub fn msgid(line: &str) -> Option<&str> {
    line.split(' ').nth(5)
}

/// `nmap -sV` on a loopback port: the `PORT STATE SERVICE VERSION` row (empty when nmap
/// printed none), or `None`, after a loud SKIPPED line, when nmap is not installed.
pub fn nmap_version_row(port: u16) -> Option<String> {
    let out = Command::new("nmap")
        .args([
            "-sV",
            "-Pn",
            "-n",
            "--version-light",
            "-p",
            &port.to_string(),
            "127.0.0.1",
        ])
        .output();
    let Ok(out) = out else {
        eprintln!("SKIPPED: nmap is not installed (scripts/test.sh installs it)");
        return None;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text
        .lines()
        .find(|l| l.starts_with(&format!("{port}/tcp")))
        .unwrap_or_default();
    eprintln!("nmap: {row}");
    Some(row.to_owned())
}

/// Run a Python client script (`python3 -c SCRIPT PORT`) and return what it printed; a
/// failing client fails the test with its output.
#[allow(clippy::panic)] // test support
pub fn python_client(script: &str, port: u16) -> String {
    let out = Command::new("python3")
        .args(["-c", script, &port.to_string()])
        .output()
        .unwrap_or_else(|e| panic!("python3 is installed by scripts/test.sh: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// No event line names the product.
pub fn assert_neutral(lines: &[String]) {
    for line in lines {
        let lower = line.to_ascii_lowercase();
        assert!(
            !lower.contains("decnet") && !lower.contains("honeypot"),
            "{line}"
        );
    }
}

//! The active prober inside `decnet serve --probe`: an "attacker" in its own network
//! namespace (behind a veth pair this test creates, its kernel's default TTL set to 128) runs
//! an SSH server (the `decky` ssh emulator) and a TLS server (`openssl s_server`); one event
//! from its address makes it an attacker, and the prober's JARM, hasshServer and TCP SYN-ACK
//! fingerprints of it come back as fingerprint bounties through the API. Needs root; without
//! it the test says SKIPPED loudly and passes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

#[path = "support/web.rs"]
mod support;
use support::{admin_token, free_port, free_udp_port, http, json_of, send_event, start_serve_with};

fn ok(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The attacker's namespace and the processes in it; all removed on drop.
struct Attacker {
    netns: String,
    host_end: String,
    ip: String,
    servers: Vec<Child>,
    _dir: tempfile::TempDir,
}

impl Attacker {
    fn new() -> Self {
        let id = std::process::id() % 10_000;
        let netns = format!("prb-{id}");
        let host_end = format!("prh{id}");
        let peer = format!("prp{id}");
        let octet = 10 + id % 200;
        let a = Self {
            netns: netns.clone(),
            host_end: host_end.clone(),
            ip: format!("10.232.{octet}.2"),
            servers: Vec::new(),
            _dir: tempfile::tempdir().unwrap(),
        };
        // A run killed before its drop left these names behind; a later process may reuse
        // the pid, so clear them first.
        let _ = Command::new("ip").args(["link", "del", &host_end]).output();
        let _ = Command::new("ip").args(["netns", "del", &netns]).output();
        ok("ip", &["netns", "add", &netns]);
        ok(
            "ip",
            &[
                "link", "add", &host_end, "type", "veth", "peer", "name", &peer,
            ],
        );
        ok("ip", &["link", "set", &peer, "netns", &netns]);
        ok(
            "ip",
            &[
                "addr",
                "add",
                &format!("10.232.{octet}.1/24"),
                "dev",
                &host_end,
            ],
        );
        ok("ip", &["link", "set", &host_end, "up"]);
        ok(
            "ip",
            &[
                "-n",
                &netns,
                "addr",
                "add",
                &format!("{}/24", a.ip),
                "dev",
                &peer,
            ],
        );
        ok("ip", &["-n", &netns, "link", "set", &peer, "up"]);
        ok("ip", &["-n", &netns, "link", "set", "lo", "up"]);
        ok(
            "ip",
            &[
                "netns",
                "exec",
                &netns,
                "sysctl",
                "-qw",
                "net.ipv4.ip_default_ttl=128",
            ],
        );
        a
    }

    fn spawn(&mut self, program: &str, args: &[&str], env: &[(&str, &str)]) {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.netns, program])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.servers.push(child);
    }

    fn wait_listening(&self, port: u16) {
        let addr = format!("{}:{port}", self.ip).parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err() {
            assert!(Instant::now() < deadline, "{addr} never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        for c in &mut self.servers {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_end])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .output();
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn serve_probes_an_attackers_own_servers() {
    if !is_root() {
        eprintln!(
            "SKIPPED serve_probes_an_attackers_own_servers: needs root for network namespaces and raw sockets"
        );
        return;
    }
    let mut attacker = Attacker::new();
    let key = attacker._dir.path().join("key.pem");
    let cert = attacker._dir.path().join("cert.pem");
    ok(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=c2",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ],
    );
    let decky = decnet_e2e::workspace_bin("decky");
    attacker.spawn(
        decky.to_str().unwrap(),
        &["serve", "ssh"],
        &[
            ("LISTEN_ADDR", "0.0.0.0"),
            ("PORTS", "22"),
            ("HOSTNAME", "c2"),
        ],
    );
    attacker.spawn(
        "openssl",
        &[
            "s_server",
            "-quiet",
            "-accept",
            "443",
            "-cert",
            cert.to_str().unwrap(),
            "-key",
            key.to_str().unwrap(),
        ],
        &[],
    );
    attacker.wait_listening(22);
    attacker.wait_listening(443);

    let dir = tempfile::tempdir().unwrap();
    let (port, udp) = (free_port(), free_udp_port());
    let _serve = start_serve_with(
        dir.path(),
        port,
        udp,
        &[("DECNET_ADMIN_PASSWORD", "first-start-password")],
        &["--probe", "--probe-interval", "1", "--probe-timeout", "3"],
    );
    let token = admin_token(port, "first-start-password", "a-much-better-one");

    // One event makes the address an attacker (the profiler), which the prober then probes.
    send_event(udp, &attacker.ip, "root");
    let started = Instant::now();
    let mut found: Vec<Value> = Vec::new();
    while started.elapsed() < Duration::from_secs(90) {
        std::thread::sleep(Duration::from_millis(500));
        let (st, body) = http(
            port,
            "GET",
            "/api/v1/bounty?bounty_type=fingerprint&limit=100",
            Some(&token),
            None,
        );
        assert_eq!(st, 200, "{body}");
        found = json_of(&body)["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["attacker_ip"] == attacker.ip.as_str())
            .map(|b| b["payload"].clone())
            .collect();
        let kinds: Vec<&str> = found
            .iter()
            .filter_map(|p| p["fingerprint_type"].as_str())
            .collect();
        if ["jarm", "hassh_server", "tcpfp"]
            .iter()
            .all(|k| kinds.contains(k))
        {
            break;
        }
    }
    eprintln!("fingerprints after {:?}: {found:?}", started.elapsed());
    let of = |t: &str| {
        found
            .iter()
            .find(|p| p["fingerprint_type"] == t)
            .unwrap_or_else(|| panic!("no {t} fingerprint of {}: {found:?}", attacker.ip))
            .clone()
    };
    let jarm = of("jarm");
    let hash = jarm["jarm_hash"].as_str().unwrap();
    assert_eq!(hash.len(), 62, "{jarm}");
    assert!(hash.bytes().any(|b| b != b'0'), "{jarm}");
    assert_eq!(jarm["target_port"], "443", "{jarm}");
    let hassh = of("hassh_server");
    assert!(
        hassh["ssh_banner"]
            .as_str()
            .unwrap()
            .starts_with("SSH-2.0-OpenSSH_"),
        "{hassh}"
    );
    let h = hassh["hassh_server"].as_str().unwrap();
    assert!(
        h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()),
        "{hassh}"
    );
    let tcp = of("tcpfp");
    // Read from the SYN-ACK itself: the attacker's kernel was set to TTL 128, one hop away.
    assert_eq!(tcp["ttl"], "128", "{tcp}");
    assert_eq!(tcp["df"], "1", "{tcp}");
    // The events themselves are in the log, attributed to the attacker as their target.
    let (st, body) = http(
        port,
        "GET",
        "/api/v1/logs?search=service:prober&limit=200",
        Some(&token),
        None,
    );
    assert_eq!(st, 200, "{body}");
    let logs = json_of(&body);
    let kinds: Vec<&str> = logs["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["fields"]["target_ip"] == attacker.ip.as_str())
        .filter_map(|e| e["event_type"].as_str())
        .collect();
    for k in ["jarm_fingerprint", "hassh_fingerprint", "tcpfp_fingerprint"] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
}

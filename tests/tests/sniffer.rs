//! `decnet sniffer` end to end: a network namespace and a veth pair, real deckies (http,
//! https, ssh) on the host end, real clients (curl, ssh, nmap) in the namespace, the sniffer
//! as a process into a temp data directory; then the events in SQLite, the retained pcap,
//! its export, and the same fingerprints from the offline path over that pcap.
//!
//! Needs root (netns, veth, AF_XDP/AF_PACKET); without it every test prints a SKIPPED banner.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use decnet_e2e::workspace_bin;
use decnet_store::{
    Event,
    repo::{EventQuery, SqlRepository},
};

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
}

fn skip(test: &str) -> bool {
    if is_root() {
        return false;
    }
    eprintln!(
        "\n==== SKIPPED {test}: needs root (netns, veth, packet capture) ====\n==== run: sudo -E cargo test -p decnet-e2e --test sniffer ====\n"
    );
    true
}

fn run(cmd: &[&str]) {
    let out = Command::new(cmd[0]).args(&cmd[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A namespace `ns` holding `peer` (10.a.b.2/24), linked to `host` (10.a.b.1/24) in the root
/// namespace; removed on drop.
struct Net {
    ns: String,
    host: String,
    prefix: String,
}

impl Net {
    fn new() -> Self {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let tag = format!("{}{n}", pid % 100_000);
        let ns = format!("dsn{tag}");
        let host = format!("dsh{tag}");
        let peer = format!("dsp{tag}");
        // 10.(200+n).(pid%250).0/24: distinct per test and per concurrent test process.
        let prefix = format!("10.{}.{}", 200 + n, pid % 250);
        let net = Self {
            ns: ns.clone(),
            host: host.clone(),
            prefix: prefix.clone(),
        };
        run(&["ip", "netns", "add", &ns]);
        run(&[
            "ip", "link", "add", &host, "type", "veth", "peer", "name", &peer,
        ]);
        run(&["ip", "link", "set", &peer, "netns", &ns]);
        run(&["ip", "addr", "add", &format!("{prefix}.1/24"), "dev", &host]);
        run(&["ip", "link", "set", &host, "up"]);
        for cmd in [
            vec!["ip", "addr", "add", &format!("{prefix}.2/24"), "dev", &peer],
            vec!["ip", "link", "set", &peer, "up"],
            vec!["ip", "link", "set", "lo", "up"],
        ] {
            let mut full = vec!["ip", "netns", "exec", &ns];
            full.extend(cmd);
            run(&full);
        }
        // Let the link come up (the peer answers ARP).
        let deadline = Instant::now() + Duration::from_secs(5);
        while !Command::new("ip")
            .args(["netns", "exec", &ns, "ping", "-c1", "-W1"])
            .arg(format!("{prefix}.1"))
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
        {
            assert!(Instant::now() < deadline, "veth never came up");
        }
        net
    }

    fn host_ip(&self) -> String {
        format!("{}.1", self.prefix)
    }

    fn peer_ip(&self) -> String {
        format!("{}.2", self.prefix)
    }

    fn exec(&self, cmd: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .args(cmd)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host])
            .status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// `decky serve <slug>` bound to `addr:port`; killed on drop.
struct Service(Child);

impl Service {
    fn start(slug: &str, addr: &str, port: u16) -> Self {
        let child = Command::new(workspace_bin("decky"))
            .args(["serve", slug])
            .env_clear()
            .env("NODE_NAME", "e2e-host")
            .env("HOSTNAME", "SRV-WEB-42")
            .env("EVENT_SINK", "stdout")
            .env("LISTEN_ADDR", addr)
            .env("PORTS", port.to_string())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect((addr, port)).is_err() {
            assert!(Instant::now() < deadline, "decky {slug} did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self(child)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Sniffer {
    child: Child,
    stderr: PathBuf,
}

impl Sniffer {
    fn start(data: &Path, interface: &str, extra: &[&str]) -> Self {
        let stderr = data.with_extension("stderr");
        let child = Command::new(workspace_bin("decnet"))
            .args(["-v", "sniffer", "--data-dir"])
            .arg(data)
            .args(["--interface", interface, "--progress-secs", "0"])
            .args(extra)
            .env("DECNET_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let s = Self { child, stderr };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !s.log().contains("sniffer: capturing") {
            assert!(
                Instant::now() < deadline,
                "sniffer did not start:\n{}",
                s.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn stop(mut self) -> String {
        // SIGTERM, then wait for the drain.
        run(&["kill", "-TERM", &self.child.id().to_string()]);
        let status = self.child.wait().unwrap();
        let log = self.log();
        assert!(status.success(), "sniffer failed:\n{log}");
        log
    }
}

fn sniffer_events(data: &Path) -> Vec<Event> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = format!("sqlite://{}?mode=rw", data.join("decnet.db").display());
    let repo = rt.block_on(SqlRepository::connect(&url)).unwrap();
    let query = EventQuery {
        search: "service:sniffer".into(),
        ..EventQuery::default()
    };
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = rt
            .block_on(repo.events_after(after, &query, 10_000))
            .unwrap();
        let Some(last) = page.last() else { break };
        after = last.id;
        out.extend(page.into_iter().map(|e| e.event));
    }
    rt.block_on(repo.close());
    out
}

fn kinds(events: &[Event]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for e in events {
        *m.entry(e.kind.clone()).or_insert(0) += 1;
    }
    m
}

fn field_set<'a>(events: &'a [Event], kind: &str, key: &str) -> Vec<&'a str> {
    let mut v: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == kind)
        .filter_map(|e| e.field(key))
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn curl(net: &Net, url: &str) {
    let out = net.exec(&[
        "curl",
        "-s",
        "-k",
        "--max-time",
        "10",
        "-o",
        "/dev/null",
        url,
    ]);
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The full handshakes over AF_PACKET on the host end itself.
#[test]
fn dedicated_af_packet_sees_handshakes_fingerprints_scans_and_keeps_pcaps() {
    if skip("dedicated_af_packet_sees_handshakes_fingerprints_scans_and_keeps_pcaps") {
        return;
    }
    let net = Net::new();
    let host = net.host_ip();
    let peer = net.peer_ip();
    let _http = Service::start("http", &host, 8080);
    let _https = Service::start("https", &host, 8443);
    let _ssh = Service::start("ssh", &host, 2222);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let sniffer = Sniffer::start(&data, &net.host, &["--backend", "packet"]);

    curl(&net, &format!("http://{host}:8080/sniffer-e2e-path"));
    curl(&net, &format!("https://{host}:8443/"));
    let ssh = net.exec(&[
        "ssh",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "ConnectTimeout=10",
        "-p",
        "2222",
        &format!("root@{host}"),
        "true",
    ]);
    // BatchMode cannot answer a password prompt: the login fails after the key exchange.
    assert!(!ssh.status.success());
    let nmap = net.exec(&["nmap", "-n", "-Pn", "-sS", "-p", "1-200", &host]);
    assert!(
        nmap.status.success(),
        "{}",
        String::from_utf8_lossy(&nmap.stderr)
    );
    std::thread::sleep(Duration::from_millis(500));
    let log = sniffer.stop();
    assert!(log.contains("af_packet, dedicated mode"), "{log}");

    let events = sniffer_events(&data);
    let k = kinds(&events);
    let from_peer = |kind: &str| {
        events
            .iter()
            .filter(|e| e.kind == kind && e.src_ip.map(|i| i.to_string()) == Some(peer.clone()))
            .count()
    };
    assert!(from_peer("tcp_syn") >= 200, "{k:?}");
    assert!(
        events
            .iter()
            .any(|e| e.kind == "tcp_syn" && e.field("os") == Some("Linux")),
        "{k:?}"
    );
    assert!(from_peer("flow") >= 4, "{k:?}");
    let http = field_set(&events, "http_request", "path");
    assert!(http.contains(&"/sniffer-e2e-path"), "{http:?}");
    let ja3 = field_set(&events, "tls_client_hello", "ja3");
    assert_eq!(ja3.len(), 1, "{k:?}");
    assert_eq!(from_peer("tls_client_hello"), 1);
    let hassh = field_set(&events, "ssh_kexinit", "hassh");
    assert_eq!(hassh.len(), 1, "{k:?}");
    // A host interface's own replies are outgoing, and the capture is receive-only (like a
    // SPAN port's one direction): server-side fingerprints come from the mirror test.
    let scans: Vec<&Event> = events
        .iter()
        .filter(|e| e.kind == "port_scan" && e.src_ip.map(|i| i.to_string()) == Some(peer.clone()))
        .collect();
    assert!(!scans.is_empty(), "{k:?}");
    assert!(
        scans.iter().any(|e| e.field("scan_type") == Some("syn")),
        "{:?}",
        scans.iter().map(|e| e.fields()).collect::<Vec<_>>()
    );

    // Retention: the segments exist, are indexed, and the export holds the peer's packets.
    let pcaps = data.join("pcaps");
    let segs = decnet_dataplane::retention::segments(&pcaps).unwrap();
    assert!(!segs.is_empty());
    let out = tmp.path().join("peer.pcap");
    let export = Command::new(workspace_bin("decnet"))
        .args(["sniffer", "--data-dir"])
        .arg(&data)
        .args(["--export-ip", &peer, "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    // The offline path over the exported packets decodes exactly what the live path did.
    let offline = decnet_dataplane::pcapfile::analyze_pcap(&out, HashMap::new()).unwrap();
    assert_eq!(field_set(&offline, "tls_client_hello", "ja3"), ja3);
    assert_eq!(field_set(&offline, "ssh_kexinit", "hassh"), hassh);
    assert_eq!(
        field_set(&offline, "tls_client_hello", "ja4"),
        field_set(&events, "tls_client_hello", "ja4")
    );
    assert!(field_set(&offline, "http_request", "path").contains(&"/sniffer-e2e-path"));
    let k_off = kinds(&offline);
    assert!(
        k_off.get("tcp_syn").copied().unwrap_or(0) >= 200,
        "{k_off:?}"
    );
    // Every exported packet is the peer's.
    let mut reader =
        decnet_dataplane::pcapfile::PcapReader::new(std::fs::File::open(&out).unwrap()).unwrap();
    let mut n = 0;
    while let Some(rec) = reader.next_record().unwrap() {
        let p = decnet_dataplane::decode::Packet::decode(rec.ts_ns, rec.data).unwrap();
        let ip = peer.parse().unwrap();
        assert!(p.src_ip() == Some(ip) || p.dst_ip() == Some(ip));
        n += 1;
    }
    assert!(n > 200, "{n} packets exported");

    // `--read` on the retained pcap runs the same analyzer into a second store.
    let data2 = tmp.path().join("data2");
    let read = Command::new(workspace_bin("decnet"))
        .args(["sniffer", "--data-dir"])
        .arg(&data2)
        .arg("--read")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    let replayed = sniffer_events(&data2);
    assert_eq!(field_set(&replayed, "tls_client_hello", "ja3"), ja3);
    assert_eq!(field_set(&replayed, "ssh_kexinit", "hassh"), hassh);
}

/// One round of the mirror scenario: tcpdump and the sniffer capture the same handshakes.
/// Returns the sniffer's events, the events of tcpdump's capture, and tcpdump's own report.
fn mirror_round(net: &Net, host: &str) -> (Vec<Event>, Vec<Event>, String) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let dump = tmp.path().join("tcpdump.pcap");
    let tcpdump_log = tmp.path().join("tcpdump.stderr");
    // --immediate-mode: without it libpcap hands over a TPACKET_V3 block only when it fills
    // or its 1 s timeout passes, and the SIGINT below can end tcpdump with the last
    // handshake (the SSH one) still in an unretired block.
    let mut tcpdump = Command::new("tcpdump")
        .args([
            "-i",
            &net.host,
            "-n",
            "--immediate-mode",
            "-U",
            "-s",
            "0",
            "-w",
        ])
        .arg(&dump)
        .arg("tcp")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&tcpdump_log).unwrap())
        .spawn()
        .unwrap();
    // The reference capture must see the first handshake too: wait until tcpdump listens.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&tcpdump_log)
        .unwrap_or_default()
        .contains("listening on")
    {
        assert!(Instant::now() < deadline, "tcpdump did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let sniffer = Sniffer::start(
        &data,
        &net.host,
        &[
            "--backend",
            "xdp",
            "--capture-mode",
            "mirror",
            "--filter-subnet",
            &format!("{}.0/24", net.prefix),
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    curl(net, &format!("https://{host}:8443/"));
    let out = net.exec(&[
        "openssl",
        "s_client",
        "-connect",
        &format!("{host}:8443"),
        "-servername",
        "mirror.example",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("BEGIN CERTIFICATE"),
        "openssl s_client: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = net.exec(&[
        "ssh",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-p",
        "2222",
        &format!("root@{host}"),
        "true",
    ]);
    std::thread::sleep(Duration::from_millis(500));
    let log = sniffer.stop();
    run(&["kill", "-INT", &tcpdump.id().to_string()]);
    let _ = tcpdump.wait();
    assert!(log.contains("af_xdp"), "{log}");
    assert!(log.contains("mirror mode"), "{log}");

    let live = sniffer_events(&data);
    let offline = decnet_dataplane::pcapfile::analyze_pcap(&dump, HashMap::new()).unwrap();
    let tcpdump_said = std::fs::read_to_string(&tcpdump_log).unwrap_or_default();
    (live, offline, tcpdump_said)
}

/// AF_XDP in mirror mode on the serving interface: the services keep answering (the mirror
/// is a copy) and the fingerprints equal what tcpdump's capture of the same traffic gives.
#[test]
fn mirror_af_xdp_captures_a_copy_while_the_interface_keeps_serving() {
    if skip("mirror_af_xdp_captures_a_copy_while_the_interface_keeps_serving") {
        return;
    }
    let net = Net::new();
    let host = net.host_ip();
    let peer = net.peer_ip();
    let _https = Service::start("https", &host, 8443);
    let _ssh = Service::start("ssh", &host, 2222);
    // tcpdump is only the reference here; on a loaded machine it has missed a handshake
    // (a ClientHello, once an SSH KEXINIT) the sniffer saw. Its report is printed and the round repeated (at most twice), so a
    // reference that saw less than the sniffer never passes and never fails the test silently.
    let mut round = 0;
    let (live, offline) = loop {
        round += 1;
        let (live, offline, tcpdump_said) = mirror_round(&net, &host);
        // Every fingerprint compared below: the reference must hold at least what the
        // sniffer saw (fewer means tcpdump missed packets, not that the sniffer erred).
        let short: Vec<String> = [
            ("tls_client_hello", "ja3"),
            ("ssh_kexinit", "hassh"),
            ("ssh_kexinit", "hassh_server"),
        ]
        .iter()
        .filter_map(|&(kind, field)| {
            let seen = field_set(&live, kind, field).len();
            let reference = field_set(&offline, kind, field).len();
            (reference < seen).then(|| format!("{kind} {field}: {reference} vs {seen}"))
        })
        .collect();
        if short.is_empty() || round == 3 {
            break (live, offline);
        }
        eprintln!(
            "!!! round {round}: tcpdump's reference capture holds fewer fingerprints than the \
             sniffer ({}); repeating. tcpdump said: {tcpdump_said}",
            short.join(", ")
        );
    };
    let k = kinds(&live);
    let ja3 = field_set(&live, "tls_client_hello", "ja3");
    assert_eq!(ja3.len(), 2, "curl and openssl differ: {k:?}");
    assert_eq!(ja3, field_set(&offline, "tls_client_hello", "ja3"));
    assert_eq!(
        field_set(&live, "tls_client_hello", "sni"),
        field_set(&offline, "tls_client_hello", "sni")
    );
    assert!(field_set(&live, "tls_client_hello", "sni").contains(&"mirror.example"));
    assert_eq!(
        field_set(&live, "tls_server_hello", "ja3s"),
        field_set(&offline, "tls_server_hello", "ja3s")
    );
    let hassh = field_set(&live, "ssh_kexinit", "hassh");
    assert_eq!(hassh.len(), 1, "{k:?}");
    assert_eq!(hassh, field_set(&offline, "ssh_kexinit", "hassh"));
    let hassh_server = field_set(&live, "ssh_kexinit", "hassh_server");
    assert_eq!(hassh_server.len(), 1, "{k:?}");
    assert_eq!(
        hassh_server,
        field_set(&offline, "ssh_kexinit", "hassh_server")
    );
    assert!(
        !field_set(&live, "tls_server_hello", "ja3s").is_empty(),
        "{k:?}"
    );
    assert!(
        live.iter()
            .any(|e| e.kind == "tcp_syn" && e.src_ip.map(|i| i.to_string()) == Some(peer.clone()))
    );
}

/// One HTTP/1.1 request with `Connection: close`; (status, raw body, chunked transfer undone).
fn http(port: u16, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, Vec<u8>) {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut rest = &raw[split + 4..];
    if !head.contains("transfer-encoding: chunked") {
        return (status, rest.to_vec());
    }
    let mut out = Vec::new();
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(String::from_utf8_lossy(&rest[..eol]).trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&rest[eol + 2..eol + 2 + n]);
        rest = &rest[eol + 2 + n + 2..];
    }
    (status, out)
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

/// The value of the first `/metrics` sample whose line starts with `prefix`.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// `decnet serve --sniff-interface`: the sniffer's stage and capture counters at `/metrics`,
/// and the attacker's retained packets through `GET /attackers/{uuid}/pcap`.
#[test]
fn serve_sniffs_shows_counters_and_exports_an_attackers_pcap() {
    if skip("serve_sniffs_shows_counters_and_exports_an_attackers_pcap") {
        return;
    }
    let net = Net::new();
    let data = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let stderr = data.path().join("serve.stderr");
    let mut child = Command::new(workspace_bin("decnet"))
        .args([
            "serve",
            "--no-unix",
            "--udp",
            "127.0.0.1:0",
            "--progress-secs",
            "0",
        ])
        .args(["--durable-window-ms", "50", "--segment-max-age-ms", "100"])
        .args(["--profile-interval-secs", "1", "--port", &port.to_string()])
        .args(["--sniff-interface", &net.host, "--backend", "packet"])
        .arg("--data-dir")
        .arg(data.path())
        .env("DECNET_ADMIN_PASSWORD", "first-admin-pw")
        .env_remove("DECNET_DB_TYPE")
        .env_remove("DECNET_DB_URL")
        .env_remove("DECNET_WEB_PORT")
        .env_remove("DECNET_WEB_HOST")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    struct Kill<'a>(&'a mut Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let guard = Kill(&mut child);
    let log = || std::fs::read_to_string(&stderr).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !log().contains("serve: sniffing with") {
        assert!(Instant::now() < deadline, "serve did not sniff:\n{}", log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let login = |pw: &str| {
        let (st, body) = http(
            port,
            "POST",
            "/api/v1/auth/login",
            None,
            &format!(r#"{{"username":"admin","password":"{pw}"}}"#),
        );
        assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
        json(&body)["access_token"].as_str().unwrap().to_owned()
    };
    let first = login("first-admin-pw");
    let (st, _) = http(
        port,
        "POST",
        "/api/v1/auth/change-password",
        Some(&first),
        r#"{"old_password":"first-admin-pw","new_password":"second-admin-pw"}"#,
    );
    assert_eq!(st, 200);
    let token = login("second-admin-pw");

    let out = net.exec(&["ping", "-c", "5", "-i", "0.2", &net.host_ip()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The capture threads publish about once a second.
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let (st, body) = http(port, "GET", "/metrics", Some(&token), "");
        assert_eq!(st, 200);
        let text = String::from_utf8_lossy(&body).into_owned();
        let captured = sample(
            &text,
            "decnet_component_received_packets_total{component=\"capture\"}",
        );
        if captured.is_some_and(|n| n >= 10.0) {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "capture counters never reached 10:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(
        sample(
            &text,
            "decnet_component_decoded_packets_total{component=\"sniffer\"}"
        )
        .is_some_and(|n| n >= 10.0),
        "{text}"
    );
    for line in [
        "# TYPE decnet_component_received_packets_total counter",
        "decnet_component_discarded_packets_total{component=\"capture\",reason=\"ring_full\"}",
        "decnet_component_discarded_events_total{component=\"sniffer\",reason=\"rate_limited\",kind=\"tcp_syn\"}",
        "decnet_component_discarded_events_total{component=\"sniffer\",reason=\"queue_full\"} 0",
        "# TYPE decnet_flows_active gauge",
        "decnet_component_received_events_total{component=\"syslog_intake\"}",
    ] {
        assert!(text.contains(line), "{line} missing:\n{text}");
    }
    assert!(
        sample(
            &text,
            "decnet_component_sent_events_total{component=\"sniffer\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );

    // The profiler turns the icmp events into an attacker; its pcap holds the pings.
    let peer = net.peer_ip();
    let deadline = Instant::now() + Duration::from_secs(30);
    let uuid = loop {
        let (st, body) = http(
            port,
            "GET",
            &format!("/api/v1/attackers?search={peer}"),
            Some(&token),
            "",
        );
        assert_eq!(st, 200);
        let v = json(&body);
        if let Some(u) = v["data"]
            .as_array()
            .and_then(|a| a.iter().find(|a| a["ip"] == peer.as_str()))
            .and_then(|a| a["uuid"].as_str())
        {
            break u.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no attacker {peer}: {v}\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let (st, body) = http(
        port,
        "GET",
        &format!("/api/v1/attackers/{uuid}/pcap"),
        Some(&token),
        "",
    );
    assert_eq!(st, 200);
    let mut reader = decnet_dataplane::pcapfile::PcapReader::new(&body[..]).unwrap();
    let mut echo = 0;
    while let Some(rec) = reader.next_record().unwrap() {
        let p = decnet_dataplane::decode::Packet::decode(rec.ts_ns, rec.data).unwrap();
        let ip = peer.parse().unwrap();
        assert!(p.src_ip() == Some(ip) || p.dst_ip() == Some(ip));
        if let decnet_dataplane::decode::Transport::Icmp(icmp) = &p.transport {
            assert_eq!(p.src_ip(), Some(ip), "only the peer's frames are captured");
            assert_eq!(icmp.icmp_type, 8, "an echo request");
            echo += 1;
        }
    }
    // The capture ignores frames this host sends (PACKET_IGNORE_OUTGOING: on a SPAN port both
    // directions arrive as incoming), so the host's own replies are not retained here.
    assert_eq!(echo, 5, "the 5 echo requests");
    drop(guard);
}

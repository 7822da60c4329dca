//! The fleet engine on a real Docker engine: deploy three deckies from an INI onto a macvlan
//! network whose parent is a veth end this test creates, check every container through the
//! Docker API and the kernel, reach services from a peer network namespace and from the host
//! (through the shim), break the fleet and `redeploy` it, mutate a decky in place (CLI, API
//! and `serve`'s schedule), tear it down and prove nothing is left. Also the bad inputs. Needs root and a Docker engine (`scripts/docker.sh start`);
//! without them the tests say SKIPPED loudly and pass.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::OnceLock,
    time::Duration,
};

use decnet_e2e::workspace_bin;
use serde_json::Value;

fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"))
}

fn ok(cmd: &str, args: &[&str]) -> String {
    let out = run(cmd, args);
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The tests share one engine, one `fleet_lan` network name and the shim: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Root and a Docker engine, or a loud skip.
fn docker_ready(test: &str) -> bool {
    let root = run("id", &["-u"]).stdout == b"0\n";
    let docker = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !root || !docker {
        eprintln!(
            "SKIPPED {test}: needs root ({root}) and a running Docker engine ({docker}); \
             start one with `scripts/docker.sh start`"
        );
        return false;
    }
    true
}

/// The static `decky` the images are built around (built once per test process).
fn static_decky() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let manifest = PathBuf::from(
            std::env::var_os("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("../Cargo.toml");
        let out = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "-p",
                "decnet-services",
                "--bin",
                "decky",
                "--target",
                "x86_64-unknown-linux-gnu",
            ])
            .arg("--manifest-path")
            .arg(&manifest)
            .env("RUSTFLAGS", "-C target-feature=+crt-static")
            .output()
            .expect("cargo");
        assert!(
            out.status.success(),
            "static decky build failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let exe = std::env::current_exe().unwrap();
        // <target>/debug/deps/test -> <target>
        let target = exe.parent().unwrap().parent().unwrap().parent().unwrap();
        target.join("x86_64-unknown-linux-gnu/debug/decky")
    })
    .clone()
}

fn templates() -> PathBuf {
    PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../templates")
}

/// A veth pair (host end = macvlan parent, peer end in its own netns holding the gateway
/// address), a data directory, and a fleet; all removed on drop, even after a failure.
struct Lab {
    parent: String,
    netns: String,
    subnet_prefix: String,
    data: tempfile::TempDir,
}

impl Lab {
    fn new(tag: &str) -> Self {
        let id = std::process::id() % 10_000;
        let parent = format!("fv{tag}{id}");
        let peer = format!("fp{tag}{id}");
        let netns = format!("fleet-{tag}-{id}");
        let octet = 100 + (std::process::id() % 100) + if tag == "a" { 0 } else { 100 };
        let octet = octet % 250;
        let lab = Self {
            parent: parent.clone(),
            netns: netns.clone(),
            subnet_prefix: format!("10.231.{octet}"),
            data: tempfile::tempdir().unwrap(),
        };
        ok(
            "ip",
            &[
                "link", "add", &parent, "type", "veth", "peer", "name", &peer,
            ],
        );
        ok("ip", &["netns", "add", &netns]);
        ok("ip", &["link", "set", &peer, "netns", &netns]);
        let gw = format!("{}.1/24", lab.subnet_prefix);
        ok("ip", &["-n", &netns, "addr", "add", &gw, "dev", &peer]);
        ok("ip", &["-n", &netns, "link", "set", &peer, "up"]);
        ok("ip", &["-n", &netns, "link", "set", "lo", "up"]);
        ok("ip", &["link", "set", &parent, "up"]);
        lab
    }

    fn decnet(&self, args: &[&str]) -> Output {
        Command::new(workspace_bin("decnet"))
            .args(args)
            .arg("--data-dir")
            .arg(self.data.path())
            .env("DECNET_DECKY_BIN", static_decky())
            .env("DECNET_TEMPLATES", templates())
            .env_remove("DECNET_DB_TYPE")
            .env_remove("DECNET_DB_URL")
            .output()
            .unwrap()
    }

    fn decnet_ok(&self, args: &[&str]) -> String {
        let out = self.decnet(args);
        assert!(
            out.status.success(),
            "decnet {args:?} failed ({:?}): {}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A TCP exchange from the peer namespace: send `send`, return what came back.
    fn ask_from_peer(&self, ip: &str, port: u16, send: &str) -> String {
        let script =
            format!("exec 3<>/dev/tcp/{ip}/{port} && printf '{send}' >&3 && timeout 2 cat <&3");
        let out = run(
            "ip",
            &[
                "netns",
                "exec",
                &self.netns,
                "timeout",
                "10",
                "bash",
                "-c",
                &script,
            ],
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.decnet(&["teardown", "--all"]);
        let _ = run("ip", &["link", "del", &self.parent]);
        let _ = run("ip", &["netns", "del", &self.netns]);
    }
}

fn inspect(name: &str) -> Value {
    let text = ok("docker", &["inspect", name]);
    let v: Value = serde_json::from_str(&text).unwrap();
    v[0].clone()
}

fn netns_of(pid: i64) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap()
}

/// A network sysctl as the kernel applies it inside a process's network namespace (sysctls
/// under /proc/sys/net show the reader's namespace, so read it from inside).
fn read_proc(pid: i64, path: &str) -> String {
    ok(
        "nsenter",
        &[
            &format!("--net=/proc/{pid}/ns/net"),
            "cat",
            &format!("/proc/sys/{path}"),
        ],
    )
    .trim()
    .to_owned()
}

#[test]
fn deploy_check_break_redeploy_teardown() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !docker_ready("deploy_check_break_redeploy_teardown") {
        return;
    }
    let lab = Lab::new("a");
    let p = &lab.subnet_prefix;
    let ini = format!(
        "[general]\nnet = {p}.0/24\ngw = {p}.1\ninterface = {parent}\n\n\
         [web01]\nservices = http, ftp, https\nnmap_os = linux\n\n\
         [mail01]\nservices = smtp, pop3, imap\nnmap_os = windows\n\n\
         [cache01]\nservices = redis, mysql, ssh\nnmap_os = bsd\n",
        parent = lab.parent
    );
    let ini_path = lab.data.path().join("fleet.ini");
    std::fs::write(&ini_path, ini).unwrap();
    let t0 = std::time::Instant::now();
    let out = lab.decnet_ok(&["deploy", "--config", ini_path.to_str().unwrap(), "--json"]);
    eprintln!("deploy took {:?}", t0.elapsed());
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["deckies"], 3, "{report}");
    assert_eq!(report["containers_created"], 12, "{report}");
    assert!(report["failed"].as_array().unwrap().is_empty(), "{report}");

    let status: Value = serde_json::from_str(&lab.decnet_ok(&["status", "--json"])).unwrap();
    let deckies = status.as_array().unwrap();
    assert_eq!(deckies.len(), 3, "{status}");
    let banners = [
        ("web01", 21, "", "220"),
        ("mail01", 110, "", "+OK"),
        ("cache01", 6379, "PING\\r\\n", "+PONG"),
        // The banner follows the decky's distro persona.
        ("cache01", 22, "", "SSH-2.0-OpenSSH_"),
    ];
    for d in deckies {
        let name = d["name"].as_str().unwrap();
        assert_eq!(d["state"], "running", "{d}");
        let base = inspect(name);
        // Address, vendor MAC and hostname as planned.
        let ep = &base["NetworkSettings"]["Networks"]["fleet_lan"];
        assert_eq!(ep["IPAddress"], d["ip"], "{name}");
        let mac = ep["MacAddress"].as_str().unwrap();
        assert_eq!(Some(mac), d["mac"].as_str(), "{name}: MAC");
        assert!(
            !mac.starts_with("02:42"),
            "{name}: Docker's vendor-less MAC {mac}"
        );
        assert_eq!(base["Config"]["Hostname"], d["hostname"], "{name}");
        // OS persona sysctls, set and effective in the kernel.
        let sysctls = base["HostConfig"]["Sysctls"].as_object().unwrap();
        let ttl = sysctls["net.ipv4.ip_default_ttl"].as_str().unwrap();
        let base_pid = base["State"]["Pid"].as_i64().unwrap();
        assert_eq!(
            read_proc(base_pid, "net/ipv4/ip_default_ttl"),
            ttl,
            "{name}: ttl"
        );
        assert_eq!(base["HostConfig"]["CapDrop"][0], "ALL");
        assert_eq!(base["HostConfig"]["ReadonlyRootfs"], true);
        // Every service container: in the base's netns, hardened, with the event sink absent
        // (no collector here) and neutral labels.
        let containers = d["containers"].as_array().unwrap();
        for c in containers.iter().skip(1) {
            let cname = c["name"].as_str().unwrap();
            assert_eq!(c["state"], "running", "{c}");
            let svc = inspect(cname);
            let hc = &svc["HostConfig"];
            let base_id = base["Id"].as_str().unwrap();
            assert_eq!(hc["NetworkMode"], format!("container:{base_id}"), "{cname}");
            let pid = svc["State"]["Pid"].as_i64().unwrap();
            assert_eq!(netns_of(pid), netns_of(base_pid), "{cname}: netns");
            assert_eq!(hc["CapDrop"][0], "ALL", "{cname}");
            assert_eq!(hc["ReadonlyRootfs"], true, "{cname}");
            assert!(
                hc["SecurityOpt"].to_string().contains("no-new-privileges"),
                "{cname}"
            );
            assert!(hc["PidsLimit"].as_i64().unwrap() > 0, "{cname}");
            assert!(hc["Memory"].as_i64().unwrap() > 0, "{cname}");
            let labels = svc["Config"]["Labels"].to_string().to_lowercase();
            for word in ["decnet", "honeypot", "decoy", "fake"] {
                assert!(
                    !labels.contains(word),
                    "{cname}: label says {word}: {labels}"
                );
            }
        }
        // Reachable from the LAN (the peer namespace on the parent's other end).
        let ip = d["ip"].as_str().unwrap();
        for (_, port, send, want) in banners.iter().filter(|b| b.0 == name) {
            let mut got = String::new();
            for _ in 0..50 {
                got = lab.ask_from_peer(ip, *port, send);
                if got.contains(want) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            assert!(got.contains(want), "{name} {ip}:{port} answered {got:?}");
        }
    }
    // https answers a real TLS client with the persona's page.
    let web = deckies.iter().find(|d| d["name"] == "web01").unwrap();
    let ip = web["ip"].as_str().unwrap();
    let out = run(
        "ip",
        &[
            "netns",
            "exec",
            &lab.netns,
            "curl",
            "-sk",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-D",
            "-",
            &format!("https://{ip}/"),
        ],
    );
    let head = String::from_utf8_lossy(&out.stdout);
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "https://{ip}/ answered {head:?}"
    );
    // From the host, through the shim.
    let stream = std::net::TcpStream::connect_timeout(
        &format!("{ip}:21").parse().unwrap(),
        Duration::from_secs(5),
    );
    assert!(
        stream.is_ok(),
        "host -> {ip}:21 through the shim: {stream:?}"
    );
    drop(stream);

    // Break it: one service container removed, another stopped (Docker will not restart it).
    ok("docker", &["rm", "-f", "web01-http"]);
    ok("docker", &["stop", "-t", "1", "mail01-imap"]);
    let status: Value = serde_json::from_str(&lab.decnet_ok(&["status", "--json"])).unwrap();
    let text = status.to_string();
    assert!(text.contains("\"missing\""), "{text}");
    let out = lab.decnet_ok(&["redeploy", "--json"]);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["containers_created"], 1, "{report}");
    assert_eq!(report["containers_started"], 1, "{report}");
    for name in ["web01-http", "mail01-imap"] {
        assert_eq!(
            inspect(name)["State"]["Running"],
            true,
            "{name} after redeploy"
        );
    }
    mutate_web01(&lab);

    // An orphan (a decky no record asks for) is removed by redeploy too.
    let out = lab.decnet_ok(&["teardown", "--id", "cache01"]);
    assert!(out.contains("cache01"), "{out}");
    assert!(run("docker", &["inspect", "cache01"]).status.code() != Some(0));

    // Teardown leaves nothing behind.
    lab.decnet_ok(&["teardown", "--all"]);
    let left = ok("docker", &["ps", "-aq", "--filter", "label=fleet.role"]);
    assert!(left.trim().is_empty(), "containers left: {left}");
    let nets = ok(
        "docker",
        &["network", "ls", "--filter", "name=fleet_lan", "-q"],
    );
    assert!(nets.trim().is_empty(), "network left: {nets}");
    assert!(!Path::new("/sys/class/net/lanshim0").exists(), "shim left");
    let status = lab.decnet_ok(&["status"]);
    assert!(status.contains("no deckies"), "{status}");
}

/// What a service answers first on its port, for the ones that speak first or to a line.
fn banner_of(slug: &str) -> Option<(u16, &'static str, &'static str)> {
    Some(match slug {
        "ftp" => (21, "", "220"),
        "ssh" => (22, "", "SSH-2.0-"),
        "smtp" | "smtp_relay" => (25, "", "220"),
        "http" => (80, "GET / HTTP/1.0\\r\\n\\r\\n", "HTTP/1."),
        "pop3" => (110, "", "+OK"),
        "imap" => (143, "", "* OK"),
        "redis" => (6379, "PING\\r\\n", "+PONG"),
        _ => return None,
    })
}

fn sorted(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

/// `decnet mutate --decky web01`: other services in the same base container (address, MAC,
/// hostname, network namespace), answering from the LAN; the record holds the new set, so
/// `redeploy` keeps it; nothing else is due; an unknown name is a usage error.
fn mutate_web01(lab: &Lab) {
    let base = inspect("web01");
    let out = lab.decnet_ok(&["mutate", "--decky", "web01", "--seed", "5", "--json"]);
    let reports: Value = serde_json::from_str(&out).unwrap();
    let r = &reports[0];
    assert_eq!(r["decky"], "web01", "{r}");
    assert_eq!(r["changed"], true, "{r}");
    let (before, after) = (sorted(&r["before"]), sorted(&r["after"]));
    assert_eq!(before, ["ftp", "http", "https"], "{r}");
    assert_ne!(before, after, "{r}");
    assert!((1..=3).contains(&after.len()), "{r}");
    let again = inspect("web01");
    assert_eq!(again["Id"], base["Id"], "the base container was replaced");
    assert_eq!(
        again["NetworkSettings"]["Networks"]["fleet_lan"]["MacAddress"],
        base["NetworkSettings"]["Networks"]["fleet_lan"]["MacAddress"]
    );
    let base_id = base["Id"].as_str().unwrap();
    for slug in &after {
        let name = format!("web01-{}", slug.replace('_', "-"));
        let c = inspect(&name);
        assert_eq!(c["State"]["Running"], true, "{name}");
        assert_eq!(
            c["HostConfig"]["NetworkMode"],
            format!("container:{base_id}"),
            "{name}"
        );
    }
    for slug in before.iter().filter(|s| !after.contains(s)) {
        let name = format!("web01-{slug}");
        assert!(
            run("docker", &["inspect", &name]).status.code() != Some(0),
            "{name} was left running after the mutation"
        );
    }
    let ip = base["NetworkSettings"]["Networks"]["fleet_lan"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_owned();
    for (port, send, want) in after.iter().filter_map(|s| banner_of(s)) {
        let mut got = String::new();
        for _ in 0..50 {
            got = lab.ask_from_peer(&ip, port, send);
            if got.contains(want) {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(
            got.contains(want),
            "web01 {ip}:{port} after mutation answered {got:?}"
        );
    }
    let status: Value = serde_json::from_str(&lab.decnet_ok(&["status", "--json"])).unwrap();
    let web = status
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "web01")
        .unwrap()
        .clone();
    assert_eq!(web["state"], "running", "{web}");
    assert_eq!(
        web["containers"].as_array().unwrap().len(),
        1 + after.len(),
        "{web}"
    );
    let report: Value = serde_json::from_str(&lab.decnet_ok(&["redeploy", "--json"])).unwrap();
    assert_eq!(report["containers_created"], 0, "{report}");
    assert_eq!(report["containers_removed"], 0, "{report}");
    // Deployed a minute ago with the default 30-minute interval: nothing is due.
    let out = lab.decnet_ok(&["mutate"]);
    assert!(out.contains("none is due"), "{out}");
    let out = lab.decnet(&["mutate", "--decky", "nosuch"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nosuch"),
        "{out:?}"
    );
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn bad_inputs_leave_nothing() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !docker_ready("bad_inputs_leave_nothing") {
        return;
    }
    let lab = Lab::new("b");
    let p = lab.subnet_prefix.clone();
    let subnet = format!("{p}.0/24");
    let gw = format!("{p}.1");
    let count_left = || ok("docker", &["ps", "-aq", "--filter", "label=fleet.role"]);
    let base = |iface: &str| -> Vec<String> {
        [
            "deploy",
            "-n",
            "2",
            "--services",
            "redis",
            "--subnet",
            &subnet,
            "--gateway",
            &gw,
            "--interface",
            iface,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    };

    // Parent interface missing.
    let out = lab.decnet(&args(&base("nosuchif9")));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("\"nosuchif9\" does not exist"), "{err}");
    assert!(count_left().trim().is_empty());

    // A service the emulator does not serve yet is named.
    let mut v = base(&lab.parent);
    v[4] = "vnc".into();
    let out = lab.decnet(&args(&v));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("vnc") && err.contains("no image template"),
        "{err}"
    );

    // Image build failure: a broken template.
    let tpl = tempfile::tempdir().unwrap();
    for dir in ["base", "redis"] {
        std::fs::create_dir_all(tpl.path().join(dir)).unwrap();
        std::fs::copy(
            templates().join(dir).join("Dockerfile"),
            tpl.path().join(dir).join("Dockerfile"),
        )
        .unwrap();
    }
    std::fs::write(
        tpl.path().join("redis/Dockerfile"),
        "FROM scratch\nCOPY nosuchfile /x\n",
    )
    .unwrap();
    let mut v = base(&lab.parent);
    v.extend(["--templates".to_owned(), tpl.path().display().to_string()]);
    let out = lab.decnet(&args(&v));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("building image fleet/redis") && err.contains("nosuchfile"),
        "{err}"
    );
    assert!(count_left().trim().is_empty());
    assert!(
        ok(
            "docker",
            &["network", "ls", "-q", "--filter", "name=fleet_lan"]
        )
        .trim()
        .is_empty()
    );

    // Subnet clash with somebody else's network.
    let clash = format!("clash{}", std::process::id());
    ok(
        "docker",
        &[
            "network",
            "create",
            "-d",
            "macvlan",
            "--subnet",
            &subnet,
            "-o",
            &format!("parent={}", lab.parent),
            &clash,
        ],
    );
    let out = lab.decnet(&args(&base(&lab.parent)));
    let _ = run("docker", &["network", "rm", &clash]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("clashes with the existing Docker network") && err.contains(&clash),
        "{err}"
    );
    assert!(count_left().trim().is_empty());

    // Docker not running: the message says how to start it.
    let out = Command::new(workspace_bin("decnet"))
        .args(args(&base(&lab.parent)))
        .arg("--data-dir")
        .arg(lab.data.path())
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot reach the Docker engine") && err.contains("dockerd"),
        "{err}"
    );

    // teardown needs a target; an unknown decky is named.
    let out = lab.decnet(&["teardown"]);
    assert_eq!(out.status.code(), Some(2));
    let out = lab.decnet(&["teardown", "--id", "nosuch"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no decky named \"nosuch\""));
}

/// `curl` one JSON request to the API on loopback; (status, body).
fn api(port: u16, method: &str, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let url = format!("http://127.0.0.1:{port}{path}");
    let body = body.to_string();
    let auth = token.map(|t| format!("Authorization: Bearer {t}"));
    let mut args = vec![
        "-s",
        "-X",
        method,
        "-H",
        "Content-Type: application/json",
        "--data",
        &body,
        "-w",
        "\n%{http_code}",
        "--max-time",
        "300",
    ];
    if let Some(a) = &auth {
        args.extend(["-H", a.as_str()]);
    }
    args.push(&url);
    let out = ok("curl", &args);
    let (text, code) = out.rsplit_once('\n').unwrap();
    (
        code.trim().parse().unwrap(),
        serde_json::from_str(text).unwrap_or(Value::Null),
    )
}

#[test]
fn serve_deploys_and_mutates_through_the_api_and_on_schedule() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !docker_ready("serve_deploys_and_mutates_through_the_api_and_on_schedule") {
        return;
    }
    let lab = Lab::new("c");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // `serve`: the API's fleet engine plus the mutation watcher.
    let child = Command::new(workspace_bin("decnet"))
        .args(["serve", "--port", &port.to_string(), "--data-dir"])
        .arg(lab.data.path())
        .env("DECNET_DECKY_BIN", static_decky())
        .env("DECNET_TEMPLATES", templates())
        .env("DECNET_ADMIN_PASSWORD", "first-start-password")
        .env_remove("DECNET_DB_TYPE")
        .env_remove("DECNET_DB_URL")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let child_guard = Kill(child);
    for _ in 0..300 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let login = |pw: &str| {
        let (st, v) = api(
            port,
            "POST",
            "/api/v1/auth/login",
            None,
            &serde_json::json!({"username": "admin", "password": pw}),
        );
        assert_eq!(st, 200, "{v}");
        v["access_token"].as_str().unwrap().to_owned()
    };
    let first = login("first-start-password");
    let (st, v) = api(
        port,
        "POST",
        "/api/v1/auth/change-password",
        Some(&first),
        &serde_json::json!({"old_password": "first-start-password", "new_password": "a-better-password-1"}),
    );
    assert_eq!(st, 200, "{v}");
    let token = login("a-better-password-1");

    let p = &lab.subnet_prefix;
    let ini = format!(
        "[general]\nnet = {p}.0/24\ngw = {p}.1\ninterface = {parent}\n\n[api01]\nservices = redis\n",
        parent = lab.parent
    );
    let (st, report) = api(
        port,
        "POST",
        "/api/v1/deckies/deploy",
        Some(&token),
        &serde_json::json!({ "ini_content": ini }),
    );
    assert_eq!(st, 200, "{report}");
    assert_eq!(report["deckies"], 1, "{report}");
    assert_eq!(report["containers_created"], 2, "{report}");
    let (st, list) = api(port, "GET", "/api/v1/deckies", Some(&token), &Value::Null);
    assert_eq!(st, 200, "{list}");
    assert!(list.to_string().contains("api01"), "{list}");
    assert_eq!(inspect("api01-redis")["State"]["Running"], true);
    let decky = &list[0];
    assert_eq!(decky["services"], serde_json::json!(["redis"]), "{decky}");
    assert_eq!(decky["mutable"], true, "{decky}");
    assert_eq!(decky["mutate_interval_minutes"], 30, "{decky}");

    // Mutation through the API: the interval is the decky's own, then a re-roll now.
    let (st, v) = api(
        port,
        "PUT",
        "/api/v1/deckies/api01/mutate-interval",
        Some(&token),
        &serde_json::json!({"mutate_interval": "2d"}),
    );
    assert_eq!(st, 200, "{v}");
    let (st, r) = api(
        port,
        "POST",
        "/api/v1/deckies/api01/mutate",
        Some(&token),
        &Value::Null,
    );
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["changed"], true, "{r}");
    let (_, list) = api(port, "GET", "/api/v1/deckies", Some(&token), &Value::Null);
    let decky = &list[0];
    assert_eq!(decky["mutate_interval_minutes"], 2_880, "{decky}");
    assert_eq!(decky["mutations"], 1, "{decky}");
    assert_eq!(decky["services"], r["after"], "{decky} vs {r}");
    for slug in sorted(&r["after"]) {
        let name = format!("api01-{}", slug.replace('_', "-"));
        assert_eq!(inspect(&name)["State"]["Running"], true, "{name}");
    }
    if !sorted(&r["after"]).contains(&"redis".to_owned()) {
        assert!(run("docker", &["inspect", "api01-redis"]).status.code() != Some(0));
    }
    // The watcher in `serve` mutates a decky once its interval has passed (the shortest, a
    // minute, from the mutation above; it looks every 10 s).
    let (st, v) = api(
        port,
        "PUT",
        "/api/v1/deckies/api01/mutate-interval",
        Some(&token),
        &serde_json::json!({"mutate_interval": "1m"}),
    );
    assert_eq!(st, 200, "{v}");
    let started = std::time::Instant::now();
    let mut decky = Value::Null;
    while started.elapsed() < Duration::from_secs(100) {
        std::thread::sleep(Duration::from_secs(2));
        let (_, list) = api(port, "GET", "/api/v1/deckies", Some(&token), &Value::Null);
        decky = list[0].clone();
        if decky["mutations"] == 2 && decky["state"] == "running" {
            break;
        }
    }
    assert_eq!(decky["mutations"], 2, "not mutated on schedule: {decky}");
    eprintln!("scheduled mutation seen after {:?}", started.elapsed());
    for slug in sorted(&decky["services"]) {
        let name = format!("api01-{}", slug.replace('_', "-"));
        assert_eq!(inspect(&name)["State"]["Running"], true, "{name}");
    }

    // A bad INI is a 400 naming the problem; nothing is created.
    let (st, v) = api(
        port,
        "POST",
        "/api/v1/deckies/deploy",
        Some(&token),
        &serde_json::json!({ "ini_content": "[api02]\nservices = nosuchservice\n" }),
    );
    assert_eq!(st, 400, "{v}");
    assert!(v.to_string().contains("nosuchservice"), "{v}");
    assert!(run("docker", &["inspect", "api02"]).status.code() != Some(0));
    drop(child_guard);
}

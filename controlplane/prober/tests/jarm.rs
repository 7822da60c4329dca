//! JARM against real TLS servers on loopback (`openssl s_server`), cross-checked against pyjarm
//! (PyPI, an independent port of Salesforce's jarm.py) when it is installed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use decnet_prober::jarm::{self, NO_TLS, PROBES};
use rand::RngCore;

/// Where scripts/test.sh installs pyjarm (override with `DECNET_PYJARM_PYTHON`).
const PYJARM_PYTHON: &str = "/var/tmp/jarm-venv/bin/python";

fn pyjarm() -> Option<PathBuf> {
    let bin = std::env::var_os("DECNET_PYJARM_PYTHON")
        .map_or_else(|| PathBuf::from(PYJARM_PYTHON), PathBuf::from);
    if bin.exists() {
        Some(bin)
    } else {
        eprintln!(
            "SKIPPED the pyjarm cross-check: {} is missing (python3 -m venv /var/tmp/jarm-venv && /var/tmp/jarm-venv/bin/pip install pyjarm==0.0.5)",
            bin.display()
        );
        None
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A throwaway self-signed EC certificate and key in `dir`.
fn make_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl (Debian package openssl) must be installed");
    assert!(status.success(), "openssl req failed");
    (cert, key)
}

/// `openssl s_server` on a free loopback port with `extra` options; killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(dir: &Path, extra: &[&str]) -> Self {
        let (cert, key) = make_cert(dir);
        let port = free_port();
        let child = Command::new("openssl")
            .args(["s_server", "-www", "-quiet", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start openssl s_server");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let server = Self { child, addr };
        // Ready once it accepts (this connection is closed at once; s_server carries on).
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "s_server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// pyjarm's JARM of `addr` (it sends the IP text as SNI, as we are asked to here).
fn pyjarm_hash(python: &Path, addr: SocketAddr) -> String {
    let script = "import sys\nfrom jarm.scanner.scanner import Scanner\n\
                  print(Scanner.scan(sys.argv[1], int(sys.argv[2]), timeout=5, suppress=True)[0])";
    let out = Command::new(python)
        .args([
            "-c",
            script,
            &addr.ip().to_string(),
            &addr.port().to_string(),
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run pyjarm");
    assert!(
        out.status.success(),
        "pyjarm: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

async fn our_jarm(addr: SocketAddr) -> Option<String> {
    jarm::probe(addr, &addr.ip().to_string(), Duration::from_secs(5))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_closed_port_gives_no_jarm_quickly() {
    let port = free_port(); // bound then released: nothing listens there now
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let start = Instant::now();
    let got = jarm::probe(addr, "127.0.0.1", Duration::from_secs(5)).await;
    assert!(matches!(got, Ok(None)), "{got:?}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_plain_tcp_server_that_is_not_tls_gives_no_jarm() {
    // Answers every connection with an SSH banner and closes: every probe is `|||`.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n").await;
        }
    });
    assert_eq!(our_jarm(addr).await, None);
}

#[tokio::test]
async fn a_silent_server_times_out_to_no_jarm_after_one_probe() {
    // Accepts and never answers: jarm.py's TIMEOUT, which empties the whole JARM at once.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut keep = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            keep.push(s);
        }
    });
    let start = Instant::now();
    let got = jarm::probe(addr, "127.0.0.1", Duration::from_millis(300)).await;
    assert!(matches!(got, Ok(None)), "{got:?}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    held.abort();
}

#[tokio::test]
async fn openssl_servers_get_a_stable_jarm_that_matches_pyjarm() {
    let dir = tempfile::tempdir().unwrap();
    let default = Server::start(dir.path(), &[]);
    let first = our_jarm(default.addr)
        .await
        .expect("TLS server must have a JARM");
    assert_eq!(first.len(), 62);
    assert_ne!(first, NO_TLS);
    assert!(first.chars().all(|c| c.is_ascii_hexdigit()), "{first}");
    // Deterministic server, deterministic fingerprint (our randomness must not leak into it).
    assert_eq!(
        our_jarm(default.addr).await.as_deref(),
        Some(first.as_str())
    );

    let dir12 = tempfile::tempdir().unwrap();
    let tls12 = Server::start(dir12.path(), &["-tls1_2"]);
    let only12 = our_jarm(tls12.addr)
        .await
        .expect("TLS 1.2 server must have a JARM");
    assert_eq!(only12.len(), 62);
    assert_ne!(
        only12, first,
        "a TLS 1.2-only server must not look like a TLS 1.3 one"
    );
    eprintln!("JARM openssl s_server default: {first}");
    eprintln!("JARM openssl s_server -tls1_2:  {only12}");

    if let Some(python) = pyjarm() {
        let reference = pyjarm_hash(&python, default.addr);
        eprintln!("pyjarm       s_server default: {reference}");
        assert_eq!(first, reference, "default server");
        let reference = pyjarm_hash(&python, tls12.addr);
        eprintln!("pyjarm       s_server -tls1_2:  {reference}");
        assert_eq!(only12, reference, "-tls1_2 server");
    }
}

/// The same running-counter randomness as the Python side below.
struct CounterRng(u8);

impl RngCore for CounterRng {
    fn next_u32(&mut self) -> u32 {
        5 // GREASE index 5: 0x5a5a
    }
    fn next_u64(&mut self) -> u64 {
        5
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for b in dst {
            *b = self.0;
            self.0 = self.0.wrapping_add(1);
        }
    }
}

#[test]
fn all_ten_client_hellos_equal_pyjarms_byte_for_byte() {
    let Some(python) = pyjarm() else { return };
    // pyjarm with its randomness pinned: os.urandom gives a running byte counter (restarted per
    // probe), random.choice picks GREASE value number 5.
    let script = "import sys\nimport jarm.packet.packet as pk\nfrom jarm.formats import V1\n\
                  ctr = [0]\n\
                  def urandom(n):\n    b = bytes((ctr[0] + i) & 0xff for i in range(n))\n    ctr[0] += n\n    return b\n\
                  pk.os.urandom = urandom\npk.random.choice = lambda seq: seq[5]\n\
                  for f in V1:\n    ctr[0] = 0\n    print(f.__name__, f().build_packet(dest_host=sys.argv[1], dest_port=443).build().hex())";
    for host in ["198.51.100.7", "www.example.org"] {
        let out = Command::new(&python)
            .args(["-c", script, host])
            .stdin(Stdio::null())
            .output()
            .expect("run pyjarm");
        assert!(
            out.status.success(),
            "pyjarm: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let theirs = String::from_utf8(out.stdout).unwrap();
        let theirs: Vec<(&str, &str)> =
            theirs.lines().map(|l| l.split_once(' ').unwrap()).collect();
        assert_eq!(theirs.len(), PROBES.len());
        for (spec, (name, hex)) in PROBES.iter().zip(theirs) {
            // Same probe in the same place: "tls1_2_forward" is pyjarm's "TLS_1_2_Forward".
            let plain = |s: &str| s.replace('_', "").to_ascii_lowercase();
            assert_eq!(plain(spec.name), plain(name));
            let ours = jarm::client_hello(spec, host, &mut CounterRng(0)).unwrap();
            assert_eq!(hex::encode(ours), hex, "{} for {host}", spec.name);
        }
    }
}

//! The runtime's side of the Step contract, driven over real loopback sockets.

use std::time::Duration;

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream, tcp::OwnedReadHalf},
    sync::watch,
};

use super::*;
use crate::session::{DataEvent, DataOp};

/// A line protocol that exposes each runtime service to the test.
struct Toy;

struct ToySession {
    buf: Vec<u8>,
    /// When `W ms` asked to be woken.
    wake_at: Option<std::time::Instant>,
}

impl Protocol for Toy {
    fn slug(&self) -> &'static str {
        "toy"
    }
    fn default_ports(&self) -> &'static [u16] {
        &[]
    }
    fn session(&self, _conn: &ConnInfo) -> Box<dyn Session> {
        Box::new(ToySession {
            buf: Vec::new(),
            wake_at: None,
        })
    }
}

impl Session for ToySession {
    fn start(&mut self, step: &mut Step) {
        step.send(b"hi\n");
    }

    fn receive(&mut self, data: &[u8], step: &mut Step) {
        self.buf.extend_from_slice(data);
        while let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line).trim().to_owned();
            match line.split_once(' ').unwrap_or((&line, "")) {
                ("L", _) => step.data(DataOp::Listen),
                ("C", port) => step.data(DataOp::Connect(port.parse().unwrap_or(0))),
                ("S", _) => step.data(DataOp::Send(b"hello".to_vec())),
                ("R", _) => step.data(DataOp::Receive { limit: 4 }),
                ("X", _) => step.data(DataOp::Close),
                ("K", name) => step.store(name, b"kept".to_vec()),
                ("Z", _) => {
                    step.delay(Duration::from_millis(300));
                    step.send(b"z\n");
                }
                // More than the socket buffers hold: stalls on a peer that does not read.
                ("B", _) => step.send(&vec![b'x'; 32 << 20]),
                ("!", _) => panic!("the toy session panics on purpose"),
                ("W", ms) => {
                    let ms = ms.parse().unwrap_or(0);
                    self.wake_at = Some(std::time::Instant::now() + Duration::from_millis(ms));
                }
                _ => step.send(b"?\n"),
            }
        }
    }

    fn idle(&mut self, step: &mut Step) {
        step.send(b"bye\n");
    }

    fn wake_in(&self) -> Option<Duration> {
        self.wake_at
            .map(|at| at.saturating_duration_since(std::time::Instant::now()))
    }

    /// Says `w` and hangs up, as sshd does when its login grace runs out.
    fn wake(&mut self, step: &mut Step) {
        if self
            .wake_at
            .is_some_and(|at| at <= std::time::Instant::now())
        {
            self.wake_at = None;
            step.send(b"w\n");
            step.close();
        }
    }

    fn data(&mut self, event: DataEvent, step: &mut Step) {
        let line = match event {
            DataEvent::Listening(port) => format!("P {port}\n"),
            DataEvent::Opened => "O\n".to_owned(),
            DataEvent::Sent { bytes } => format!("D {bytes}\n"),
            DataEvent::Received { data, total } => {
                format!("G {} {total}\n", String::from_utf8_lossy(&data))
            }
            DataEvent::Failed => "F\n".to_owned(),
        };
        step.send(line.as_bytes());
    }
}

struct Client {
    lines: BufReader<OwnedReadHalf>,
    write: tokio::net::tcp::OwnedWriteHalf,
}

impl Client {
    async fn say(&mut self, line: &str) {
        self.write.write_all(line.as_bytes()).await.unwrap();
        self.write.write_all(b"\n").await.unwrap();
    }

    async fn hear(&mut self) -> String {
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(5), self.lines.read_line(&mut line))
            .await
            .expect("reply in time")
            .unwrap();
        line.trim_end().to_owned()
    }
}

async fn start(quarantine: Option<PathBuf>) -> (Client, watch::Sender<bool>) {
    start_with(quarantine, Limits::default()).await
}

async fn start_with(quarantine: Option<PathBuf>, limits: Limits) -> (Client, watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (emitter, _task) = Emitter::spawn(Vec::new());
    let ctx =
        Arc::new(ServiceContext::new("t", "toy", emitter, limits).with_quarantine(quarantine));
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(serve_tcp(listener, Arc::new(Toy), ctx, stop_rx));
    let (read, write) = TcpStream::connect(addr).await.unwrap().into_split();
    let mut client = Client {
        lines: BufReader::new(read),
        write,
    };
    assert_eq!(client.hear().await, "hi");
    (client, stop)
}

/// The toy service on a loopback port, with its context (for its counters).
async fn serve_toy(
    limits: Limits,
) -> (
    Arc<ServiceContext>,
    std::net::SocketAddr,
    watch::Sender<bool>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (emitter, _task) = Emitter::spawn(Vec::new());
    let ctx = Arc::new(ServiceContext::new("t", "toy", emitter, limits));
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(serve_tcp(
        listener,
        Arc::new(Toy),
        Arc::clone(&ctx),
        stop_rx,
    ));
    (ctx, addr, stop)
}

async fn until_no_connection_is_active(ctx: &ServiceContext, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while ctx.stats.active.load(Ordering::Relaxed) > 0 {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Neither a session that panics nor a peer that stops reading keeps its place: the first once
/// leaked its place until restart, the second blocked its write past every timeout.
#[tokio::test]
async fn panics_and_stalled_peers_give_their_place_back() {
    let limits = Limits {
        idle_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let (ctx, addr, _stop) = serve_toy(limits).await;
    let mut panicking = TcpStream::connect(addr).await.unwrap();
    panicking.write_all(b"!\n").await.unwrap();
    until_no_connection_is_active(&ctx, "a panicking session kept its place").await;
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled.write_all(b"B\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(ctx.stats.active.load(Ordering::Relaxed), 1);
    until_no_connection_is_active(&ctx, "a peer that does not read kept its place").await;
    drop(stalled);
}

/// A session's own timer fires while the peer is silent, long before the idle timeout.
#[tokio::test]
async fn a_session_is_woken_at_the_time_it_asked_for() {
    let (mut c, _stop) = start(None).await;
    let asked = std::time::Instant::now();
    c.say("W 200").await;
    // Other input meanwhile does not move the timer.
    c.say("?").await;
    assert_eq!(c.hear().await, "?");
    assert_eq!(c.hear().await, "w");
    let waited = asked.elapsed();
    assert!(waited >= Duration::from_millis(200), "{waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    // And the session's close is carried out.
    let mut rest = String::new();
    let n = c.lines.read_line(&mut rest).await.unwrap();
    assert_eq!(n, 0, "still open: {rest:?}");
}

async fn read_all(mut stream: TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    out
}

#[tokio::test]
async fn passive_send_and_receive() {
    let (mut c, _stop) = start(None).await;
    c.say("L").await;
    let port: u16 = c.hear().await.strip_prefix("P ").unwrap().parse().unwrap();
    let data = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    c.say("S").await;
    assert_eq!(c.hear().await, "O");
    assert_eq!(read_all(data).await, b"hello");
    assert_eq!(c.hear().await, "D 5");
    // The listener served its one transfer.
    c.say("S").await;
    assert_eq!(c.hear().await, "F");
    c.say("L").await;
    let port: u16 = c.hear().await.strip_prefix("P ").unwrap().parse().unwrap();
    c.say("R").await;
    let mut data = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    assert_eq!(c.hear().await, "O");
    data.write_all(b"abcdef").await.unwrap();
    drop(data);
    assert_eq!(
        c.hear().await,
        "G abcd 6",
        "kept up to the limit, counted all"
    );
}

#[tokio::test]
async fn the_control_connection_is_served_while_a_transfer_waits() {
    let (mut c, _stop) = start(None).await;
    c.say("L").await;
    let port: u16 = c.hear().await.strip_prefix("P ").unwrap().parse().unwrap();
    c.say("S").await;
    c.say("nope").await;
    assert_eq!(c.hear().await, "?");
    let data = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    assert_eq!(c.hear().await, "O");
    assert_eq!(read_all(data).await, b"hello");
    assert_eq!(c.hear().await, "D 5");
    // Close drops a listener nobody used: a connect now finds nothing to talk to.
    c.say("L").await;
    let port: u16 = c.hear().await.strip_prefix("P ").unwrap().parse().unwrap();
    c.say("X").await;
    c.say("S").await;
    assert_eq!(c.hear().await, "F");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(TcpStream::connect(("127.0.0.1", port)).await.is_err());
}

#[tokio::test]
async fn active_mode_connects_back_to_the_peer_only() {
    let (mut c, _stop) = start(None).await;
    let mine = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = mine.local_addr().unwrap().port();
    c.say(&format!("C {port}")).await;
    c.say("S").await;
    let (data, from) = tokio::time::timeout(Duration::from_secs(5), mine.accept())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(from.ip(), IpAddr::from([127, 0, 0, 1]));
    assert_eq!(c.hear().await, "O");
    assert_eq!(read_all(data).await, b"hello");
    assert_eq!(c.hear().await, "D 5");
}

#[tokio::test]
async fn delays_hold_output_back() {
    let (mut c, _stop) = start(None).await;
    let t = std::time::Instant::now();
    c.say("Z").await;
    assert_eq!(c.hear().await, "z");
    assert!(t.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn artifacts_land_in_quarantine_with_safe_names_only() {
    let dir = std::env::temp_dir().join(format!("rt-quarantine-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (mut c, _stop) = start(Some(dir.clone())).await;
    c.say("K abc123.bin").await;
    c.say("K ../escape").await;
    c.say("K .hidden").await;
    c.say("nope").await;
    assert_eq!(c.hear().await, "?");
    assert_eq!(std::fs::read(dir.join("abc123.bin")).unwrap(), b"kept");
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["abc123.bin"]);
    assert!(!dir.parent().unwrap().join("escape").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The per-source limit spans every port of a service, and counts an IPv6 /64 as one source.
#[tokio::test]
async fn the_source_limit_spans_ports_and_ipv6_prefixes() {
    let limits = Limits {
        max_per_source: 1,
        ..Limits::default()
    };
    let (emitter, _task) = Emitter::spawn(Vec::new());
    let ctx = Arc::new(ServiceContext::new("t", "toy", emitter, limits));
    let (_stop, stop_rx) = watch::channel(false);
    let mut ports = Vec::new();
    for _ in 0..2 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        ports.push(listener.local_addr().unwrap().port());
        tokio::spawn(serve_tcp(
            listener,
            Arc::new(Toy),
            Arc::clone(&ctx),
            stop_rx.clone(),
        ));
    }
    let mut first = BufReader::new(TcpStream::connect(("127.0.0.1", ports[0])).await.unwrap());
    let mut hi = String::new();
    first.read_line(&mut hi).await.unwrap();
    assert_eq!(hi, "hi\n");
    let second = TcpStream::connect(("127.0.0.1", ports[1])).await.unwrap();
    assert!(
        read_all(second).await.is_empty(),
        "a second place on another port"
    );
    let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
    let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
    let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
    assert_eq!(source_key(a), source_key(b));
    assert_ne!(source_key(a), source_key(c));
    let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
    assert_eq!(source_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
}

/// Past the quarantine budget, artifacts are reported but not written.
#[tokio::test]
async fn quarantine_stops_at_its_file_budget() {
    let dir = std::env::temp_dir().join(format!("rt-quarantine-budget-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let limits = Limits {
        max_quarantine_files: 2,
        ..Limits::default()
    };
    let (mut c, _stop) = start_with(Some(dir.clone()), limits).await;
    for name in ["one", "two", "three", "four"] {
        c.say(&format!("K {name}")).await;
    }
    c.say("nope").await;
    assert_eq!(c.hear().await, "?");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["one", "two"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn idle_sessions_get_last_words() {
    let limits = Limits {
        idle_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let (mut c, _stop) = start_with(None, limits).await;
    assert_eq!(c.hear().await, "bye");
    let mut rest = String::new();
    let n = c.lines.read_line(&mut rest).await.unwrap();
    assert_eq!(n, 0, "then the connection is closed");
}

#[tokio::test]
async fn a_transfer_in_flight_is_not_idleness() {
    let limits = Limits {
        idle_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let (mut c, _stop) = start_with(None, limits).await;
    c.say("L").await;
    let port: u16 = c.hear().await.strip_prefix("P ").unwrap().parse().unwrap();
    c.say("R").await;
    let mut data = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    assert_eq!(c.hear().await, "O");
    for byte in [b"a", b"b"] {
        tokio::time::sleep(Duration::from_millis(250)).await;
        data.write_all(byte).await.unwrap();
    }
    drop(data);
    assert_eq!(
        c.hear().await,
        "G ab 2",
        "no idle hang-up while the upload ran"
    );
    assert_eq!(c.hear().await, "bye", "idle again afterwards");
}

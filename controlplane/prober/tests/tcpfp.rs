//! Live tests of the TCP SYN-ACK fingerprint: real raw sockets against the Linux stack, on
//! loopback and across a veth pair between two network namespaces this test creates (and
//! deletes). Without root they print a loud `SKIPPED:` line and pass.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::{
    io::ErrorKind,
    mem,
    net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream},
    os::fd::AsRawFd,
    process::Command,
    time::{Duration, Instant},
};

use decnet_prober::{
    ProbeError,
    tcpfp::{TcpFingerprint, probe, probe_blocking},
};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn v4(l: &TcpListener) -> SocketAddrV4 {
    match l.local_addr().unwrap() {
        std::net::SocketAddr::V4(a) => a,
        other => panic!("not IPv4: {other}"),
    }
}

fn tcp_info(s: &impl AsRawFd) -> libc::tcp_info {
    // SAFETY: tcp_info is plain old data; all-zero is a valid value.
    let mut info: libc::tcp_info = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: info and len are valid for writes and outlive the call; len is info's size.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &raw mut len,
        )
    };
    assert_eq!(rc, 0, "TCP_INFO: {}", std::io::Error::last_os_error());
    info
}

/// Checks a probe's fingerprint against what the kernel itself negotiated on a real
/// connection to the same listener: the peer's window scale and the SACK/timestamp options as
/// the client side saw them, and the MSS the server side advertised.
/// `client` is a fresh connection to `listener`, made by the caller (from the namespace that
/// can reach it).
fn check_against_kernel(fp: &TcpFingerprint, listener: &TcpListener, client: &TcpStream) {
    let (server, _) = listener.accept().unwrap();
    let ci = tcp_info(client);
    let si = tcp_info(&server);
    // TCPI_OPT_TIMESTAMPS = 1, TCPI_OPT_SACK = 2, TCPI_OPT_WSCALE = 4 (linux/tcp.h).
    assert_eq!(
        ci.tcpi_options & 1 != 0,
        fp.timestamps,
        "timestamps vs TCP_INFO"
    );
    assert_eq!(ci.tcpi_options & 2 != 0, fp.sack, "sack vs TCP_INFO");
    assert_eq!(
        ci.tcpi_options & 4 != 0,
        fp.wscale.is_some(),
        "wscale vs TCP_INFO"
    );
    // tcpi_snd_wscale (low nibble on little-endian bitfields): the shift the server sent.
    if cfg!(target_endian = "little") {
        assert_eq!(
            Some(ci.tcpi_snd_rcv_wscale & 0x0f),
            fp.wscale,
            "wscale vs TCP_INFO"
        );
    }
    // The server's tcpi_advmss is the MSS it advertised less the 12 bytes every segment's
    // timestamps option takes once timestamps are agreed (tcp_create_openreq_child).
    let ts_room = if fp.timestamps { 12 } else { 0 };
    assert_eq!(
        fp.mss.map(u32::from),
        Some(si.tcpi_advmss + ts_room),
        "MSS vs the server's advertised MSS"
    );
}

#[tokio::test]
async fn loopback_open_port_gives_the_linux_fingerprint() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = v4(&listener);
    let res = probe(target, Duration::from_secs(3)).await;
    if !is_root() {
        assert!(matches!(res, Err(ProbeError::NeedsRawSocket(_))), "{res:?}");
        println!("SKIPPED: live tcpfp loopback test needs root (got NeedsRawSocket as expected)");
        return;
    }
    let fp = res.unwrap().expect("a SYN-ACK from an open loopback port");
    println!("loopback fingerprint: {} hash {}", fp.raw, fp.hash);
    let default_ttl: u8 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_default_ttl")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        default_ttl, 64,
        "this host's default TTL is not Linux's default"
    );
    assert_eq!(fp.ttl, 64);
    assert!(fp.df);
    assert!(fp.sack);
    assert!(fp.timestamps);
    assert!(fp.mss.is_some());
    assert!(fp.wscale.is_some());
    assert_eq!(fp.options_order, "M,S,T,N,W");
    assert!(fp.raw.starts_with("64:"));
    assert_eq!(fp.hash.len(), 32);

    // The handshake was never completed: nothing waits in the accept queue.
    listener.set_nonblocking(true).unwrap();
    assert_eq!(
        listener.accept().map(|_| ()).unwrap_err().kind(),
        ErrorKind::WouldBlock,
        "the probe must not leave a connection behind"
    );
    listener.set_nonblocking(false).unwrap();
    let client = TcpStream::connect(target).unwrap();
    check_against_kernel(&fp, &listener, &client);

    // Same stack, same port: the same fingerprint (random ISN, TSval and source port aside).
    let again = probe(target, Duration::from_secs(3)).await.unwrap();
    assert_eq!(again.as_ref().map(|f| &f.hash), Some(&fp.hash));
}

#[tokio::test]
async fn loopback_closed_port_is_none_quickly() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        v4(&l).port()
    }; // dropped: nothing listens there now
    let target = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    let timeout = Duration::from_secs(5);
    let start = Instant::now();
    let res = probe(target, timeout).await;
    if !is_root() {
        assert!(matches!(res, Err(ProbeError::NeedsRawSocket(_))), "{res:?}");
        println!("SKIPPED: live tcpfp closed-port test needs root");
        return;
    }
    assert_eq!(res.unwrap(), None);
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "a RST must end the probe, not the {timeout:?} timeout (took {took:?})"
    );
}

/// Drops CAP_NET_RAW from this thread's effective set (capabilities are per thread on Linux).
fn drop_net_raw_on_this_thread() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    const CAP_NET_RAW: u32 = 13;
    let mut hdr = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: hdr and data are the v3 layouts capget expects and outlive the call.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &raw mut hdr, data.as_mut_ptr()) };
    assert_eq!(rc, 0, "capget: {}", std::io::Error::last_os_error());
    data[0].effective &= !(1 << CAP_NET_RAW);
    // SAFETY: as above; capset only reads them.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &raw mut hdr, data.as_ptr()) };
    assert_eq!(rc, 0, "capset: {}", std::io::Error::last_os_error());
}

#[test]
fn without_cap_net_raw_needs_raw_socket() {
    let res = std::thread::spawn(|| {
        if is_root() {
            drop_net_raw_on_this_thread();
        }
        probe_blocking(
            SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9),
            Duration::from_millis(100),
        )
    })
    .join()
    .unwrap();
    assert!(matches!(res, Err(ProbeError::NeedsRawSocket(_))), "{res:?}");
}

/// Two network namespaces joined by a veth pair; deleted (with the veth) on drop, also when
/// the test fails.
struct Netns {
    prober: String,
    target: String,
}

impl Netns {
    const PROBER_IP: Ipv4Addr = Ipv4Addr::new(10, 250, 77, 1);
    const TARGET_IP: Ipv4Addr = Ipv4Addr::new(10, 250, 77, 2);

    fn ip(args: &[&str]) -> Result<(), String> {
        let out = Command::new("ip")
            .args(args)
            .output()
            .map_err(|e| format!("ip {args:?}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "ip {args:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    fn create(target_ttl: u8) -> Result<Self, String> {
        let id = std::process::id();
        let me = Self {
            prober: format!("tcpfp-p-{id}"),
            target: format!("tcpfp-t-{id}"),
        };
        Self::ip(&["netns", "add", &me.prober])?;
        // From here on `me` exists, so any failure below still deletes what was made.
        Self::ip(&["netns", "add", &me.target])?;
        let (a, b) = (format!("tfpa{id}"), format!("tfpb{id}"));
        // Created inside the prober namespace: the root namespace never sees the pair.
        Self::ip(&[
            "-n", &me.prober, "link", "add", &a, "type", "veth", "peer", "name", &b, "netns",
            &me.target,
        ])?;
        let p_cidr = format!("{}/24", Self::PROBER_IP);
        let t_cidr = format!("{}/24", Self::TARGET_IP);
        Self::ip(&["-n", &me.prober, "addr", "add", &p_cidr, "dev", &a])?;
        Self::ip(&["-n", &me.target, "addr", "add", &t_cidr, "dev", &b])?;
        Self::ip(&["-n", &me.prober, "link", "set", &a, "up"])?;
        Self::ip(&["-n", &me.target, "link", "set", &b, "up"])?;
        let ttl = format!("net.ipv4.ip_default_ttl={target_ttl}");
        let out = Command::new("ip")
            .args(["netns", "exec", &me.target, "sysctl", "-qw", &ttl])
            .output()
            .map_err(|e| format!("sysctl: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "sysctl: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(me)
    }

    /// Runs `f` on a fresh thread that has joined namespace `name` (setns affects only the
    /// calling thread, and sockets it creates stay in that namespace).
    fn run_in<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{name}");
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).unwrap();
            // SAFETY: ns is an open namespace file for the duration of the call.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end in it, and with it the pair.
        for ns in [&self.target, &self.prober] {
            if let Err(e) = Self::ip(&["netns", "del", ns]) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

#[test]
fn veth_target_with_ttl_128_reports_128() {
    if !is_root() {
        println!("SKIPPED: tcpfp netns/veth test needs root");
        return;
    }
    let ns = match Netns::create(128) {
        Ok(ns) => ns,
        Err(e) => {
            println!("SKIPPED: tcpfp netns/veth test could not set up namespaces: {e}");
            return;
        }
    };
    let listener = Netns::run_in(&ns.target, || {
        TcpListener::bind(SocketAddrV4::new(Netns::TARGET_IP, 0)).unwrap()
    });
    let open = v4(&listener);
    let res = Netns::run_in(&ns.prober, move || {
        probe_blocking(open, Duration::from_secs(3))
    });
    let fp = res.unwrap().expect("a SYN-ACK across the veth");
    println!("veth fingerprint: {} hash {}", fp.raw, fp.hash);
    assert_eq!(fp.ttl, 128, "the TTL must be read from the target's packet");
    assert!(fp.raw.starts_with("128:"));
    assert!(fp.df && fp.sack && fp.timestamps);
    // Ethernet-sized veth: the target advertises 1500 - 40.
    assert_eq!(fp.mss, Some(1460));
    let client = Netns::run_in(&ns.prober, move || TcpStream::connect(open).unwrap());
    check_against_kernel(&fp, &listener, &client);

    // A closed port in the target namespace: its RST also carries TTL 128, and ends the probe.
    let closed = SocketAddrV4::new(Netns::TARGET_IP, open.port().wrapping_add(1).max(1));
    let start = Instant::now();
    let res = Netns::run_in(&ns.prober, move || {
        probe_blocking(closed, Duration::from_secs(3))
    });
    assert_eq!(res.unwrap(), None);
    assert!(start.elapsed() < Duration::from_secs(1));

    // Nobody at .9 on the link: no answer at all, so the timeout (filtered) decides.
    let silent = SocketAddrV4::new(Ipv4Addr::new(10, 250, 77, 9), 80);
    let timeout = Duration::from_millis(700);
    let start = Instant::now();
    let res = Netns::run_in(&ns.prober, move || probe_blocking(silent, timeout));
    let took = start.elapsed();
    assert_eq!(res.unwrap(), None);
    assert!(
        took >= timeout && took < timeout + Duration::from_secs(1),
        "took {took:?}"
    );
}

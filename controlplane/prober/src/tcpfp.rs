//! Active TCP SYN-ACK fingerprint ("tcpfp") of an attacker's own server.
//!
//! One SYN goes from a random source port (49152–65535) to the attacker's port; the SYN-ACK
//! that answers it says a lot about the attacker's TCP/IP stack: the IP TTL, the TCP window,
//! the DF bit, the MSS, the window scale, SACK-permitted, timestamps and the order the options
//! come in. A RST for our half-open connection follows so the attacker's listen queue is not
//! left holding it.
//!
//! # Text forms (stable: they are hashed and stored)
//!
//! `options_order` is the options of the SYN-ACK, in order, as letters joined with `,`, the
//! codes of the original (Python) DECNET prober so hashes stay comparable with its data:
//!
//! | kind | option | letter |
//! |------|--------|--------|
//! | 0 | end of option list | `E` (parsing stops there, as scapy does) |
//! | 1 | no-operation | `N` |
//! | 2 | MSS (length 4) | `M` |
//! | 3 | window scale (length 3) | `W` |
//! | 4 | SACK permitted (length 2) | `S` |
//! | 5 | SACK blocks | `S` |
//! | 8 | timestamps (length 10) | `T` |
//! | 14, 15 | alternate checksum | `A` |
//! | 28 | user timeout | `U` |
//! | any other kind | | `?` |
//!
//! A known kind with the wrong length (an MSS of 3 bytes, say) is `?` too, and its value is not
//! taken. An option whose length byte is missing, below 2 or runs past the options area is `?`
//! and ends parsing (nothing after it can be framed).
//!
//! A Linux SYN-ACK to a SYN offering everything reads `M,S,T,N,W`; no options reads ``
//! (empty).
//!
//! `raw` is `ttl:window:df:mss:wscale:sack:ts:options_order` with `df`, `sack` and `ts` as
//! `1`/`0`, an absent MSS as `0` and an absent window scale as `-1` (the original's
//! conventions), e.g. `64:65483:1:65495:10:1:1:M,S,T,N,W` (Linux on loopback). `hash` is the SHA-256 of `raw`'s
//! UTF-8 bytes, lower-case hex, first 32 characters.
//!
//! # Layout
//!
//! The sans-IO part ([`SynProbe`]: the SYN and RST bytes, [`SynProbe::classify`] for a
//! received packet) is pure and tested byte for byte; [`probe`] is the raw-socket part, run on
//! tokio's blocking pool because a raw socket read is a blocking syscall.

use std::{
    io,
    net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    time::{Duration, Instant},
};

use sha2::{Digest, Sha256};
use tracing::debug;

use crate::ProbeError;

/// What one SYN-ACK says about the stack that sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpFingerprint {
    /// IP TTL as received (the sender's initial TTL minus the hops on the way).
    pub ttl: u8,
    /// TCP window of the SYN-ACK (never scaled: scaling does not apply to SYN segments).
    pub window: u16,
    /// The IP "don't fragment" bit.
    pub df: bool,
    /// MSS option value, `None` without a (well-formed) MSS option.
    pub mss: Option<u16>,
    /// Window scale shift count, `None` without a (well-formed) window scale option.
    pub wscale: Option<u8>,
    /// SACK-permitted (or SACK) option present.
    pub sack: bool,
    /// Timestamps option present.
    pub timestamps: bool,
    /// Option kinds in order, as letters joined with `,` (see the module docs).
    pub options_order: String,
    /// `ttl:window:df:mss:wscale:sack:ts:options_order` (see the module docs).
    pub raw: String,
    /// SHA-256 of `raw`, hex, first 32 characters.
    pub hash: String,
}

impl TcpFingerprint {
    /// A fingerprint from its fields, with `raw` and `hash` derived by the documented rule.
    #[allow(clippy::too_many_arguments)] // one argument per fingerprint field, all named
    pub fn new(
        ttl: u8,
        window: u16,
        df: bool,
        mss: Option<u16>,
        wscale: Option<u8>,
        sack: bool,
        timestamps: bool,
        options_order: String,
    ) -> Self {
        let bit = |b: bool| if b { '1' } else { '0' };
        // Absent MSS prints 0 and absent window scale -1: the original's conventions, kept so
        // hashes match its data.
        let mss_text = mss.unwrap_or(0).to_string();
        let ws_text = wscale.map_or_else(|| "-1".to_owned(), |w| w.to_string());
        let raw = format!(
            "{ttl}:{window}:{}:{mss_text}:{ws_text}:{}:{}:{options_order}",
            bit(df),
            bit(sack),
            bit(timestamps)
        );
        let digest = Sha256::digest(raw.as_bytes());
        let mut hash = hex::encode(digest);
        hash.truncate(32);
        Self {
            ttl,
            window,
            df,
            mss,
            wscale,
            sack,
            timestamps,
            options_order,
            raw,
            hash,
        }
    }
}

/// What a packet read from the raw socket means for our probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The SYN-ACK answering our SYN: the port is open.
    SynAck(TcpFingerprint),
    /// A RST answering our SYN: the port is closed.
    Reset,
    /// Anything else (other flows, our own outgoing SYN seen on loopback, junk).
    Unrelated,
}

/// Length of the SYN segment [`SynProbe::syn_segment`] builds: 20 bytes of header and 20 of
/// options, like a Linux SYN.
pub const SYN_LEN: usize = 40;
/// Length of the RST segment (a bare header).
pub const RST_LEN: usize = 20;
/// Window of our SYN: Linux's initial window for a 1460-byte MSS.
pub const SYN_WINDOW: u16 = 64240;
/// MSS we offer: Ethernet's.
pub const SYN_MSS: u16 = 1460;
/// Window scale we offer: Linux's default with its default buffers.
pub const SYN_WSCALE: u8 = 7;
/// First and last source port we pick from (the IANA dynamic range, as the original did).
pub const SOURCE_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;

const IPPROTO_TCP_U8: u8 = 6;
const FLAG_SYN: u8 = 0x02;
const FLAG_RST: u8 = 0x04;
const FLAG_ACK: u8 = 0x10;

/// One probe's identity: our end, the target, our initial sequence number and the timestamp
/// value of our SYN. Everything needed to build our segments and to recognise the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynProbe {
    /// Our address and source port (the address the kernel sends from).
    pub src: SocketAddrV4,
    /// The target's address and port.
    pub dst: SocketAddrV4,
    /// Our initial sequence number.
    pub seq: u32,
    /// TSval of our SYN's timestamps option.
    pub tsval: u32,
}

impl SynProbe {
    /// The SYN segment (TCP header and options, no IP header; the kernel adds that), with the
    /// checksum over the IPv4 pseudo-header. Options are in Linux's order (MSS, SACK-permitted,
    /// timestamps, NOP, window scale) so the probe looks like an ordinary Linux client and the
    /// target answers with everything it supports.
    pub fn syn_segment(&self) -> [u8; SYN_LEN] {
        let mut s = [0u8; SYN_LEN];
        s[0..2].copy_from_slice(&self.src.port().to_be_bytes());
        s[2..4].copy_from_slice(&self.dst.port().to_be_bytes());
        s[4..8].copy_from_slice(&self.seq.to_be_bytes());
        // ack (8..12) stays 0: no ACK flag on a SYN.
        s[12] = ((SYN_LEN / 4) as u8) << 4; // data offset in 32-bit words
        s[13] = FLAG_SYN;
        s[14..16].copy_from_slice(&SYN_WINDOW.to_be_bytes());
        // checksum (16..18) is filled below; urgent pointer (18..20) stays 0.
        let [m0, m1] = SYN_MSS.to_be_bytes();
        let [t0, t1, t2, t3] = self.tsval.to_be_bytes();
        let options: [u8; SYN_LEN - 20] = [
            2, 4, m0, m1, // MSS
            4, 2, // SACK permitted
            8, 10, t0, t1, t2, t3, 0, 0, 0, 0, // timestamps: TSval, TSecr 0 on a SYN
            1, // NOP: aligns the window scale option's end on 4 bytes
            3, 3, SYN_WSCALE, // window scale
        ];
        s[20..].copy_from_slice(&options);
        let sum = tcp_checksum(*self.src.ip(), *self.dst.ip(), &s);
        s[16..18].copy_from_slice(&sum.to_be_bytes());
        s
    }

    /// The RST that tears down our half-open connection after the SYN-ACK: sequence number
    /// our ISN + 1 (what the SYN-ACK acknowledged), no ACK flag, as RFC 9293 resets a
    /// connection in SYN-RECEIVED.
    pub fn rst_segment(&self) -> [u8; RST_LEN] {
        let mut s = [0u8; RST_LEN];
        s[0..2].copy_from_slice(&self.src.port().to_be_bytes());
        s[2..4].copy_from_slice(&self.dst.port().to_be_bytes());
        s[4..8].copy_from_slice(&self.seq.wrapping_add(1).to_be_bytes());
        s[12] = ((RST_LEN / 4) as u8) << 4;
        s[13] = FLAG_RST;
        let sum = tcp_checksum(*self.src.ip(), *self.dst.ip(), &s);
        s[16..18].copy_from_slice(&sum.to_be_bytes());
        s
    }

    /// What a packet as a raw `IPPROTO_TCP` socket delivers it (IPv4 header first) means for
    /// this probe. Never panics, whatever the bytes.
    ///
    /// An answer must come from the target's address and port to our address and port and
    /// acknowledge our SYN (ACK flag, ack = ISN + 1): that rejects other flows, stale or
    /// spoofed segments, and our own outgoing SYN, which a raw socket on loopback reads back.
    /// The TCP checksum is not checked: the kernel delivers raw copies before TCP validates
    /// them, and on loopback (checksum offload) the field holds only a partial sum.
    pub fn classify(&self, packet: &[u8]) -> Reply {
        let Some((ip, tcp)) = split_ipv4(packet) else {
            return Reply::Unrelated;
        };
        let Some(seg) = TcpView::parse(tcp) else {
            return Reply::Unrelated;
        };
        let from_target = ip.src == *self.dst.ip() && seg.src_port == self.dst.port();
        let to_us = ip.dst == *self.src.ip() && seg.dst_port == self.src.port();
        if !from_target || !to_us {
            return Reply::Unrelated;
        }
        if seg.flags & FLAG_ACK == 0 || seg.ack != self.seq.wrapping_add(1) {
            return Reply::Unrelated;
        }
        if seg.flags & FLAG_RST != 0 {
            return Reply::Reset;
        }
        if seg.flags & FLAG_SYN == 0 {
            return Reply::Unrelated;
        }
        let opts = parse_options(seg.options);
        Reply::SynAck(TcpFingerprint::new(
            ip.ttl,
            seg.window,
            ip.df,
            opts.mss,
            opts.wscale,
            opts.sack,
            opts.timestamps,
            opts.order,
        ))
    }
}

/// The Internet checksum of a TCP segment over the IPv4 pseudo-header (RFC 9293 §3.1). The
/// segment's own checksum field must be zero (when building) or left in (when verifying: the
/// result is then 0).
pub fn tcp_checksum(src: Ipv4Addr, dst: Ipv4Addr, segment: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    let words = |b: &[u8]| -> u64 {
        b.chunks(2)
            .map(|c| match c {
                [hi, lo] => u64::from(u16::from_be_bytes([*hi, *lo])),
                [hi] => u64::from(u16::from_be_bytes([*hi, 0])),
                _ => 0,
            })
            .sum()
    };
    sum += words(&src.octets());
    sum += words(&dst.octets());
    sum += u64::from(IPPROTO_TCP_U8);
    // A segment longer than u16 cannot exist in IPv4; saturate rather than wrap if misused.
    sum += u64::from(u16::try_from(segment.len()).unwrap_or(u16::MAX));
    sum += words(segment);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The IPv4 header fields the fingerprint and the matching need.
struct Ipv4View {
    ttl: u8,
    df: bool,
    src: Ipv4Addr,
    dst: Ipv4Addr,
}

/// Splits an IPv4 packet into its header fields and its TCP bytes; `None` for anything that is
/// not a whole, unfragmented IPv4 TCP packet.
fn split_ipv4(packet: &[u8]) -> Option<(Ipv4View, &[u8])> {
    let h: &[u8; 20] = packet.get(..20)?.try_into().ok()?;
    if h[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(h[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    if ihl < 20 || total < ihl {
        return None;
    }
    let frag = u16::from_be_bytes([h[6], h[7]]);
    // A fragment (MF set or a non-zero offset) is not a whole SYN-ACK; ours are tiny and DF'd.
    if frag & 0x2000 != 0 || frag & 0x1fff != 0 || h[9] != IPPROTO_TCP_U8 {
        return None;
    }
    // Linux raw sockets leave the total length as received (network order, header included);
    // bytes past it are link padding.
    let tcp = packet.get(ihl..total)?;
    let ip = Ipv4View {
        ttl: h[8],
        df: frag & 0x4000 != 0,
        src: Ipv4Addr::new(h[12], h[13], h[14], h[15]),
        dst: Ipv4Addr::new(h[16], h[17], h[18], h[19]),
    };
    Some((ip, tcp))
}

/// The TCP header fields the matching and the fingerprint need.
struct TcpView<'a> {
    src_port: u16,
    dst_port: u16,
    ack: u32,
    flags: u8,
    window: u16,
    options: &'a [u8],
}

impl<'a> TcpView<'a> {
    fn parse(tcp: &'a [u8]) -> Option<Self> {
        let h: &[u8; 20] = tcp.get(..20)?.try_into().ok()?;
        let doff = usize::from(h[12] >> 4) * 4;
        if doff < 20 {
            return None;
        }
        Some(Self {
            src_port: u16::from_be_bytes([h[0], h[1]]),
            dst_port: u16::from_be_bytes([h[2], h[3]]),
            ack: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
            flags: h[13],
            window: u16::from_be_bytes([h[14], h[15]]),
            options: tcp.get(20..doff)?,
        })
    }
}

/// Options of a SYN-ACK, decoded.
#[derive(Debug, Default)]
struct Options {
    mss: Option<u16>,
    wscale: Option<u8>,
    sack: bool,
    timestamps: bool,
    order: String,
}

/// Walks the options area (see the module docs for the letters). Bounds-checked throughout.
fn parse_options(area: &[u8]) -> Options {
    let mut out = Options::default();
    let mut codes: Vec<&'static str> = Vec::new();
    let mut rest = area;
    while let Some((&kind, after_kind)) = rest.split_first() {
        match kind {
            0 => {
                codes.push("E");
                break;
            }
            1 => {
                codes.push("N");
                rest = after_kind;
                continue;
            }
            _ => {}
        }
        // Every other option is kind, length (counting both bytes), body.
        let body = after_kind
            .first()
            .map(|&len| usize::from(len))
            .filter(|&len| len >= 2)
            .and_then(|len| rest.get(2..len).map(|body| (body, len)));
        let Some((body, len)) = body else {
            codes.push("?");
            break;
        };
        let code = match (kind, body) {
            (2, &[hi, lo]) => {
                out.mss = Some(u16::from_be_bytes([hi, lo]));
                "M"
            }
            (3, &[shift]) => {
                out.wscale = Some(shift);
                "W"
            }
            (4, []) => {
                out.sack = true;
                "S"
            }
            // SACK blocks have no business in a SYN-ACK, but the original counted them as SACK.
            (5, _) => {
                out.sack = true;
                "S"
            }
            (8, [_, _, _, _, _, _, _, _]) => {
                out.timestamps = true;
                "T"
            }
            (14 | 15, _) => "A",
            (28, _) => "U",
            _ => "?",
        };
        codes.push(code);
        rest = rest.get(len..).unwrap_or_default();
    }
    out.order = codes.join(",");
    out
}

/// Sends one SYN to `target` and fingerprints the SYN-ACK.
///
/// `Ok(Some(_))` for an open port, `Ok(None)` for a closed one (RST) or a filtered one (no
/// answer within `timeout`). Needs `CAP_NET_RAW` ([`ProbeError::NeedsRawSocket`] otherwise).
/// The socket work runs on tokio's blocking pool, so this never blocks the runtime.
pub async fn probe(
    target: SocketAddrV4,
    timeout: Duration,
) -> Result<Option<TcpFingerprint>, ProbeError> {
    tokio::task::spawn_blocking(move || probe_blocking(target, timeout))
        .await
        .map_err(|join| ProbeError::Io {
            target: SocketAddr::V4(target),
            source: io::Error::other(join),
        })?
}

/// [`probe`] on the calling thread: blocks for up to `timeout` (plus the send). For callers
/// that are not on a tokio runtime, or that already run on a blocking thread.
pub fn probe_blocking(
    target: SocketAddrV4,
    timeout: Duration,
) -> Result<Option<TcpFingerprint>, ProbeError> {
    let io_err = |source: io::Error| ProbeError::Io {
        target: SocketAddr::V4(target),
        source,
    };
    // Open the raw socket first: without the privilege there is nothing else worth doing.
    let raw = RawTcpSocket::open().map_err(|e| match e.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => ProbeError::NeedsRawSocket(e),
        _ => io_err(e),
    })?;
    let src_ip = source_ip_for(target).map_err(io_err)?;
    // Bind the raw socket to that address so the kernel sends from exactly the address the
    // checksum's pseudo-header was computed over.
    raw.bind(src_ip).map_err(io_err)?;
    raw.filter_from(target).map_err(io_err)?;
    let (src_port, _reservation) = reserve_source_port(src_ip, target.port()).map_err(io_err)?;
    let p = SynProbe {
        src: SocketAddrV4::new(src_ip, src_port),
        dst: target,
        seq: rand::random(),
        tsval: rand::random(),
    };
    debug!(%target, src = %p.src, seq = p.seq, "tcpfp: sending SYN");
    raw.send_to(&p.syn_segment(), *target.ip())
        .map_err(io_err)?;

    let deadline = Instant::now() + timeout;
    // Big enough for any IPv4 packet: a SYN-ACK is small, but unrelated traffic may not be and
    // a short buffer would only truncate it (harmless) — keep it whole for the debug log.
    let mut buf = vec![0u8; 65_535];
    loop {
        let now = Instant::now();
        let Some(left) = deadline
            .checked_duration_since(now)
            .filter(|d| !d.is_zero())
        else {
            debug!(%target, ?timeout, "tcpfp: no answer, port filtered");
            return Ok(None);
        };
        let Some(n) = raw.recv_within(&mut buf, left).map_err(io_err)? else {
            continue; // poll timed out or was interrupted: the deadline check decides
        };
        match p.classify(buf.get(..n).unwrap_or_default()) {
            Reply::Unrelated => {}
            Reply::Reset => {
                debug!(%target, "tcpfp: RST, port closed");
                return Ok(None);
            }
            Reply::SynAck(fp) => {
                debug!(%target, raw = %fp.raw, hash = %fp.hash, "tcpfp: SYN-ACK");
                // Best effort: our kernel, knowing no socket for this port, resets the
                // connection too; ours makes sure even if a firewall drops the kernel's.
                if let Err(e) = raw.send_to(&p.rst_segment(), *target.ip()) {
                    debug!(%target, error = %e, "tcpfp: sending RST failed");
                }
                return Ok(Some(fp));
            }
        }
    }
}

/// The address the kernel would send from towards `target`: a connected UDP socket asks the
/// routing table without sending anything.
fn source_ip_for(target: SocketAddrV4) -> io::Result<Ipv4Addr> {
    let udp = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    // The port only has to be non-zero for connect(); no datagram is sent.
    udp.connect(SocketAddrV4::new(*target.ip(), target.port().max(1)))?;
    match udp.local_addr()? {
        SocketAddr::V4(a) => Ok(*a.ip()),
        SocketAddr::V6(a) => Err(io::Error::other(format!("IPv6 source {a} for IPv4 target"))),
    }
}

/// Picks a random source port and holds it with a bound (not listening, not connected) TCP
/// socket while the probe runs, so no local connection — and no concurrent probe — uses the
/// same port: our SYN must not land in a real connection's 4-tuple. A bound-only socket does
/// not receive segments, so the SYN-ACK still reaches only the raw socket (and the kernel's
/// own RST, as for any port without a connection).
fn reserve_source_port(src_ip: Ipv4Addr, target_port: u16) -> io::Result<(u16, OwnedFd)> {
    let mut last = io::Error::from(io::ErrorKind::AddrInUse);
    for _ in 0..16 {
        let port = rand::random_range(SOURCE_PORTS);
        // Same port both ends would make our own SYN, read back on loopback, look like it came
        // from the target's port: avoid it rather than rely on the flag check alone.
        if port == target_port {
            continue;
        }
        // SAFETY: socket() takes no pointers; the result is checked before use.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh, valid descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let sa = sockaddr_in(src_ip, port);
        // SAFETY: sa is a valid sockaddr_in that outlives the call; the length is its size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const sa).cast::<libc::sockaddr>(),
                SOCKADDR_IN_LEN,
            )
        };
        if rc == 0 {
            return Ok((port, fd));
        }
        last = io::Error::last_os_error();
        if last.kind() != io::ErrorKind::AddrInUse {
            return Err(last);
        }
    }
    Err(last)
}

const SOCKADDR_IN_LEN: libc::socklen_t =
    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;

fn sockaddr_in(ip: Ipv4Addr, port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// A raw `AF_INET`/`IPPROTO_TCP` socket: we write TCP segments, the kernel adds the IP header;
/// reads return whole IPv4 packets (header included) of every TCP segment the host receives.
#[derive(Debug)]
struct RawTcpSocket(OwnedFd);

impl RawTcpSocket {
    fn open() -> io::Result<Self> {
        // SAFETY: socket() takes no pointers; the result is checked before use.
        let fd = unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::IPPROTO_TCP,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh, valid descriptor nobody else owns.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn bind(&self, ip: Ipv4Addr) -> io::Result<()> {
        let sa = sockaddr_in(ip, 0);
        // SAFETY: sa is a valid sockaddr_in that outlives the call; the length is its size.
        let rc = unsafe {
            libc::bind(
                self.0.as_raw_fd(),
                (&raw const sa).cast::<libc::sockaddr>(),
                SOCKADDR_IN_LEN,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Kernel-side filter: only TCP from the target's address and port is queued. A raw TCP
    /// socket otherwise copies every TCP segment the host receives; on a busy sensor that is
    /// work for nothing and can overflow the receive buffer before the SYN-ACK arrives.
    /// `classify` still checks everything (segments queued before the filter was attached).
    fn filter_from(&self, target: SocketAddrV4) -> io::Result<()> {
        // Classic BPF, as in linux/filter.h. A raw IPv4 socket's filter sees the packet from
        // the IP header on.
        const fn op(class: u16, size_or_cmp: u16, mode_or_src: u16) -> u16 {
            class | size_or_cmp | mode_or_src
        }
        const LD_W_ABS: u16 = op(0x00, 0x00, 0x20); // BPF_LD | BPF_W | BPF_ABS
        const LDX_B_MSH: u16 = op(0x01, 0x10, 0xa0); // BPF_LDX | BPF_B | BPF_MSH
        const LD_H_IND: u16 = op(0x00, 0x08, 0x40); // BPF_LD | BPF_H | BPF_IND
        const JEQ_K: u16 = op(0x05, 0x10, 0x00); // BPF_JMP | BPF_JEQ | BPF_K
        const RET_K: u16 = op(0x06, 0x00, 0x00); // BPF_RET | BPF_K
        let ins = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
        let mut prog = [
            ins(LD_W_ABS, 0, 0, 12),                    // A = source address
            ins(JEQ_K, 0, 4, u32::from(*target.ip())),  // not the target: drop
            ins(LDX_B_MSH, 0, 0, 0),                    // X = IP header length
            ins(LD_H_IND, 0, 0, 0),                     // A = TCP source port
            ins(JEQ_K, 0, 1, u32::from(target.port())), // not the target's port: drop
            ins(RET_K, 0, 0, 0xffff),                   // keep (whole packet)
            ins(RET_K, 0, 0, 0),                        // drop
        ];
        let fprog = libc::sock_fprog {
            len: prog.len() as libc::c_ushort,
            filter: prog.as_mut_ptr(),
        };
        // SAFETY: fprog points at prog, which outlives the call (the kernel copies it); the
        // length is fprog's size.
        let rc = unsafe {
            libc::setsockopt(
                self.0.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                (&raw const fprog).cast::<libc::c_void>(),
                std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn send_to(&self, segment: &[u8], dst: Ipv4Addr) -> io::Result<()> {
        // The port of a raw socket's destination is unused; 0 keeps it unambiguous.
        let sa = sockaddr_in(dst, 0);
        // SAFETY: segment is valid for its length; sa is a valid sockaddr_in that outlives the
        // call and the length is its size.
        let n = unsafe {
            libc::sendto(
                self.0.as_raw_fd(),
                segment.as_ptr().cast::<libc::c_void>(),
                segment.len(),
                0,
                (&raw const sa).cast::<libc::sockaddr>(),
                SOCKADDR_IN_LEN,
            )
        };
        match usize::try_from(n) {
            Ok(sent) if sent == segment.len() => Ok(()),
            Ok(sent) => Err(io::Error::other(format!(
                "short raw send: {sent} of {} bytes",
                segment.len()
            ))),
            Err(_) => Err(io::Error::last_os_error()),
        }
    }

    /// Waits up to `wait` for a packet; `Ok(None)` when none came (or a signal interrupted the
    /// wait), so the caller re-checks its deadline.
    fn recv_within(&self, buf: &mut [u8], wait: Duration) -> io::Result<Option<usize>> {
        let mut pfd = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // Round up so a sub-millisecond remainder still waits rather than spinning.
        let ms = wait
            .as_micros()
            .div_ceil(1000)
            .min(libc::c_int::MAX as u128) as libc::c_int;
        // SAFETY: pfd is one valid pollfd that outlives the call.
        let rc = unsafe { libc::poll(&raw mut pfd, 1, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(None)
            } else {
                Err(e)
            };
        }
        if rc == 0 {
            return Ok(None);
        }
        // SAFETY: buf is valid for writes of its length; no address is asked for.
        let n = unsafe {
            libc::recv(
                self.0.as_raw_fd(),
                buf.as_mut_ptr().cast::<libc::c_void>(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        Ok(usize::try_from(n).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe_ids() -> SynProbe {
        SynProbe {
            src: SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 50_000),
            dst: SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 7), 443),
            seq: 0x0102_0304,
            tsval: 0xa1b2_c3d4,
        }
    }

    /// Reference checksum written independently of `tcp_checksum`: builds the pseudo-header
    /// as bytes and folds 16-bit words with u32 arithmetic.
    fn reference_checksum(src: Ipv4Addr, dst: Ipv4Addr, seg: &[u8]) -> u16 {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&src.octets());
        bytes.extend_from_slice(&dst.octets());
        bytes.push(0);
        bytes.push(6);
        bytes.extend_from_slice(&(seg.len() as u16).to_be_bytes());
        bytes.extend_from_slice(seg);
        if bytes.len() % 2 == 1 {
            bytes.push(0);
        }
        let mut acc: u32 = 0;
        for i in (0..bytes.len()).step_by(2) {
            acc += (u32::from(bytes[i]) << 8) | u32::from(bytes[i + 1]);
            acc = (acc & 0xffff) + (acc >> 16);
        }
        !(acc as u16)
    }

    /// An IPv4 packet (20-byte header) around `tcp`.
    fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, df: bool, tcp: &[u8]) -> Vec<u8> {
        let total = (20 + tcp.len()) as u16;
        let mut p = vec![0x45, 0];
        p.extend_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&[0x12, 0x34]);
        p.extend_from_slice(&(if df { 0x4000u16 } else { 0 }).to_be_bytes());
        p.extend_from_slice(&[ttl, 6, 0, 0]);
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&dst.octets());
        p.extend_from_slice(tcp);
        p
    }

    /// A TCP segment from `sport` to `dport` with the given flags, ack and options.
    fn tcp(sport: u16, dport: u16, flags: u8, ack: u32, window: u16, opts: &[u8]) -> Vec<u8> {
        assert_eq!(opts.len() % 4, 0);
        let mut t = Vec::new();
        t.extend_from_slice(&sport.to_be_bytes());
        t.extend_from_slice(&dport.to_be_bytes());
        t.extend_from_slice(&0x7777_0000u32.to_be_bytes());
        t.extend_from_slice(&ack.to_be_bytes());
        t.push((((20 + opts.len()) / 4) as u8) << 4);
        t.push(flags);
        t.extend_from_slice(&window.to_be_bytes());
        t.extend_from_slice(&[0, 0, 0, 0]);
        t.extend_from_slice(opts);
        t
    }

    /// Linux's SYN-ACK options: MSS 1460, SACK-permitted, timestamps, NOP, window scale 7.
    const LINUX_SYNACK_OPTS: [u8; 20] = [
        2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 9, 0xa1, 0xb2, 0xc3, 0xd4, 1, 3, 3, 7,
    ];

    fn synack_from_target(p: &SynProbe, opts: &[u8]) -> Vec<u8> {
        let t = tcp(
            p.dst.port(),
            p.src.port(),
            FLAG_SYN | FLAG_ACK,
            p.seq.wrapping_add(1),
            65160,
            opts,
        );
        ipv4(*p.dst.ip(), *p.src.ip(), 52, true, &t)
    }

    #[test]
    fn syn_segment_bytes() {
        let p = probe_ids();
        let s = p.syn_segment();
        assert_eq!(&s[0..2], &50_000u16.to_be_bytes(), "source port");
        assert_eq!(&s[2..4], &443u16.to_be_bytes(), "destination port");
        assert_eq!(&s[4..8], &[1, 2, 3, 4], "sequence number");
        assert_eq!(&s[8..12], &[0, 0, 0, 0], "ack number");
        assert_eq!(s[12], 0xa0, "data offset 10 words, reserved 0");
        assert_eq!(s[13], 0x02, "SYN only");
        assert_eq!(&s[14..16], &64240u16.to_be_bytes(), "window");
        assert_eq!(&s[18..20], &[0, 0], "urgent pointer");
        assert_eq!(
            &s[20..],
            &[
                2, 4, 0x05, 0xb4, // MSS 1460
                4, 2, // SACK permitted
                8, 10, 0xa1, 0xb2, 0xc3, 0xd4, 0, 0, 0, 0, // timestamps
                1, // NOP
                3, 3, 7, // window scale 7
            ],
            "options in Linux order"
        );
        let mut zeroed = s;
        zeroed[16] = 0;
        zeroed[17] = 0;
        let want = reference_checksum(*p.src.ip(), *p.dst.ip(), &zeroed);
        assert_eq!(u16::from_be_bytes([s[16], s[17]]), want, "checksum");
        // And the receiver's check: summing the segment with its checksum gives zero.
        assert_eq!(reference_checksum(*p.src.ip(), *p.dst.ip(), &s), 0);
    }

    #[test]
    fn our_options_parse_as_linux_order() {
        let s = probe_ids().syn_segment();
        let o = parse_options(&s[20..]);
        assert_eq!(o.order, "M,S,T,N,W");
        assert_eq!(
            (o.mss, o.wscale, o.sack, o.timestamps),
            (Some(1460), Some(7), true, true)
        );
    }

    #[test]
    fn rst_segment_bytes() {
        let p = probe_ids();
        let s = p.rst_segment();
        assert_eq!(&s[0..4], &[0xc3, 0x50, 0x01, 0xbb], "ports");
        assert_eq!(&s[4..8], &[1, 2, 3, 5], "seq = ISN + 1");
        assert_eq!(&s[8..12], &[0, 0, 0, 0], "no ack");
        assert_eq!(s[12], 0x50);
        assert_eq!(s[13], 0x04, "RST only");
        assert_eq!(reference_checksum(*p.src.ip(), *p.dst.ip(), &s), 0);
    }

    #[test]
    fn checksum_of_a_known_segment() {
        // Odd length exercises the zero pad; the value was worked by hand:
        // pseudo = 0x0a00+0x0001+0x0a00+0x0002+0x0006+0x0003 = 0x140c, data 0x0102+0x0300, total 0x180e.
        let got = tcp_checksum(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
            &[1, 2, 3],
        );
        assert_eq!(got, !0x180e_u16);
    }

    #[test]
    fn parses_a_linux_synack() {
        let p = probe_ids();
        let pkt = synack_from_target(&p, &LINUX_SYNACK_OPTS);
        let Reply::SynAck(fp) = p.classify(&pkt) else {
            panic!("not recognised as the SYN-ACK");
        };
        assert_eq!(fp.ttl, 52);
        assert_eq!(fp.window, 65160);
        assert!(fp.df);
        assert_eq!(fp.mss, Some(1460));
        assert_eq!(fp.wscale, Some(7));
        assert!(fp.sack);
        assert!(fp.timestamps);
        assert_eq!(fp.options_order, "M,S,T,N,W");
        assert_eq!(fp.raw, "52:65160:1:1460:7:1:1:M,S,T,N,W");
    }

    #[test]
    fn parses_a_windows_style_synack_without_timestamps() {
        let p = probe_ids();
        // MSS, NOP, WS 8, NOP, NOP, SACK-permitted; no DF this time.
        let opts = [2, 4, 0x05, 0xb4, 1, 3, 3, 8, 1, 1, 4, 2];
        let t = tcp(443, 50_000, FLAG_SYN | FLAG_ACK, 0x0102_0305, 8192, &opts);
        let pkt = ipv4(*p.dst.ip(), *p.src.ip(), 117, false, &t);
        let Reply::SynAck(fp) = p.classify(&pkt) else {
            panic!("not recognised");
        };
        assert_eq!(fp.raw, "117:8192:0:1460:8:1:0:M,N,W,N,N,S");
        assert!(!fp.timestamps && !fp.df);
    }

    #[test]
    fn absent_options_and_eol() {
        let p = probe_ids();
        let Reply::SynAck(bare) = p.classify(&synack_from_target(&p, &[])) else {
            panic!("not recognised");
        };
        assert_eq!((bare.mss, bare.wscale), (None, None));
        assert_eq!(bare.raw, "52:65160:1:0:-1:0:0:");
        // MSS then EOL then padding: parsing stops at EOL.
        let Reply::SynAck(eol) = p.classify(&synack_from_target(&p, &[2, 4, 2, 0, 0, 3, 3, 9]))
        else {
            panic!("not recognised");
        };
        assert_eq!(eol.options_order, "M,E");
        assert_eq!((eol.mss, eol.wscale), (Some(512), None));
    }

    #[test]
    fn odd_options() {
        // Unknown kind 30 (MPTCP), an MSS with a wrong length, then a truncated option.
        let o = parse_options(&[30, 4, 0, 0, 2, 3, 9, 3]);
        assert_eq!(o.order, "?,?,?");
        assert_eq!(o.mss, None);
        // Length 0 would loop forever if trusted.
        assert_eq!(parse_options(&[3, 0, 0, 0]).order, "?");
        assert_eq!(parse_options(&[28, 4, 0, 1, 14, 3, 1, 1]).order, "U,A,N");
    }

    #[test]
    fn recognises_rst() {
        let p = probe_ids();
        let t = tcp(443, 50_000, FLAG_RST | FLAG_ACK, 0x0102_0305, 0, &[]);
        let pkt = ipv4(*p.dst.ip(), *p.src.ip(), 64, true, &t);
        assert_eq!(p.classify(&pkt), Reply::Reset);
        // A RST that does not acknowledge our SYN is not an answer to it.
        let t = tcp(443, 50_000, FLAG_RST, 0, 0, &[]);
        let pkt = ipv4(*p.dst.ip(), *p.src.ip(), 64, true, &t);
        assert_eq!(p.classify(&pkt), Reply::Unrelated);
    }

    #[test]
    fn rejects_non_matching_packets() {
        let p = probe_ids();
        let good = synack_from_target(&p, &LINUX_SYNACK_OPTS);
        assert!(matches!(p.classify(&good), Reply::SynAck(_)));

        let mut wrong_sport = good.clone();
        wrong_sport[20..22].copy_from_slice(&444u16.to_be_bytes());
        assert_eq!(
            p.classify(&wrong_sport),
            Reply::Unrelated,
            "wrong source port"
        );

        let mut wrong_dport = good.clone();
        wrong_dport[22..24].copy_from_slice(&50_001u16.to_be_bytes());
        assert_eq!(
            p.classify(&wrong_dport),
            Reply::Unrelated,
            "wrong destination port"
        );

        let mut wrong_ack = good.clone();
        wrong_ack[28..32].copy_from_slice(&0x0102_0304u32.to_be_bytes());
        assert_eq!(
            p.classify(&wrong_ack),
            Reply::Unrelated,
            "ack = ISN, not ISN + 1"
        );

        let mut wrong_src = good.clone();
        wrong_src[12..16].copy_from_slice(&[198, 51, 100, 8]);
        assert_eq!(
            p.classify(&wrong_src),
            Reply::Unrelated,
            "wrong source address"
        );

        let mut wrong_dst = good.clone();
        wrong_dst[16..20].copy_from_slice(&[192, 0, 2, 2]);
        assert_eq!(
            p.classify(&wrong_dst),
            Reply::Unrelated,
            "wrong destination address"
        );

        let mut no_ack_flag = good.clone();
        no_ack_flag[33] = FLAG_SYN;
        assert_eq!(
            p.classify(&no_ack_flag),
            Reply::Unrelated,
            "SYN without ACK"
        );

        let mut plain_ack = good.clone();
        plain_ack[33] = FLAG_ACK;
        assert_eq!(p.classify(&plain_ack), Reply::Unrelated, "ACK without SYN");

        let mut udp = good.clone();
        udp[9] = 17;
        assert_eq!(p.classify(&udp), Reply::Unrelated, "not TCP");

        let mut fragment = good.clone();
        fragment[6] |= 0x20;
        assert_eq!(p.classify(&fragment), Reply::Unrelated, "fragment");

        assert_eq!(
            p.classify(&good[..good.len() - 1]),
            Reply::Unrelated,
            "truncated"
        );
    }

    #[test]
    fn rejects_our_own_syn_read_back_on_loopback() {
        // On loopback both ends share the address: only ports, flags and ack tell them apart.
        let lo = Ipv4Addr::LOCALHOST;
        let p = SynProbe {
            src: SocketAddrV4::new(lo, 50_000),
            dst: SocketAddrV4::new(lo, 8080),
            seq: 99,
            tsval: 1,
        };
        let ours = ipv4(lo, lo, 64, true, &p.syn_segment());
        assert_eq!(p.classify(&ours), Reply::Unrelated);
        let our_rst = ipv4(lo, lo, 64, true, &p.rst_segment());
        assert_eq!(p.classify(&our_rst), Reply::Unrelated);
    }

    #[test]
    fn trailing_link_padding_is_ignored() {
        let p = probe_ids();
        let mut pkt = synack_from_target(&p, &LINUX_SYNACK_OPTS);
        pkt.extend_from_slice(&[0xee; 6]);
        let Reply::SynAck(fp) = p.classify(&pkt) else {
            panic!("not recognised");
        };
        assert_eq!(fp.options_order, "M,S,T,N,W");
    }

    proptest::proptest! {
        /// Arbitrary bytes: mostly rejected at the IPv4 header.
        #[test]
        fn classify_never_panics_on_random_bytes(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..128),
        ) {
            let _ = probe_ids().classify(&bytes);
        }

        /// A valid SYN-ACK with random bytes overwritten (lengths, offsets, options) and a
        /// random truncation: reaches the TCP and option parsers with hostile values.
        #[test]
        fn classify_never_panics_on_mangled_synacks(
            edits in proptest::collection::vec((0usize..40, proptest::prelude::any::<u8>()), 0..8),
            opts in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..10),
            cut in 0usize..80,
        ) {
            let p = probe_ids();
            let mut o = opts;
            o.resize(o.len().div_ceil(4) * 4, 0);
            let mut pkt = synack_from_target(&p, &o);
            for (at, v) in edits {
                if let Some(b) = pkt.get_mut(at) {
                    *b = v;
                }
            }
            pkt.truncate(pkt.len().saturating_sub(cut % 8));
            let _ = p.classify(&pkt);
            let _ = p.classify(&pkt[..cut.min(pkt.len())]);
        }

        #[test]
        fn options_never_panic(area in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..60)) {
            let o = parse_options(&area);
            // Every letter came from the documented set.
            for code in o.order.split(',').filter(|c| !c.is_empty()) {
                proptest::prop_assert!(["E", "N", "M", "W", "S", "T", "A", "U", "?"].contains(&code));
            }
        }
    }

    #[test]
    fn raw_and_hash_of_a_known_fingerprint() {
        let fp = TcpFingerprint::new(
            64,
            65483,
            true,
            Some(65495),
            Some(7),
            true,
            true,
            "M,S,T,N,W".to_owned(),
        );
        assert_eq!(fp.raw, "64:65483:1:65495:7:1:1:M,S,T,N,W");
        // printf '%s' '64:65483:1:65495:7:1:1:M,S,T,N,W' | sha256sum | cut -c1-32
        assert_eq!(fp.hash, "3ecb6ac9ed834dcb5db9d69642f9b926");
        assert_eq!(fp.hash.len(), 32);
    }
}

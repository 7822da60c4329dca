//! The ceiling for `bench/syslog.sh`: a receiver that only receives. It binds a unix datagram
//! socket or a UDP address, takes datagrams with `recvmmsg` (64 per call) and counts them; it
//! parses nothing and writes nothing. Whatever rate the flood reaches into it is the most any
//! receiver can show on this machine with that sender, since the sender and the kernel's
//! socket work need the same cores.
//!
//! Every 20 ms in which the count changed, it writes `received=N` to stdout (the benchmark
//! polls the last line); it runs until killed.
//!
//! `cargo run --release -p decnet-dataplane --example syslog_sink -- unix /tmp/sink.sock`
//! `… -- udp 127.0.0.1:25516`

#[path = "common/syslog_bench.rs"]
mod syslog_bench;

use std::{
    io::Write,
    net::UdpSocket,
    os::fd::{AsRawFd, RawFd},
    os::unix::net::UnixDatagram,
    process::ExitCode,
    time::{Duration, Instant},
};
use syslog_bench::mmsg_headers;

/// Datagrams per `recvmmsg`.
const BATCH: usize = 64;
/// Room per datagram: the flood's are 400 bytes; anything longer is truncated, still counted.
const DATAGRAM: usize = 2048;
const REPORT_EVERY: Duration = Duration::from_millis(20);

/// Receive and count until an unrecoverable error; reports on stdout.
fn drain(fd: RawFd) -> std::io::Result<()> {
    let mut buffers = vec![[0u8; DATAGRAM]; BATCH];
    let mut iovecs: Vec<libc::iovec> = buffers
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: DATAGRAM,
        })
        .collect();
    let mut headers = mmsg_headers(&mut iovecs);
    let (mut received, mut reported) = (0u64, 0u64);
    let mut last_report = Instant::now();
    let mut out = std::io::stdout().lock();
    // A timeout, so the count is reported even when the flood stops mid-interval.
    let timeout = libc::timeval {
        tv_sec: 0,
        tv_usec: 20_000,
    };
    // SAFETY: setsockopt with a live timeval of the size given.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            std::ptr::from_ref(&timeout).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    loop {
        // SAFETY: the headers point at `iovecs` and `buffers`, which outlive the call.
        let rc = unsafe {
            libc::recvmmsg(
                fd,
                headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if rc > 0 {
            received += u64::from(rc.unsigned_abs());
        } else if rc < 0 {
            let e = std::io::Error::last_os_error();
            if !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::Interrupted
            ) {
                return Err(e);
            }
        }
        if received != reported && last_report.elapsed() >= REPORT_EVERY {
            writeln!(out, "received={received}")?;
            out.flush()?;
            reported = received;
            last_report = Instant::now();
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(kind), Some(address)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: syslog_sink unix PATH | udp ADDRESS");
        return ExitCode::from(2);
    };
    let result = match kind.as_str() {
        "unix" => UnixDatagram::bind(address).and_then(|s| drain(s.as_raw_fd())),
        "udp" => UdpSocket::bind(address).and_then(|s| {
            let size: libc::c_int = 16 << 20;
            // SAFETY: setsockopt with a live c_int of the size given. A refusal only means a
            // smaller buffer (more kernel drops, which the benchmark counts).
            unsafe {
                libc::setsockopt(
                    s.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUFFORCE,
                    std::ptr::from_ref(&size).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
            drain(s.as_raw_fd())
        }),
        other => {
            eprintln!("transport must be unix or udp, not {other:?}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{kind} {address}: {e}");
            ExitCode::from(1)
        }
    }
}

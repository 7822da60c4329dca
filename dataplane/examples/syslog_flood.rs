//! Load generator for `bench/syslog.sh`: sends COUNT RFC 5424 messages of about 400 bytes to a
//! UDP address or a unix datagram socket as fast as the socket takes them, then prints
//! `sent=N seconds=S rate=R`.
//!
//! `udp-batch` sends over UDP with `sendmmsg`, 32 datagrams per system call, so one sender
//! thread offers several times what `udp` (one `send` per datagram) can: a receiver's UDP
//! capacity is then measured by what it keeps, the rest being counted by the kernel as
//! receive-buffer drops.
//!
//! `cargo run --release -p decnet-dataplane --example syslog_flood -- udp 127.0.0.1:5514 1000000`
//! `… -- udp-batch 127.0.0.1:5514 1000000`
//! `… -- unix /var/lib/decnet/intake.sock 1000000`

#[path = "common/syslog_bench.rs"]
mod syslog_bench;

use syslog_bench::{message, mmsg_headers};

use std::{
    net::UdpSocket,
    os::fd::AsRawFd,
    os::unix::net::UnixDatagram,
    process::ExitCode,
    time::{Duration, Instant},
};

/// Datagrams per `sendmmsg`.
const BATCH: usize = 32;

/// Send `count` messages over the connected socket `s`, [`BATCH`] per system call.
fn send_batches(s: &UdpSocket, count: u64, sent: &mut u64) -> std::io::Result<()> {
    let mut msgs: Vec<Vec<u8>> = Vec::with_capacity(BATCH);
    while *sent < count {
        let n = (count - *sent).min(BATCH as u64);
        msgs.clear();
        msgs.extend((*sent..*sent + n).map(message));
        let mut iovecs: Vec<libc::iovec> = msgs
            .iter_mut()
            .map(|m| libc::iovec {
                iov_base: m.as_mut_ptr().cast(),
                iov_len: m.len(),
            })
            .collect();
        let mut headers = mmsg_headers(&mut iovecs);
        let mut done = 0;
        while done < headers.len() {
            // SAFETY: the headers point at `iovecs` and `msgs`, which outlive the call.
            let rc = unsafe {
                libc::sendmmsg(
                    s.as_raw_fd(),
                    headers[done..].as_mut_ptr(),
                    (headers.len() - done) as libc::c_uint,
                    0,
                )
            };
            if rc < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::ConnectionRefused {
                    return Err(e);
                }
                // ENOBUFS and the like: the local queue is full for a moment; retry.
                continue;
            }
            done += usize::try_from(rc).unwrap_or(0);
        }
        *sent += n;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(kind), Some(target), Some(count)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: syslog_flood udp|udp-batch|unix TARGET COUNT");
        return ExitCode::from(2);
    };
    let Ok(count) = count.parse::<u64>() else {
        eprintln!("COUNT must be a number, not {count:?}");
        return ExitCode::from(2);
    };
    let start = Instant::now();
    let mut sent = 0;
    let result = match kind.as_str() {
        "udp" => UdpSocket::bind("127.0.0.1:0").and_then(|s| {
            s.connect(target)?;
            while sent < count {
                if s.send(&message(sent)).is_ok() {
                    sent += 1;
                }
            }
            Ok(())
        }),
        "udp-batch" => UdpSocket::bind("127.0.0.1:0").and_then(|s| {
            s.connect(target)?;
            send_batches(&s, count, &mut sent)
        }),
        "unix" => UnixDatagram::unbound().and_then(|s| {
            s.connect(target)?;
            while sent < count {
                match s.send(&message(sent)) {
                    Ok(_) => sent += 1,
                    // Receiver's queue full: the kernel applies backpressure, wait a moment.
                    Err(_) => std::thread::sleep(Duration::from_micros(50)),
                }
            }
            Ok(())
        }),
        other => {
            eprintln!("transport must be udp, udp-batch or unix, not {other:?}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = result {
        eprintln!("{kind} {target}: {e}");
        return ExitCode::from(1);
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "sent={sent} seconds={secs:.3} rate={:.0}",
        sent as f64 / secs
    );
    ExitCode::SUCCESS
}

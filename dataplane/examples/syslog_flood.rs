//! Load generator for `bench/syslog.sh`: sends COUNT RFC 5424 messages of about 400 bytes to a
//! UDP address or a unix datagram socket as fast as the socket takes them, then prints
//! `sent=N seconds=S rate=R`.
//!
//! `cargo run --release -p decnet-dataplane --example syslog_flood -- udp 127.0.0.1:5514 1000000`
//! `… -- unix /var/lib/decnet/intake.sock 1000000`

use std::{
    net::UdpSocket,
    os::unix::net::UnixDatagram,
    process::ExitCode,
    time::{Duration, Instant},
};

fn message(n: u64) -> Vec<u8> {
    let mut m = format!(
        "<132>1 2026-11-27T05:00:00.000000Z web01 ssh - auth_attempt [relay@55555 src_ip=\"198.51.100.{}\" src_port=\"{}\" username=\"root\" password=\"pw{n}\" n=\"{n}\"] ",
        n % 250,
        1024 + n % 60000
    )
    .into_bytes();
    m.resize(400, b'x');
    m
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(kind), Some(target), Some(count)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: syslog_flood udp|unix TARGET COUNT");
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
            eprintln!("transport must be udp or unix, not {other:?}");
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

//! `decky serve <service>`: run one emulated service, configured from the environment.
//! `decky hold`: do nothing until SIGTERM/SIGINT; a host's base container runs it to own the
//! network namespace (IP, MAC, sysctls) its service containers join.
//!
//! Environment: `NODE_NAME` (host name events carry), `EVENT_SINK` (`stdout`, `unix:/path`
//! or `udp:HOST:PORT`; default stdout), `LOG_TARGET` (an extra `HOST:PORT` syslog collector),
//! `LISTEN_ADDR` (default `0.0.0.0`), `PORTS` (comma list overriding the service's ports),
//! `QUARANTINE_DIR` (where captured uploads and messages are kept; unset: hashed only),
//! plus the service's persona variables. Output an attacker could ever see says nothing about
//! what this program is.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc};

use decnet_services::{
    emitter::{Emitter, Sink},
    persona::Persona,
    protocols,
    runtime::{Limits, ServiceContext, serve_tcp},
};
use tokio::{net::TcpListener, sync::watch};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: decky serve <service> | decky hold";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let slug = match args.as_slice() {
        [verb, slug] if verb == "serve" => slug.clone(),
        [verb] if verb == "hold" => return hold(),
        [flag] if flag == "--help" || flag == "-h" => {
            println!("{USAGE}\nservices: {}", protocols::AVAILABLE.join(", "));
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SERVICE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(serve(&slug)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::from(1)
        }
    }
}

async fn serve(slug: &str) -> Result<(), String> {
    let pool = decnet_services::memory::size_process_pool()?;
    tracing::info!(mib = pool >> 20, "memory pool for uploads and messages");
    let persona = Persona::from_env();
    let protocol = protocols::lookup(slug, &persona).map_err(|e| e.to_string())?;
    let mut sinks = vec![
        persona
            .get_or("EVENT_SINK", "stdout")
            .parse::<Sink>()
            .map_err(|e| e.to_string())?,
    ];
    if let Some(target) = persona.get("LOG_TARGET") {
        sinks.push(
            format!("udp:{target}")
                .parse::<Sink>()
                .map_err(|e| e.to_string())?,
        );
    }
    let (emitter, _writer) = Emitter::spawn(sinks);
    let ctx = Arc::new(
        ServiceContext::new(persona.node_name(), slug, emitter, Limits::default())
            .with_quarantine(persona.get("QUARANTINE_DIR").map(PathBuf::from)),
    );
    let ip = persona.get_or("LISTEN_ADDR", "0.0.0.0");
    let ports: Vec<u16> = match persona.get("PORTS") {
        Some(list) => list
            .split(',')
            .map(|p| {
                p.trim()
                    .parse::<u16>()
                    .map_err(|_| format!("invalid port {p:?} in PORTS"))
            })
            .collect::<Result<_, _>>()?,
        None => protocol.default_ports().to_vec(),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    for port in ports {
        let addr: SocketAddr = format!("{ip}:{port}")
            .parse()
            .map_err(|_| format!("invalid listen address {ip:?}"))?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        tracing::info!(%addr, service = slug, "listening");
        tasks.push(tokio::spawn(serve_tcp(
            listener,
            Arc::clone(&protocol),
            Arc::clone(&ctx),
            stop_rx.clone(),
        )));
    }
    wait_for_signal().await;
    let _ = stop_tx.send(true);
    for task in tasks {
        let _ = task.await;
    }
    Ok(())
}

/// Wait for a stop signal on a single thread: the base container must cost next to nothing.
fn hold() -> ExitCode {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => {
            rt.block_on(wait_for_signal());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot start runtime: {e}");
            ExitCode::from(1)
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

//! The HTTP server threads: each OS thread runs a single-threaded tokio runtime serving the
//! connections handed to it; the first thread also accepts, and hands the connections out in
//! turn.
//!
//! Why not the process's multi-threaded runtime: with a thousand busy keep-alive connections
//! its per-worker queue (256 tasks, overflow to a shared queue polled less often) and its LIFO
//! slot serve some connections many times before others get a turn. Measured with `wrk` at
//! 1,000 connections on 2 cores, the p99 latency was 3× the median on that runtime and 1.4×
//! on a single-threaded one (strict FIFO). One single-threaded runtime per core keeps that
//! fairness and still uses every core.
//!
//! Why hand connections out instead of every thread accepting from the shared socket: the
//! accept race is won by whichever thread is idle at that instant, so a burst of connections
//! splits unevenly — 640 and 366 of wrk's 1,000 in one measured run. Both threads get the same
//! CPU, so the requests of the busier one waited 1.75× longer, and that was the p99. In turn,
//! the counts differ by at most one.

use std::{
    convert::Infallible,
    io,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    thread::JoinHandle,
    time::Duration,
};

use axum::{
    Extension, Router,
    extract::ConnectInfo,
    middleware::AddExtension,
    serve::{IncomingStream, Listener},
};
use tokio::sync::{mpsc, watch};
use tower::Layer as _;

use crate::{AppState, router};

/// A connection on its way to the thread that serves it.
type Handed = (std::net::TcpStream, SocketAddr);

/// The running server threads.
#[derive(Debug)]
pub struct HttpServer {
    threads: Vec<JoinHandle<io::Result<()>>>,
    stop: watch::Sender<bool>,
    handed: Arc<[AtomicU64]>,
}

impl HttpServer {
    /// Serve `router(state)` on `listener` from `threads` threads (at least one).
    ///
    /// The threads' runtimes only run the HTTP connections; the repository, the live feeder
    /// and everything else keep running where they were started.
    pub fn start(
        listener: std::net::TcpListener,
        state: &AppState,
        threads: usize,
    ) -> io::Result<Self> {
        listener.set_nonblocking(true)?;
        let local = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..threads.max(1))
            .map(|_| mpsc::unbounded_channel::<Handed>())
            .unzip();
        let handed: Arc<[AtomicU64]> = senders.iter().map(|_| AtomicU64::new(0)).collect();
        let mut acceptor = Some(Acceptor {
            listener,
            workers: senders,
            handed: Arc::clone(&handed),
        });
        let mut handles = Vec::new();
        for (index, incoming) in receivers.into_iter().enumerate() {
            let state = state.clone();
            let stopped = stopped.clone();
            let acceptor = acceptor.take();
            let handle = std::thread::Builder::new()
                .name(format!("decnet-http-{index}"))
                .spawn(move || {
                    serve_thread(Handoff { incoming, local }, acceptor, state, stopped)
                })?;
            handles.push(handle);
        }
        Ok(Self {
            threads: handles,
            stop,
            handed,
        })
    }

    /// How many connections each thread has been given so far.
    pub fn connections_per_thread(&self) -> Vec<u64> {
        self.handed
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .collect()
    }

    /// True when a server thread has ended on its own (it only does on an error).
    pub fn is_finished(&self) -> bool {
        self.threads.iter().any(JoinHandle::is_finished)
    }

    /// Stop accepting, give open requests up to [`GRACE`] to finish (open live streams never
    /// end by themselves), then close what is left. Returns the first thread's error.
    pub fn stop(self) -> io::Result<()> {
        self.stop.send_replace(true);
        let mut result = Ok(());
        for handle in self.threads {
            let outcome = match handle.join() {
                Ok(r) => r,
                Err(_) => Err(io::Error::other("an HTTP server thread panicked")),
            };
            if result.is_ok() {
                result = outcome;
            }
        }
        result
    }
}

/// How long a stopping thread lets open requests finish before it closes them.
pub const GRACE: Duration = Duration::from_secs(3);

/// The listening socket and where its connections go.
struct Acceptor {
    listener: std::net::TcpListener,
    workers: Vec<mpsc::UnboundedSender<Handed>>,
    handed: Arc<[AtomicU64]>,
}

impl Acceptor {
    /// Accept until stopped, giving each connection to the next thread in turn. Returning
    /// drops the socket, so a stopped server refuses new connections at once.
    async fn run(self, mut stopped: watch::Receiver<bool>) -> io::Result<()> {
        let mut listener = tokio::net::TcpListener::from_std(self.listener)?;
        let mut next = 0;
        loop {
            let (stream, peer) = tokio::select! {
                // axum's accept logs and waits out errors such as running out of descriptors.
                accepted = Listener::accept(&mut listener) => accepted,
                _ = stopped.wait_for(|stop| *stop) => return Ok(()),
            };
            // Leaves this thread's reactor; the serving thread registers it with its own.
            let stream = match stream.into_std() {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, %peer, "dropping a connection that could not be handed over");
                    continue;
                }
            };
            let Some(worker) = self.workers.get(next) else {
                return Ok(());
            };
            if worker.send((stream, peer)).is_err() {
                // That thread has ended: the server is going down.
                return Ok(());
            }
            if let Some(count) = self.handed.get(next) {
                count.fetch_add(1, Ordering::Relaxed);
            }
            next = (next + 1) % self.workers.len();
        }
    }
}

/// The connections handed to one thread, as axum's listener.
struct Handoff {
    incoming: mpsc::UnboundedReceiver<Handed>,
    local: SocketAddr,
}

impl Listener for Handoff {
    type Io = tokio::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Some((stream, peer)) = self.incoming.recv().await else {
                // The acceptor has stopped; graceful shutdown ends this listener's server.
                return std::future::pending().await;
            };
            match tokio::net::TcpStream::from_std(stream) {
                Ok(stream) => return (stream, peer),
                Err(e) => {
                    tracing::warn!(error = %e, %peer, "dropping a connection this thread could not register");
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// Gives every connection's requests its peer address (`ConnectInfo`), as
/// `into_make_service_with_connect_info` does for axum's own listener.
#[derive(Clone)]
struct WithPeer(Router);

impl tower::Service<IncomingStream<'_, Handoff>> for WithPeer {
    type Response = AddExtension<Router, ConnectInfo<SocketAddr>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, incoming: IncomingStream<'_, Handoff>) -> Self::Future {
        let peer = ConnectInfo(*incoming.remote_addr());
        std::future::ready(Ok(Extension(peer).layer(self.0.clone())))
    }
}

fn serve_thread(
    connections: Handoff,
    acceptor: Option<Acceptor>,
    state: AppState,
    mut stopped: watch::Receiver<bool>,
) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let accepting = acceptor.map(|a| tokio::spawn(a.run(stopped.clone())));
        let mut graceful = stopped.clone();
        let serve = axum::serve(connections, WithPeer(router(state)))
            .with_graceful_shutdown(async move {
                let _ = graceful.wait_for(|stop| *stop).await;
            })
            .into_future();
        let served = tokio::select! {
            result = serve => result,
            () = async {
                let _ = stopped.wait_for(|stop| *stop).await;
                tokio::time::sleep(GRACE).await;
            } => Ok(()),
        };
        let accepted = match accepting {
            Some(task) => task
                .await
                .unwrap_or_else(|_| Err(io::Error::other("the HTTP acceptor panicked"))),
            None => Ok(()),
        };
        served.and(accepted)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::{
        io::{Read as _, Write as _},
        net::TcpStream,
        time::Instant,
    };

    use super::*;

    fn get_openapi(addr: SocketAddr) -> String {
        let mut conn = TcpStream::connect(addr).unwrap();
        conn.write_all(
            b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        answer
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn threads_answer_then_stop_within_the_grace_period_despite_a_stuck_request() {
        let setup = crate::tests::setup().await;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = HttpServer::start(listener, &setup.state, 3).unwrap();
        let (stopped_in, refused) = tokio::task::spawn_blocking(move || {
            for _ in 0..12 {
                let answer = get_openapi(addr);
                assert!(answer.starts_with("HTTP/1.1 200"), "{answer:.200}");
                assert!(answer.contains("\"openapi\""));
            }
            assert!(!server.is_finished());
            // A request whose body never arrives: graceful shutdown alone would wait forever.
            let mut stuck = TcpStream::connect(addr).unwrap();
            stuck
                .write_all(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user")
                .unwrap();
            std::thread::sleep(Duration::from_millis(100));
            let started = Instant::now();
            server.stop().unwrap();
            let stopped_in = started.elapsed();
            (stopped_in, TcpStream::connect(addr).is_err())
        })
        .await
        .unwrap();
        assert!(
            stopped_in >= GRACE - Duration::from_millis(200)
                && stopped_in < GRACE + Duration::from_secs(2),
            "stopped in {stopped_in:?}"
        );
        assert!(refused, "the port still accepts connections after stop");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connections_are_shared_out_evenly_and_keep_their_peer_address() {
        let setup = crate::tests::setup().await;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = HttpServer::start(listener, &setup.state, 3).unwrap();
        let per_thread = tokio::task::spawn_blocking(move || {
            // Held open together, as a burst of keep-alive clients would.
            let open: Vec<TcpStream> = (0..31).map(|_| TcpStream::connect(addr).unwrap()).collect();
            let (mut refused, mut limited) = (0, 0);
            for mut conn in open {
                // A wrong password: the login route limits by the peer's address, so after a
                // few refusals it answers 429 (without the address it could not answer at all).
                let body = r#"{"username":"nobody","password":"wrong-password"}"#;
                write!(
                    conn,
                    "POST /api/v1/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .unwrap();
                let mut answer = String::new();
                conn.read_to_string(&mut answer).unwrap();
                if answer.starts_with("HTTP/1.1 401") {
                    refused += 1;
                } else {
                    assert!(answer.starts_with("HTTP/1.1 429"), "{answer:.200}");
                    limited += 1;
                }
            }
            assert!(refused > 0 && limited > 0, "{refused} refused, {limited} limited");
            let per_thread = server.connections_per_thread();
            server.stop().unwrap();
            per_thread
        })
        .await
        .unwrap();
        assert_eq!(per_thread, vec![11, 10, 10]);
    }
}

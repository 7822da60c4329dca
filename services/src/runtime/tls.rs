//! TLS in front of a session: the handshake, with the client's hello recorded (scanners and
//! exploit kits are told apart by what they offer) and failures counted as events.

use std::{sync::Arc, time::Duration};

use decnet_store::Severity;
use tokio::net::TcpStream;
use tokio_rustls::{LazyConfigAcceptor, server::TlsStream};

use super::{ServiceContext, service_event};
use crate::session::ConnInfo;

/// A client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Complete the server handshake; `None` (after an event) when it fails or times out.
pub(super) async fn handshake(
    stream: TcpStream,
    config: Arc<rustls::ServerConfig>,
    conn: &ConnInfo,
    ctx: &ServiceContext,
) -> Option<TlsStream<TcpStream>> {
    let accept = async {
        let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream)
            .await
            .map_err(|e| e.to_string())?;
        let hello = start.client_hello();
        let sni = hello.server_name().unwrap_or_default().to_owned();
        let alpn: Vec<String> = hello
            .alpn()
            .map(|protocols| {
                protocols
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let suites = hello.cipher_suites().len().to_string();
        let alpn = alpn.join(",");
        ctx.emit(
            conn,
            &[service_event(
                "tls_client_hello",
                Severity::Info,
                &[("sni", &sni), ("alpn", &alpn), ("cipher_suites", &suites)],
            )],
        );
        start.into_stream(config).await.map_err(|e| e.to_string())
    };
    let error = match tokio::time::timeout(HANDSHAKE_TIMEOUT, accept).await {
        Ok(Ok(stream)) => return Some(stream),
        Ok(Err(e)) => e,
        Err(_) => "handshake timed out".to_owned(),
    };
    ctx.emit(
        conn,
        &[service_event(
            "tls_error",
            Severity::Notice,
            &[("error", &error)],
        )],
    );
    None
}

//! Syslog over TLS (RFC 5425) for remote sensors: the operator's certificate or one generated
//! at first start and kept in the data directory's `secrets/`, optional client-certificate
//! authentication against a CA, then the same framing and handling as plain TCP.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    sync::{Arc, atomic::AtomicBool},
};

use decnet_store::pipeline::EventSender;
use rustls::{
    RootCertStore, ServerConfig, ServerConnection, StreamOwned,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::WebPkiClientVerifier,
};

use super::{IntakeConfig, IntakeMetrics, tcp};

/// Where the TLS listener's identity comes from.
#[derive(Debug, Clone)]
pub struct TlsIdentity {
    /// PEM certificate chain and key; `None` generates (once) into `generated_dir`.
    pub cert_and_key: Option<(PathBuf, PathBuf)>,
    /// Directory for the generated identity (`intake-tls.crt`, `intake-tls.key`, mode 0600).
    pub generated_dir: PathBuf,
    /// PEM CA bundle: when set, senders must present a certificate it issued.
    pub client_ca: Option<PathBuf>,
}

/// Why the TLS listener could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("TLS certificate {path}: {reason}")]
    Cert { path: PathBuf, reason: String },
    #[error("TLS private key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("TLS client CA {path}: {reason}")]
    ClientCa { path: PathBuf, reason: String },
    #[error("generating the intake TLS identity in {dir}: {reason}")]
    Generate { dir: PathBuf, reason: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}

type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn load(cert: &Path, key: &Path) -> Result<Identity, TlsSetupError> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| TlsSetupError::Cert {
            path: cert.to_owned(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsSetupError::Cert {
            path: cert.to_owned(),
            reason: "no PEM certificate in the file".into(),
        });
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsSetupError::Key {
        path: key.to_owned(),
        reason: e.to_string(),
    })?;
    Ok((certs, key_der))
}

/// The generated identity, made on first use and reused afterwards (senders pin it).
fn generated(dir: &Path) -> Result<Identity, TlsSetupError> {
    let cert = dir.join("intake-tls.crt");
    let key = dir.join("intake-tls.key");
    if !cert.exists() || !key.exists() {
        let fail = |reason: String| TlsSetupError::Generate {
            dir: dir.to_owned(),
            reason,
        };
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_owned());
        let made =
            rcgen::generate_simple_self_signed(vec![host]).map_err(|e| fail(e.to_string()))?;
        std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
        write_private(&key, made.signing_key.serialize_pem().as_bytes())
            .map_err(|e| fail(e.to_string()))?;
        write_private(&cert, made.cert.pem().as_bytes()).map_err(|e| fail(e.to_string()))?;
        tracing::info!(cert = %cert.display(), "generated the intake TLS identity");
    }
    load(&cert, &key)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::{io::Write as _, os::unix::fs::OpenOptionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

/// The rustls server configuration for `identity`.
pub fn server_config(identity: &TlsIdentity) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let (certs, key) = match &identity.cert_and_key {
        Some((cert, key)) => load(cert, key)?,
        None => generated(&identity.generated_dir)?,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::Config(e.to_string()))?;
    let builder = match &identity.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let fail = |reason: String| TlsSetupError::ClientCa {
                path: ca.clone(),
                reason,
            };
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca).map_err(|e| fail(e.to_string()))? {
                roots
                    .add(cert.map_err(|e| fail(e.to_string()))?)
                    .map_err(|e| fail(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(fail("no PEM certificate in the file".into()));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| fail(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsSetupError::Config(e.to_string()))?;
    Ok(Arc::new(config))
}

pub(crate) fn accept_loop(
    listener: &TcpListener,
    tls: &Arc<ServerConfig>,
    config: &IntakeConfig,
    sender: &EventSender,
    metrics: &Arc<IntakeMetrics>,
    stop: &Arc<AtomicBool>,
) {
    tcp::accept_with(listener, "tls", config, sender, metrics, stop, |stream| {
        ServerConnection::new(Arc::clone(tls))
            .map(|conn| StreamOwned::new(conn, stream))
            .map_err(|e| e.to_string())
    });
}

//! TLS identity of a service: the operator's certificate (`TLS_CERT`/`TLS_KEY`), or a
//! self-signed one made at start for this host the way a stock install makes its default
//! ("snakeoil") certificate: subject and SAN are the host name, ten years of validity, issued
//! some time before today — nothing in it names the product.

use std::sync::Arc;

use rand::Rng;
use rustls::{
    ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
};

use crate::persona::Persona;

/// Why a TLS identity could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the certificate {path}: {reason}; check TLS_CERT")]
    Cert { path: String, reason: String },
    #[error("cannot read the private key {path}: {reason}; check TLS_KEY")]
    Key { path: String, reason: String },
    #[error("TLS_CERT and TLS_KEY must be set together")]
    HalfConfigured,
    #[error("cannot make a certificate for {host:?}: {reason}")]
    Generate { host: String, reason: String },
    #[error("the certificate and key do not form a usable TLS identity: {0}")]
    Config(String),
}

/// The server configuration for `persona` (ALPN `http/1.1`).
pub fn server_config(persona: &Persona) -> Result<Arc<ServerConfig>, TlsError> {
    let (certs, key) = match (persona.get("TLS_CERT"), persona.get("TLS_KEY")) {
        (Some(cert), Some(key)) => load(cert, key)?,
        (None, None) => generate(persona.get("TLS_CN").unwrap_or_else(|| persona.hostname()))?,
        _ => return Err(TlsError::HalfConfigured),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn load(cert_path: &str, key_path: &str) -> Result<Identity, TlsError> {
    let certs = CertificateDer::pem_file_iter(cert_path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| TlsError::Cert {
            path: cert_path.to_owned(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Cert {
            path: cert_path.to_owned(),
            reason: "no certificate in it".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| TlsError::Key {
        path: key_path.to_owned(),
        reason: e.to_string(),
    })?;
    Ok((certs, key))
}

fn generate(host: &str) -> Result<Identity, TlsError> {
    let fail = |e: rcgen::Error| TlsError::Generate {
        host: host.to_owned(),
        reason: e.to_string(),
    };
    let key = rcgen::KeyPair::generate().map_err(fail)?;
    let mut params = rcgen::CertificateParams::new(vec![host.to_owned()]).map_err(fail)?;
    let mut name = rcgen::DistinguishedName::new();
    name.push(rcgen::DnType::CommonName, host);
    params.distinguished_name = name;
    let mut rng = rand::rng();
    // Installed somewhere between two months and three years ago, valid for ten years.
    let issued_days_ago: i64 = rng.random_range(60..1100);
    let today = crate::runtime::now_ns() / 1_000_000_000 / 86_400;
    let (y, m, d) = decnet_store::rfc5424::civil_from_days(today - issued_days_ago);
    let (year, month, day) = (
        i32::try_from(y).unwrap_or(2024),
        u8::try_from(m).unwrap_or(1),
        u8::try_from(d).unwrap_or(1),
    );
    params.not_before = rcgen::date_time_ymd(year, month, day);
    params.not_after = rcgen::date_time_ymd(year + 10, month, day.min(28));
    let mut serial: [u8; 16] = rng.random();
    serial[0] &= 0x7f;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    let cert = params.self_signed(&key).map_err(fail)?;
    let key = PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| TlsError::Generate {
        host: host.to_owned(),
        reason: e.to_string(),
    })?;
    Ok((vec![cert.der().clone()], key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_identity_works_and_half_config_is_refused() {
        let p = Persona::from_pairs(&[("HOSTNAME", "web01.corp.local")]);
        assert!(server_config(&p).is_ok());
        let half = Persona::from_pairs(&[("TLS_CERT", "/x.pem")]);
        assert!(matches!(
            server_config(&half),
            Err(TlsError::HalfConfigured)
        ));
        let missing = Persona::from_pairs(&[
            ("TLS_CERT", "/nonexistent.pem"),
            ("TLS_KEY", "/nonexistent.key"),
        ]);
        let err = server_config(&missing).unwrap_err().to_string();
        assert!(
            err.contains("/nonexistent.pem") && err.contains("TLS_CERT"),
            "{err}"
        );
    }
}

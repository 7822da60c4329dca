//! The three host keys a default Debian sshd has (rsa 3072, ecdsa nistp256, ed25519), derived
//! from a seed so a redeployed decky presents the same fingerprints.

use p256::ecdsa::signature::Signer as _;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng as _;
use rsa::traits::PublicKeyParts as _;
use sha2::{Digest as _, Sha256, Sha512};

use super::TransportError;
use crate::protocols::ssh::wire::Writer;

/// RSA modulus size of `ssh-keygen -A` on Debian 12.
const RSA_BITS: usize = 3072;

/// The host keys of one persona.
pub struct HostKeys {
    rsa: rsa::RsaPrivateKey,
    ecdsa: p256::ecdsa::SigningKey,
    ed25519: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for HostKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print private keys, even in debug logs.
        f.debug_struct("HostKeys").finish_non_exhaustive()
    }
}

/// A deterministic RNG for one key type: SHA-256(seed || label).
fn keyed_rng(seed: &[u8], label: &str) -> ChaCha20Rng {
    let mut h = Sha256::new();
    h.update(seed);
    h.update(label.as_bytes());
    ChaCha20Rng::from_seed(h.finalize().into())
}

impl HostKeys {
    pub fn from_seed(seed: &[u8]) -> Result<Self, TransportError> {
        let rsa = rsa::RsaPrivateKey::new(&mut keyed_rng(seed, "ssh-hostkey-rsa"), RSA_BITS)
            .map_err(|e| TransportError::HostKey(format!("rsa: {e}")))?;
        let ecdsa = p256::ecdsa::SigningKey::random(&mut keyed_rng(seed, "ssh-hostkey-ecdsa"));
        let mut ed_seed = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut keyed_rng(seed, "ssh-hostkey-ed25519"), &mut ed_seed);
        let ed25519 = ed25519_dalek::SigningKey::from_bytes(&ed_seed);
        Ok(Self {
            rsa,
            ecdsa,
            ed25519,
        })
    }

    /// The public key blob (RFC 4253 §6.6) presented for a host key algorithm.
    pub fn public_blob(&self, alg: &str) -> Option<Vec<u8>> {
        let mut w = Writer::new();
        match alg {
            "rsa-sha2-512" | "rsa-sha2-256" | "ssh-rsa" => {
                let public = self.rsa.to_public_key();
                w.string(b"ssh-rsa")
                    .mpint(&public.e().to_bytes_be())
                    .mpint(&public.n().to_bytes_be());
            }
            "ecdsa-sha2-nistp256" => {
                let point = self.ecdsa.verifying_key().to_encoded_point(false);
                w.string(b"ecdsa-sha2-nistp256")
                    .string(b"nistp256")
                    .string(point.as_bytes());
            }
            "ssh-ed25519" => {
                w.string(b"ssh-ed25519")
                    .string(self.ed25519.verifying_key().as_bytes());
            }
            _ => return None,
        }
        Some(w.finish())
    }

    /// The signature blob over `data` (the exchange hash) for a host key algorithm.
    pub fn sign(&self, alg: &str, data: &[u8]) -> Result<Vec<u8>, TransportError> {
        let mut w = Writer::new();
        match alg {
            "rsa-sha2-512" => {
                let digest = Sha512::digest(data);
                let sig = self
                    .rsa
                    .sign(rsa::Pkcs1v15Sign::new::<Sha512>(), &digest)
                    .map_err(|e| TransportError::HostKey(format!("rsa sign: {e}")))?;
                w.string(alg.as_bytes()).string(&sig);
            }
            "rsa-sha2-256" => {
                let digest = Sha256::digest(data);
                let sig = self
                    .rsa
                    .sign(rsa::Pkcs1v15Sign::new::<Sha256>(), &digest)
                    .map_err(|e| TransportError::HostKey(format!("rsa sign: {e}")))?;
                w.string(alg.as_bytes()).string(&sig);
            }
            "ecdsa-sha2-nistp256" => {
                let sig: p256::ecdsa::Signature = self.ecdsa.sign(data);
                let (r, s) = sig.split_bytes();
                let mut inner = Writer::new();
                inner.mpint(&r).mpint(&s);
                w.string(alg.as_bytes()).string(&inner.finish());
            }
            "ssh-ed25519" => {
                let sig = ed25519_dalek::Signer::sign(&self.ed25519, data);
                w.string(alg.as_bytes()).string(&sig.to_bytes());
            }
            other => return Err(TransportError::HostKey(format!("no host key for {other}"))),
        }
        Ok(w.finish())
    }

    /// OpenSSH-style `SHA256:` fingerprint of a public blob, for logs and tests.
    pub fn fingerprint(blob: &[u8]) -> String {
        let digest = Sha256::digest(blob);
        format!("SHA256:{}", base64_nopad(&digest))
    }
}

fn base64_nopad(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            let idx = (n >> (18 - 6 * i)) & 63;
            out.push(char::from(ALPHABET[idx as usize]));
        }
    }
    out
}

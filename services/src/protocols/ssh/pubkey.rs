//! Public keys offered in `publickey` authentication: their OpenSSH fingerprint and, for a
//! signed request, whether the signature really came from the key's owner (RFC 4252 §7).

use sha2::{Digest, Sha256, Sha512};

use super::wire::Reader;
use crate::protocols::sasl::b64_encode;

/// `SHA256:<base64 without padding>` of the key blob, as `ssh-keygen -lf` prints it.
pub fn fingerprint(blob: &[u8]) -> String {
    let b64 = b64_encode(&Sha256::digest(blob));
    format!("SHA256:{}", b64.trim_end_matches('='))
}

/// The key type named inside a key blob (`ssh-ed25519`, `ssh-rsa`, …), if it parses.
pub fn blob_type(blob: &[u8]) -> Option<String> {
    Reader::new(blob)
        .string()
        .map(|t| String::from_utf8_lossy(t).into_owned())
}

/// What checking a signature found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Valid,
    Invalid,
    /// A key or signature algorithm we do not check (DSA, SHA-1 RSA, certificates, …).
    Unsupported,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Invalid => "invalid",
            Self::Unsupported => "unsupported",
        }
    }
}

/// Check `signature` (an SSH signature blob) by key `blob` over `data`.
pub fn verify(blob: &[u8], signature: &[u8], data: &[u8]) -> Verdict {
    let mut key = Reader::new(blob);
    let mut sig = Reader::new(signature);
    let (Some(key_type), Some(sig_alg), Some(sig_bytes)) =
        (key.string(), sig.string(), sig.string())
    else {
        return Verdict::Invalid;
    };
    let ok = match (key_type, sig_alg) {
        (b"ssh-ed25519", b"ssh-ed25519") => ed25519(&mut key, sig_bytes, data),
        (b"ecdsa-sha2-nistp256", b"ecdsa-sha2-nistp256") => p256(&mut key, sig_bytes, data),
        (b"ssh-rsa", b"rsa-sha2-256") => rsa::<Sha256>(&mut key, sig_bytes, data),
        (b"ssh-rsa", b"rsa-sha2-512") => rsa::<Sha512>(&mut key, sig_bytes, data),
        _ => return Verdict::Unsupported,
    };
    if ok == Some(true) {
        Verdict::Valid
    } else {
        Verdict::Invalid
    }
}

fn ed25519(key: &mut Reader<'_>, sig: &[u8], data: &[u8]) -> Option<bool> {
    let pk: &[u8; 32] = key.string()?.try_into().ok()?;
    let sig: &[u8; 64] = sig.try_into().ok()?;
    let vk = ed25519_dalek::VerifyingKey::from_bytes(pk).ok()?;
    Some(
        vk.verify_strict(data, &ed25519_dalek::Signature::from_bytes(sig))
            .is_ok(),
    )
}

/// An mpint as exactly `N` big-endian bytes (left-padded), if it fits.
fn fixed<const N: usize>(mpint: &[u8]) -> Option<[u8; N]> {
    let first = mpint.iter().position(|&b| b != 0).unwrap_or(mpint.len());
    let digits = &mpint[first..];
    if digits.len() > N {
        return None;
    }
    let mut out = [0u8; N];
    out[N - digits.len()..].copy_from_slice(digits);
    Some(out)
}

fn p256(key: &mut Reader<'_>, sig: &[u8], data: &[u8]) -> Option<bool> {
    use p256::ecdsa::signature::Verifier;
    if key.string()? != b"nistp256" {
        return None;
    }
    let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(key.string()?).ok()?;
    let mut rs = Reader::new(sig);
    let r = fixed::<32>(rs.mpint()?)?;
    let s = fixed::<32>(rs.mpint()?)?;
    let sig = p256::ecdsa::Signature::from_scalars(r, s).ok()?;
    Some(vk.verify(data, &sig).is_ok())
}

fn rsa<D>(key: &mut Reader<'_>, sig: &[u8], data: &[u8]) -> Option<bool>
where
    D: Digest + rsa::pkcs8::AssociatedOid,
{
    let e = rsa::BigUint::from_bytes_be(key.mpint()?);
    let n = rsa::BigUint::from_bytes_be(key.mpint()?);
    let pk = rsa::RsaPublicKey::new(n, e).ok()?;
    let hashed = D::digest(data);
    Some(
        pk.verify(rsa::Pkcs1v15Sign::new::<D>(), &hashed, sig)
            .is_ok(),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code
    use super::*;
    use crate::protocols::ssh::wire::Writer;
    use ed25519_dalek::Signer;

    #[test]
    fn fingerprint_matches_ssh_keygen() {
        // `ssh-keygen -lf` of this public key.
        let blob = crate::protocols::sasl::b64_decode(
            b"AAAAC3NzaC1lZDI1NTE5AAAAIIEtnfrJ+nUJFbbMW7ZtAejT77nao1yxaqNDKtxbT4rQ",
        )
        .unwrap();
        assert_eq!(blob_type(&blob).as_deref(), Some("ssh-ed25519"));
        assert_eq!(
            fingerprint(&blob),
            "SHA256:JEu7bZ9nUTCDK1WjhkVM/n8yujpJ3zzRJ2/Wk/OGuws"
        );
    }

    #[test]
    fn ed25519_signatures_are_checked() {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let blob = Writer::new()
            .string(b"ssh-ed25519")
            .string(sk.verifying_key().as_bytes())
            .finish();
        let sig = Writer::new()
            .string(b"ssh-ed25519")
            .string(&sk.sign(b"data").to_bytes())
            .finish();
        assert_eq!(verify(&blob, &sig, b"data"), Verdict::Valid);
        assert_eq!(verify(&blob, &sig, b"other"), Verdict::Invalid);
        assert_eq!(verify(&blob, b"junk", b"data"), Verdict::Invalid);
        let dss = Writer::new().string(b"ssh-dss").finish();
        let dss_sig = Writer::new().string(b"ssh-dss").string(b"x").finish();
        assert_eq!(verify(&dss, &dss_sig, b"data"), Verdict::Unsupported);
    }

    #[test]
    fn p256_signatures_are_checked() {
        use p256::ecdsa::{Signature, SigningKey, signature::Signer as _};
        let sk = SigningKey::from_slice(&[9; 32]).unwrap();
        let q = sk.verifying_key().to_encoded_point(false);
        let blob = Writer::new()
            .string(b"ecdsa-sha2-nistp256")
            .string(b"nistp256")
            .string(q.as_bytes())
            .finish();
        let sig: Signature = sk.sign(b"data");
        let (r, s) = sig.split_bytes();
        let inner = Writer::new().mpint(&r).mpint(&s).finish();
        let sig = Writer::new()
            .string(b"ecdsa-sha2-nistp256")
            .string(&inner)
            .finish();
        assert_eq!(verify(&blob, &sig, b"data"), Verdict::Valid);
        assert_eq!(verify(&blob, &sig, b"datb"), Verdict::Invalid);
    }
}

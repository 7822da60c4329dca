//! Key exchange methods (the server side of each), the exchange hash and key derivation
//! (RFC 4253 §7-8, RFC 4419, RFC 5656, RFC 8731, RFC 8268, OpenSSH's sntrup761x25519).

use num_bigint::BigUint;
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest as _, Sha256, Sha384, Sha512};

use super::groups;
use crate::protocols::ssh::wire::Writer;

/// Key exchanges this transport runs (everything OpenSSH 9.2 offers).
pub const KEX: &[&str] = &[
    "sntrup761x25519-sha512@openssh.com",
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521",
    "diffie-hellman-group-exchange-sha256",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512",
    "diffie-hellman-group14-sha256",
];

pub const MSG_KEXDH_INIT: u8 = 30;
pub const MSG_KEXDH_REPLY: u8 = 31;
pub const MSG_KEX_DH_GEX_REQUEST: u8 = 34;
pub const MSG_KEX_DH_GEX_GROUP: u8 = 31;
pub const MSG_KEX_DH_GEX_INIT: u8 = 32;
pub const MSG_KEX_DH_GEX_REPLY: u8 = 33;

/// OpenSSH's DH_GRP_MIN / DH_GRP_MAX for group exchange.
const GEX_MIN: u32 = 2048;
const GEX_MAX: u32 = 8192;

/// The exchange hash function of a kex method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    pub fn of(kex: &str) -> Option<Self> {
        Some(match kex {
            "curve25519-sha256"
            | "curve25519-sha256@libssh.org"
            | "ecdh-sha2-nistp256"
            | "diffie-hellman-group-exchange-sha256"
            | "diffie-hellman-group14-sha256" => Self::Sha256,
            "ecdh-sha2-nistp384" => Self::Sha384,
            "ecdh-sha2-nistp521"
            | "diffie-hellman-group16-sha512"
            | "diffie-hellman-group18-sha512"
            | "sntrup761x25519-sha512@openssh.com" => Self::Sha512,
            _ => return None,
        })
    }

    pub fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: sha2::Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut d = D::new();
            for p in parts {
                d.update(p);
            }
            d.finalize().to_vec()
        }
        match self {
            Self::Sha256 => run::<Sha256>(parts),
            Self::Sha384 => run::<Sha384>(parts),
            Self::Sha512 => run::<Sha512>(parts),
        }
    }
}

/// Why the client's kex message was refused (OpenSSH drops the connection without a word).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KexError {
    #[error("malformed {0} message")]
    Malformed(&'static str),
    #[error("invalid client public value for {0}")]
    BadPublic(&'static str),
    #[error("group exchange request out of range: min {min} n {n} max {max}")]
    GexRange { min: u32, n: u32, max: u32 },
    #[error("kex method {0} not implemented")]
    Unsupported(String),
}

/// The server's half of a finished exchange: the value to send back and the shared secret
/// encoded as it enters the hashes (an mpint, or a string for sntrup761x25519).
#[derive(Debug)]
pub struct ServerHalf {
    /// The server's public value, already encoded (string Q_S, or mpint f).
    pub reply_value: Vec<u8>,
    /// kex-specific part of the exchange hash input between K_S and K.
    pub hash_middle: Vec<u8>,
    pub shared: Vec<u8>,
}

fn ecdh_half(client_q: &[u8], server_q: &[u8], shared_mpint_mag: &[u8]) -> ServerHalf {
    let mut reply = Writer::new();
    reply.string(server_q);
    let mut middle = Writer::new();
    middle.string(client_q).string(server_q);
    let mut k = Writer::new();
    k.mpint(shared_mpint_mag);
    ServerHalf {
        reply_value: reply.finish(),
        hash_middle: middle.finish(),
        shared: k.finish(),
    }
}

fn x25519(client_q: &[u8], rng: &mut (impl RngCore + CryptoRng)) -> Option<([u8; 32], [u8; 32])> {
    let peer: [u8; 32] = client_q.try_into().ok()?;
    let secret = x25519_dalek::EphemeralSecret::random_from_rng(rng);
    let public = x25519_dalek::PublicKey::from(&secret);
    let shared = secret.diffie_hellman(&x25519_dalek::PublicKey::from(peer));
    // RFC 8731 §3: an all-zero result means a low-order point; OpenSSH refuses it.
    if !shared.was_contributory() {
        return None;
    }
    Some((public.to_bytes(), shared.to_bytes()))
}

/// ECDH-style methods: one client value (KEX_ECDH_INIT), one reply.
pub fn ecdh_like(
    kex: &str,
    client_q: &[u8],
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<ServerHalf, KexError> {
    match kex {
        "curve25519-sha256" | "curve25519-sha256@libssh.org" => {
            let (public, shared) =
                x25519(client_q, rng).ok_or(KexError::BadPublic("curve25519"))?;
            Ok(ecdh_half(client_q, &public, &shared))
        }
        "ecdh-sha2-nistp256" => {
            let peer = p256::PublicKey::from_sec1_bytes(client_q)
                .map_err(|_| KexError::BadPublic("nistp256"))?;
            let secret = p256::ecdh::EphemeralSecret::random(rng);
            let public = p256::EncodedPoint::from(secret.public_key());
            let shared = secret.diffie_hellman(&peer);
            Ok(ecdh_half(
                client_q,
                public.as_bytes(),
                shared.raw_secret_bytes(),
            ))
        }
        "ecdh-sha2-nistp384" => {
            let peer = p384::PublicKey::from_sec1_bytes(client_q)
                .map_err(|_| KexError::BadPublic("nistp384"))?;
            let secret = p384::ecdh::EphemeralSecret::random(rng);
            let public = p384::EncodedPoint::from(secret.public_key());
            let shared = secret.diffie_hellman(&peer);
            Ok(ecdh_half(
                client_q,
                public.as_bytes(),
                shared.raw_secret_bytes(),
            ))
        }
        "ecdh-sha2-nistp521" => {
            let peer = p521::PublicKey::from_sec1_bytes(client_q)
                .map_err(|_| KexError::BadPublic("nistp521"))?;
            let secret = p521::ecdh::EphemeralSecret::random(rng);
            let public = p521::EncodedPoint::from(secret.public_key());
            let shared = secret.diffie_hellman(&peer);
            Ok(ecdh_half(
                client_q,
                public.as_bytes(),
                shared.raw_secret_bytes(),
            ))
        }
        "sntrup761x25519-sha512@openssh.com" => sntrup761x25519(client_q, rng),
        other => Err(KexError::Unsupported(other.to_owned())),
    }
}

/// OpenSSH's hybrid: the client sends its sntrup761 public key then its X25519 key; the
/// server answers the KEM ciphertext then its X25519 key; K = SHA-512(kem || x25519) hashed
/// in as a *string*.
fn sntrup761x25519(
    client_q: &[u8],
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<ServerHalf, KexError> {
    const NAME: &str = "sntrup761x25519";
    if client_q.len() != sntrup761::PUBLIC_KEY_SIZE + 32 {
        return Err(KexError::BadPublic(NAME));
    }
    let (kem_pk, x_pk) = client_q.split_at(sntrup761::PUBLIC_KEY_SIZE);
    let kem_pk =
        sntrup761::EncapsulationKey::try_from(kem_pk).map_err(|_| KexError::BadPublic(NAME))?;
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    let (ciphertext, kem_shared) = kem_pk.encapsulate_deterministic(seed);
    let (x_public, x_shared) = x25519(x_pk, rng).ok_or(KexError::BadPublic(NAME))?;
    let mut server_q = ciphertext.as_ref().to_vec();
    server_q.extend_from_slice(&x_public);
    let mut h = Sha512::new();
    h.update(kem_shared.as_ref());
    h.update(x_shared);
    let k = h.finalize();
    let mut reply = Writer::new();
    reply.string(&server_q);
    let mut middle = Writer::new();
    middle.string(client_q).string(&server_q);
    let mut shared = Writer::new();
    shared.string(&k);
    Ok(ServerHalf {
        reply_value: reply.finish(),
        hash_middle: middle.finish(),
        shared: shared.finish(),
    })
}

/// A finite-field group: prime and generator 2.
#[derive(Debug, Clone)]
pub struct DhGroup {
    pub p: BigUint,
    pub g: BigUint,
}

impl DhGroup {
    fn from_hex(hex: &str) -> Self {
        Self {
            p: BigUint::parse_bytes(hex.as_bytes(), 16).unwrap_or_default(),
            g: BigUint::from(2u32),
        }
    }

    /// The fixed group of a `diffie-hellman-groupN-*` method.
    pub fn named(kex: &str) -> Option<Self> {
        Some(Self::from_hex(match kex {
            "diffie-hellman-group14-sha256" => groups::GROUP14,
            "diffie-hellman-group16-sha512" => groups::GROUP16,
            "diffie-hellman-group18-sha512" => groups::GROUP18,
            _ => return None,
        }))
    }

    /// The group sshd would pick for a GEX request: its request checks, then `choose_dh`
    /// (smallest group of at least `n` bits inside [min, max] clamped to 2048..8192, else the
    /// largest inside), then `dh_new_group_fallback` when nothing fits. Debian's moduli also
    /// has 7680-bit groups; the RFC 3526 set has none, so such requests get 8192 bits.
    pub fn for_request(min: u32, n: u32, max: u32) -> Result<Self, KexError> {
        if max < min || n < min || max < n {
            return Err(KexError::GexRange { min, n, max });
        }
        let lo = min.max(GEX_MIN);
        let hi = max.min(GEX_MAX);
        let want = n.clamp(GEX_MIN, GEX_MAX);
        let all: [(u32, &str); 5] = [
            (2048, groups::GROUP14),
            (3072, groups::GROUP15),
            (4096, groups::GROUP16),
            (6144, groups::GROUP17),
            (8192, groups::GROUP18),
        ];
        let mut fitting = all.iter().filter(|(bits, _)| *bits >= lo && *bits <= hi);
        let pick = fitting
            .clone()
            .find(|(bits, _)| *bits >= want)
            .or_else(|| fitting.next_back())
            .map(|(_, hex)| *hex);
        let hex = pick.unwrap_or(if max < 3072 {
            groups::GROUP14
        } else if max < 6144 {
            groups::GROUP16
        } else {
            groups::GROUP18
        });
        Ok(Self::from_hex(hex))
    }

    /// The server's DH step with client value `e`: (f, K) as unsigned big-endian bytes.
    pub fn exchange(
        &self,
        e_bytes: &[u8],
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(Vec<u8>, Vec<u8>), KexError> {
        let e = BigUint::from_bytes_be(e_bytes);
        let one = BigUint::from(1u32);
        // modpow panics on a zero modulus; the built-in primes never parse to one, but a
        // corrupted constant must not take the process down.
        if self.p <= one {
            return Err(KexError::Unsupported("diffie-hellman group".to_owned()));
        }
        // dh_pub_is_valid: 1 < e < p-1.
        if e <= one || e >= &self.p - &one {
            return Err(KexError::BadPublic("diffie-hellman"));
        }
        // A 512-bit exponent covers twice the strength of any negotiated cipher.
        let mut x_bytes = [0u8; 64];
        rng.fill_bytes(&mut x_bytes);
        let x = BigUint::from_bytes_be(&x_bytes) | BigUint::from(1u32);
        let f = self.g.modpow(&x, &self.p);
        let k = e.modpow(&x, &self.p);
        Ok((f.to_bytes_be(), k.to_bytes_be()))
    }
}

/// A finished DH exchange as `ServerHalf`; `gex_prefix` carries RFC 4419's min||n||max||p||g.
pub fn dh_half(gex_prefix: &[u8], e: &[u8], f: &[u8], k: &[u8]) -> ServerHalf {
    let mut reply = Writer::new();
    reply.mpint(f);
    let mut middle = Writer::new();
    middle.raw(gex_prefix).mpint(e).mpint(f);
    let mut shared = Writer::new();
    shared.mpint(k);
    ServerHalf {
        reply_value: reply.finish(),
        hash_middle: middle.finish(),
        shared: shared.finish(),
    }
}

/// The exchange hash H (RFC 4253 §8 and its kex-specific variants).
#[allow(clippy::too_many_arguments)]
pub fn exchange_hash(
    alg: HashAlg,
    v_c: &[u8],
    v_s: &[u8],
    i_c: &[u8],
    i_s: &[u8],
    k_s: &[u8],
    half: &ServerHalf,
) -> Vec<u8> {
    let mut w = Writer::new();
    w.string(v_c)
        .string(v_s)
        .string(i_c)
        .string(i_s)
        .string(k_s)
        .raw(&half.hash_middle)
        .raw(&half.shared);
    alg.digest(&[&w.buf])
}

/// RFC 4253 §7.2 key derivation: HASH(K || H || letter || session_id), extended as needed.
pub fn derive(
    alg: HashAlg,
    shared: &[u8],
    h: &[u8],
    letter: u8,
    session_id: &[u8],
    len: usize,
) -> Vec<u8> {
    let mut out = alg.digest(&[shared, h, &[letter], session_id]);
    while out.len() < len {
        let more = alg.digest(&[shared, h, &out]);
        out.extend_from_slice(&more);
    }
    out.truncate(len);
    out
}

//! Authentication primitives: argon2id password hashes, HS256 JWTs (hand-rolled over
//! `hmac`+`sha2` so no `ring`/`aws-lc` build), the signing secret on disk, the login rate
//! limiter, the revocation list and single-use stream tickets.

use std::{
    collections::HashMap,
    io::Write as _,
    os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use argon2::{
    Argon2, PasswordHash, PasswordHasher as _, PasswordVerifier as _, password_hash::SaltString,
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac as _};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Issuer and audience pinned in every token: a token minted for something else (another
/// appliance sharing a secret by mistake, a future service) is refused.
pub const ISSUER: &str = "decnet";
pub const AUDIENCE: &str = "decnet-api";
/// The only header we mint and accept (alg pinning: no `none`, no algorithm confusion).
const HEADER_B64: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";
/// Longest password accepted (argon2 has no 72-byte cap like bcrypt, but bodies are bounded).
pub const MAX_PASSWORD: usize = 256;
pub const MIN_PASSWORD: usize = 8;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The user's uuid.
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    /// Token id, the key of the revocation list.
    pub jti: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token was not issued for this API")]
    WrongAudience,
}

/// The HMAC key that signs tokens, kept keyed: every request verifies a token, and the key
/// schedule (two SHA-256 blocks) is done once instead of per token.
#[derive(Clone)]
pub struct JwtKey(HmacSha256);

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKey(..)")
    }
}

type HmacSha256 = Hmac<Sha256>;

impl JwtKey {
    pub fn new(secret: &[u8]) -> Self {
        // HMAC accepts keys of any length; `new_from_slice` cannot fail for Hmac.
        Self(match HmacSha256::new_from_slice(secret) {
            Ok(m) => m,
            Err(_) => unreachable_mac(),
        })
    }

    fn mac(&self) -> HmacSha256 {
        self.0.clone()
    }

    /// `header.payload.signature` for `claims`.
    pub fn sign(&self, claims: &Claims) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
        let signing_input = format!("{HEADER_B64}.{payload}");
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{sig}")
    }

    /// Verify signature (constant time), header, issuer, audience and expiry at `now`.
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        let claims: Claims =
            serde_json::from_slice(&self.verify_raw(token)?).map_err(|_| TokenError::Malformed)?;
        if claims.iss != ISSUER || claims.aud != AUDIENCE {
            return Err(TokenError::WrongAudience);
        }
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    /// Check the signature of any HS256 token and return its decoded payload bytes.
    pub fn verify_raw(&self, token: &str) -> Result<Vec<u8>, TokenError> {
        if token.len() > 4096 {
            return Err(TokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        // Every token this API mints carries exactly HEADER_B64; decoding is for the others.
        if header != HEADER_B64 {
            let header_json: serde_json::Value = URL_SAFE_NO_PAD
                .decode(header)
                .ok()
                .and_then(|h| serde_json::from_slice(&h).ok())
                .ok_or(TokenError::Malformed)?;
            if header_json.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
                return Err(TokenError::Malformed);
            }
        }
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac();
        mac.update(header.as_bytes());
        mac.update(b".");
        mac.update(payload.as_bytes());
        mac.verify_slice(&sig)
            .map_err(|_| TokenError::BadSignature)?;
        URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed)
    }
}

#[cold]
fn unreachable_mac() -> HmacSha256 {
    // Hmac::new_from_slice only fails for fixed-size-key MACs; keep a defined value anyway.
    tracing::error!("HMAC refused its key; using an empty key");
    <HmacSha256 as hmac::digest::KeyInit>::new(&Default::default())
}

/// Load the signing secret from `secrets_dir/jwt.key`, creating it (32 random bytes, hex,
/// mode 0600, directory 0700) at first start.
pub fn load_or_create_secret(secrets_dir: &Path) -> std::io::Result<Vec<u8>> {
    std::fs::create_dir_all(secrets_dir)?;
    std::fs::set_permissions(secrets_dir, std::fs::Permissions::from_mode(0o700))?;
    let path = secrets_dir.join("jwt.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let bytes = hex::decode(text.trim()).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} is not hex: {e}", path.display()),
                )
            })?;
            if bytes.len() < 32 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} holds fewer than 32 bytes", path.display()),
                ));
            }
            Ok(bytes)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret: [u8; 32] = rand::random();
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?;
            f.write_all(hex::encode(secret).as_bytes())?;
            f.sync_all()?;
            Ok(secret.to_vec())
        }
        Err(e) => Err(e),
    }
}

/// argon2id (OWASP parameters: 19 MiB, 2 passes) with a random salt, PHC string form.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches the PHC `hash` (false on any malformed hash).
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A random password for the first admin: 20 chars from an unambiguous alphabet.
pub fn random_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let bytes: [u8; 20] = rand::random();
    bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

/// A random opaque id (tokens' jti, stream tickets).
pub fn random_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Failed-login throttle: at most `max_failures` failures per key (an IP, a username) in a
/// sliding `window`; further attempts are refused until the oldest failure ages out, so a
/// password guesser is capped without locking the real user out for long.
#[derive(Debug)]
pub struct LoginLimiter {
    max_failures: usize,
    window: Duration,
    failures: Mutex<HashMap<String, Vec<Instant>>>,
}

/// Most keys tracked; beyond it the oldest entries are pruned (a spray of source addresses
/// must not grow memory without bound).
const LIMITER_KEYS: usize = 100_000;

impl LoginLimiter {
    pub fn new(max_failures: usize, window: Duration) -> Self {
        Self {
            max_failures,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Count an attempt by `key` now, before its password is checked: `Err(seconds to wait)`
    /// when `key` already made the most attempts the window allows. Counting only failures,
    /// after the check, let attempts sent at once all pass the limit before any was counted
    /// (hundreds of guesses per window from one address); a success clears the key.
    pub fn attempt(&self, key: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut map = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(list) = map.get_mut(key) {
            list.retain(|t| now.duration_since(*t) < self.window);
            if list.len() >= self.max_failures {
                let oldest = list.first().copied().unwrap_or(now);
                let wait = self.window.saturating_sub(now.duration_since(oldest));
                return Err(wait.as_secs().max(1));
            }
        }
        if map.len() >= LIMITER_KEYS {
            let window = self.window;
            map.retain(|_, l| l.last().is_some_and(|t| now.duration_since(*t) < window));
        }
        map.entry(key.to_owned()).or_default().push(now);
        Ok(())
    }

    pub fn clear(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }
}

/// Revoked token ids with their expiry (after which the token is dead anyway and the entry is
/// pruned).
#[derive(Debug, Default)]
pub struct Revocations(Mutex<HashMap<String, i64>>);

impl Revocations {
    pub fn revoke(&self, jti: &str, exp: i64, now: i64) -> HashMap<String, i64> {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|_, e| *e > now);
        map.insert(jti.to_owned(), exp);
        map.clone()
    }

    pub fn load(&self, entries: HashMap<String, i64>) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = entries;
    }

    pub fn is_revoked(&self, jti: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains_key(jti)
    }
}

/// Tokens whose signature was already checked, with their claims: a dashboard sends the same
/// token with every request, and the signature check, two base64 decodes and a JSON parse were
/// a tenth of a cached request's CPU. The key is the whole token text, so only a byte-identical
/// token hits; expiry is still checked on every hit, and revocation by the caller as before.
#[derive(Debug, Default)]
pub struct VerifiedTokens(Mutex<HashMap<Box<str>, Arc<Claims>>>);

/// Most tokens remembered; a flood of distinct valid tokens only empties the memo.
const VERIFIED_TOKENS: usize = 4096;

impl VerifiedTokens {
    /// `key.verify(token, now)`, remembered for the token's lifetime.
    pub fn verify(&self, key: &JwtKey, token: &str, now: i64) -> Result<Arc<Claims>, TokenError> {
        let lock = || {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some(claims) = lock().get(token) {
            if claims.exp <= now {
                return Err(TokenError::Expired);
            }
            return Ok(Arc::clone(claims));
        }
        let claims = Arc::new(key.verify(token, now)?);
        let mut map = lock();
        if map.len() >= VERIFIED_TOKENS {
            map.retain(|_, c| c.exp > now);
            if map.len() >= VERIFIED_TOKENS {
                map.clear();
            }
        }
        map.insert(token.into(), Arc::clone(&claims));
        Ok(claims)
    }
}

/// Single-use stream tickets: EventSource cannot send an Authorization header, so the
/// dashboard trades its bearer token for a ticket valid [`TICKET_TTL`] and usable once; the
/// long-lived token never appears in a URL (or a proxy's access log).
#[derive(Debug, Default)]
pub struct Tickets(Mutex<HashMap<String, (String, Instant)>>);

pub const TICKET_TTL: Duration = Duration::from_secs(30);
const MAX_TICKETS: usize = 10_000;
/// Unexpired tickets one user may hold.
const MAX_TICKETS_PER_USER: usize = 16;

impl Tickets {
    pub fn issue(&self, user_uuid: &str) -> String {
        let id = random_id();
        let now = Instant::now();
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|_, (_, t)| now.duration_since(*t) < TICKET_TTL);
        // A user's newest tickets only: one user asking in a loop once filled the table, and
        // then nobody's live stream could connect.
        let mut own: Vec<(Instant, String)> = map
            .iter()
            .filter(|(_, (user, _))| user == user_uuid)
            .map(|(id, (_, at))| (*at, id.clone()))
            .collect();
        if own.len() >= MAX_TICKETS_PER_USER {
            own.sort_unstable();
            for (_, old) in &own[..=own.len() - MAX_TICKETS_PER_USER] {
                map.remove(old);
            }
        }
        if map.len() < MAX_TICKETS {
            map.insert(id.clone(), (user_uuid.to_owned(), now));
        }
        id
    }

    /// The user a ticket was issued to, consuming it.
    pub fn redeem(&self, ticket: &str) -> Option<String> {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (user, at) = map.remove(ticket)?;
        (at.elapsed() < TICKET_TTL).then_some(user)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_matches_rfc4231_case_2() {
        let mut mac = HmacSha256::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn verifies_the_well_known_hs256_vector() {
        let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
        let key = JwtKey::new(b"your-256-bit-secret");
        let payload = key.verify_raw(token).unwrap();
        assert!(String::from_utf8(payload).unwrap().contains("John Doe"));
        assert_eq!(
            JwtKey::new(b"other").verify_raw(token),
            Err(TokenError::BadSignature)
        );
    }

    fn claims(exp: i64) -> Claims {
        Claims {
            sub: "u".into(),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: 0,
            exp,
            jti: random_id(),
        }
    }

    #[test]
    fn round_trip_expiry_audience_tamper_and_alg_none() {
        let key = JwtKey::new(b"0123456789abcdef0123456789abcdef");
        let c = claims(100);
        let t = key.sign(&c);
        assert_eq!(key.verify(&t, 99).unwrap(), c);
        assert_eq!(key.verify(&t, 100), Err(TokenError::Expired));
        let mut wrong = claims(100);
        wrong.aud = "other".into();
        assert_eq!(
            key.verify(&key.sign(&wrong), 1),
            Err(TokenError::WrongAudience)
        );
        let (head, rest) = t.split_once('.').unwrap();
        let none = format!("{}.{rest}", URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#));
        assert_eq!(key.verify(&none, 1), Err(TokenError::Malformed));
        let flipped = format!("{head}.{rest}x");
        assert!(key.verify(&flipped, 1).is_err());
        assert_eq!(key.verify("a.b", 1), Err(TokenError::Malformed));
    }

    #[test]
    fn a_remembered_token_still_expires_and_a_tampered_one_is_still_checked() {
        let key = JwtKey::new(b"0123456789abcdef0123456789abcdef");
        let memo = VerifiedTokens::default();
        let c = claims(100);
        let t = key.sign(&c);
        assert_eq!(*memo.verify(&key, &t, 50).unwrap(), c);
        // Remembered: another key would refuse it, the memo answers without checking again.
        assert_eq!(*memo.verify(&JwtKey::new(b"other"), &t, 60).unwrap(), c);
        assert_eq!(memo.verify(&key, &t, 100), Err(TokenError::Expired));
        let (signing_input, sig) = t.rsplit_once('.').unwrap();
        let first = if sig.starts_with('A') { 'B' } else { 'A' };
        let forged = format!("{signing_input}.{first}{}", &sig[1..]);
        assert!(memo.verify(&key, &forged, 50).is_err());
        let expired = key.sign(&claims(10));
        assert_eq!(memo.verify(&key, &expired, 50), Err(TokenError::Expired));
        assert_eq!(memo.verify(&key, &expired, 5).map(|c| c.exp), Ok(10));
        assert_eq!(memo.verify(&key, &expired, 50), Err(TokenError::Expired));
    }

    #[test]
    fn argon2id_hashes_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn secret_is_created_0600_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let s = dir.path().join("secrets");
        let a = load_or_create_secret(&s).unwrap();
        let b = load_or_create_secret(&s).unwrap();
        assert_eq!(a, b);
        let mode = std::fs::metadata(s.join("jwt.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn limiter_blocks_after_attempts_and_clears() {
        let l = LoginLimiter::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(l.attempt("k").is_ok());
        }
        assert!(l.attempt("k").is_err());
        assert!(l.attempt("other").is_ok());
        l.clear("k");
        assert!(l.attempt("k").is_ok());
    }

    #[test]
    fn one_user_holds_at_most_its_newest_tickets() {
        let t = Tickets::default();
        let first = t.issue("u1");
        let mut last = String::new();
        for _ in 0..20_000 {
            last = t.issue("u1");
        }
        assert_eq!(t.redeem(&first), None, "the oldest went first");
        assert_eq!(t.redeem(&last).as_deref(), Some("u1"));
        // Another user still gets tickets.
        let other = t.issue("u2");
        assert_eq!(t.redeem(&other).as_deref(), Some("u2"));
        assert!(t.0.lock().unwrap().len() <= MAX_TICKETS_PER_USER);
    }

    #[test]
    fn tickets_are_single_use() {
        let t = Tickets::default();
        let id = t.issue("user");
        assert_eq!(t.redeem(&id).as_deref(), Some("user"));
        assert_eq!(t.redeem(&id), None);
        assert_eq!(t.redeem("nope"), None);
    }
}

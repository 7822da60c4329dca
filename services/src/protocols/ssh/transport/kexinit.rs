//! KEXINIT: the server proposal (exactly Debian 12's sshd), parsing the client's, choosing
//! algorithms the way RFC 4253 §7.1 says (first client algorithm the server also has) and the
//! HASSH fingerprints.

use md5::{Digest as _, Md5};

use crate::protocols::ssh::wire::{Reader, Writer};

/// Message number of SSH_MSG_KEXINIT.
pub const MSG_KEXINIT: u8 = 20;

/// OpenSSH 9.2 `KEX_SERVER_KEX` plus the strict-kex marker Debian's deb12u3 backport
/// (CVE-2023-48795) appends.
pub const SERVER_KEX: &[&str] = &[
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
    "kex-strict-s-v00@openssh.com",
];

/// sshd lists host key algorithms in the order its keys are loaded (rsa, ecdsa, ed25519 by
/// default), RSA expanded to its SHA-2 signature names (`ssh-rsa` is off by default in 9.x).
pub const SERVER_HOST_KEY: &[&str] = &[
    "rsa-sha2-512",
    "rsa-sha2-256",
    "ecdsa-sha2-nistp256",
    "ssh-ed25519",
];

/// OpenSSH 9.2 `KEX_SERVER_ENCRYPT`.
pub const SERVER_CIPHERS: &[&str] = &[
    "chacha20-poly1305@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
];

/// OpenSSH 9.2 `KEX_SERVER_MAC`.
pub const SERVER_MACS: &[&str] = &[
    "umac-64-etm@openssh.com",
    "umac-128-etm@openssh.com",
    "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com",
    "hmac-sha1-etm@openssh.com",
    "umac-64@openssh.com",
    "umac-128@openssh.com",
    "hmac-sha2-256",
    "hmac-sha2-512",
    "hmac-sha1",
];

/// sshd's default `Compression yes` means delayed zlib.
pub const SERVER_COMPRESSION: &[&str] = &["none", "zlib@openssh.com"];

/// The eight name-lists of a KEXINIT, in wire order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Proposal {
    pub kex: Vec<String>,
    pub host_key: Vec<String>,
    pub cipher_c2s: Vec<String>,
    pub cipher_s2c: Vec<String>,
    pub mac_c2s: Vec<String>,
    pub mac_s2c: Vec<String>,
    pub comp_c2s: Vec<String>,
    pub comp_s2c: Vec<String>,
    pub lang_c2s: Vec<String>,
    pub lang_s2c: Vec<String>,
    pub first_kex_follows: bool,
}

fn owned(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

impl Proposal {
    /// What a default Debian 12 sshd offers.
    pub fn server_default() -> Self {
        Self {
            kex: owned(SERVER_KEX),
            host_key: owned(SERVER_HOST_KEY),
            cipher_c2s: owned(SERVER_CIPHERS),
            cipher_s2c: owned(SERVER_CIPHERS),
            mac_c2s: owned(SERVER_MACS),
            mac_s2c: owned(SERVER_MACS),
            comp_c2s: owned(SERVER_COMPRESSION),
            comp_s2c: owned(SERVER_COMPRESSION),
            lang_c2s: Vec::new(),
            lang_s2c: Vec::new(),
            first_kex_follows: false,
        }
    }

    /// A KEXINIT payload with this proposal and `cookie`.
    pub fn encode(&self, cookie: &[u8; 16]) -> Vec<u8> {
        let mut w = Writer::message(MSG_KEXINIT);
        w.raw(cookie);
        for list in self.lists() {
            w.string(list.join(",").as_bytes());
        }
        w.bool(self.first_kex_follows).u32(0);
        w.finish()
    }

    fn lists(&self) -> [&Vec<String>; 10] {
        [
            &self.kex,
            &self.host_key,
            &self.cipher_c2s,
            &self.cipher_s2c,
            &self.mac_c2s,
            &self.mac_s2c,
            &self.comp_c2s,
            &self.comp_s2c,
            &self.lang_c2s,
            &self.lang_s2c,
        ]
    }

    /// Parses a KEXINIT payload (message byte included).
    pub fn decode(payload: &[u8]) -> Option<Self> {
        let mut r = Reader::new(payload);
        if r.u8()? != MSG_KEXINIT {
            return None;
        }
        r.bytes(16)?;
        let mut next = || -> Option<Vec<String>> {
            Some(r.name_list()?.into_iter().map(str::to_owned).collect())
        };
        let kex = next()?;
        let host_key = next()?;
        let cipher_c2s = next()?;
        let cipher_s2c = next()?;
        let mac_c2s = next()?;
        let mac_s2c = next()?;
        let comp_c2s = next()?;
        let comp_s2c = next()?;
        let lang_c2s = next()?;
        let lang_s2c = next()?;
        let first_kex_follows = r.bool()?;
        r.u32()?;
        Some(Self {
            kex,
            host_key,
            cipher_c2s,
            cipher_s2c,
            mac_c2s,
            mac_s2c,
            comp_c2s,
            comp_s2c,
            lang_c2s,
            lang_s2c,
            first_kex_follows,
        })
    }

    /// The HASSH input string: "kex;enc_c2s;mac_c2s;comp_c2s" (client) or the s2c lists
    /// (hasshServer).
    pub fn hassh_algorithms(&self, server: bool) -> String {
        let (enc, mac, comp) = if server {
            (&self.cipher_s2c, &self.mac_s2c, &self.comp_s2c)
        } else {
            (&self.cipher_c2s, &self.mac_c2s, &self.comp_c2s)
        };
        format!(
            "{};{};{};{}",
            self.kex.join(","),
            enc.join(","),
            mac.join(","),
            comp.join(",")
        )
    }
}

/// MD5 hex of a HASSH algorithm string.
pub fn hassh(algorithms: &str) -> String {
    Md5::digest(algorithms.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Which list had no algorithm in common; OpenSSH names it the same way in its log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no matching {what} found. Their offer: {offer}")]
pub struct NoMatch {
    pub what: &'static str,
    pub offer: String,
}

/// The algorithms both sides agreed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub kex: String,
    pub host_key: String,
    pub cipher_c2s: String,
    pub cipher_s2c: String,
    pub mac_c2s: Option<String>,
    pub mac_s2c: Option<String>,
    pub comp_c2s: String,
    pub comp_s2c: String,
    /// The client's guessed kex packet is wrong and must be ignored (RFC 4253 §7).
    pub ignore_guess: bool,
    pub client_strict: bool,
    pub client_ext_info: bool,
}

fn choose(what: &'static str, client: &[String], server: &[String]) -> Result<String, NoMatch> {
    client
        .iter()
        .find(|c| server.contains(c))
        .cloned()
        .ok_or_else(|| NoMatch {
            what,
            offer: client.join(","),
        })
}

/// Whether a cipher carries its own integrity tag (then no MAC is negotiated).
pub fn is_aead(cipher: &str) -> bool {
    matches!(
        cipher,
        "chacha20-poly1305@openssh.com" | "aes128-gcm@openssh.com" | "aes256-gcm@openssh.com"
    )
}

/// Chooses from the client's proposal against what the server advertised. Both sides run
/// this independently, so it must use the advertised lists even for algorithms this build
/// cannot run (the caller refuses those afterwards).
pub fn negotiate(client: &Proposal, server: &Proposal) -> Result<Negotiated, NoMatch> {
    // The markers are not algorithms: a client listing only them shares nothing with us.
    let server_kex: Vec<String> = server
        .kex
        .iter()
        .filter(|k| !k.starts_with("kex-strict-") && !k.starts_with("ext-info-"))
        .cloned()
        .collect();
    let kex = choose("key exchange method", &client.kex, &server_kex)?;
    let host_key = choose("host key type", &client.host_key, &server.host_key)?;
    let cipher_c2s = choose("cipher", &client.cipher_c2s, &server.cipher_c2s)?;
    let cipher_s2c = choose("cipher", &client.cipher_s2c, &server.cipher_s2c)?;
    let mac_c2s = if is_aead(&cipher_c2s) {
        None
    } else {
        Some(choose("MAC", &client.mac_c2s, &server.mac_c2s)?)
    };
    let mac_s2c = if is_aead(&cipher_s2c) {
        None
    } else {
        Some(choose("MAC", &client.mac_s2c, &server.mac_s2c)?)
    };
    let comp_c2s = choose("compression", &client.comp_c2s, &server.comp_c2s)?;
    let comp_s2c = choose("compression", &client.comp_s2c, &server.comp_s2c)?;
    let ignore_guess = client.first_kex_follows
        && (client.kex.first() != Some(&kex) || client.host_key.first() != Some(&host_key));
    Ok(Negotiated {
        kex,
        host_key,
        cipher_c2s,
        cipher_s2c,
        mac_c2s,
        mac_s2c,
        comp_c2s,
        comp_s2c,
        ignore_guess,
        client_strict: client
            .kex
            .iter()
            .any(|k| k == "kex-strict-c-v00@openssh.com"),
        client_ext_info: client.kex.iter().any(|k| k == "ext-info-c"),
    })
}

//! Binary packet protection per direction (RFC 4253 §6): the negotiated cipher and MAC,
//! framing, padding, sequence numbers. OpenSSH's limits and checks, in its order.

use aes::cipher::{KeyIvInit as _, StreamCipher as _, StreamCipherSeek as _};
use aes_gcm::{AeadInPlace as _, KeyInit as _};
use subtle::ConstantTimeEq as _;

/// OpenSSH's PACKET_MAX_SIZE: larger packets are refused.
pub const MAX_PACKET: usize = 256 * 1024;

/// Ciphers this transport runs (all of OpenSSH 9.2's defaults).
pub const CIPHERS: &[&str] = super::kexinit::SERVER_CIPHERS;
/// MACs this transport runs (all of OpenSSH 9.2's defaults).
pub const MACS: &[&str] = super::kexinit::SERVER_MACS;

/// Key material sizes (bytes) a cipher needs from the key derivation.
pub fn cipher_sizes(name: &str) -> Option<(usize, usize)> {
    // (key, iv)
    Some(match name {
        "chacha20-poly1305@openssh.com" => (64, 0),
        "aes128-ctr" => (16, 16),
        "aes192-ctr" => (24, 16),
        "aes256-ctr" => (32, 16),
        "aes128-gcm@openssh.com" => (16, 12),
        "aes256-gcm@openssh.com" => (32, 12),
        _ => return None,
    })
}

/// MAC key size (bytes).
pub fn mac_key_len(name: &str) -> Option<usize> {
    Some(match mac_base(name) {
        "hmac-sha2-256" => 32,
        "hmac-sha2-512" => 64,
        "hmac-sha1" => 20,
        "umac-64" | "umac-128" => 16,
        _ => return None,
    })
}

/// The MAC name without its encrypt-then-MAC or vendor suffix.
fn mac_base(name: &str) -> &str {
    name.trim_end_matches("-etm@openssh.com")
        .trim_end_matches("@openssh.com")
}

enum Ctr {
    A128(ctr::Ctr128BE<aes::Aes128>),
    A192(ctr::Ctr128BE<aes::Aes192>),
    A256(ctr::Ctr128BE<aes::Aes256>),
}

impl Ctr {
    fn apply(&mut self, buf: &mut [u8]) {
        match self {
            Self::A128(c) => c.apply_keystream(buf),
            Self::A192(c) => c.apply_keystream(buf),
            Self::A256(c) => c.apply_keystream(buf),
        }
    }
}

enum Gcm {
    A128(Box<aes_gcm::Aes128Gcm>),
    A256(Box<aes_gcm::Aes256Gcm>),
}

enum Cipher {
    Plain,
    /// PROTOCOL.chacha20poly1305: `main` (K_2) encrypts the payload and keys Poly1305,
    /// `header` (K_1) encrypts the length; the nonce is the sequence number.
    ChaCha {
        main: [u8; 32],
        header: [u8; 32],
    },
    Ctr(Box<Ctr>),
    /// RFC 5647 as OpenSSH does it: the length is additional data, the 64-bit invocation
    /// counter in the last 8 IV bytes grows by one per packet.
    Gcm {
        aead: Gcm,
        iv: [u8; 12],
    },
}

enum MacKey {
    Sha256(Vec<u8>),
    Sha512(Vec<u8>),
    Sha1(Vec<u8>),
    Umac(Box<super::umac::Umac>),
}

struct Mac {
    key: MacKey,
    etm: bool,
}

impl Mac {
    fn len(&self) -> usize {
        match &self.key {
            MacKey::Sha256(_) => 32,
            MacKey::Sha512(_) => 64,
            MacKey::Sha1(_) => 20,
            MacKey::Umac(u) => u.tag_len(),
        }
    }

    fn compute(&self, seq: u32, data: &[u8]) -> Vec<u8> {
        fn run<M: hmac::Mac + hmac::digest::KeyInit>(key: &[u8], seq: u32, data: &[u8]) -> Vec<u8> {
            match <M as hmac::Mac>::new_from_slice(key) {
                Ok(mut m) => {
                    m.update(&seq.to_be_bytes());
                    m.update(data);
                    m.finalize().into_bytes().to_vec()
                }
                // HMAC takes keys of any length; unreachable in practice.
                Err(_) => Vec::new(),
            }
        }
        match &self.key {
            MacKey::Sha256(k) => run::<hmac::Hmac<sha2::Sha256>>(k, seq, data),
            MacKey::Sha512(k) => run::<hmac::Hmac<sha2::Sha512>>(k, seq, data),
            MacKey::Sha1(k) => run::<hmac::Hmac<sha1::Sha1>>(k, seq, data),
            // OpenSSH feeds UMAC the sequence number as its nonce, not as message bytes.
            MacKey::Umac(u) => u.tag(&u64::from(seq).to_be_bytes(), data),
        }
    }

    fn verify(&self, seq: u32, data: &[u8], tag: &[u8]) -> bool {
        let expect = self.compute(seq, data);
        expect.len() == tag.len() && bool::from(expect.ct_eq(tag))
    }
}

/// Why an incoming packet was refused; each maps to what OpenSSH does about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// OpenSSH answers DISCONNECT "Packet corrupt".
    #[error("Bad packet length {0}.")]
    BadLength(u32),
    /// OpenSSH silently discards the rest of the connection.
    #[error("padding error: need {need} block {block} mod {rem}")]
    BlockAlign {
        need: usize,
        block: usize,
        rem: usize,
    },
    /// OpenSSH silently discards the rest of the connection.
    #[error("Corrupted MAC on input.")]
    BadMac,
    /// OpenSSH answers DISCONNECT "Corrupted padlen N on input.".
    #[error("Corrupted padlen {0} on input.")]
    BadPadding(u8),
}

/// One direction's protection state.
pub struct Direction {
    cipher: Cipher,
    mac: Option<Mac>,
    pub seq: u32,
    /// CTR without encrypt-then-MAC: the decrypted first block, kept until the whole packet is
    /// in (the length lives inside it).
    first_block: Option<Vec<u8>>,
}

impl std::fmt::Debug for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Direction")
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl Direction {
    pub fn plain() -> Self {
        Self {
            cipher: Cipher::Plain,
            mac: None,
            seq: 0,
            first_block: None,
        }
    }

    /// New keys for a direction, keeping its sequence number (RFC 4253 §6.4).
    pub fn keyed(
        cipher: &str,
        key: &[u8],
        iv: &[u8],
        mac: Option<(&str, &[u8])>,
        seq: u32,
    ) -> Option<Self> {
        let cipher = match cipher {
            "chacha20-poly1305@openssh.com" => Cipher::ChaCha {
                main: key.get(..32)?.try_into().ok()?,
                header: key.get(32..64)?.try_into().ok()?,
            },
            "aes128-ctr" => Cipher::Ctr(Box::new(Ctr::A128(
                ctr::Ctr128BE::new_from_slices(key, iv).ok()?,
            ))),
            "aes192-ctr" => Cipher::Ctr(Box::new(Ctr::A192(
                ctr::Ctr128BE::new_from_slices(key, iv).ok()?,
            ))),
            "aes256-ctr" => Cipher::Ctr(Box::new(Ctr::A256(
                ctr::Ctr128BE::new_from_slices(key, iv).ok()?,
            ))),
            "aes128-gcm@openssh.com" => Cipher::Gcm {
                aead: Gcm::A128(Box::new(aes_gcm::Aes128Gcm::new_from_slice(key).ok()?)),
                iv: iv.try_into().ok()?,
            },
            "aes256-gcm@openssh.com" => Cipher::Gcm {
                aead: Gcm::A256(Box::new(aes_gcm::Aes256Gcm::new_from_slice(key).ok()?)),
                iv: iv.try_into().ok()?,
            },
            _ => return None,
        };
        let mac = match mac {
            None => None,
            Some((name, k)) => {
                let etm = name.ends_with("-etm@openssh.com");
                let key = match mac_base(name) {
                    "hmac-sha2-256" => MacKey::Sha256(k.to_vec()),
                    "hmac-sha2-512" => MacKey::Sha512(k.to_vec()),
                    "hmac-sha1" => MacKey::Sha1(k.to_vec()),
                    "umac-64" => MacKey::Umac(Box::new(super::umac::Umac::new(k, 8)?)),
                    "umac-128" => MacKey::Umac(Box::new(super::umac::Umac::new(k, 16)?)),
                    _ => return None,
                };
                Some(Mac { key, etm })
            }
        };
        Some(Self {
            cipher,
            mac,
            seq,
            first_block: None,
        })
    }

    fn block_size(&self) -> usize {
        match self.cipher {
            Cipher::Plain | Cipher::ChaCha { .. } => 8,
            Cipher::Ctr(_) | Cipher::Gcm { .. } => 16,
        }
    }

    /// Whether the 4-byte length is outside the padded, block-aligned part.
    fn length_outside(&self) -> bool {
        matches!(self.cipher, Cipher::ChaCha { .. } | Cipher::Gcm { .. })
            || self.mac.as_ref().is_some_and(|m| m.etm)
    }

    fn tag_len(&self) -> usize {
        match self.cipher {
            Cipher::ChaCha { .. } | Cipher::Gcm { .. } => 16,
            _ => self.mac.as_ref().map_or(0, Mac::len),
        }
    }

    /// Frames, pads, encrypts and authenticates one payload.
    pub fn seal(&mut self, payload: &[u8], rng: &mut impl rand_core::RngCore) -> Vec<u8> {
        let block = self.block_size();
        let aad = if self.length_outside() { 4 } else { 0 };
        let unpadded = 4 + 1 + payload.len() - aad;
        let mut pad = block - unpadded % block;
        if pad < 4 {
            pad += block;
        }
        let packet_len = 1 + payload.len() + pad;
        let mut pkt = Vec::with_capacity(4 + packet_len + self.tag_len());
        pkt.extend_from_slice(&u32::try_from(packet_len).unwrap_or(u32::MAX).to_be_bytes());
        pkt.push(u8::try_from(pad).unwrap_or(4));
        pkt.extend_from_slice(payload);
        let start = pkt.len();
        pkt.resize(start + pad, 0);
        // sshd pads with zeros until a cipher is in place, with random bytes afterwards.
        if !matches!(self.cipher, Cipher::Plain) {
            rng.fill_bytes(&mut pkt[start..]);
        }
        let seq = self.seq;
        match &mut self.cipher {
            Cipher::Plain => {}
            Cipher::ChaCha { main, header } => {
                let nonce = u64::from(seq).to_be_bytes();
                let mut hc = chacha20::ChaCha20Legacy::new(&(*header).into(), &nonce.into());
                hc.apply_keystream(&mut pkt[..4]);
                let mut mc = chacha20::ChaCha20Legacy::new(&(*main).into(), &nonce.into());
                let mut poly_key = [0u8; 32];
                mc.apply_keystream(&mut poly_key);
                mc.seek(64u64);
                mc.apply_keystream(&mut pkt[4..]);
                let tag = poly1305_tag(&poly_key, &pkt);
                pkt.extend_from_slice(&tag);
            }
            Cipher::Ctr(c) => {
                if let Some(mac) = &self.mac {
                    if mac.etm {
                        c.apply(&mut pkt[4..]);
                        let tag = mac.compute(seq, &pkt);
                        pkt.extend_from_slice(&tag);
                    } else {
                        let tag = mac.compute(seq, &pkt);
                        c.apply(&mut pkt);
                        pkt.extend_from_slice(&tag);
                    }
                } else {
                    c.apply(&mut pkt);
                }
            }
            Cipher::Gcm { aead, iv } => {
                let (head, body) = pkt.split_at_mut(4);
                let nonce = aes_gcm::Nonce::from(*iv);
                let tag = match aead {
                    Gcm::A128(a) => a.encrypt_in_place_detached(&nonce, head, body),
                    Gcm::A256(a) => a.encrypt_in_place_detached(&nonce, head, body),
                };
                // Encryption only fails for inputs far beyond our packet limit.
                if let Ok(tag) = tag {
                    pkt.extend_from_slice(&tag);
                }
                gcm_next_iv(iv);
            }
        }
        self.seq = self.seq.wrapping_add(1);
        pkt
    }

    /// Reads one complete packet from the front of `input` and returns its payload with the
    /// bytes it took, `Ok(None)` while more bytes are needed. The caller cuts what packets took
    /// once per read: cutting each packet off the buffer moved the rest of a 64 KiB slice of
    /// tiny packets once per packet.
    pub fn open(&mut self, input: &[u8]) -> Result<Option<(Vec<u8>, usize)>, PacketError> {
        let block = self.block_size();
        let tag_len = self.tag_len();
        let seq = self.seq;
        let length_outside = self.length_outside();
        let plain = match &mut self.cipher {
            Cipher::Plain | Cipher::Ctr(_) if !length_outside => {
                if self.first_block.is_none() {
                    if input.len() < block {
                        return Ok(None);
                    }
                    let mut first = input[..block].to_vec();
                    if let Cipher::Ctr(c) = &mut self.cipher {
                        c.apply(&mut first);
                    }
                    let len = read_len(&first);
                    check_len(len)?;
                    let need = len as usize + 4;
                    if !need.is_multiple_of(block) {
                        return Err(PacketError::BlockAlign {
                            need,
                            block,
                            rem: need % block,
                        });
                    }
                    self.first_block = Some(first);
                }
                let first = self.first_block.as_deref().unwrap_or_default();
                let total = read_len(first) as usize + 4;
                if input.len() < total + tag_len {
                    return Ok(None);
                }
                let mut plain = first.to_vec();
                plain.extend_from_slice(&input[block..total]);
                if let Cipher::Ctr(c) = &mut self.cipher {
                    c.apply(&mut plain[block..]);
                }
                if let Some(mac) = &self.mac
                    && !mac.verify(seq, &plain, &input[total..total + tag_len])
                {
                    return Err(PacketError::BadMac);
                }
                self.first_block = None;
                (plain, total + tag_len)
            }
            Cipher::Plain | Cipher::Ctr(_) => {
                // Encrypt-then-MAC: the length is in clear and authenticated.
                if input.len() < 4 {
                    return Ok(None);
                }
                let len = read_len(input);
                check_len(len)?;
                let total = len as usize + 4;
                aligned(len as usize, block)?;
                if input.len() < total + tag_len {
                    return Ok(None);
                }
                if let Some(mac) = &self.mac
                    && !mac.verify(seq, &input[..total], &input[total..total + tag_len])
                {
                    return Err(PacketError::BadMac);
                }
                let mut plain = input[..total].to_vec();
                if let Cipher::Ctr(c) = &mut self.cipher {
                    c.apply(&mut plain[4..]);
                }
                (plain, total + tag_len)
            }
            Cipher::ChaCha { main, header } => {
                if input.len() < 4 {
                    return Ok(None);
                }
                let nonce = u64::from(seq).to_be_bytes();
                let mut len_bytes = [input[0], input[1], input[2], input[3]];
                chacha20::ChaCha20Legacy::new(&(*header).into(), &nonce.into())
                    .apply_keystream(&mut len_bytes);
                let len = u32::from_be_bytes(len_bytes);
                check_len(len)?;
                aligned(len as usize, block)?;
                let total = len as usize + 4;
                if input.len() < total + tag_len {
                    return Ok(None);
                }
                let mut mc = chacha20::ChaCha20Legacy::new(&(*main).into(), &nonce.into());
                let mut poly_key = [0u8; 32];
                mc.apply_keystream(&mut poly_key);
                let tag = poly1305_tag(&poly_key, &input[..total]);
                if !bool::from(tag.as_slice().ct_eq(&input[total..total + tag_len])) {
                    return Err(PacketError::BadMac);
                }
                let mut plain = input[..total].to_vec();
                plain[..4].copy_from_slice(&len_bytes);
                mc.seek(64u64);
                mc.apply_keystream(&mut plain[4..]);
                (plain, total + tag_len)
            }
            Cipher::Gcm { aead, iv } => {
                if input.len() < 4 {
                    return Ok(None);
                }
                let len = read_len(input);
                check_len(len)?;
                aligned(len as usize, block)?;
                let total = len as usize + 4;
                if input.len() < total + tag_len {
                    return Ok(None);
                }
                let mut plain = input[..total].to_vec();
                let tag = aes_gcm::Tag::clone_from_slice(&input[total..total + tag_len]);
                let nonce = aes_gcm::Nonce::from(*iv);
                let (head, body) = plain.split_at_mut(4);
                let ok = match aead {
                    Gcm::A128(a) => a.decrypt_in_place_detached(&nonce, head, body, &tag),
                    Gcm::A256(a) => a.decrypt_in_place_detached(&nonce, head, body, &tag),
                };
                if ok.is_err() {
                    return Err(PacketError::BadMac);
                }
                gcm_next_iv(iv);
                (plain, total + tag_len)
            }
        };
        let (plain, used) = plain;
        self.seq = self.seq.wrapping_add(1);
        // plain = length(4) || padding_length(1) || payload || padding
        let pad = plain.get(4).copied().unwrap_or(0);
        if pad < 4 {
            return Err(PacketError::BadPadding(pad));
        }
        let end = plain
            .len()
            .checked_sub(usize::from(pad))
            .filter(|&e| e >= 5);
        let Some(end) = end else {
            return Err(PacketError::BadPadding(pad));
        };
        Ok(Some((plain[5..end].to_vec(), used)))
    }
}

fn read_len(b: &[u8]) -> u32 {
    match b.get(..4) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
        _ => 0,
    }
}

fn check_len(len: u32) -> Result<(), PacketError> {
    if len < 5 || len as usize > MAX_PACKET {
        return Err(PacketError::BadLength(len));
    }
    Ok(())
}

fn aligned(len: usize, block: usize) -> Result<(), PacketError> {
    if !len.is_multiple_of(block) {
        return Err(PacketError::BlockAlign {
            need: len,
            block,
            rem: len % block,
        });
    }
    Ok(())
}

fn gcm_next_iv(iv: &mut [u8; 12]) {
    let mut counter = [0u8; 8];
    counter.copy_from_slice(&iv[4..]);
    let next = u64::from_be_bytes(counter).wrapping_add(1);
    iv[4..].copy_from_slice(&next.to_be_bytes());
}

fn poly1305_tag(key: &[u8; 32], data: &[u8]) -> [u8; 16] {
    use poly1305::universal_hash::KeyInit as _;
    poly1305::Poly1305::new(key.into())
        .compute_unpadded(data)
        .into()
}

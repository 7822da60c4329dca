//! UMAC (RFC 4418) with 64- and 128-bit tags, as OpenSSH's umac-64/umac-128 MACs use it: an
//! AES-128 key, the packet sequence number as the 8-byte nonce.

use aes::cipher::{BlockEncrypt as _, KeyInit as _};

/// 2^64 - 59, the POLY64 prime.
const P64: u128 = (1u128 << 64) - 59;
/// 2^36 - 5, the L3-HASH prime.
const P36: u64 = (1u64 << 36) - 5;
const L1_CHUNK: usize = 1024;

/// Keyed UMAC state (all subkeys derived up front; they only depend on the key).
pub struct Umac {
    taglen: usize,
    pdf: aes::Aes128,
    l1: Vec<u32>,
    l2: Vec<u64>,
    l3k1: Vec<[u64; 8]>,
    l3k2: Vec<u32>,
}

fn kdf(cipher: &aes::Aes128, index: u8, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 16);
    let mut counter: u64 = 1;
    while out.len() < len {
        let mut block = [0u8; 16];
        block[7] = index;
        block[8..].copy_from_slice(&counter.to_be_bytes());
        let mut b = block.into();
        cipher.encrypt_block(&mut b);
        out.extend_from_slice(&b);
        counter += 1;
    }
    out.truncate(len);
    out
}

fn be_u32(b: &[u8]) -> u32 {
    b.iter()
        .take(4)
        .fold(0, |acc, &x| (acc << 8) | u32::from(x))
}

fn be_u64(b: &[u8]) -> u64 {
    b.iter()
        .take(8)
        .fold(0, |acc, &x| (acc << 8) | u64::from(x))
}

impl Umac {
    /// `taglen` is 8 (umac-64) or 16 (umac-128); the key is 16 bytes.
    pub fn new(key: &[u8], taglen: usize) -> Option<Self> {
        if taglen != 8 && taglen != 16 {
            return None;
        }
        let master = aes::Aes128::new_from_slice(key).ok()?;
        let pdf = aes::Aes128::new_from_slice(&kdf(&master, 0, 16)).ok()?;
        let iters = taglen / 4;
        let l1 = kdf(&master, 1, L1_CHUNK + (iters - 1) * 16)
            .chunks(4)
            .map(be_u32)
            .collect();
        let l2 = kdf(&master, 2, iters * 24)
            .chunks(24)
            .map(|k| be_u64(k) & 0x01FF_FFFF_01FF_FFFF)
            .collect();
        let l3k1 = kdf(&master, 3, iters * 64)
            .chunks(64)
            .map(|k| {
                let mut words = [0u64; 8];
                for (w, c) in words.iter_mut().zip(k.chunks(8)) {
                    *w = be_u64(c) % P36;
                }
                words
            })
            .collect();
        let l3k2 = kdf(&master, 4, iters * 4).chunks(4).map(be_u32).collect();
        Some(Self {
            taglen,
            pdf,
            l1,
            l2,
            l3k1,
            l3k2,
        })
    }

    pub fn tag_len(&self) -> usize {
        self.taglen
    }

    /// The tag of `msg` under `nonce` (at most 16 bytes).
    pub fn tag(&self, nonce: &[u8], msg: &[u8]) -> Vec<u8> {
        let mut out = self.pad(nonce);
        for i in 0..self.taglen / 4 {
            let h = self.uhash_iter(i, msg).to_be_bytes();
            for (o, x) in out[i * 4..i * 4 + 4].iter_mut().zip(h) {
                *o ^= x;
            }
        }
        out
    }

    /// PDF: AES of the nonce under the derived key; UMAC-64 uses one half of the block,
    /// chosen (and cleared) by the nonce's low bit.
    fn pad(&self, nonce: &[u8]) -> Vec<u8> {
        let mut block = [0u8; 16];
        let n = nonce.len().min(16);
        block[..n].copy_from_slice(&nonce[..n]);
        let mut index = 0;
        if self.taglen == 8 && n > 0 {
            index = usize::from(block[n - 1] & 1);
            block[n - 1] &= 0xfe;
        }
        let mut b = block.into();
        self.pdf.encrypt_block(&mut b);
        b[index * self.taglen..(index + 1) * self.taglen].to_vec()
    }

    fn uhash_iter(&self, i: usize, msg: &[u8]) -> u32 {
        let l1 = self.l1_hash(i, msg);
        let b: u64 = if msg.len() <= L1_CHUNK {
            l1.first().copied().unwrap_or(0)
        } else {
            // Packets never exceed 2^17 bytes of L1 output (256 KiB / 1024 * 8), so POLY128's
            // extension of L2-HASH is never needed here.
            poly64(self.l2[i], &l1)
        };
        self.l3_hash(i, b)
    }

    fn l1_hash(&self, i: usize, msg: &[u8]) -> Vec<u64> {
        let key = &self.l1[i * 4..];
        if msg.is_empty() {
            return vec![nh(key, &[0u8; 32])];
        }
        msg.chunks(L1_CHUNK)
            .map(|chunk| {
                let bits = (chunk.len() as u64) * 8;
                let padded_len = chunk.len().div_ceil(32) * 32;
                let h = if padded_len == chunk.len() {
                    nh(key, chunk)
                } else {
                    let mut padded = chunk.to_vec();
                    padded.resize(padded_len, 0);
                    nh(key, &padded)
                };
                h.wrapping_add(bits)
            })
            .collect()
    }

    fn l3_hash(&self, i: usize, b: u64) -> u32 {
        // B is 16 bytes whose top 8 are zero: only the last four 16-bit words can be nonzero.
        let k = &self.l3k1[i];
        let mut y: u64 = 0;
        for (j, kj) in k.iter().enumerate().skip(4) {
            let m = (b >> (16 * (7 - j))) & 0xffff;
            y += m * kj;
        }
        let y = (y % P36) as u32;
        y ^ self.l3k2[i]
    }
}

/// NH over a block whose length is a multiple of 32 bytes; message words are little-endian.
fn nh(key: &[u32], msg: &[u8]) -> u64 {
    let mut y: u64 = 0;
    for (block, k) in msg.chunks_exact(32).zip(key.chunks(8)) {
        let m: Vec<u32> = block
            .chunks_exact(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        for j in 0..4 {
            let a = u64::from(m[j].wrapping_add(k[j]));
            let b = u64::from(m[j + 4].wrapping_add(k[j + 4]));
            y = y.wrapping_add(a.wrapping_mul(b));
        }
    }
    y
}

fn poly64(k: u64, words: &[u64]) -> u64 {
    let k = u128::from(k);
    let mut y: u128 = 1;
    for &m in words {
        if m >= 0xFFFF_FFFF_0000_0000 {
            y = (k * y + (P64 - 1)) % P64;
            y = (k * y + u128::from(m - 59)) % P64;
        } else {
            y = (k * y + u128::from(m)) % P64;
        }
    }
    y as u64
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// RFC 4418 §5 test vectors (as also used by GNU Nettle's testsuite).
    #[test]
    fn rfc4418_vectors() {
        let u64_ = Umac::new(b"abcdefghijklmnop", 8).unwrap();
        let u128_ = Umac::new(b"abcdefghijklmnop", 16).unwrap();
        let nonce = b"bcdefghi";
        let cases: [(Vec<u8>, &str, &str); 6] = [
            (
                b"".to_vec(),
                "6e155fad26900be1",
                "32fedb100c79ad58f07ff7643cc60465",
            ),
            (
                vec![b'a'; 3],
                "44b5cb542f220104",
                "185e4fe905cba7bd85e4c2dc3d117d8d",
            ),
            (
                vec![b'a'; 1024],
                "26bf2f5d60118bd9",
                "7a54abe04af82d60fb298c3cbd195bcb",
            ),
            (
                vec![b'a'; 32768],
                "27f8ef643b0d118d",
                "7b136bd911e4b734286ef2be501f2c3c",
            ),
            (
                b"abc".to_vec(),
                "d4d7b9f6bd4fbfcf",
                "883c3d4b97a61976ffcf232308cba5a5",
            ),
            (
                b"abc".repeat(500),
                "d4cf26ddefd5c01a",
                "8824a260c53c66a36c9260a62cb83aa1",
            ),
        ];
        for (msg, t64, t128) in cases {
            assert_eq!(
                hex(&u64_.tag(nonce, &msg)),
                t64,
                "umac-64 len {}",
                msg.len()
            );
            assert_eq!(
                hex(&u128_.tag(nonce, &msg)),
                t128,
                "umac-128 len {}",
                msg.len()
            );
        }
        // Odd nonce (low bit set) selects the other half of the pad.
        let msg = b"defdefdefdefdef".repeat(137)[..2049].to_vec();
        assert_eq!(hex(&u64_.tag(b"b", &msg)), "ad1ee4ab606061c5");
    }
}

//! `hls_keys`: AES-128 key generation and streaming CBC encryption of segments (RFC 8216
//! §4.3.2.4: AES-128-CBC, PKCS#7 padding, one key per `EXT-X-KEY`).
//!
//! The OS RNG is only reachable when a stream is created or restarted, but keys rotate every
//! `hls_fragments_per_key` segments in between, so each stream seeds a small generator from
//! 32 random bytes: key n = AES-128(seed key, nonce XOR n), the counter-mode construction of
//! NIST SP 800-90A's CTR_DRBG without the reseeding. Keys of different streams and sessions
//! come from independent seeds.

use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockEncrypt, KeyInit};
use aes::Aes128;

/// AES block (and key) size in bytes.
pub const BLOCK: usize = 16;

/// Generates segment keys from one random seed; see the module docs.
#[derive(Clone)]
pub struct KeyGenerator {
    cipher: Aes128,
    nonce: u128,
    counter: u128,
}

impl KeyGenerator {
    /// Seeds from 32 bytes of `random`.
    pub fn new(random: &mut dyn FnMut(&mut [u8])) -> Self {
        let mut seed = [0u8; 2 * BLOCK];
        random(&mut seed);
        let (k, n) = seed.split_at(BLOCK);
        let mut nonce = [0u8; BLOCK];
        nonce.copy_from_slice(n);
        KeyGenerator {
            cipher: Aes128::new(GenericArray::from_slice(k)),
            nonce: u128::from_be_bytes(nonce),
            counter: 0,
        }
    }

    /// The next 16-byte key.
    pub fn next_key(&mut self) -> [u8; BLOCK] {
        let mut block = GenericArray::from((self.nonce ^ self.counter).to_be_bytes());
        self.counter = self.counter.wrapping_add(1);
        self.cipher.encrypt_block(&mut block);
        block.into()
    }
}

impl std::fmt::Debug for KeyGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyGenerator { .. }")
    }
}

/// Streaming AES-128-CBC: whole blocks are encrypted as the segment is written, the tail
/// is padded (PKCS#7) when the segment is committed.
#[derive(Clone)]
pub struct CbcEncryptor {
    cipher: Aes128,
    chain: [u8; BLOCK],
}

impl std::fmt::Debug for CbcEncryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CbcEncryptor { .. }")
    }
}

impl CbcEncryptor {
    pub fn new(key: &[u8; BLOCK], iv: u128) -> Self {
        CbcEncryptor {
            cipher: Aes128::new(GenericArray::from_slice(key)),
            chain: iv.to_be_bytes(),
        }
    }

    /// Encrypts `data` in place; its length must be a multiple of 16 (a partial tail block
    /// is left as is; callers only pass whole blocks).
    pub fn encrypt_blocks(&mut self, data: &mut [u8]) {
        for block in data.chunks_exact_mut(BLOCK) {
            for (b, c) in block.iter_mut().zip(self.chain.iter()) {
                *b ^= c;
            }
            let ga = GenericArray::from_mut_slice(block);
            self.cipher.encrypt_block(ga);
            self.chain.copy_from_slice(block);
        }
    }

    /// Pads `tail` (fewer than 16 bytes left over, or a whole buffer) with PKCS#7 and
    /// encrypts all of it in place.
    pub fn finish(&mut self, tail: &mut Vec<u8>) {
        let pad = BLOCK - tail.len() % BLOCK;
        tail.extend(std::iter::repeat_n(pad as u8, pad));
        self.encrypt_blocks(tail);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use aes::cipher::BlockDecrypt;

    /// AES-128-CBC decryption with PKCS#7 unpadding (for tests); `None` on bad padding.
    pub(crate) fn decrypt_cbc(key: &[u8; 16], iv: u128, data: &[u8]) -> Option<Vec<u8>> {
        if data.is_empty() || !data.len().is_multiple_of(BLOCK) {
            return None;
        }
        let cipher = Aes128::new(GenericArray::from_slice(key));
        let mut prev = iv.to_be_bytes();
        let mut out = Vec::with_capacity(data.len());
        for block in data.chunks_exact(BLOCK) {
            let mut b = GenericArray::clone_from_slice(block);
            cipher.decrypt_block(&mut b);
            out.extend(b.iter().zip(prev.iter()).map(|(x, p)| x ^ p));
            prev.copy_from_slice(block);
        }
        let pad = usize::from(*out.last()?);
        if pad == 0
            || pad > BLOCK
            || out[out.len() - pad..]
                .iter()
                .any(|b| usize::from(*b) != pad)
        {
            return None;
        }
        out.truncate(out.len() - pad);
        Some(out)
    }

    #[test]
    fn cbc_matches_nist_sp800_38a_vector() {
        // F.2.1 CBC-AES128.Encrypt, first two blocks.
        let key: [u8; 16] = [
            0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6, 0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf,
            0x4f, 0x3c,
        ];
        let iv = 0x000102030405060708090a0b0c0d0e0fu128;
        let mut data = hex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51");
        let mut enc = CbcEncryptor::new(&key, iv);
        // In two calls, as segments are written.
        let (a, b) = data.split_at_mut(16);
        enc.encrypt_blocks(a);
        enc.encrypt_blocks(b);
        assert_eq!(
            data,
            hex("7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2")
        );
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn padding_round_trips_for_every_tail_length() {
        let key = [7u8; 16];
        for len in 0..40usize {
            let plain: Vec<u8> = (0..len as u8).collect();
            let whole = len / 16 * 16;
            let mut enc = CbcEncryptor::new(&key, 5);
            let mut head = plain[..whole].to_vec();
            enc.encrypt_blocks(&mut head);
            let mut tail = plain[whole..].to_vec();
            enc.finish(&mut tail);
            head.extend(tail);
            assert_eq!(head.len(), (len / 16 + 1) * 16);
            assert_eq!(decrypt_cbc(&key, 5, &head).unwrap(), plain);
        }
    }

    #[test]
    fn key_generator_gives_distinct_keys_from_the_seed() {
        let mut n = 0u8;
        let mut rnd = |b: &mut [u8]| {
            for x in b.iter_mut() {
                n = n.wrapping_add(1);
                *x = n;
            }
        };
        let mut g = KeyGenerator::new(&mut rnd);
        let k1 = g.next_key();
        let k2 = g.next_key();
        assert_ne!(k1, k2);
        let mut g2 = KeyGenerator::new(&mut |b: &mut [u8]| b.fill(9));
        assert_ne!(g2.next_key(), k1);
    }
}

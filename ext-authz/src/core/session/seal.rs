//! Authenticated encryption for everything we hand to a browser (session cookies, login state):
//! AES-256-GCM under a key ring. The first key seals; every key opens, so keys can be rotated by
//! putting a new one first and dropping the old one after a session lifetime.
//!
//! A sealed value is `base64url(key id ‖ nonce ‖ ciphertext ‖ tag)`. The key id is the first four
//! bytes of SHA-256 of the key, so opening tries exactly one key. The purpose (e.g. the cookie
//! name) is the additional authenticated data: a value sealed as a login-state cookie can never
//! be replayed as a session cookie.

pub use crate::core::random::random_token;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::digest::{digest, SHA256};
use ring::rand::{SecureRandom, SystemRandom};

const KEY_ID_LEN: usize = 4;
const TAG_LEN: usize = 16;
pub const KEY_LEN: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not base64")]
    NotBase64,
    #[error("a session key must be {KEY_LEN} random bytes (44 base64 characters); this one has {0} bytes")]
    Length(usize),
    #[error("at least one session key is needed")]
    NoKeys,
    #[error("two session keys are the same")]
    Duplicate,
}

/// Why a sealed value did not open. Callers treat every case alike (no session), the variants
/// only feed logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("not a sealed value")]
    Malformed,
    #[error("sealed with a key we do not have")]
    UnknownKey,
    #[error("tampered with, or sealed for another purpose")]
    Forged,
}

struct SealKey {
    id: [u8; KEY_ID_LEN],
    key: LessSafeKey,
}

pub struct Sealer {
    keys: Vec<SealKey>,
    rng: SystemRandom,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").field("keys", &self.keys.len()).finish()
    }
}

/// Decodes a key written as base64 (standard or URL-safe, padding optional).
pub fn parse_key(text: &str) -> Result<Vec<u8>, KeyError> {
    let text = text.trim().trim_end_matches('=');
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(text)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
        .map_err(|_| KeyError::NotBase64)?;
    if bytes.len() != KEY_LEN {
        return Err(KeyError::Length(bytes.len()));
    }
    Ok(bytes)
}

/// A fresh random key, base64 — what `ext-authz session-key new` prints.
pub fn new_key() -> String {
    let mut key = [0u8; KEY_LEN];
    SystemRandom::new().fill(&mut key).expect("the system random generator works");
    base64::engine::general_purpose::STANDARD.encode(key)
}

impl Sealer {
    /// The first key seals; all of them open.
    pub fn new(keys: &[Vec<u8>]) -> Result<Sealer, KeyError> {
        if keys.is_empty() {
            return Err(KeyError::NoKeys);
        }
        let mut ring = Vec::with_capacity(keys.len());
        for key in keys {
            if key.len() != KEY_LEN {
                return Err(KeyError::Length(key.len()));
            }
            let id: [u8; KEY_ID_LEN] = digest(&SHA256, key).as_ref()[..KEY_ID_LEN].try_into().expect("4 bytes");
            if ring.iter().any(|k: &SealKey| k.id == id) {
                return Err(KeyError::Duplicate);
            }
            let unbound = UnboundKey::new(&AES_256_GCM, key).expect("32-byte AES key");
            ring.push(SealKey { id, key: LessSafeKey::new(unbound) });
        }
        Ok(Sealer { keys: ring, rng: SystemRandom::new() })
    }

    pub fn seal(&self, purpose: &str, plaintext: &[u8]) -> String {
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).expect("the system random generator works");
        let mut out = Vec::with_capacity(KEY_ID_LEN + NONCE_LEN + plaintext.len() + TAG_LEN);
        out.extend_from_slice(&key.id);
        out.extend_from_slice(&nonce);
        let mut body = plaintext.to_vec();
        key.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(purpose.as_bytes()), &mut body)
            .expect("AES-GCM sealing cannot fail for in-memory input");
        out.extend_from_slice(&body);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out)
    }

    pub fn open(&self, purpose: &str, sealed: &str) -> Result<Vec<u8>, OpenError> {
        let bytes =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(sealed).map_err(|_| OpenError::Malformed)?;
        if bytes.len() < KEY_ID_LEN + NONCE_LEN + TAG_LEN {
            return Err(OpenError::Malformed);
        }
        let (id, rest) = bytes.split_at(KEY_ID_LEN);
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let key = self.keys.iter().find(|k| k.id == id).ok_or(OpenError::UnknownKey)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError::Malformed)?;
        let mut body = body.to_vec();
        let plain =
            key.key.open_in_place(nonce, Aad::from(purpose.as_bytes()), &mut body).map_err(|_| OpenError::Forged)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> Vec<u8> {
        vec![byte; KEY_LEN]
    }

    #[test]
    fn round_trips_and_binds_the_purpose() {
        let sealer = Sealer::new(&[key(1)]).unwrap();
        let sealed = sealer.seal("session", b"hello");
        assert_eq!(sealer.open("session", &sealed).unwrap(), b"hello");
        assert_eq!(sealer.open("login", &sealed), Err(OpenError::Forged));
        // Two seals of the same text differ (random nonce).
        assert_ne!(sealed, sealer.seal("session", b"hello"));
    }

    #[test]
    fn any_flipped_bit_is_refused() {
        let sealer = Sealer::new(&[key(1)]).unwrap();
        let sealed = sealer.seal("s", b"some session payload");
        let mut bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        for i in KEY_ID_LEN..bytes.len() {
            bytes[i] ^= 0x01;
            let tampered = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes);
            assert!(sealer.open("s", &tampered).is_err(), "byte {i}");
            bytes[i] ^= 0x01;
        }
        assert_eq!(sealer.open("s", "not*base64"), Err(OpenError::Malformed));
        assert_eq!(sealer.open("s", "AAAA"), Err(OpenError::Malformed));
    }

    #[test]
    fn rotation_opens_old_values_and_seals_with_the_first_key() {
        let old = Sealer::new(&[key(1)]).unwrap();
        let rotated = Sealer::new(&[key(2), key(1)]).unwrap();
        let from_old = old.seal("s", b"v");
        assert_eq!(rotated.open("s", &from_old).unwrap(), b"v");
        let from_new = rotated.seal("s", b"v");
        assert_eq!(old.open("s", &from_new), Err(OpenError::UnknownKey));
        let foreign = Sealer::new(&[key(3)]).unwrap();
        assert_eq!(foreign.open("s", &from_old), Err(OpenError::UnknownKey));
    }

    #[test]
    fn keys_are_checked() {
        assert_eq!(parse_key("c2hvcnQ=").unwrap_err(), KeyError::Length(5));
        assert_eq!(parse_key("!!").unwrap_err(), KeyError::NotBase64);
        let generated = new_key();
        assert_eq!(parse_key(&generated).unwrap().len(), KEY_LEN);
        assert_eq!(Sealer::new(&[]).unwrap_err(), KeyError::NoKeys);
        assert_eq!(Sealer::new(&[key(1), key(1)]).unwrap_err(), KeyError::Duplicate);
    }
}

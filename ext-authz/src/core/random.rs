//! Unguessable tokens (session ids, login state, nonces, PKCE verifiers, request ids) from the
//! system's secure random generator.

use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};

/// `bytes` random bytes as base64url: session ids, `state`, `nonce`, PKCE verifiers.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    SystemRandom::new().fill(&mut buf).expect("the system random generator works");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

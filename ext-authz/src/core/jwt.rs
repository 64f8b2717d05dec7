//! JWT verification against a provider's keys, with the checks that matter for security done
//! explicitly: only the provider's allowed algorithms (never `none`), a key's family must match
//! the token's algorithm (an RSA public key can never act as an HMAC secret), `iss`, `aud`,
//! `exp` and `nbf` with leeway against a `now` the caller passes in.
//!
//! The claims are parsed once, by [`peek`] (which needs `iss` to pick a provider), and checked
//! here after the signature; jsonwebtoken only checks signatures (`crypto::verify`). Its
//! `decode` parsed the header again and the payload twice more, about 10,000 instructions a
//! token; HMAC secrets are also turned into ring keys once per key set instead of per token.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};
use ring::hmac;
use serde_json::Value;

/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyFamily {
    Hmac,
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

pub fn family_of(alg: Algorithm) -> KeyFamily {
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => KeyFamily::Hmac,
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => KeyFamily::Rsa,
        Algorithm::ES256 => KeyFamily::EcP256,
        Algorithm::ES384 => KeyFamily::EcP384,
        Algorithm::EdDSA => KeyFamily::Ed25519,
    }
}

pub struct VerificationKey {
    pub kid: Option<String>,
    pub family: KeyFamily,
    key: Verifier,
}

/// What checks a signature: an HMAC secret as ring keys for HS256/384/512 (made once: a ring
/// key hashes the secret into its pads), or a public key. Boxed: the three ring keys are 528
/// bytes, kept once per key set.
enum Verifier {
    Hmac(Box<[hmac::Key; 3]>),
    Public(DecodingKey),
}

impl VerificationKey {
    /// Whether `signature` (base64url, the token's third part) signs `message` (its first two
    /// parts) under `alg`. The caller matched `alg` to this key's family.
    fn signs(&self, message: &str, signature: &str, alg: Algorithm) -> bool {
        match &self.key {
            Verifier::Hmac(keys) => {
                let key = match alg {
                    Algorithm::HS256 => &keys[0],
                    Algorithm::HS384 => &keys[1],
                    Algorithm::HS512 => &keys[2],
                    _ => return false,
                };
                // Constant-time comparison of the tag, in ring.
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(signature)
                    .is_ok_and(|tag| hmac::verify(key, message.as_bytes(), &tag).is_ok())
            }
            Verifier::Public(key) => {
                jsonwebtoken::crypto::verify(signature, message.as_bytes(), key, alg).unwrap_or(false)
            }
        }
    }
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKey").field("kid", &self.kid).field("family", &self.family).finish()
    }
}

/// A provider's keys, by `kid`.
#[derive(Debug, Default)]
pub struct KeySet {
    by_kid: HashMap<String, Vec<Arc<VerificationKey>>>,
    all: Vec<Arc<VerificationKey>>,
    /// What the keys are (a hash of their published form): a verified token is reused from
    /// the token cache only while its provider's keys are the same ones, so a key that a
    /// rotation removes stops every token it signed at once. A refresh that brings the same
    /// keys keeps the cache.
    fingerprint: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeySetError {
    /// serde_json's text: it comes from outside, and is kept as text so this error stays
    /// `Clone` + `Eq` (serde_json's error is neither), as key set outcomes are compared.
    #[error("not a JWKS document: {0}")]
    Json(String),
    #[error("the JWKS has no usable public key (RSA, EC P-256/P-384, Ed25519)")]
    Empty,
}

impl KeySet {
    /// Public keys of a JWKS document. Symmetric (`oct`) keys are skipped: a published HMAC
    /// secret would let anyone sign tokens. Keys that fail to parse are skipped too, so one bad
    /// entry does not take down the provider.
    pub fn from_jwks(json: &str) -> Result<KeySet, KeySetError> {
        let set: JwkSet = serde_json::from_str(json).map_err(|e| KeySetError::Json(e.to_string()))?;
        let mut keys = KeySet::default();
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for jwk in &set.keys {
            let family = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => KeyFamily::Rsa,
                AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                    EllipticCurve::P256 => KeyFamily::EcP256,
                    EllipticCurve::P384 => KeyFamily::EcP384,
                    _ => continue,
                },
                AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => KeyFamily::Ed25519,
                _ => continue,
            };
            let Ok(key) = DecodingKey::from_jwk(jwk) else { continue };
            std::hash::Hash::hash(&serde_json::to_string(jwk).unwrap_or_default(), &mut hasher);
            keys.add(VerificationKey { kid: jwk.common.key_id.clone(), family, key: Verifier::Public(key) });
        }
        keys.fingerprint = std::hash::Hasher::finish(&hasher);
        if keys.all.is_empty() {
            return Err(KeySetError::Empty);
        }
        Ok(keys)
    }

    /// A single HMAC secret.
    pub fn from_secret(secret: &[u8]) -> KeySet {
        let mut keys = KeySet::default();
        let key = |alg| hmac::Key::new(alg, secret);
        let hmac = Verifier::Hmac(Box::new([key(hmac::HMAC_SHA256), key(hmac::HMAC_SHA384), key(hmac::HMAC_SHA512)]));
        keys.add(VerificationKey { kid: None, family: KeyFamily::Hmac, key: hmac });
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(secret, &mut hasher);
        keys.fingerprint = std::hash::Hasher::finish(&hasher);
        keys
    }

    /// See the field: equal for the same published keys.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    fn add(&mut self, key: VerificationKey) {
        let key = Arc::new(key);
        if let Some(kid) = &key.kid {
            self.by_kid.entry(kid.clone()).or_default().push(key.clone());
        }
        self.all.push(key);
    }

    pub fn len(&self) -> usize {
        self.all.len()
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    pub fn kids(&self) -> Vec<String> {
        self.by_kid.keys().cloned().collect()
    }

    /// Candidate keys for a token: those with its `kid` (or every key when it has none), of the
    /// family its algorithm needs.
    fn candidates(&self, kid: Option<&str>, family: KeyFamily) -> Vec<&VerificationKey> {
        let pool: &[Arc<VerificationKey>] = match kid {
            Some(kid) => self.by_kid.get(kid).map_or(&[], Vec::as_slice),
            None => &self.all,
        };
        pool.iter().filter(|k| k.family == family).map(Arc::as_ref).collect()
    }
}

/// What a provider accepts.
#[derive(Debug, Clone, PartialEq)]
pub struct JwtPolicy {
    pub issuer: String,
    /// Empty: `aud` is not checked.
    pub audiences: Vec<String>,
    pub algorithms: Vec<Algorithm>,
    pub leeway: u64,
    pub require_exp: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("algorithm {0} is not accepted")]
    AlgorithmNotAllowed(String),
    #[error("no key with kid {0:?}")]
    UnknownKey(Option<String>),
    #[error("bad signature")]
    BadSignature,
    #[error("wrong issuer")]
    WrongIssuer,
    #[error("wrong audience")]
    WrongAudience,
    #[error("token has no aud claim")]
    MissingAudience,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("token has no exp claim")]
    MissingExp,
}

/// A verified token's claims and the second until which it stays valid (exp + leeway).
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub claims: Arc<Value>,
    pub valid_until: Option<u64>,
}

/// The parts of a token read before verification, to pick a provider and a key, and its
/// claims (not to be trusted before [`verify`] has checked the signature). It borrows the token
/// it was read from, so [`verify`] checks the signature of the very token whose claims it then
/// trusts.
#[derive(Clone, PartialEq)]
pub struct Peek<'t> {
    token: &'t str,
    pub alg: Algorithm,
    pub kid: Option<String>,
    pub issuer: Option<String>,
    claims: Arc<Value>,
}

/// Without the token (a credential) or its claims, should a `Peek` ever reach a log line.
impl std::fmt::Debug for Peek<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peek")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// Reads header and issuer without verifying anything; cheap refusals of garbage happen here.
pub fn peek(token: &str) -> Result<Peek<'_>, JwtError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtError::Malformed("token too large"));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed("not three dot-separated parts"));
    };
    let header_json = decode_segment(header)?;
    // `alg: none` (and any unknown algorithm) fails right here: it is not an Algorithm.
    let header: jsonwebtoken::Header =
        serde_json::from_slice(&header_json).map_err(|_| JwtError::Malformed("bad header"))?;
    let payload: Value =
        serde_json::from_slice(&decode_segment(payload)?).map_err(|_| JwtError::Malformed("bad payload"))?;
    if !payload.is_object() {
        return Err(JwtError::Malformed("payload is not an object"));
    }
    let issuer = payload.get("iss").and_then(Value::as_str).map(str::to_owned);
    Ok(Peek { token, alg: header.alg, kid: header.kid, issuer, claims: Arc::new(payload) })
}

fn decode_segment(segment: &str) -> Result<Vec<u8>, JwtError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment.trim_end_matches('='))
        .map_err(|_| JwtError::Malformed("bad base64url"))
}

/// Verifies a peeked token with `keys` under `policy` at `now` (Unix seconds): its signature
/// by one of the keys its `kid` and algorithm allow, then its claims.
pub fn verify(peeked: &Peek<'_>, policy: &JwtPolicy, keys: &KeySet, now: u64) -> Result<Verified, JwtError> {
    if !policy.algorithms.contains(&peeked.alg) {
        return Err(JwtError::AlgorithmNotAllowed(format!("{:?}", peeked.alg)));
    }
    let candidates = keys.candidates(peeked.kid.as_deref(), family_of(peeked.alg));
    if candidates.is_empty() {
        return Err(JwtError::UnknownKey(peeked.kid.clone()));
    }
    let (message, signature) =
        peeked.token.rsplit_once('.').ok_or(JwtError::Malformed("not three dot-separated parts"))?;
    if !candidates.iter().any(|key| key.signs(message, signature, peeked.alg)) {
        return Err(JwtError::BadSignature);
    }
    check_claims(peeked, policy, now)
}

/// The signed claims against the provider's issuer and audiences, and the time. Public for
/// `explain`, which checks the claims of a token whose keys are remote without its signature:
/// claims checked here alone are not to be trusted (`verify` checks the signature first).
pub fn check_claims(peeked: &Peek<'_>, policy: &JwtPolicy, now: u64) -> Result<Verified, JwtError> {
    let claims = &peeked.claims;
    if peeked.issuer.as_deref() != Some(policy.issuer.as_str()) {
        return Err(JwtError::WrongIssuer);
    }
    if !policy.audiences.is_empty() {
        check_audience(claims.get("aud"), &policy.audiences)?;
    }
    let exp = numeric_date(claims, "exp", "exp is not a number")?;
    if let Some(exp) = exp {
        if now >= exp.saturating_add(policy.leeway) {
            return Err(JwtError::Expired);
        }
    } else if policy.require_exp {
        return Err(JwtError::MissingExp);
    }
    if let Some(nbf) = numeric_date(claims, "nbf", "nbf is not a number")? {
        if now.saturating_add(policy.leeway) < nbf {
            return Err(JwtError::NotYetValid);
        }
    }
    Ok(Verified { claims: claims.clone(), valid_until: exp.map(|e| e.saturating_add(policy.leeway)) })
}

/// `aud` (a string or an array of strings) must name one of the configured audiences. A token
/// minted for no audience in particular (no `aud`, `null`, or not strings) is not minted for
/// this one.
fn check_audience(aud: Option<&Value>, accepted: &[String]) -> Result<(), JwtError> {
    let ours = |aud: &str| accepted.iter().any(|a| a == aud);
    let named = match aud {
        Some(Value::String(aud)) => ours(aud),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            items.iter().filter_map(Value::as_str).any(ours)
        }
        _ => return Err(JwtError::MissingAudience),
    };
    if named {
        Ok(())
    } else {
        Err(JwtError::WrongAudience)
    }
}

/// A NumericDate claim (RFC 7519 §2: seconds since the epoch, possibly fractional), `None` when
/// absent or `null`. Anything else is refused: an `exp` that cannot be read must not make a
/// token one that never expires. Fractions are cut, times before the epoch count as 0.
fn numeric_date(claims: &Value, name: &str, unreadable: &'static str) -> Result<Option<u64>, JwtError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        // `as` saturates: negative and NaN become 0, huge values u64::MAX.
        Some(Value::Number(n)) => Ok(Some(n.as_u64().unwrap_or_else(|| n.as_f64().map_or(0, |f| f as u64)))),
        Some(_) => Err(JwtError::Malformed(unreadable)),
    }
}

#[cfg(test)]
mod tests;

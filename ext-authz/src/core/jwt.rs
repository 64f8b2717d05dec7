//! JWT verification against a provider's keys, with the checks that matter for security done
//! explicitly: only the provider's allowed algorithms (never `none`), a key's family must match
//! the token's algorithm (an RSA public key can never act as an HMAC secret), `iss`, `aud`,
//! `exp` and `nbf` with leeway against a `now` the caller passes in.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
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
    key: DecodingKey,
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
            keys.add(VerificationKey { kid: jwk.common.key_id.clone(), family, key });
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
        keys.add(VerificationKey { kid: None, family: KeyFamily::Hmac, key: DecodingKey::from_secret(secret) });
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

/// The parts of a token read before verification, to pick a provider and a key.
#[derive(Debug, Clone, PartialEq)]
pub struct Peek {
    pub alg: Algorithm,
    pub kid: Option<String>,
    pub issuer: Option<String>,
}

/// Reads header and issuer without verifying anything; cheap refusals of garbage happen here.
pub fn peek(token: &str) -> Result<Peek, JwtError> {
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
    Ok(Peek { alg: header.alg, kid: header.kid, issuer: payload.get("iss").and_then(Value::as_str).map(str::to_owned) })
}

fn decode_segment(segment: &str) -> Result<Vec<u8>, JwtError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment.trim_end_matches('='))
        .map_err(|_| JwtError::Malformed("bad base64url"))
}

/// Verifies `token` (already peeked) with `keys` under `policy` at `now` (Unix seconds).
pub fn verify(token: &str, peeked: &Peek, policy: &JwtPolicy, keys: &KeySet, now: u64) -> Result<Verified, JwtError> {
    if !policy.algorithms.contains(&peeked.alg) {
        return Err(JwtError::AlgorithmNotAllowed(format!("{:?}", peeked.alg)));
    }
    let candidates = keys.candidates(peeked.kid.as_deref(), family_of(peeked.alg));
    if candidates.is_empty() {
        return Err(JwtError::UnknownKey(peeked.kid.clone()));
    }
    let mut validation = Validation::new(peeked.alg);
    validation.algorithms = vec![peeked.alg];
    // Time checks are ours, against the `now` we are given.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.required_spec_claims = HashSet::new();
    validation.set_issuer(&[&policy.issuer]);
    if policy.audiences.is_empty() {
        validation.validate_aud = false;
    } else {
        // Configured audiences must be present: jsonwebtoken only checks an `aud` it finds, and
        // a token minted for no audience in particular is not minted for this one.
        validation.set_audience(&policy.audiences);
        validation.required_spec_claims.insert("aud".to_string());
    }
    let mut last = JwtError::BadSignature;
    for key in candidates {
        match jsonwebtoken::decode::<Value>(token, &key.key, &validation) {
            Ok(data) => return check_times(data.claims, policy, now),
            Err(e) => {
                last = match e.kind() {
                    ErrorKind::InvalidIssuer => return Err(JwtError::WrongIssuer),
                    ErrorKind::InvalidAudience => return Err(JwtError::WrongAudience),
                    ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => return Err(JwtError::MissingAudience),
                    ErrorKind::InvalidSignature | ErrorKind::Crypto(_) => JwtError::BadSignature,
                    ErrorKind::InvalidAlgorithm => JwtError::AlgorithmNotAllowed(format!("{:?}", peeked.alg)),
                    _ => JwtError::Malformed("undecodable token"),
                }
            }
        }
    }
    Err(last)
}

fn check_times(claims: Value, policy: &JwtPolicy, now: u64) -> Result<Verified, JwtError> {
    let exp = claims.get("exp").and_then(Value::as_u64);
    if let Some(exp) = exp {
        if now >= exp.saturating_add(policy.leeway) {
            return Err(JwtError::Expired);
        }
    } else if policy.require_exp {
        return Err(JwtError::MissingExp);
    }
    if let Some(nbf) = claims.get("nbf").and_then(Value::as_u64) {
        if now.saturating_add(policy.leeway) < nbf {
            return Err(JwtError::NotYetValid);
        }
    }
    Ok(Verified { claims: Arc::new(claims), valid_until: exp.map(|e| e.saturating_add(policy.leeway)) })
}

#[cfg(test)]
mod tests;

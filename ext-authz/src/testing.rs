//! Signing keys for tests and the demo: sign tokens, publish the matching JWKS. Not used by the
//! service itself. RSA keys come from PEM files (ring cannot generate RSA keys); EC and Ed25519
//! keys are generated on the spot.

pub mod origins;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{self, KeyPair};
use serde_json::{json, Value};

pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    encoding: EncodingKey,
    jwk: Value,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn pem_to_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body).expect("PEM body is base64")
}

impl SigningKey {
    /// An RSA key from a PKCS#8 PEM, for RS* or PS* algorithms.
    pub fn rsa(kid: &str, alg: Algorithm, pkcs8_pem: &str) -> SigningKey {
        let der = pem_to_der(pkcs8_pem);
        let pair = signature::RsaKeyPair::from_pkcs8(&der).expect("an RSA PKCS#8 key");
        let components = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public());
        let (n, e) = (components.n.as_slice(), components.e.as_slice());
        SigningKey {
            kid: kid.into(),
            alg,
            encoding: EncodingKey::from_rsa_pem(pkcs8_pem.as_bytes()).expect("an RSA PEM"),
            jwk: json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": format!("{alg:?}"), "n": b64(n), "e": b64(e)}),
        }
    }

    /// A fresh ES256 or ES384 key.
    pub fn ec(kid: &str, alg: Algorithm) -> SigningKey {
        let (ring_alg, curve) = match alg {
            Algorithm::ES256 => (&signature::ECDSA_P256_SHA256_FIXED_SIGNING, "P-256"),
            Algorithm::ES384 => (&signature::ECDSA_P384_SHA384_FIXED_SIGNING, "P-384"),
            other => panic!("{other:?} is not an EC algorithm"),
        };
        let rng = SystemRandom::new();
        let pkcs8 = signature::EcdsaKeyPair::generate_pkcs8(ring_alg, &rng).expect("EC key generation");
        let pair = signature::EcdsaKeyPair::from_pkcs8(ring_alg, pkcs8.as_ref(), &rng).expect("EC key");
        let point = pair.public_key().as_ref();
        let half = (point.len() - 1) / 2;
        SigningKey {
            kid: kid.into(),
            alg,
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk: json!({"kty": "EC", "kid": kid, "crv": curve, "x": b64(&point[1..1 + half]), "y": b64(&point[1 + half..])}),
        }
    }

    /// A fresh Ed25519 key (EdDSA).
    pub fn ed25519(kid: &str) -> SigningKey {
        let pkcs8 = signature::Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("Ed25519 key generation");
        let pair = signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("Ed25519 key");
        SigningKey {
            kid: kid.into(),
            alg: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
            jwk: json!({"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": b64(pair.public_key().as_ref())}),
        }
    }

    /// An HMAC secret (HS256/384/512).
    pub fn hmac(alg: Algorithm, secret: &[u8]) -> SigningKey {
        SigningKey { kid: String::new(), alg, encoding: EncodingKey::from_secret(secret), jwk: Value::Null }
    }

    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        if !self.kid.is_empty() {
            header.kid = Some(self.kid.clone());
        }
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("signing")
    }

    pub fn jwk(&self) -> &Value {
        &self.jwk
    }
}

/// A JWKS document publishing these keys.
pub fn jwks(keys: &[&SigningKey]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk().clone()).collect::<Vec<_>>()}).to_string()
}

/// A token with any header and payload and a junk signature, for attack tests.
pub fn forged(header: &Value, payload: &Value, signature: &[u8]) -> String {
    format!("{}.{}.{}", b64(header.to_string().as_bytes()), b64(payload.to_string().as_bytes()), b64(signature))
}

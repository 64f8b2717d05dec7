//! API keys, stored as SHA-256 hashes only. A presented key is hashed and looked up; the
//! stored hash is then compared in constant time. (The hash-map lookup itself compares digests,
//! whose timing tells an attacker nothing usable about any key: SHA-256 has no known preimages.)

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use ring::digest::{digest, SHA256};
use serde_json::{json, Map, Value};

use super::identity::{AuthMethod, Identity};

mod document;

pub type KeyHash = [u8; 32];

/// What a key stands for; becomes the identity's claims.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyEntry {
    pub hash: KeyHash,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub org_id: Option<String>,
    pub attributes: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {problem}")]
pub struct ApiKeyError {
    pub file: String,
    pub problem: String,
}

#[derive(Debug, Default)]
pub struct ApiKeyStore {
    by_hash: HashMap<KeyHash, Box<StoredEntry>, BuildHasherDefault<DigestHasher>>,
}

/// The store's hasher: a SHA-256 digest is already uniformly spread, so its bytes, folded, are
/// the hash — no second keyed hash on every check. A client cannot crowd a bucket with it: the
/// table only ever holds the operator's stored digests, and a presented key's digest only
/// probes, and finding a SHA-256 input whose digest lands next to a stored one gains nothing
/// but one more comparison of 32 bytes.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(17) ^ u64::from_le_bytes(word);
        }
    }

    /// The array's length, the same for every digest.
    fn write_usize(&mut self, _: usize) {}

    fn finish(&self) -> u64 {
        self.0
    }
}

/// An entry with the identity it stands for, built on the key's first use and reused after:
/// the same key is presented again and again, and building the identity (claims, scopes,
/// metadata) was a visible part of an API-key check's profile. Built lazily, so a million stored
/// keys that are never presented cost an empty slot each (16 bytes), not a prebuilt identity.
#[derive(Debug)]
struct StoredEntry {
    entry: ApiKeyEntry,
    identity: OnceLock<Box<Identity>>,
}

impl ApiKeyEntry {
    /// The key's metadata as claims: `sub` and `client_id` are the client id, `scope` the
    /// scopes, `org_id` the organisation, and the free attributes as they are.
    pub fn identity(&self) -> Identity {
        let mut claims = self.attributes.clone();
        claims.insert("sub".into(), json!(self.client_id));
        claims.insert("client_id".into(), json!(self.client_id));
        claims.insert("scope".into(), json!(self.scopes));
        if let Some(org) = &self.org_id {
            claims.insert("org_id".into(), json!(org));
        }
        Identity::new(AuthMethod::ApiKey, Arc::new(Value::Object(claims)), self.scopes.clone())
    }
}

impl StoredEntry {
    fn new(entry: ApiKeyEntry) -> Box<StoredEntry> {
        Box::new(StoredEntry { entry, identity: OnceLock::new() })
    }
}

impl ApiKeyStore {
    /// Builds a store from `(file name, parsed document)` pairs. Every error names its file.
    pub fn from_documents(documents: Vec<(String, Value)>) -> Result<ApiKeyStore, ApiKeyError> {
        let mut store = ApiKeyStore::default();
        for (file, document) in documents {
            let error = |problem: String| ApiKeyError { file: file.clone(), problem };
            for (at, key) in document::stored_keys(document).map_err(|e| error(e.to_string()))? {
                let field = |name: &str| if at.is_empty() { name.to_string() } else { format!("{at}.{name}") };
                let hash = parse_hash(&key.hash).map_err(|p| error(format!("{}: {p}", field("hash"))))?;
                if key.client_id.is_empty() {
                    return Err(error(format!("{}: must not be empty", field("client_id"))));
                }
                if store.by_hash.contains_key(&hash) {
                    let at = if at.is_empty() { "the key" } else { at.as_str() };
                    return Err(error(format!("{at}: the same key is stored twice (in this file or another)")));
                }
                let entry = ApiKeyEntry {
                    hash,
                    client_id: key.client_id,
                    scopes: key.scopes,
                    org_id: key.org_id,
                    attributes: key.attributes,
                };
                store.by_hash.insert(hash, StoredEntry::new(entry));
            }
        }
        Ok(store)
    }

    /// Adds a key (replacing one with the same hash); for stores built in code.
    pub fn insert(&mut self, entry: ApiKeyEntry) {
        self.by_hash.insert(entry.hash, StoredEntry::new(entry));
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// The entry for a presented key, if it is stored.
    pub fn lookup(&self, presented: &str) -> Option<&ApiKeyEntry> {
        self.find(presented).map(|stored| &stored.entry)
    }

    /// The identity a presented key stands for, if it is stored.
    pub fn identity(&self, presented: &str) -> Option<Identity> {
        let stored = self.find(presented)?;
        Some(Identity::clone(stored.identity.get_or_init(|| Box::new(stored.entry.identity()))))
    }

    fn find(&self, presented: &str) -> Option<&StoredEntry> {
        let hash = hash_key(presented);
        let stored = self.by_hash.get(&hash)?;
        bool::from(subtle::ConstantTimeEq::ct_eq(&stored.entry.hash[..], &hash[..])).then_some(&**stored)
    }
}

pub fn hash_key(key: &str) -> KeyHash {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, key.as_bytes()).as_ref());
    out
}

/// `sha256:<hex>` as stored in key files.
pub fn format_hash(hash: &KeyHash) -> String {
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn parse_hash(text: &str) -> Result<KeyHash, String> {
    let hex = text.strip_prefix("sha256:").ok_or("must start with `sha256:`")?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("must be `sha256:` and 64 hex digits".into());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// A fresh random key: `ghk_` and 32 random bytes in base64url (256 bits of entropy).
pub fn new_key() -> String {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).expect("system randomness");
    format!("ghk_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn store(documents: Vec<Value>) -> Result<ApiKeyStore, ApiKeyError> {
        ApiKeyStore::from_documents(documents.into_iter().enumerate().map(|(i, d)| (format!("f{i}.yaml"), d)).collect())
    }

    #[test]
    fn stores_hashes_and_finds_keys() {
        let key = new_key();
        assert!(key.starts_with("ghk_") && key.len() == 47);
        let other = new_key();
        let s = store(vec![
            json!({"keys": [{"hash": format_hash(&hash_key(&key)), "client_id": "c1", "scopes": ["a"], "org_id": "o1", "attributes": {"plan": "pro"}}]}),
            json!({"hash": format_hash(&hash_key(&other)), "client_id": "c2"}),
        ])
        .unwrap();
        assert_eq!(s.len(), 2);
        let entry = s.lookup(&key).unwrap();
        assert_eq!((entry.client_id.as_str(), entry.org_id.as_deref()), ("c1", Some("o1")));
        assert_eq!(s.lookup(&other).unwrap().client_id, "c2");
        assert!(s.lookup("ghk_wrong").is_none());
        let identity = s.identity(&key).unwrap();
        assert_eq!(identity, s.lookup(&key).unwrap().identity());
        assert_eq!(s.identity(&key).unwrap(), identity, "the same identity on every use");
        assert!(s.identity("ghk_wrong").is_none());
    }

    #[test]
    fn refuses_plaintext_and_bad_entries() {
        let err = store(vec![json!({"keys": [{"key": "secret", "client_id": "c"}]})]).unwrap_err();
        assert!(err.problem.contains("plaintext"), "{err}");
        let err = store(vec![json!({"keys": [{"hash": "md5:00", "client_id": "c"}]})]).unwrap_err();
        assert_eq!(err.to_string(), "f0.yaml: keys[0].hash: must start with `sha256:`");
        let err = store(vec![json!({"keys": [{"hash": format_hash(&[1; 32]), "client_id": ""}]})]).unwrap_err();
        assert_eq!(err.to_string(), "f0.yaml: keys[0].client_id: must not be empty");
        assert!(store(vec![json!({"keys": [{"hash": format_hash(&[1; 32]), "client_id": "c", "bogus": 1}]})]).is_err());
    }
}

//! The credentials of the request, checked offline: a JWT against its provider's LOCAL keys (a
//! `jwks_file`, an HMAC secret); a provider whose keys are remote (`jwks_uri`, `discovery`) is
//! never fetched from — its tokens' claims are checked and shown, their signature is reported
//! unchecked. An API key against the config's key files. Never the token or key itself.

use std::sync::Arc;

use ext_authz::config::AuthzConfig;
use ext_authz::core::apikeys::{format_hash, hash_key, ApiKeyStore};
use ext_authz::core::decision::{CredentialSource, Engine};
use ext_authz::core::identity::Identity;
use ext_authz::core::jwt::{self, KeySet};
use ext_authz::core::request::AuthRequest;
use ext_authz::core::token_cache::{TokenCache, Verification};
use ext_authz::jwks::KeySource;
use serde::Serialize;
use serde_json::Value;

/// Every provider's keys as far as they are on this machine.
pub struct OfflineKeys {
    /// Parallel to the engine's providers: the local keys; an empty set for remote keys (a
    /// token is then found in the cache when its claims hold, see [`seed`], or else its key
    /// is "unknown"); `None` for a key file that does not read.
    pub sets: Vec<Option<Arc<KeySet>>>,
    pub kinds: Vec<KeysAre>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeysAre {
    /// Where they are, for the reader ("jwks_file keys/jwks.json").
    Local(String),
    Remote,
    /// A key file that does not read: why.
    Unreadable(String),
}

pub fn load_keys(config: &AuthzConfig) -> OfflineKeys {
    let (mut sets, mut kinds) = (Vec::new(), Vec::new());
    for provider in &config.provider_keys {
        let (set, kind) = match &provider.source {
            KeySource::JwksFile(path) => match ext_authz::jwks::read_key_file(path) {
                Ok(keys) => (Some(Arc::new(keys)), KeysAre::Local(format!("jwks_file {}", path.display()))),
                Err(e) => (None, KeysAre::Unreadable(e.to_string())),
            },
            KeySource::Hmac(secret) => {
                (Some(Arc::new(KeySet::from_secret(&secret.0))), KeysAre::Local("HMAC secret".into()))
            }
            KeySource::JwksUri(_) | KeySource::Discovery(_) => (Some(Arc::new(KeySet::default())), KeysAre::Remote),
        };
        sets.push(set);
        kinds.push(kind);
    }
    OfflineKeys { sets, kinds }
}

/// One credential found on the request and its check.
#[derive(Debug, Clone, Serialize)]
pub struct CredentialCheck {
    /// `jwt` or `api_key`.
    pub kind: &'static str,
    /// Where it was found ("header authorization").
    pub found_in: String,
    /// The JWT provider that took it (by its issuer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Whether it would be accepted (a remote-keys token: if its signature is valid).
    pub valid: bool,
    /// What was checked, and how it came out.
    pub check: String,
    /// A token's claims (unverified when its signature is not), or an API key's identity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claims: Option<Value>,
}

/// Each credential the config could read from the request: the places every provider and
/// `api_keys.from` name, each place once.
pub fn check_all(
    engine: &Engine,
    keys: &OfflineKeys,
    api_keys: &ApiKeyStore,
    request: &AuthRequest,
    now: u64,
) -> Vec<CredentialCheck> {
    let mut seen: Vec<&CredentialSource> = Vec::new();
    let mut checks = Vec::new();
    for provider in &engine.providers {
        for source in &provider.sources {
            if seen.contains(&source) {
                continue;
            }
            seen.push(source);
            if let Some(token) = source.read(request) {
                checks.push(check_token(engine, keys, source, &token, now));
            }
        }
    }
    for source in &engine.api_key_sources {
        if seen.contains(&source) {
            continue;
        }
        seen.push(source);
        if let Some(key) = source.read(request) {
            checks.push(check_api_key(api_keys, source, &key));
        }
    }
    checks
}

fn check_token(
    engine: &Engine,
    keys: &OfflineKeys,
    source: &CredentialSource,
    token: &str,
    now: u64,
) -> CredentialCheck {
    let mut check = CredentialCheck {
        kind: "jwt",
        found_in: place(source),
        provider: None,
        valid: false,
        check: String::new(),
        claims: None,
    };
    let peeked = match jwt::peek(token) {
        Ok(peeked) => peeked,
        Err(e) => {
            check.check = format!("refused: {e}");
            return check;
        }
    };
    check.claims = payload(token);
    let Some(p) = provider_of(engine, source, peeked.issuer.as_deref()) else {
        check.check = match &peeked.issuer {
            Some(issuer) => format!("refused: no provider reading it there has the issuer {issuer:?}"),
            None => "refused: the token has no iss claim".into(),
        };
        return check;
    };
    let provider = &engine.providers[p];
    check.provider = Some(provider.name.clone());
    let verified = match (&keys.kinds[p], &keys.sets[p]) {
        (KeysAre::Local(at), Some(set)) => match jwt::verify(&peeked, &provider.policy, set, now) {
            Ok(verified) => Ok((format!("signature verified with the local keys ({at}); claims valid"), verified)),
            Err(e) => Err(format!("refused: {e} (local keys: {at})")),
        },
        (KeysAre::Remote, _) => match jwt::check_claims(&peeked, &provider.policy, now) {
            Ok(verified) => Ok(("signature unchecked (keys are remote); claims valid".into(), verified)),
            Err(e) => Err(format!("signature unchecked (keys are remote); refused: {e}")),
        },
        (KeysAre::Unreadable(why), _) => Err(format!("unchecked: the provider's key file does not read: {why}")),
        (KeysAre::Local(_), None) => unreachable!("local keys are loaded"),
    };
    match verified {
        // What conditions see is the decision's own check (`Engine::verify_found`), not this.
        Ok((said, _)) => (check.check, check.valid) = (said, true),
        Err(said) => check.check = said,
    }
    check
}

fn check_api_key(api_keys: &ApiKeyStore, source: &CredentialSource, key: &str) -> CredentialCheck {
    let entry = api_keys.lookup(key);
    CredentialCheck {
        kind: "api_key",
        found_in: place(source),
        provider: None,
        valid: entry.is_some(),
        check: match entry {
            Some(entry) => format!("a stored key (client_id {:?})", entry.client_id),
            // The hash is what the key files hold: with it the reader can look for the entry.
            None => format!("refused: no stored key has its hash ({})", format_hash(&hash_key(key))),
        },
        claims: entry.map(|entry| (*entry.identity().claims).clone()),
    }
}

/// The provider that would verify a token read at `source`: the one of its issuer among those
/// reading there (as the decision picks it).
fn provider_of(engine: &Engine, source: &CredentialSource, issuer: Option<&str>) -> Option<usize> {
    engine.providers.iter().position(|p| p.sources.contains(source) && Some(p.policy.issuer.as_str()) == issuer)
}

/// A token's payload, for the reader (not trusted: its signature may not hold).
fn payload(token: &str) -> Option<Value> {
    use base64::Engine as _;
    let segment = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(segment.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Where a source reads, for the reader.
pub fn place(source: &CredentialSource) -> String {
    match source {
        CredentialSource::Header { name, .. } => format!("header {name}"),
        CredentialSource::Query(name) => format!("query parameter {name}"),
        CredentialSource::Cookie(name) => format!("cookie {name}"),
    }
}

/// A token of a remote-keys provider whose claims hold goes into the token cache as verified,
/// so the decision goes on as it would once the signature is checked (a cached token is not
/// verified again). The answer is then "if the signature is valid", and said so.
pub fn seed(cache: &TokenCache, engine: &Engine, keys: &OfflineKeys, request: &AuthRequest, now: u64) -> bool {
    let mut seeded = false;
    for (p, provider) in engine.providers.iter().enumerate() {
        if keys.kinds[p] != KeysAre::Remote {
            continue;
        }
        for source in &provider.sources {
            let Some(token) = source.read(request) else { continue };
            let Ok(peeked) = jwt::peek(&token) else { continue };
            if peeked.issuer.as_deref() != Some(provider.policy.issuer.as_str()) {
                continue;
            }
            if let Ok(verified) = jwt::check_claims(&peeked, &provider.policy, now) {
                let identity = Identity::from_jwt(&provider.name, verified.claims);
                // The empty stand-in key set's fingerprint (see `load_keys`).
                let at = Verification { provider: p, keys: KeySet::default().fingerprint(), rules: 0 };
                cache.insert(&token, at, &identity, verified.valid_until.or(Some(u64::MAX)));
                seeded = true;
            }
        }
    }
    seeded
}

//! Verified tokens, remembered until they expire so a hot token costs a hash lookup instead of
//! a signature check. Bounded: when full, expired entries go first, then arbitrary ones.
//!
//! Keyed by the token itself, as Envoy's own JWT cache is: a hit is an exact match, so no other
//! token can ever be taken for a cached one, and finding it costs one SipHash pass (keyed with a
//! per-process random key, so crafted tokens cannot flood one bucket). An earlier version keyed
//! by SHA-256 of the token, which cost ~17k instructions per lookup for an RS256 token (a
//! profile showed it as the biggest part of a cached check) and bought nothing a bounded
//! in-memory map needs: the tokens live in this process's memory either way while they are used.

use std::collections::HashMap;
use std::sync::Mutex;

use super::jwt::Verified;

pub struct TokenCache {
    capacity: usize,
    entries: Mutex<HashMap<Box<str>, (usize, Verified)>>,
}

impl TokenCache {
    /// `capacity` 0 disables caching.
    pub fn new(capacity: usize) -> TokenCache {
        TokenCache { capacity, entries: Mutex::default() }
    }

    /// The provider index and claims of a token verified earlier and still valid at `now`.
    pub fn get(&self, token: &str, now: u64) -> Option<(usize, Verified)> {
        if self.capacity == 0 {
            return None;
        }
        let entries = self.entries.lock().expect("token cache lock");
        let (provider, verified) = entries.get(token)?;
        verified.valid_until.is_some_and(|until| now < until).then(|| (*provider, verified.clone()))
    }

    /// Remembers a verified token; tokens without `exp` are not cached (they never expire).
    pub fn insert(&self, token: &str, provider: usize, verified: &Verified, now: u64) {
        if self.capacity == 0 || verified.valid_until.is_none() {
            return;
        }
        let mut entries = self.entries.lock().expect("token cache lock");
        if entries.len() >= self.capacity {
            entries.retain(|_, (_, v)| v.valid_until.is_some_and(|until| now < until));
            while entries.len() >= self.capacity {
                let Some(victim) = entries.keys().next().cloned() else { break };
                entries.remove(&victim);
            }
        }
        entries.insert(token.into(), (provider, verified.clone()));
    }

    pub fn len(&self) -> usize {
        self.entries.lock().expect("token cache lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn verified(until: Option<u64>) -> Verified {
        Verified { claims: Arc::new(json!({"sub": "u"})), valid_until: until }
    }

    #[test]
    fn until_expiry_and_bounded() {
        let cache = TokenCache::new(2);
        cache.insert("t1", 0, &verified(Some(100)), 10);
        assert!(cache.get("t1", 99).is_some());
        assert!(cache.get("t1", 100).is_none());
        cache.insert("no-exp", 0, &verified(None), 10);
        assert!(cache.get("no-exp", 11).is_none());
        cache.insert("t2", 0, &verified(Some(100)), 10);
        cache.insert("t3", 1, &verified(Some(100)), 10);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get("t3", 11).unwrap().0, 1);
    }

    #[test]
    fn only_the_exact_token_hits() {
        let cache = TokenCache::new(10);
        cache.insert("header.payload.signature", 0, &verified(Some(100)), 10);
        assert!(cache.get("header.payload.signature", 11).is_some());
        assert!(cache.get("header.payload.signaturE", 11).is_none());
        assert!(cache.get("header.payload.signature ", 11).is_none());
        assert!(cache.get("header.payload.", 11).is_none());
    }
}

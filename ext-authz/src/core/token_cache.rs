//! Verified tokens, remembered until they expire so a hot token costs a hash lookup instead of
//! a signature check. Bounded by a count (`cache.max_tokens`).
//!
//! Why a sharded S3-FIFO cache (`quick_cache`) and not a map under one lock: a flood of
//! distinct valid tokens fills the cache, and a full cache must stay as fast as a warm one.
//! Lookups take one shard's read lock; inserts and evictions are O(1) in one shard. An earlier
//! version scanned every entry under a global lock on each insert at capacity.
//!
//! Keyed by the token itself, as Envoy's own JWT cache is: a hit is an exact match, so no other
//! token can ever be taken for a cached one, and finding it costs one SipHash pass (keyed with a
//! per-process random key, so crafted tokens cannot flood one bucket). An earlier version keyed
//! by SHA-256 of the token, which cost ~17k instructions per lookup for an RS256 token and bought
//! nothing a bounded in-memory map needs.

use std::hash::RandomState;
use std::sync::atomic::{AtomicU64, Ordering};

use quick_cache::sync::Cache;
use quick_cache::UnitWeighter;

use super::identity::Identity;

/// Token → its entry, bounded by count.
type Entries = Cache<Box<str>, CachedToken, UnitWeighter, RandomState>;

/// A verified token's provider index, the fingerprint of the keys that verified it, the
/// providers' rules it was verified under (see [`TokenCache::get`]), and the identity made of
/// its claims — kept whole, so a hit reuses its identity part too (see `identity_part`) instead
/// of building the identity again.
#[derive(Clone)]
struct CachedToken {
    provider: usize,
    keys: u64,
    rules: u64,
    identity: Identity,
    valid_until: u64,
}

/// What verified a token: the provider's index, the fingerprint of its keys, and the
/// generation of the providers' rules.
#[derive(Debug, Clone, Copy)]
pub struct Verification {
    pub provider: usize,
    pub keys: u64,
    pub rules: u64,
}

pub struct TokenCache {
    /// `None` when caching is off.
    entries: Option<Entries>,
    /// Lookups that found a still-valid token, and those that did not (for the hit ratio).
    hits: AtomicU64,
    misses: AtomicU64,
}

impl TokenCache {
    /// `capacity` 0 disables caching.
    pub fn new(capacity: usize) -> TokenCache {
        let entries = (capacity > 0)
            .then(|| Cache::with(capacity, capacity as u64, UnitWeighter, RandomState::new(), Default::default()));
        TokenCache { entries, hits: AtomicU64::new(0), misses: AtomicU64::new(0) }
    }

    /// The provider index, key fingerprint and identity of a token verified earlier under the
    /// providers' rules `rules` and still valid at `now` (the caller checks the keys are still
    /// the same ones). A token verified under other rules — before a reload changed a
    /// provider's issuer, audiences, algorithms or name — is a miss: it is verified again.
    pub fn get(&self, token: &str, now: u64, rules: u64) -> Option<(usize, u64, Identity)> {
        let entries = self.entries.as_ref()?;
        let found = entries.get(token).filter(|entry| now < entry.valid_until && entry.rules == rules);
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found.map(|entry| (entry.provider, entry.keys, entry.identity))
    }

    /// (hits, misses) so far; both 0 when caching is off.
    pub fn lookups(&self) -> (u64, u64) {
        (self.hits.load(Ordering::Relaxed), self.misses.load(Ordering::Relaxed))
    }

    /// Remembers a verified token's identity until `valid_until`; tokens without `exp` are not
    /// cached (they never expire). At capacity the coldest entries go; expired ones are never
    /// answered and age out.
    pub fn insert(&self, token: &str, at: Verification, identity: &Identity, valid_until: Option<u64>) {
        let (Some(entries), Some(valid_until)) = (&self.entries, valid_until) else { return };
        let Verification { provider, keys, rules } = at;
        entries.insert(token.into(), CachedToken { provider, keys, rules, identity: identity.clone(), valid_until });
    }

    pub fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, Cache::len)
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

    fn at(provider: usize) -> Verification {
        Verification { provider, keys: 7, rules: 0 }
    }

    fn identity() -> Identity {
        Identity::from_jwt("corp", Arc::new(json!({"sub": "u"})))
    }

    #[test]
    fn until_expiry_and_bounded() {
        let cache = TokenCache::new(2);
        cache.insert("t1", at(0), &identity(), Some(100));
        assert!(cache.get("t1", 99, 0).is_some());
        assert!(cache.get("t1", 100, 0).is_none());
        assert_eq!(cache.lookups(), (1, 1), "an expired entry is a miss");
        cache.insert("no-exp", at(0), &identity(), None);
        assert!(cache.get("no-exp", 11, 0).is_none());
        cache.insert("t2", at(0), &identity(), Some(100));
        cache.insert("t3", at(1), &identity(), Some(100));
        assert!(cache.len() <= 2);
        assert_eq!(cache.get("t3", 11, 0).unwrap().0, 1);
        assert!(TokenCache::new(0).get("t1", 11, 0).is_none());
    }

    #[test]
    fn a_token_verified_under_other_rules_is_a_miss() {
        let cache = TokenCache::new(10);
        cache.insert("t", at(0), &identity(), Some(100));
        assert!(cache.get("t", 11, 0).is_some());
        assert!(cache.get("t", 11, 1).is_none(), "the providers' rules changed since");
    }

    #[test]
    fn stays_bounded_and_answers_when_full() {
        let cache = TokenCache::new(10_000);
        for i in 0..100_000 {
            cache.insert(&format!("token-{i}"), at(0), &identity(), Some(100));
            assert!(cache.len() <= 10_000);
        }
        assert!(cache.len() > 5_000, "{}", cache.len());
        assert!(cache.get("token-99999", 11, 0).is_some(), "the newest token is cached");
    }

    #[test]
    fn only_the_exact_token_hits() {
        let cache = TokenCache::new(10);
        cache.insert("header.payload.signature", at(0), &identity(), Some(100));
        assert!(cache.get("header.payload.signature", 11, 0).is_some());
        assert!(cache.get("header.payload.signaturE", 11, 0).is_none());
        assert!(cache.get("header.payload.signature ", 11, 0).is_none());
        assert!(cache.get("header.payload.", 11, 0).is_none());
    }
}

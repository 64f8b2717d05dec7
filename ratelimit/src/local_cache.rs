//! The local over-limit cache: keys found over their limit are remembered until their window
//! ends, and answered OVER_LIMIT without a Redis round trip. Bounded by an approximate byte
//! budget (`LOCAL_CACHE_SIZE_IN_BYTES`).
//!
//! Why a sharded S3-FIFO cache (`quick_cache`) and not a map under one lock: the cache fills up
//! exactly when an attack or a hot client is over its limit, and a full cache must stay as fast
//! as a warm one. Lookups take a shard's read lock; inserts and evictions are O(1) in one
//! shard. An earlier version scanned every entry under a global lock on each insert at
//! capacity, which cut throughput twelvefold. Expired entries are not swept: they answer "not
//! cached" and are evicted like any cold entry.

use std::hash::RandomState;

use quick_cache::sync::Cache;
use quick_cache::Weighter;

/// Approximate bookkeeping cost of one entry besides its key.
const ENTRY_OVERHEAD: usize = 48;

/// An entry's cost against the byte budget.
#[derive(Clone)]
struct Bytes;

impl Weighter<Box<str>, u64> for Bytes {
    fn weight(&self, key: &Box<str>, _expires: &u64) -> u64 {
        (key.len() + ENTRY_OVERHEAD) as u64
    }
}

pub struct LocalCache {
    /// Key → Unix second at which it expires. Keys come from requests, so the hasher is
    /// std's randomly keyed SipHash: crafted keys cannot pile into one bucket.
    entries: Cache<Box<str>, u64, Bytes, RandomState>,
}

impl LocalCache {
    pub fn new(max_bytes: usize) -> LocalCache {
        // Sized for keys of about 64 bytes; the byte budget is what bounds it.
        let estimated_items = (max_bytes / (64 + ENTRY_OVERHEAD)).max(1);
        LocalCache {
            entries: Cache::with(estimated_items, max_bytes as u64, Bytes, RandomState::new(), Default::default()),
        }
    }

    pub fn contains(&self, key: &str, now: u64) -> bool {
        self.entries.get(key).is_some_and(|expires| expires > now)
    }

    /// Remembers `key` for `ttl` seconds. At capacity the coldest entries go: the cache only
    /// saves round trips, so losing an entry is harmless.
    pub fn insert(&self, key: &str, ttl: u64, now: u64) {
        self.entries.insert(key.into(), now + ttl);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes charged against the budget.
    pub fn weight(&self) -> u64 {
        self.entries.weight()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_until_the_window_ends() {
        let cache = LocalCache::new(1024);
        cache.insert("k", 60, 1000);
        assert!(cache.contains("k", 1059));
        assert!(!cache.contains("k", 1060));
    }

    #[test]
    fn stays_within_its_budget_at_capacity_and_keeps_answering() {
        let budget = 2 << 20;
        let cache = LocalCache::new(budget);
        // Five times what fits: the budget holds, new keys are remembered, old ones age out.
        let fits = budget / (ENTRY_OVERHEAD + 16);
        for i in 0..fits * 5 {
            cache.insert(&format!("key-{i:012}"), 60, 0);
            if i % 50_000 == 0 {
                assert!(cache.weight() <= budget as u64, "{} > {budget}", cache.weight());
            }
        }
        assert!(cache.weight() <= budget as u64);
        assert!(cache.len() > fits / 2, "the cache is used: {} of {fits}", cache.len());
        let last = format!("key-{:012}", fits * 5 - 1);
        assert!(cache.contains(&last, 1), "the newest entry is there");
        // Repeatedly seen keys survive a flood of one-off keys (S3-FIFO keeps hot entries).
        for round in 0..3 {
            cache.insert("hot", 60, 0);
            assert!(cache.contains("hot", 1));
            for i in 0..fits {
                cache.insert(&format!("flood-{round}-{i:012}"), 60, 0);
                if i % 1000 == 0 {
                    assert!(cache.contains("hot", 1), "round {round}, after {i}");
                }
            }
        }
    }
}

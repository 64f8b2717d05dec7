//! The local over-limit cache: keys found over their limit are remembered until their window
//! ends, and answered OVER_LIMIT without a Redis round trip. Bounded by an approximate byte
//! budget (`LOCAL_CACHE_SIZE_IN_BYTES`).

use std::collections::HashMap;
use std::sync::Mutex;

/// Approximate bookkeeping cost of one entry besides its key.
const ENTRY_OVERHEAD: usize = 48;

pub struct LocalCache {
    max_bytes: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Key → Unix second at which it expires.
    entries: HashMap<String, u64>,
    bytes: usize,
}

impl LocalCache {
    pub fn new(max_bytes: usize) -> LocalCache {
        LocalCache { max_bytes, state: Mutex::default() }
    }

    pub fn contains(&self, key: &str, now: u64) -> bool {
        let state = self.state.lock().expect("local cache lock");
        state.entries.get(key).is_some_and(|&expires| expires > now)
    }

    /// Remembers `key` for `ttl` seconds. When the budget is spent, expired entries go first,
    /// then arbitrary ones: the cache only saves round trips, so losing an entry is harmless.
    pub fn insert(&self, key: &str, ttl: u64, now: u64) {
        let cost = key.len() + ENTRY_OVERHEAD;
        if cost > self.max_bytes {
            return;
        }
        let mut state = self.state.lock().expect("local cache lock");
        if state.bytes + cost > self.max_bytes {
            state.entries.retain(|_, expires| *expires > now);
            state.bytes = state.entries.keys().map(|k| k.len() + ENTRY_OVERHEAD).sum();
        }
        while state.bytes + cost > self.max_bytes {
            let Some(victim) = state.entries.keys().next().cloned() else {
                break;
            };
            state.entries.remove(&victim);
            state.bytes -= victim.len() + ENTRY_OVERHEAD;
        }
        if state.entries.insert(key.to_string(), now + ttl).is_none() {
            state.bytes += cost;
        }
    }

    pub fn len(&self) -> usize {
        self.state.lock().expect("local cache lock").entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
    fn stays_within_its_budget() {
        let cache = LocalCache::new(3 * (ENTRY_OVERHEAD + 2));
        for i in 0..10 {
            cache.insert(&format!("k{i}"), 60, 0);
        }
        assert_eq!(cache.len(), 3);
        assert!(cache.contains("k9", 1));
    }
}

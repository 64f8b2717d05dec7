//! Counters in process memory, for a single instance and for trying the service out.
//! Sharded so that concurrent requests on different keys rarely contend for a lock.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;

use super::{CounterStore, CounterUpdate, StoreFuture};

const SHARDS: usize = 64;

pub struct MemoryStore {
    shards: Vec<Mutex<HashMap<String, Counter>>>,
    hasher: RandomState,
}

#[derive(Debug, Clone, Copy)]
struct Counter {
    value: u64,
    /// Unix second at which the counter is gone, as Redis would expire it.
    expires_at: u64,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore { shards: (0..SHARDS).map(|_| Mutex::default()).collect(), hasher: RandomState::new() }
    }
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn shard(&self, key: &str) -> &Mutex<HashMap<String, Counter>> {
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    /// Drops expired counters; run periodically so memory follows the live windows.
    pub fn sweep(&self, now: u64) -> usize {
        let mut removed = 0;
        for shard in &self.shards {
            let mut map = shard.lock().expect("memory store lock");
            let before = map.len();
            map.retain(|_, c| c.expires_at > now);
            removed += before - map.len();
        }
        removed
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().expect("memory store lock").len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn add(&self, update: &CounterUpdate<'_>, now: u64) -> u64 {
        let mut map = self.shard(update.key).lock().expect("memory store lock");
        let live = map.get(update.key).filter(|c| c.expires_at > now).map(|c| c.value);
        let value = live.unwrap_or(0).saturating_add(update.hits);
        // Like INCRBY + EXPIRE: every update refreshes the TTL.
        let counter = Counter { value, expires_at: now + update.ttl.max(1) };
        match map.get_mut(update.key) {
            Some(existing) => *existing = counter,
            None => {
                map.insert(update.key.to_string(), counter);
            }
        }
        value
    }

    fn read(&self, key: &str, now: u64) -> u64 {
        let map = self.shard(key).lock().expect("memory store lock");
        map.get(key).filter(|c| c.expires_at > now).map_or(0, |c| c.value)
    }
}

impl CounterStore for MemoryStore {
    fn increment<'a>(&'a self, updates: &'a [CounterUpdate<'a>], now: u64) -> StoreFuture<'a, Vec<u64>> {
        let values = updates.iter().map(|u| self.add(u, now)).collect();
        Box::pin(std::future::ready(Ok(values)))
    }

    fn current<'a>(&'a self, counters: &'a [CounterUpdate<'a>], now: u64) -> StoreFuture<'a, Vec<u64>> {
        let values = counters.iter().map(|c| self.read(c.key, now)).collect();
        Box::pin(std::future::ready(Ok(values)))
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_expire_like_redis_keys() {
        let store = MemoryStore::new();
        let update = CounterUpdate { key: "k", hits: 2, ttl: 60, window: 60 };
        assert_eq!(store.add(&update, 1000), 2);
        assert_eq!(store.add(&update, 1059), 4);
        assert_eq!(store.read("k", 1118), 4);
        assert_eq!(store.read("k", 1119), 0);
        assert_eq!(store.sweep(1119), 1);
        assert!(store.is_empty());
    }
}

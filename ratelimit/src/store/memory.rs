//! Counters in process memory, for a single instance and for trying the service out.
//!
//! Bounded: at most `max_counters` live at once (`MEMORY_MAX_COUNTERS`). The counters sit in a
//! sharded S3-FIFO cache (`quick_cache`): updates lock one shard, inserts and evictions are O(1)
//! however full it is. At the cap the least-used counters go first — a flood of one-off keys
//! (random user ids, say) is evicted before the counters of clients that keep coming back.
//! Evicting can only under-count (that client's window starts again), never refuse anyone.
//!
//! A counter lives until its window ends, not for the window plus `EXPIRATION_JITTER_MAX_SECONDS`
//! as in Redis: jitter spreads Redis's expiry work, and here it would only keep dead counters in
//! memory (a per-second counter for up to five minutes). A periodic [`MemoryStore::sweep`]
//! drops the counters of ended windows.

use std::hash::RandomState;

use quick_cache::sync::{Cache, EntryAction, EntryResult};
use quick_cache::UnitWeighter;

use super::{CounterStore, CounterUpdate, Step, StepResult, StoreError, StoreFuture};
use crate::core::algorithm::{bucket_step, MICROS};

/// The default for `MEMORY_MAX_COUNTERS`: about 130 MiB of counters.
pub const DEFAULT_MAX_COUNTERS: usize = 1_000_000;

pub struct MemoryStore {
    /// Keys come from requests, so the hasher is std's randomly keyed SipHash.
    counters: Cache<String, Counter, UnitWeighter, RandomState>,
}

#[derive(Debug, Clone, Copy)]
struct Counter {
    value: u64,
    /// Unix second at which the counter's window ends.
    expires_at: u64,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::with_capacity(DEFAULT_MAX_COUNTERS)
    }
}

/// The end of the window `now` falls in; counter keys carry the window's start, computed the
/// same way (`now / window * window`).
fn window_end(now: u64, window: u64) -> u64 {
    let window = window.max(1);
    (now / window).saturating_mul(window).saturating_add(window)
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// A store holding at most `max_counters` counters (at least 1).
    pub fn with_capacity(max_counters: usize) -> MemoryStore {
        let max = max_counters.max(1);
        MemoryStore { counters: Cache::with(max, max as u64, UnitWeighter, RandomState::new(), Default::default()) }
    }

    /// Drops the counters of ended windows; run periodically so memory follows the live ones.
    pub fn sweep(&self, now: u64) -> usize {
        let before = self.counters.len();
        self.counters.retain(|_, c| c.expires_at > now);
        before.saturating_sub(self.counters.len())
    }

    pub fn len(&self) -> usize {
        self.counters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn add_all(&self, updates: &[CounterUpdate<'_>], now: u64) -> Vec<u64> {
        updates.iter().map(|u| self.add(u, now)).collect()
    }

    fn add(&self, update: &CounterUpdate<'_>, now: u64) -> u64 {
        self.add_for(update, now, window_end(now, update.window))
    }

    /// Adds to a counter that lives until `expires_at` (a new one, or one whose life ended).
    fn add_for(&self, update: &CounterUpdate<'_>, now: u64, expires_at: u64) -> u64 {
        loop {
            let added = self.counters.entry(update.key, None, |_, counter| {
                if counter.expires_at <= now {
                    *counter = Counter { value: 0, expires_at };
                }
                // Saturates: a huge `hits_addend` is over any limit, never a wrapped small count.
                counter.value = counter.value.saturating_add(update.hits);
                EntryAction::Retain(counter.value)
            });
            match added {
                EntryResult::Retained(value) => return value,
                EntryResult::Vacant(slot) => {
                    if slot.insert(Counter { value: update.hits, expires_at }).is_ok() {
                        return update.hits;
                    }
                    // The slot was taken away (a sweep ran): go again.
                }
                EntryResult::Removed(..) | EntryResult::Replaced(..) | EntryResult::Timeout => {
                    unreachable!("the callback always retains and there is no timeout")
                }
            }
        }
    }

    fn read(&self, key: &str, now: u64) -> u64 {
        self.counters.get(key).filter(|c| c.expires_at > now).map_or(0, |c| c.value)
    }

    /// A token bucket step under the key's shard lock. The arrival time is kept until it has
    /// passed (a full bucket needs no state).
    fn bucket(&self, key: &str, now_us: u64, increment_us: u64, tolerance_us: u64) -> (bool, u64) {
        let now = now_us / MICROS;
        let kept_until = |tat_us: u64| tat_us.div_ceil(MICROS) + 1;
        loop {
            let stepped = self.counters.entry(key, None, |_, counter| {
                let stored = if counter.expires_at <= now { 0 } else { counter.value };
                let (allowed, tat) = bucket_step(stored, now_us, increment_us, tolerance_us);
                if allowed && increment_us > 0 {
                    *counter = Counter { value: tat, expires_at: kept_until(tat) };
                }
                EntryAction::Retain((allowed, tat))
            });
            match stepped {
                EntryResult::Retained(answer) => return answer,
                EntryResult::Vacant(slot) => {
                    let (allowed, tat) = bucket_step(0, now_us, increment_us, tolerance_us);
                    if !(allowed && increment_us > 0) {
                        return (allowed, tat);
                    }
                    if slot.insert(Counter { value: tat, expires_at: kept_until(tat) }).is_ok() {
                        return (allowed, tat);
                    }
                }
                EntryResult::Removed(..) | EntryResult::Replaced(..) | EntryResult::Timeout => {
                    unreachable!("the callback always retains and there is no timeout")
                }
            }
        }
    }

    fn step(&self, step: &Step<'_>, now_us: u64) -> StepResult {
        let now = now_us / MICROS;
        match step {
            Step::Window(update) => StepResult::Count(self.add(update, now)),
            Step::Sliding { current, previous } => {
                // This window's counter is the next one's previous: it lives two windows.
                let lives_until = window_end(now, current.window).saturating_add(current.window.max(1));
                let current = self.add_for(current, now, lives_until);
                StepResult::Sliding { current, previous: self.read(previous, now) }
            }
            Step::Bucket { key, increment_us, tolerance_us } => {
                let (allowed, tat_us) = self.bucket(key, now_us, *increment_us, *tolerance_us);
                StepResult::Bucket { allowed, tat_us }
            }
        }
    }
}

impl CounterStore for MemoryStore {
    fn increment<'a>(&'a self, updates: &'a [CounterUpdate<'a>], now: u64) -> StoreFuture<'a, Vec<u64>> {
        Box::pin(std::future::ready(Ok(self.add_all(updates, now))))
    }

    fn increment_now(&self, updates: &[CounterUpdate<'_>], now: u64) -> Option<Result<Vec<u64>, StoreError>> {
        Some(Ok(self.add_all(updates, now)))
    }

    fn current<'a>(&'a self, counters: &'a [CounterUpdate<'a>], now: u64) -> StoreFuture<'a, Vec<u64>> {
        let values = counters.iter().map(|c| self.read(c.key, now)).collect();
        Box::pin(std::future::ready(Ok(values)))
    }

    fn run<'a>(&'a self, steps: &'a [Step<'a>], now_us: u64) -> StoreFuture<'a, Vec<StepResult>> {
        let results = steps.iter().map(|step| self.step(step, now_us)).collect();
        Box::pin(std::future::ready(Ok(results)))
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn name(&self) -> &'static str {
        "memory"
    }

    /// Every method above returns `std::future::ready`.
    fn answers_immediately(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(key: &str, hits: u64, window: u64) -> CounterUpdate<'_> {
        // A TTL with Redis jitter: the memory store ignores it.
        CounterUpdate { key, hits, ttl: window + 300, window }
    }

    #[test]
    fn counters_live_until_their_window_ends_whatever_the_jitter() {
        let store = MemoryStore::new();
        let minute = update("k", 2, 60);
        assert_eq!(store.add(&minute, 1020), 2);
        assert_eq!(store.add(&minute, 1079), 4);
        assert_eq!(store.read("k", 1079), 4);
        assert_eq!(store.read("k", 1080), 0, "the window 1020..1080 ended");
        let second = update("s", 1, 1);
        store.add(&second, 1079);
        assert_eq!(store.sweep(1080), 2, "both gone at 1080, not 300 s later");
        assert!(store.is_empty());
    }

    /// The on-the-spot increment and the future one count the same counters, in order.
    #[tokio::test]
    async fn incrementing_now_and_through_the_future_count_alike() {
        let store = MemoryStore::new();
        let updates = [update("a", 1, 60), update("b", 3, 60), update("a", 2, 60)];
        let now = store.increment_now(&updates, 1000).expect("the memory store counts on the spot").unwrap();
        assert_eq!(now, [1, 3, 3]);
        let later = store.increment(&updates, 1000).await.unwrap();
        assert_eq!(later, [4, 6, 6]);
        assert!(store.answers_immediately());
    }

    #[test]
    fn saturates_instead_of_wrapping() {
        let store = MemoryStore::new();
        assert_eq!(store.add(&update("k", u64::MAX - 1, 60), 0), u64::MAX - 1);
        assert_eq!(store.add(&update("k", 5, 60), 0), u64::MAX);
    }

    #[test]
    fn bounded_at_the_cap_and_keeps_counting_returning_clients() {
        let store = MemoryStore::with_capacity(10_000);
        for i in 0..50_000 {
            // A client that comes back every few requests, among a flood of one-off keys.
            assert_eq!(store.add(&update("regular", 1, 3600), 0), i + 1, "after {i}");
            for j in 0..4 {
                store.add(&update(&format!("once-{i}-{j}"), 1, 3600), 0);
            }
            if i % 1000 == 0 {
                assert!(store.len() <= 10_000, "{}", store.len());
            }
        }
        assert!(store.len() <= 10_000);
    }
}

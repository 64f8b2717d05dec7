//! Counters in process memory, for a single instance and for trying the service out.
//!
//! Bounded: at most `max_counters` live at once (`MEMORY_MAX_COUNTERS`). The counters sit in a
//! sharded S3-FIFO cache (`quick_cache`): updates lock one shard, inserts and evictions are O(1)
//! however full it is. Evicting can only under-count (that client's window starts again), never
//! refuse anyone — which is why it must not be something a client can aim at others.
//!
//! **Kept counters.** S3-FIFO alone let a flood of one-off keys reset other clients' counters:
//! its probation queue is 3% of the cache, so a counter hit again later than that many new
//! keys was evicted as a one-off (its ghost re-admits the key, not its count); and in the main
//! queue a key's frequency saturates at 2, so keys hit twice each (cheap for an attacker)
//! cycled out counters hit any number of times. So a counter hit a second time within its
//! window is *kept*: it weighs 0, which takes it out of the eviction queues altogether (at no
//! cost per eviction, unlike quick_cache's pinning, which scans), and it stays until its window
//! ends and a sweep finds it. Kept counters are bounded apart: at most half of `max_counters`
//! ([`MemoryStore::kept_budget`]); the other half is the S3-FIFO cache for counters hit once
//! (and for counters hit more while the budget is spent). A flood of one-off keys only cycles
//! that half; a counter hit more than once — every counter over a limit of 1 or more — keeps
//! its count. A counter kept stays kept when its window ends and it is hit again before the
//! sweep: a client that keeps coming back keeps its place.
//!
//! A counter lives until its window ends, not for the window plus `EXPIRATION_JITTER_MAX_SECONDS`
//! as in Redis: jitter spreads Redis's expiry work, and here it would only keep dead counters in
//! memory (a per-second counter for up to five minutes). A periodic [`MemoryStore::sweep`]
//! drops the counters of ended windows.

use std::hash::RandomState;
use std::sync::atomic::{AtomicUsize, Ordering};

use quick_cache::sync::{Cache, DefaultLifecycle, EntryAction, EntryResult};
use quick_cache::{OptionsBuilder, Weighter};

use super::{CounterStore, CounterUpdate, Step, StepResult, StoreError, StoreFuture};
use crate::core::algorithm::{bucket_step, MICROS};

/// The default for `MEMORY_MAX_COUNTERS`: about 130 MiB of counters.
pub const DEFAULT_MAX_COUNTERS: usize = 1_000_000;

/// The share of the S3-FIFO half given to its main queue (quick_cache's default is 0.97). A
/// counter hit again leaves the queues (kept) while the budget lasts, so the main queue mostly
/// holds what was admitted while the cache filled; the probation queue is the time a new
/// counter has to be hit again before a flood pushes it out, so it gets most of the room.
const HOT_ALLOCATION: f64 = 0.1;

pub struct MemoryStore {
    /// Keys come from requests, so the hasher is std's randomly keyed SipHash.
    counters: Cache<String, Counter, KeptWeighNothing, RandomState>,
    /// Counters kept now (see the module doc), at most `kept_budget`.
    kept: AtomicUsize,
    kept_budget: usize,
}

#[derive(Debug, Clone, Copy)]
struct Counter {
    value: u64,
    /// Unix second at which the counter's window ends.
    expires_at: u64,
    /// Hit more than once and within the budget: out of the eviction queues until swept.
    kept: bool,
}

/// A kept counter weighs 0: quick_cache leaves zero-weight entries out of its eviction queues.
#[derive(Debug, Clone, Copy)]
struct KeptWeighNothing;

impl Weighter<String, Counter> for KeptWeighNothing {
    fn weight(&self, _key: &String, counter: &Counter) -> u64 {
        u64::from(!counter.kept)
    }
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

    /// A store holding at most `max_counters` counters (at least 1): half of them (rounded
    /// down) kept counters, the rest in the S3-FIFO cache.
    pub fn with_capacity(max_counters: usize) -> MemoryStore {
        let max = max_counters.max(1);
        let kept_budget = max / 2;
        let options = OptionsBuilder::new()
            .estimated_items_capacity(max)
            .weight_capacity((max - kept_budget) as u64)
            .hot_allocation(HOT_ALLOCATION)
            .build()
            .expect("valid cache options");
        let counters = Cache::with_options(options, KeptWeighNothing, RandomState::new(), DefaultLifecycle::default());
        MemoryStore { counters, kept: AtomicUsize::new(0), kept_budget }
    }

    /// Drops the counters of ended windows; run periodically so memory follows the live ones.
    /// The only way a kept counter leaves, so the only place its budget is given back.
    pub fn sweep(&self, now: u64) -> usize {
        let before = self.counters.len();
        self.counters.retain(|_, c| {
            let live = c.expires_at > now;
            if !live && c.kept {
                self.kept.fetch_sub(1, Ordering::Relaxed);
            }
            live
        });
        before.saturating_sub(self.counters.len())
    }

    /// How many counters can be kept at once (half of `max_counters`).
    pub fn kept_budget(&self) -> usize {
        self.kept_budget
    }

    /// Counters kept now.
    pub fn kept(&self) -> usize {
        self.kept.load(Ordering::Relaxed)
    }

    /// Keeps a counter hit again within its window, while the budget allows. Called under the
    /// counter's shard lock; the weight change (1 to 0) is applied when the callback returns.
    /// A counter already kept costs one branch: nothing shared is touched.
    fn keep(&self, counter: &mut Counter) {
        if counter.kept || self.kept.load(Ordering::Relaxed) >= self.kept_budget {
            return;
        }
        // Two shards may race for the last slot: the loser gives it back.
        if self.kept.fetch_add(1, Ordering::Relaxed) < self.kept_budget {
            counter.kept = true;
        } else {
            self.kept.fetch_sub(1, Ordering::Relaxed);
        }
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
                    // A new window: its first hit. A kept counter stays kept (see the module doc).
                    counter.value = 0;
                    counter.expires_at = expires_at;
                } else {
                    self.keep(counter);
                }
                // Saturates: a huge `hits_addend` is over any limit, never a wrapped small count.
                counter.value = counter.value.saturating_add(update.hits);
                EntryAction::Retain(counter.value)
            });
            match added {
                EntryResult::Retained(value) => return value,
                EntryResult::Vacant(slot) => {
                    if slot.insert(Counter { value: update.hits, expires_at, kept: false }).is_ok() {
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
                let live = counter.expires_at > now;
                let stored = if live { counter.value } else { 0 };
                let (allowed, tat) = bucket_step(stored, now_us, increment_us, tolerance_us);
                // Any second hit keeps it, a refused one too: a spent bucket (burst 1, or a
                // client hammering) is the one whose eviction would hand its budget back.
                if live {
                    self.keep(counter);
                }
                if allowed && increment_us > 0 {
                    counter.value = tat;
                    counter.expires_at = kept_until(tat);
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
                    if slot.insert(Counter { value: tat, expires_at: kept_until(tat), kept: false }).is_ok() {
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
mod tests;

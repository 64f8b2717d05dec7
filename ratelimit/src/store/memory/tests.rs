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

/// The store at its cap, with `filler` one-off keys counted into it first.
fn full_store(cap: usize) -> MemoryStore {
    let store = MemoryStore::with_capacity(cap);
    for i in 0..2 * cap {
        store.add(&update(&format!("filler-{i}"), 1, 3600), 0);
    }
    assert!(store.len() <= cap);
    store
}

/// An attacker who can vary one descriptor value floods ten times the cap with one-off keys,
/// while a victim over its limit keeps asking now and then: its count is never reset.
#[test]
fn a_flood_of_one_off_keys_never_resets_a_counter_hit_more_than_once() {
    let cap = 10_000;
    let store = full_store(cap);
    let victim = update("victim", 1, 3600);
    for hit in 1..=5 {
        assert_eq!(store.add(&victim, 0), hit);
    }
    let mut expected = 5;
    for i in 0..10 * cap {
        store.add(&update(&format!("once-{i}"), 1, 3600), 0);
        // Far apart: every 2,000 new keys, more than the probation queue of the old cache.
        if i % 2_000 == 1_999 {
            expected += 1;
            assert_eq!(store.add(&victim, 0), expected, "after {i} one-off keys");
        }
    }
    assert_eq!(store.read("victim", 0), expected);
    assert!(store.len() <= cap, "{}", store.len());
}

/// The same victim, silent during the flood: still counted when it comes back.
#[test]
fn a_silent_victim_keeps_its_count_through_the_flood() {
    let cap = 10_000;
    let store = full_store(cap);
    for _ in 0..2 {
        store.add(&update("victim", 1, 3600), 0);
    }
    for i in 0..10 * cap {
        store.add(&update(&format!("once-{i}"), 1, 3600), 0);
    }
    assert_eq!(store.add(&update("victim", 1, 3600), 0), 3);
}

/// Keys hit twice each (cheap for an attacker) cycled the old cache's main queue; a counter
/// kept before the flood stays, however the budget is spent meanwhile.
#[test]
fn keys_hit_twice_each_do_not_evict_a_kept_counter() {
    let cap = 10_000;
    let store = full_store(cap);
    for _ in 0..3 {
        store.add(&update("victim", 1, 3600), 0);
    }
    for i in 0..10 * cap {
        let key = format!("twice-{i}");
        store.add(&update(&key, 1, 3600), 0);
        store.add(&update(&key, 1, 3600), 0);
    }
    assert_eq!(store.kept(), store.kept_budget(), "the budget is spent by the flood");
    assert_eq!(store.add(&update("victim", 1, 3600), 0), 4);
    assert!(store.len() <= cap, "{}", store.len());
}

/// Kept counters are bounded apart, leave only with the sweep, and give their budget back.
#[test]
fn kept_counters_are_bounded_and_swept_with_their_window() {
    let store = MemoryStore::with_capacity(100);
    assert_eq!(store.kept_budget(), 50);
    for i in 0..200 {
        let key = format!("k{i}");
        store.add(&update(&key, 1, 60), 0);
        store.add(&update(&key, 1, 60), 0);
    }
    assert_eq!(store.kept(), 50);
    assert!(store.len() <= 100, "{}", store.len());
    // A kept counter renewed in its next window stays kept, its count starting again.
    assert_eq!(store.add(&update("k0", 1, 60), 60), 1);
    store.sweep(60);
    assert_eq!(store.kept(), 1, "only k0, renewed, is still there");
    assert_eq!(store.len(), 1);
    store.sweep(120);
    assert_eq!((store.kept(), store.len()), (0, 0));
    // The budget is there again.
    store.add(&update("again", 1, 60), 120);
    store.add(&update("again", 1, 60), 120);
    assert_eq!(store.kept(), 1);
}

/// A token bucket used more than once is kept as well: evicting it would refill it.
#[test]
fn a_bucket_used_more_than_once_is_kept() {
    let store = MemoryStore::with_capacity(100);
    let now_us = 1_000 * MICROS;
    // A request a second, burst 3.
    for _ in 0..3 {
        assert!(store.bucket("b", now_us, MICROS, 3 * MICROS).0);
    }
    assert!(!store.bucket("b", now_us, MICROS, 3 * MICROS).0, "the burst is spent");
    assert_eq!(store.kept(), 1);
    for i in 0..1_000 {
        store.add(&update(&format!("once-{i}"), 1, 3600), 1_000);
    }
    assert!(!store.bucket("b", now_us, MICROS, 3 * MICROS).0, "still spent after the flood");
}

#[test]
fn a_spent_bucket_hit_again_is_kept_though_refused() {
    let store = MemoryStore::with_capacity(100);
    let now_us = 1_000 * MICROS;
    // Burst 1: the first request spends it, every later one is refused, none allowed twice.
    assert!(store.bucket("b", now_us, MICROS, MICROS).0);
    assert!(!store.bucket("b", now_us, MICROS, MICROS).0);
    assert_eq!(store.kept(), 1, "the refused second hit keeps it");
    for i in 0..1_000 {
        store.add(&update(&format!("once-{i}"), 1, 3600), 1_000);
    }
    assert!(!store.bucket("b", now_us, MICROS, MICROS).0, "still spent after the flood");
}

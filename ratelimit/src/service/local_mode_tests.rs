//! `REDIS_FAILURE_MODE=local` against stores that hang or come and go, with tokio's paused
//! clock: the waits are exact and the switching is driven by hand.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use shared::testing::{TestClock, START};

use super::test_limiter::{self, request};
use super::*;
use crate::core::evaluate::Code;
use crate::store::StoreFuture;

/// A memory store that hangs (never answers, as a Redis stopped with SIGSTOP) while `down`.
#[derive(Default)]
struct Flaky {
    down: AtomicBool,
    counters: MemoryStore,
}

impl Flaky {
    fn answer<'a, T: Send + 'a>(&'a self, answer: StoreFuture<'a, T>) -> StoreFuture<'a, T> {
        match self.down.load(Ordering::SeqCst) {
            true => Box::pin(std::future::pending()),
            false => answer,
        }
    }
}

impl CounterStore for Flaky {
    fn increment<'a>(&'a self, updates: &'a [CounterUpdate<'a>], now: u64) -> StoreFuture<'a, Vec<u64>> {
        self.answer(self.counters.increment(updates, now))
    }
    fn current<'a>(&'a self, counters: &'a [CounterUpdate<'a>], now: u64) -> StoreFuture<'a, Vec<u64>> {
        self.answer(self.counters.current(counters, now))
    }
    fn run<'a>(&'a self, steps: &'a [Step<'a>], now_us: u64) -> StoreFuture<'a, Vec<StepResult>> {
        self.answer(self.counters.run(steps, now_us))
    }
    fn ping(&self) -> StoreFuture<'_, ()> {
        self.answer(Box::pin(std::future::ready(Ok(()))))
    }
    fn name(&self) -> &'static str {
        "flaky"
    }
}

const LOCAL_TIMEOUT: Duration = Duration::from_millis(250);

/// A limiter in local mode over `store` as one of 2 instances, at a clock the test sets: 10 an
/// hour on `k` (5 for this instance while it counts alone), and a window and a bucket of 0.
fn local_limiter(store: Arc<Flaky>, clock: &TestClock) -> RateLimiter {
    let (health, _server, _follow) = Health::new("ratelimit");
    let mode = FailureMode::Local { instances: 2, timeout: LOCAL_TIMEOUT };
    let yaml = "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: hour, requests_per_unit: 10}\n  - key: closed\n    rate_limit: {unit: hour, requests_per_unit: 0}\n  - key: closed_bucket\n    rate_limit: {unit: hour, requests_per_unit: 0, algorithm: token_bucket}\n";
    test_limiter::limiter(store, mode, health, Clocks::from_seconds(clock.as_clock()), yaml)
}

async fn code(limiter: &RateLimiter, key: &str) -> Code {
    limiter.should_rate_limit(&request(key)).await.unwrap().verdict.overall
}

/// A store that hangs costs the call that finds it hung the local timeout, then nothing: the
/// calls after it count locally without asking, and the probe waits the local timeout too.
#[tokio::test(start_paused = true)]
async fn a_hung_store_costs_one_call_the_local_timeout_and_no_more() {
    let store = Arc::new(Flaky::default());
    let limiter = local_limiter(store.clone(), &TestClock::new());
    assert_eq!(code(&limiter, "k").await, Code::Ok);
    store.down.store(true, Ordering::SeqCst);
    let started = tokio::time::Instant::now();
    // 10 an hour between 2 instances: 5 here while it counts alone.
    let codes: Vec<Code> = futures_util::future::join_all((0..6).map(|_| code(&limiter, "k"))).await;
    assert_eq!(started.elapsed(), LOCAL_TIMEOUT, "the calls in flight waited the local timeout together");
    assert!(limiter.in_outage());
    let codes_after: Vec<Code> = [code(&limiter, "k").await].into();
    assert_eq!(started.elapsed(), LOCAL_TIMEOUT, "later calls do not ask the store");
    let ok = codes.iter().chain(&codes_after).filter(|c| **c == Code::Ok).count();
    assert_eq!(ok, 5, "{codes:?} {codes_after:?}");
    limiter.probe_store().await;
    assert_eq!(started.elapsed(), LOCAL_TIMEOUT * 2, "the probe waits the local timeout, no more");
    assert!(limiter.in_outage());
    store.down.store(false, Ordering::SeqCst);
    limiter.probe_store().await;
    assert!(!limiter.in_outage());
}

/// A store that comes and goes many times within a window: what was counted locally carries
/// over from one outage to the next, so no more than the local share is let through in all.
#[tokio::test(start_paused = true)]
async fn a_flapping_store_never_hands_out_a_fresh_local_budget() {
    let store = Arc::new(Flaky::default());
    let clock = TestClock::new();
    let limiter = local_limiter(store.clone(), &clock);
    let mut admitted_locally = 0;
    for outage in 0..10 {
        store.down.store(true, Ordering::SeqCst);
        for _ in 0..3 {
            if code(&limiter, "k").await == Code::Ok {
                admitted_locally += 1;
            }
        }
        assert!(limiter.in_outage(), "outage {outage}");
        store.down.store(false, Ordering::SeqCst);
        limiter.probe_store().await;
        assert!(!limiter.in_outage(), "outage {outage} ended");
        clock.advance(60);
    }
    assert_eq!(admitted_locally, 5, "the local share of 10 an hour, across ten outages");
    // A new window: a new local budget.
    clock.advance(START + 3600 - clock.now());
    store.down.store(true, Ordering::SeqCst);
    assert_eq!(code(&limiter, "k").await, Code::Ok);
}

/// A limit of 0 stays 0 when it is shared among instances (it was raised to 1 each), whatever
/// the algorithm.
#[tokio::test(start_paused = true)]
async fn a_limit_of_zero_still_refuses_everything_locally() {
    let store = Arc::new(Flaky::default());
    store.down.store(true, Ordering::SeqCst);
    let limiter = local_limiter(store, &TestClock::new());
    for key in ["closed", "closed_bucket", "closed", "closed_bucket"] {
        assert_eq!(code(&limiter, key).await, Code::OverLimit, "{key}");
    }
    assert!(limiter.in_outage());
}

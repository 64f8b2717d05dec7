//! Where counters live. The trait exposes the operation the limiter needs — add to all of a
//! request's counters and read the results, in one call — never get-then-set, so concurrent
//! requests cannot both see the last free slot. Limits with another algorithm than the fixed
//! window (`core::algorithm`) run as [`Step`]s: every step of a request at once, atomically.

pub mod memory;
pub mod redis;

use std::future::Future;
use std::pin::Pin;

pub use self::redis::RedisStore;
pub use memory::MemoryStore;

pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// One counter to add to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterUpdate<'a> {
    pub key: &'a str,
    /// May be 0: the counter is then only read.
    pub hits: u64,
    /// Seconds the counter must live (its window plus jitter).
    pub ttl: u64,
    /// The limit's window in seconds (`REDIS_PERSECOND` routes 1-second windows apart).
    pub window: u64,
}

/// One counted descriptor's step, for requests with a sliding window or a token bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    /// A fixed window: add, then the counter's value.
    Window(CounterUpdate<'a>),
    /// A sliding window: add to this window's counter (kept two windows: it is the next one's
    /// previous), then both counters' values.
    Sliding { current: CounterUpdate<'a>, previous: &'a str },
    /// A token bucket: [`crate::core::algorithm::bucket_step`] on the key's arrival time.
    Bucket { key: &'a str, increment_us: u64, tolerance_us: u64 },
}

impl Step<'_> {
    /// The window that routes the step (`REDIS_PERSECOND` takes one-second windows).
    pub fn window(&self) -> u64 {
        match self {
            Step::Window(update) | Step::Sliding { current: update, .. } => update.window,
            Step::Bucket { .. } => 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepResult {
    Count(u64),
    Sliding { current: u64, previous: u64 },
    Bucket { allowed: bool, tat_us: u64 },
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis error: {0}")]
    Redis(#[from] shared::redis::RedisCallError),
    #[error("the store answered {got} values for {expected} counters")]
    ShortAnswer { expected: usize, got: usize },
    #[error("the store's script answered something else than counters: {got} values for {expected}")]
    ScriptAnswer { expected: usize, got: usize },
    /// With `REDIS_FAILURE_MODE=local`: no answer within `REDIS_FAILURE_LOCAL_TIMEOUT`.
    #[error("no answer within {0:?} (REDIS_FAILURE_LOCAL_TIMEOUT)")]
    LocalTimeout(std::time::Duration),
    /// A batched increment failed (see `crate::batch`); every request of the batch gets it.
    #[error("batched increment: {0}")]
    Batch(#[from] BatchError),
}

/// A store failure shared by every request of a batch (`crate::batch`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum BatchError {
    /// The batch's increment failed; shared, as every request of the batch waits on it.
    #[error(transparent)]
    Store(std::sync::Arc<StoreError>),
    #[error("the store answered no value")]
    NoValue,
    #[error("the batch was dropped")]
    Dropped,
}

impl StoreError {
    /// Whether the store as a whole failed (unreachable, timed out, refusing writes: see
    /// `shared::redis::error`): an outage, which flips health and is counted as one.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Redis(e) => e.is_transient(),
            StoreError::LocalTimeout(_) => true,
            StoreError::Batch(BatchError::Store(e)) => e.is_transient(),
            StoreError::ShortAnswer { .. }
            | StoreError::ScriptAnswer { .. }
            | StoreError::Batch(BatchError::NoValue | BatchError::Dropped) => false,
        }
    }

    /// Whether the failure mode answers the call: every failed store call (an outage, or a
    /// command the store refused — a script error, a missing permission, an error reply we do
    /// not know), so `REDIS_FAILURE_MODE=deny` never lets a call through because Redis said no.
    /// Not an answer that makes no sense for this request (a wrong count of values): that is a
    /// fault of ours, and the call fails.
    pub fn answered_by_failure_mode(&self) -> bool {
        match self {
            StoreError::Redis(_) | StoreError::LocalTimeout(_) => true,
            StoreError::Batch(BatchError::Store(e)) => e.answered_by_failure_mode(),
            StoreError::ShortAnswer { .. }
            | StoreError::ScriptAnswer { .. }
            | StoreError::Batch(BatchError::NoValue | BatchError::Dropped) => false,
        }
    }
}

pub trait CounterStore: Send + Sync {
    /// Adds `hits` to every counter (creating it with its TTL) and returns the new values, in
    /// order. The same key twice is added twice, in order.
    fn increment<'a>(&'a self, updates: &'a [CounterUpdate<'a>], now: u64) -> StoreFuture<'a, Vec<u64>>;

    /// Current values (0 for missing counters) of the updates' keys, in order; nothing is added.
    fn current<'a>(&'a self, counters: &'a [CounterUpdate<'a>], now: u64) -> StoreFuture<'a, Vec<u64>>;

    /// Runs every step at once, atomically, at `now_us` (Unix microseconds); results in order.
    fn run<'a>(&'a self, steps: &'a [Step<'a>], now_us: u64) -> StoreFuture<'a, Vec<StepResult>>;

    /// Whether the store answers.
    fn ping(&self) -> StoreFuture<'_, ()>;

    /// `memory` or `redis`, for logs.
    fn name(&self) -> &'static str;

    /// Whether every future this store returns is ready when made (it counts in the calling
    /// thread and never waits): the limiter then answers without suspending the call.
    fn answers_immediately(&self) -> bool {
        false
    }

    /// [`increment`](CounterStore::increment) done on the spot, by a store that counts in the
    /// calling thread; `None` (the default) from a store that must wait. Saves the boxed future
    /// of the call that answers nearly every request of the memory backend.
    fn increment_now(&self, _updates: &[CounterUpdate<'_>], _now: u64) -> Option<Result<Vec<u64>, StoreError>> {
        None
    }
}

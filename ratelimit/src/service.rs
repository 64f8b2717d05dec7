//! The rate limiter: the loaded config, the counter store and the local cache put together.
//! Protocol-free: the gRPC and HTTP adapters convert to and from [`RateLimitRequest`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use shared::health::Health;
use smallvec::SmallVec;

use crate::batch::Batcher;
use crate::core::algorithm::{Algorithm, MICROS};
use crate::core::evaluate::{
    addends_when_stopping_over_limit, decide, merged_metadata, plan, verdict_without_store, Counted, CounterValue,
    Metadata, Now, Plan, StatRef, Verdict,
};
use crate::core::{RateLimitConfig, RateLimitRequest};
use crate::local_cache::LocalCache;
use crate::metrics::{LimitStats, Metrics};
use crate::store::{CounterStore, CounterUpdate, MemoryStore, Step, StepResult, StoreError};

/// Each descriptor's counter value, in plan order. Requests carry one or two descriptors almost
/// always: kept on the stack.
type Values = SmallVec<[Option<CounterValue>; 4]>;

/// Errors a call can end with. The texts of the first three are the reference's.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("rate limit domain must not be empty")]
    EmptyDomain,
    #[error("rate limit descriptor list must not be empty")]
    NoDescriptors,
    #[error("no rate limit configuration loaded")]
    NoConfig,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A config in service, with the per-limit statistics created at load time.
pub struct Loaded {
    pub config: RateLimitConfig,
    pub settings: ReloadableSettings,
    limit_stats: Vec<LimitStats>,
}

/// The answer to one request.
#[derive(Debug, Clone)]
pub struct Decision {
    pub verdict: Verdict,
    /// Set when `RESPONSE_DYNAMIC_METADATA` is on: the merged config metadata.
    pub dynamic_metadata: Option<Metadata>,
}

/// What a call answers when the store fails (`REDIS_FAILURE_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureMode {
    /// The call fails with UNAVAILABLE and Envoy's `failure_mode_deny` decides.
    Error,
    Allow,
    Deny,
    /// Count in this instance's memory while the store is down, each limit divided by the
    /// number of instances sharing the traffic (at least 1 each, a limit of 0 stays 0).
    Local {
        instances: u32,
        /// `REDIS_FAILURE_LOCAL_TIMEOUT`: how long a call (or the probe) waits for the store
        /// before it counts locally — a hung Redis must not cost each call `REDIS_TIMEOUT`.
        timeout: Duration,
    },
}

/// The most counters an instance keeps while it counts alone (about 13 MB); past it the
/// least-used go first (an under-count, never a refusal).
pub const LOCAL_FAILURE_COUNTERS: usize = 100_000;

/// The settings the reference re-reads at every config load, applied with each config.
#[derive(Debug, Clone, PartialEq)]
pub struct ReloadableSettings {
    pub evaluation: crate::core::evaluate::EvaluationSettings,
    /// `MERGE_DOMAIN_CONFIG`: merge files that share a domain instead of rejecting them.
    pub merge_domains: bool,
    /// `RESPONSE_DYNAMIC_METADATA`.
    pub dynamic_metadata: bool,
}

/// Fixed at start.
#[derive(Debug, Clone, PartialEq)]
pub struct LimiterOptions {
    pub stop_increment_when_over_limit: bool,
    pub failure_mode: FailureMode,
    pub expiration_jitter_max_seconds: u64,
    pub local_cache_size_in_bytes: u64,
    /// Report the `redis` health component from the store's reachability.
    pub store_health: bool,
    /// `HOT_KEY_BATCH_WINDOW`: increments of one key within this window go to the store as one.
    pub batch_window: Option<std::time::Duration>,
}

pub use shared::clock::{system_clock, Clock};

/// The limiter's clocks: whole seconds name the windows; microseconds drive sliding windows'
/// weights and token buckets.
#[derive(Clone)]
pub struct Clocks {
    pub seconds: Clock,
    /// Unix microseconds.
    pub micros: Clock,
}

impl Clocks {
    pub fn system() -> Clocks {
        Clocks { seconds: system_clock(), micros: shared::clock::system_micros_clock() }
    }

    /// A seconds clock alone (tests that move time by whole seconds): the microseconds are the
    /// start of its second. Token buckets finer than a second need [`Clocks::from_micros`].
    pub fn from_seconds(seconds: Clock) -> Clocks {
        let whole = seconds.clone();
        Clocks { seconds, micros: Arc::new(move || whole().saturating_mul(MICROS)) }
    }

    /// A microseconds clock, the seconds derived from it.
    pub fn from_micros(micros: Clock) -> Clocks {
        let fine = micros.clone();
        Clocks { seconds: Arc::new(move || fine() / MICROS), micros }
    }

    fn now(&self) -> Now {
        Now::from_micros((self.micros)())
    }
}

pub struct RateLimiter {
    loaded: ArcSwapOption<Loaded>,
    store: Arc<dyn CounterStore>,
    /// With `FailureMode::Local`: where counting goes while the store is down. Kept for the
    /// service's life: a counter lives out its window across outages, so a store that comes
    /// and goes never hands out a fresh budget.
    fallback: Option<MemoryStore>,
    /// With `FailureMode::Local` on a store that waits: the bound on each wait for it.
    local_timeout: Option<Duration>,
    /// With `HOT_KEY_BATCH_WINDOW`: increments of a key collected for a moment.
    batcher: Option<Batcher>,
    local_cache: Option<LocalCache>,
    options: LimiterOptions,
    metrics: Metrics,
    health: Health,
    in_outage: AtomicBool,
    /// A refused command was logged; reset when the store answers a call (see `store_refused`).
    refusing: AtomicBool,
    clocks: Clocks,
    /// The store, the fallback and the batcher never wait: see [`RateLimiter::answer_now`].
    answers_immediately: bool,
}

impl RateLimiter {
    pub fn new(
        store: Arc<dyn CounterStore>,
        options: LimiterOptions,
        metrics: Metrics,
        health: Health,
        clocks: Clocks,
    ) -> RateLimiter {
        let local_cache = (options.local_cache_size_in_bytes > 0)
            .then(|| LocalCache::new(options.local_cache_size_in_bytes as usize));
        let fallback = matches!(options.failure_mode, FailureMode::Local { .. })
            .then(|| MemoryStore::with_capacity(LOCAL_FAILURE_COUNTERS));
        let local_timeout = match options.failure_mode {
            FailureMode::Local { timeout, .. } if !store.answers_immediately() => Some(timeout),
            _ => None,
        };
        let batcher = options.batch_window.map(Batcher::new);
        // The fallback is a memory store, which never waits; a batch waits for its window.
        let answers_immediately = store.answers_immediately() && batcher.is_none();
        RateLimiter {
            answers_immediately,
            loaded: ArcSwapOption::empty(),
            store,
            fallback,
            local_timeout,
            batcher,
            local_cache,
            options,
            metrics,
            health,
            in_outage: AtomicBool::new(false),
            refusing: AtomicBool::new(false),
            clocks,
        }
    }

    /// Puts a freshly loaded config in service; in-flight calls finish on the old one.
    pub fn install(&self, config: RateLimitConfig, settings: ReloadableSettings) {
        let limit_stats = config.limits().iter().map(|l| self.metrics.limit_stats(&l.stat_key)).collect();
        self.loaded.store(Some(Arc::new(Loaded { config, settings, limit_stats })));
    }

    pub fn loaded(&self) -> Option<Arc<Loaded>> {
        self.loaded.load_full()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn store(&self) -> &Arc<dyn CounterStore> {
        &self.store
    }

    /// The answer, computed on the spot, when nothing it needs can wait: counters in this
    /// process's memory and no batching window. `None` otherwise: await [`Self::should_rate_limit`].
    /// Lets a caller keep the waiting path (and its larger state) out of its own future.
    pub fn answer_now(&self, request: &RateLimitRequest) -> Option<Result<Decision, ServiceError>> {
        use std::future::Future;
        use std::task::{Context, Poll, Waker};
        if !self.answers_immediately {
            return None;
        }
        // Pinned where it is made: polled in place, never moved.
        let answering = std::pin::pin!(self.should_rate_limit(request));
        match answering.poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(answer) => Some(answer),
            // Every await on this path is on a future that is ready when made.
            Poll::Pending => unreachable!("a limiter that answers immediately completes in one poll"),
        }
    }

    pub async fn should_rate_limit(&self, request: &RateLimitRequest) -> Result<Decision, ServiceError> {
        let started = Instant::now();
        self.metrics.total_requests.inc();
        let result = self.evaluate(request).await;
        if let Err(e) = &result {
            match e {
                ServiceError::Store(_) => self.metrics.redis_errors.inc(),
                _ => self.metrics.service_errors.inc(),
            }
        }
        self.metrics.observe_response_time(started.elapsed());
        result
    }

    async fn evaluate(&self, request: &RateLimitRequest) -> Result<Decision, ServiceError> {
        if request.domain.is_empty() {
            return Err(ServiceError::EmptyDomain);
        }
        if request.descriptors.is_empty() {
            return Err(ServiceError::NoDescriptors);
        }
        let loaded = self.loaded.load_full().ok_or(ServiceError::NoConfig)?;
        let settings = &loaded.settings.evaluation;
        let now = self.clocks.now();
        let plan = plan(&loaded.config, request, settings, now);
        if !plan.domain_found {
            self.metrics.domain_not_found(&request.domain, request.descriptors.len() as u64);
        }

        // Counting alone while the store is down: the store is not asked (a hung Redis would
        // cost every call its timeout); the probe notices when it is back.
        if let (Some(fallback), FailureMode::Local { instances, .. }, true) =
            (&self.fallback, self.options.failure_mode, self.in_outage())
        {
            let verdict = self.count_locally(fallback, &plan, instances, settings, now).await?;
            self.record(&loaded, &plan, &verdict, now.seconds);
            let dynamic_metadata = loaded.settings.dynamic_metadata.then(|| merged_metadata(&plan, &verdict));
            return Ok(Decision { verdict, dynamic_metadata });
        }
        let counted = match self.local_timeout {
            // Boxed: only this mode pays for the timer, and every other call's future stays small.
            Some(limit) => {
                Box::pin(async {
                    let counting = self.count(self.store.as_ref(), true, true, &plan, now);
                    tokio::time::timeout(limit, counting).await.unwrap_or(Err(StoreError::LocalTimeout(limit)))
                })
                .await
            }
            None => self.count(self.store.as_ref(), true, true, &plan, now).await,
        };
        let verdict = match counted {
            Ok(values) => {
                self.store_answered();
                decide(&plan, &values, settings, now)
            }
            // An answer that makes no sense for this request (a wrong count of values) fails
            // the call: no failure mode should guess what the store meant.
            Err(error) if !error.answered_by_failure_mode() => {
                tracing::error!(store = self.store.name(), "counter store answered nonsense: {error}");
                return Err(error.into());
            }
            Err(error) => {
                // An outage flips health and is counted; a command Redis refused (the store
                // answers, but not this call) is logged, and answered by the failure mode too.
                if error.is_transient() {
                    self.store_failed(&error);
                } else {
                    self.store_refused(&error);
                }
                match self.options.failure_mode {
                    FailureMode::Error => return Err(error.into()),
                    FailureMode::Allow => {
                        self.metrics.failure_mode_answer("allow").inc();
                        verdict_without_store(&plan, false, now)
                    }
                    FailureMode::Deny => {
                        self.metrics.failure_mode_answer("deny").inc();
                        verdict_without_store(&plan, true, now)
                    }
                    FailureMode::Local { instances, .. } => match &self.fallback {
                        Some(fallback) => self.count_locally(fallback, &plan, instances, settings, now).await?,
                        None => return Err(error.into()),
                    },
                }
            }
        };

        self.record(&loaded, &plan, &verdict, now.seconds);
        let dynamic_metadata = loaded.settings.dynamic_metadata.then(|| merged_metadata(&plan, &verdict));
        Ok(Decision { verdict, dynamic_metadata })
    }

    /// Counts in this instance's memory, each limit divided among the instances.
    async fn count_locally(
        &self,
        fallback: &MemoryStore,
        plan: &Plan,
        instances: u32,
        settings: &crate::core::evaluate::EvaluationSettings,
        now: Now,
    ) -> Result<Verdict, StoreError> {
        self.metrics.failure_mode_answer("local").inc();
        let share = plan.shared_among(instances);
        let values = self.count(fallback, false, false, &share, now).await?;
        Ok(decide(&share, &values, settings, now))
    }

    /// Asks `store` (and, when `use_cache`, the local over-limit cache) for the counted
    /// descriptors' values; one store round trip for all of them (two with
    /// STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT).
    async fn count(
        &self,
        store: &dyn CounterStore,
        use_cache: bool,
        use_batches: bool,
        plan: &Plan,
        now: Now,
    ) -> Result<Values, StoreError> {
        let local_cache = self.local_cache.as_ref().filter(|_| use_cache);
        if plan.counted().any(|(_, c)| c.algorithm != Algorithm::FixedWindow) {
            // Boxed: a rare path that would otherwise make every call's future larger.
            return Box::pin(self.count_steps(store, local_cache, plan, now)).await;
        }
        let now = now.seconds;
        let mut values: Values = smallvec::smallvec![None; plan.descriptors.len()];
        // Keys the local cache knows to be over their limit are answered without the store;
        // the others are asked, in plan order (`asked` holds their indices).
        let mut updates: SmallVec<[CounterUpdate<'_>; 4]> = SmallVec::with_capacity(plan.descriptors.len());
        let mut asked: SmallVec<[usize; 4]> = SmallVec::new();
        for (index, c) in plan.counted() {
            if local_cache.is_some_and(|cache| cache.contains(&c.key, now)) {
                values[index] = Some(CounterValue::OverLimitInLocalCache);
            } else {
                asked.push(index);
                updates.push(CounterUpdate {
                    key: &c.key,
                    hits: c.hits,
                    ttl: c.unit.seconds() + self.jitter(),
                    window: c.unit.seconds(),
                });
            }
        }
        if updates.is_empty() {
            return Ok(values);
        }
        if self.options.stop_increment_when_over_limit {
            // So far `values` holds only the local cache's answers.
            let any_cached = values.iter().any(Option::is_some);
            let addends = if any_cached {
                vec![0; updates.len()]
            } else {
                let current = store.current(&updates, now).await?;
                let descriptors: Vec<&Counted> = plan.counted().map(|(_, c)| c).collect();
                addends_when_stopping_over_limit(&descriptors, &current)
            };
            for (update, hits) in updates.iter_mut().zip(addends) {
                update.hits = hits;
            }
        }

        let after = match self.batcher.as_ref().filter(|_| use_batches && !self.options.stop_increment_when_over_limit)
        {
            // Each counter through its batch, all at once.
            Some(batcher) => {
                let each = updates.iter().map(|update| batcher.increment(store, update, now));
                Box::pin(futures_util::future::try_join_all(each)).await?
            }
            None => match store.increment_now(&updates, now) {
                Some(counted) => counted?,
                None => store.increment(&updates, now).await?,
            },
        };
        for ((index, update), after) in asked.into_iter().zip(&updates).zip(after) {
            values[index] = Some(CounterValue::Counted { after, applied: update.hits });
        }
        Ok(values)
    }

    /// A request with a sliding window or a token bucket among its limits: every counted
    /// descriptor as a store step, all in one atomic call. Fixed windows among them still use
    /// the local over-limit cache; `STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT` applies to requests
    /// of fixed windows only.
    async fn count_steps(
        &self,
        store: &dyn CounterStore,
        local_cache: Option<&LocalCache>,
        plan: &Plan,
        now: Now,
    ) -> Result<Values, StoreError> {
        let mut values: Values = smallvec::smallvec![None; plan.descriptors.len()];
        let mut asked = Vec::with_capacity(plan.descriptors.len());
        let mut steps = Vec::with_capacity(plan.descriptors.len());
        for (index, c) in plan.counted() {
            let window = c.unit.seconds();
            let update = |ttl| CounterUpdate { key: &c.key, hits: c.hits, ttl, window };
            let step = match (c.algorithm, &c.previous_key, c.bucket()) {
                (Algorithm::SlidingWindow, Some(previous), _) => {
                    Step::Sliding { current: update(2 * window + self.jitter()), previous }
                }
                (Algorithm::TokenBucket { .. }, _, Some(bucket)) => {
                    Step::Bucket { key: &c.key, increment_us: bucket.increment_us, tolerance_us: bucket.tolerance_us }
                }
                _ if local_cache.is_some_and(|cache| cache.contains(&c.key, now.seconds)) => {
                    values[index] = Some(CounterValue::OverLimitInLocalCache);
                    continue;
                }
                _ => Step::Window(update(window + self.jitter())),
            };
            asked.push(index);
            steps.push(step);
        }
        let results = store.run(&steps, now.micros).await?;
        if results.len() != steps.len() {
            return Err(StoreError::ShortAnswer { expected: steps.len(), got: results.len() });
        }
        for ((index, result), step) in asked.into_iter().zip(results).zip(&steps) {
            values[index] = Some(match result {
                StepResult::Count(after) => {
                    let applied = match step {
                        Step::Window(update) => update.hits,
                        _ => 0,
                    };
                    CounterValue::Counted { after, applied }
                }
                StepResult::Sliding { current, previous } => CounterValue::Sliding { current, previous },
                StepResult::Bucket { allowed, tat_us } => CounterValue::Bucket { allowed, tat_us },
            });
        }
        Ok(values)
    }

    fn jitter(&self) -> u64 {
        match self.options.expiration_jitter_max_seconds {
            0 => 0,
            max => fastrand::u64(0..max),
        }
    }

    fn record(&self, loaded: &Loaded, plan: &Plan, verdict: &Verdict, now: u64) {
        for (index, counted) in plan.counted() {
            let Some(delta) = verdict.stats[index] else { continue };
            match &counted.stat {
                StatRef::Limit(id) => loaded.limit_stats[*id].record(&delta),
                StatRef::Dynamic(key) => self.metrics.request_limit_stats(key).record(&delta),
            }
        }
        if let Some(cache) = self.local_cache.as_ref().filter(|_| !verdict.over_limit_keys.is_empty()) {
            for (key, ttl) in &verdict.over_limit_keys {
                cache.insert(key, *ttl, now);
            }
            self.metrics.local_cache_entries.set(cache.len() as i64);
        }
        if verdict.global_shadow_applied {
            self.metrics.global_shadow_mode.inc();
        }
    }

    /// Logged once per outage, not once per request: an outage under load would otherwise
    /// flood the log exactly when someone needs to read it.
    fn store_failed(&self, error: &StoreError) {
        if !self.in_outage.swap(true, Ordering::SeqCst) {
            self.metrics.redis_outages.inc();
            match self.options.failure_mode {
                FailureMode::Local { instances, .. } => tracing::error!(
                    store = self.store.name(),
                    instances,
                    "counter store unavailable: counting in this instance's memory (each limit divided by {instances}) until it answers again: {error}"
                ),
                mode => tracing::error!(
                    store = self.store.name(),
                    failure_mode = ?mode,
                    "counter store unavailable, answering per REDIS_FAILURE_MODE until it recovers: {error}"
                ),
            }
            if self.options.store_health {
                self.health.set("redis", false);
            }
        }
    }

    /// Logged once until the store answers a call again, as an outage is: a refusal that hits
    /// every call (an ACL change, say) would otherwise log each one.
    fn store_refused(&self, error: &StoreError) {
        if !self.refusing.swap(true, Ordering::Relaxed) {
            tracing::error!(
                store = self.store.name(),
                failure_mode = ?self.options.failure_mode,
                "counter store refused a call's commands, answering per REDIS_FAILURE_MODE (not an outage): {error}"
            );
        }
    }

    fn store_answered(&self) {
        // Read first: a store on every call would bounce the cache line between cores.
        if self.refusing.load(Ordering::Relaxed) {
            self.refusing.store(false, Ordering::Relaxed);
        }
        if self.in_outage.load(Ordering::Relaxed) && self.in_outage.swap(false, Ordering::SeqCst) {
            tracing::warn!(store = self.store.name(), "counter store reachable again: counting there again");
            // The store's counts take over; what was counted alone stays for its window, so the
            // next outage in that window goes on from it (clearing it here gave each switch a
            // fresh budget: a store that flaps let through the limit once per outage). Nothing
            // is swept here, on a request's path: the local store is capped, and the probe
            // sweeps it during the next outage.
            if self.options.store_health {
                self.health.set("redis", true);
            }
        }
    }

    pub fn in_outage(&self) -> bool {
        self.in_outage.load(Ordering::Relaxed)
    }

    /// Pings the store while it is known to be down, so recovery is noticed (and health
    /// restored) even when no traffic arrives.
    pub async fn probe_store(&self) {
        if !self.in_outage() {
            return;
        }
        if let Some(fallback) = &self.fallback {
            fallback.sweep(self.clocks.now().seconds);
        }
        let answered = match self.local_timeout {
            Some(limit) => {
                tokio::time::timeout(limit, self.store.ping()).await.unwrap_or(Err(StoreError::LocalTimeout(limit)))
            }
            None => self.store.ping().await,
        };
        match answered {
            Ok(()) => self.store_answered(),
            Err(e) => tracing::debug!("counter store still unavailable: {e}"),
        }
    }
}

#[cfg(test)]
mod local_mode_tests;
#[cfg(test)]
pub(crate) mod test_limiter;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::ConfigSource;
    use crate::core::evaluate::Code;
    use crate::core::{Entry, RequestDescriptor};
    use crate::store::StoreFuture;

    /// A store that answers, but with the wrong number of values (a broken proxy in front of
    /// Redis, say): a fault of the answer, not an outage.
    struct ShortAnswers;

    impl CounterStore for ShortAnswers {
        fn increment<'a>(&'a self, updates: &'a [CounterUpdate<'a>], _now: u64) -> StoreFuture<'a, Vec<u64>> {
            Box::pin(async move { Err(StoreError::ShortAnswer { expected: updates.len(), got: 0 }) })
        }
        fn current<'a>(&'a self, counters: &'a [CounterUpdate<'a>], now: u64) -> StoreFuture<'a, Vec<u64>> {
            self.increment(counters, now)
        }
        fn run<'a>(&'a self, steps: &'a [Step<'a>], _now_us: u64) -> StoreFuture<'a, Vec<StepResult>> {
            Box::pin(async move { Err(StoreError::ShortAnswer { expected: steps.len(), got: 0 }) })
        }
        fn ping(&self) -> StoreFuture<'_, ()> {
            Box::pin(async { Ok(()) })
        }
        fn name(&self) -> &'static str {
            "short"
        }
    }

    fn options() -> LimiterOptions {
        LimiterOptions {
            stop_increment_when_over_limit: false,
            failure_mode: FailureMode::Error,
            expiration_jitter_max_seconds: 0,
            local_cache_size_in_bytes: 0,
            store_health: false,
            batch_window: None,
        }
    }

    fn memory_limiter(options: LimiterOptions) -> RateLimiter {
        let (health, _server, _follow) = Health::new("ratelimit");
        let clocks = Clocks::from_seconds(shared::testing::TestClock::at(1_000).as_clock());
        let limiter =
            RateLimiter::new(Arc::new(MemoryStore::new()), options, Metrics::new(false, None), health, clocks);
        install(&limiter, "domain: d\ndescriptors:\n  - key: fixed\n    rate_limit: {unit: minute, requests_per_unit: 2}\n  - key: sliding\n    rate_limit: {unit: minute, requests_per_unit: 2, algorithm: sliding_window}\n  - key: bucket\n    rate_limit: {unit: minute, requests_per_unit: 2, algorithm: token_bucket}\n");
        limiter
    }

    /// Puts one config file in service, with the default settings and dynamic metadata on.
    fn install(limiter: &RateLimiter, yaml: &str) {
        let sources = [ConfigSource { name: "config.d.yaml".into(), content: yaml.into() }];
        let settings = ReloadableSettings {
            evaluation: crate::core::evaluate::EvaluationSettings::default(),
            merge_domains: false,
            dynamic_metadata: true,
        };
        limiter.install(RateLimitConfig::load(&sources, false).unwrap(), settings);
    }

    fn request_of(keys: &[&str]) -> RateLimitRequest {
        RateLimitRequest {
            domain: "d".into(),
            descriptors: keys.iter().map(|k| RequestDescriptor::new(vec![Entry::new(*k, "v")])).collect(),
            hits_addend: 0,
        }
    }

    /// Every way of counting in memory (each algorithm, the local over-limit cache, stopping
    /// increments over the limit) is answered on the spot, and counts as the waiting path does.
    #[test]
    fn counters_in_memory_are_answered_on_the_spot_by_every_path() {
        let variants = [
            options(),
            LimiterOptions { local_cache_size_in_bytes: 1 << 20, ..options() },
            LimiterOptions { stop_increment_when_over_limit: true, ..options() },
        ];
        for options in variants {
            let limiter = memory_limiter(options.clone());
            for keys in [&["fixed"][..], &["sliding"], &["bucket"], &["fixed", "sliding", "bucket"], &["none"]] {
                let request = request_of(keys);
                let codes: Vec<_> = (0..4)
                    .map(|_| {
                        let decision = limiter.answer_now(&request).expect("memory answers now").unwrap();
                        decision.verdict.overall
                    })
                    .collect();
                let expected = if keys == ["none"] {
                    vec![Code::Ok; 4]
                } else {
                    // Each key has a limit of 2; a mixed request shares the keys counted above.
                    let ok = if keys.len() == 1 { 2 } else { 0 };
                    (0..4).map(|i| if i < ok { Code::Ok } else { Code::OverLimit }).collect()
                };
                assert_eq!(codes, expected, "{keys:?} with {options:?}");
            }
        }
        let error = memory_limiter(options()).answer_now(&request_of(&[])).unwrap().unwrap_err();
        assert!(matches!(error, ServiceError::NoDescriptors), "{error}");
    }

    #[test]
    fn a_store_or_a_batch_that_waits_is_not_answered_on_the_spot() {
        let (health, _server, _follow) = Health::new("ratelimit");
        let limiter =
            RateLimiter::new(Arc::new(ShortAnswers), options(), Metrics::new(false, None), health, Clocks::system());
        assert!(limiter.answer_now(&request_of(&["fixed"])).is_none());
        let batched = LimiterOptions { batch_window: Some(std::time::Duration::from_millis(1)), ..options() };
        assert!(memory_limiter(batched).answer_now(&request_of(&["fixed"])).is_none());
    }

    #[tokio::test]
    async fn a_nonsense_answer_fails_the_call_instead_of_applying_the_failure_mode() {
        let (health, _server, _follow) = Health::new("ratelimit");
        let options = LimiterOptions { failure_mode: FailureMode::Allow, store_health: true, ..options() };
        let limiter =
            RateLimiter::new(Arc::new(ShortAnswers), options, Metrics::new(false, None), health, Clocks::system());
        install(
            &limiter,
            "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: second, requests_per_unit: 1}\n",
        );
        let request = request_of(&["k"]);
        let error = limiter.should_rate_limit(&request).await.unwrap_err();
        assert!(matches!(error, ServiceError::Store(StoreError::ShortAnswer { expected: 1, got: 0 })), "{error}");
        assert_eq!(limiter.metrics().redis_outages.get(), 0, "not counted as an outage");
    }
}

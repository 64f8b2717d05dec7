//! Counters in Redis, with the reference's commands and keys so that both services can share a
//! Redis (and counts survive a switch in the middle of a window): per counter `INCRBY key hits`
//! then `EXPIRE key ttl`, all of a request's counters in one pipeline — one round trip — and
//! that pipeline auto-pipelined with those of concurrent requests (`RedisPool::pipeline`): one
//! write to Redis carries the commands of many calls.
//!
//! Why a pipeline and not MULTI or a script: the reference pipelines, and a drop-in must leave
//! the same keys with the same TTL behaviour; INCRBY is atomic per key, which is what limits need.
//!
//! On a cluster, a request's keys may live on different nodes and one pipeline cannot span
//! them, so each key gets its own small pipeline and they all run at once (still one round trip
//! of latency). With `REDIS_PERSECOND`, counters of one-second windows go to their own Redis,
//! queried at the same time as the main one.

use std::sync::Arc;

use futures_util::future::{try_join, try_join_all};
use redis::{RedisError, RedisResult};
use shared::redis::{reply as redis_reply, RedisPool};

use super::{CounterStore, CounterUpdate, Step, StepResult, StoreError, StoreFuture};

mod steps;

pub struct RedisStore {
    main: Redis,
    per_second: Option<Redis>,
}

/// One Redis: its pool, and the script runs its requests' steps are merged into.
struct Redis {
    pool: Arc<RedisPool>,
    scripts: Arc<steps::merged::MergedScripts>,
}

impl Redis {
    fn new(pool: Arc<RedisPool>) -> Redis {
        let scripts = steps::merged::MergedScripts::new(pool.clone(), pool.max_pipeline_commands());
        Redis { pool, scripts }
    }

    async fn run(&self, steps: Vec<Step<'_>>, now_us: u64) -> Result<Vec<StepResult>, StoreError> {
        if self.pool.is_cluster() {
            return steps::run_on_a_cluster(&self.pool, &steps, now_us).await;
        }
        self.scripts.run(&steps, now_us).await
    }
}

impl RedisStore {
    pub fn new(main: Arc<RedisPool>, per_second: Option<Arc<RedisPool>>) -> RedisStore {
        RedisStore { main: Redis::new(main), per_second: per_second.map(Redis::new) }
    }

    /// Splits counters (or steps) between the main and the per-second Redis, keeping their
    /// positions.
    fn route<T: Copy>(&self, items: &[T], window: impl Fn(&T) -> u64) -> [(Vec<usize>, Vec<T>); 2] {
        let mut routes: [(Vec<usize>, Vec<T>); 2] = [Default::default(), Default::default()];
        for (i, item) in items.iter().enumerate() {
            let route = usize::from(self.per_second.is_some() && window(item) == 1);
            routes[route].0.push(i);
            routes[route].1.push(*item);
        }
        routes
    }

    fn redis(&self, route: usize) -> &Redis {
        match (route, &self.per_second) {
            (1, Some(per_second)) => per_second,
            _ => &self.main,
        }
    }

    /// Runs `query` on each Redis for its counters (or steps), concurrently, and puts the
    /// answers back in their order.
    async fn on_each_pool<'a, T, V, F, Fut>(
        &'a self,
        items: &[T],
        window: impl Fn(&T) -> u64,
        query: F,
    ) -> Result<Vec<V>, StoreError>
    where
        T: Copy,
        V: Clone,
        F: Fn(&'a Redis, Vec<T>) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<V>, StoreError>>,
    {
        if self.per_second.is_none() {
            // One Redis: everything goes to it, in order, with nothing to split or join.
            return query(&self.main, items.to_vec()).await;
        }
        let [(main_at, main), (second_at, second)] = self.route(items, window);
        let run = |route: usize, part: Vec<T>| {
            let empty = part.is_empty();
            let future = query(self.redis(route), part);
            async move {
                if empty {
                    Ok(Vec::new())
                } else {
                    future.await
                }
            }
        };
        let (main_values, second_values) = try_join(run(0, main), run(1, second)).await?;
        let mut values: Vec<Option<V>> = vec![None; items.len()];
        for (at, value) in main_at.into_iter().zip(main_values).chain(second_at.into_iter().zip(second_values)) {
            values[at] = Some(value);
        }
        // Each part's answer was checked to have its length, so every position is filled.
        values.into_iter().map(|v| v.ok_or(StoreError::ShortAnswer { expected: items.len(), got: 0 })).collect()
    }
}

async fn increment_on(redis: &Redis, updates: Vec<CounterUpdate<'_>>) -> Result<Vec<u64>, StoreError> {
    let replies = per_key_on_a_cluster(&redis.pool, &updates, add_increment).await?;
    // Two replies per counter: the INCRBY's, then the EXPIRE's (which says nothing we need).
    let replies = check_len(replies, updates.len() * 2)?;
    replies
        .into_iter()
        .step_by(2)
        .zip(&updates)
        .map(|(reply, update)| counter_value(redis_reply(reply), update.key))
        .collect()
}

/// Adds each item's commands (`add`) to one auto-pipelined call, or on a cluster — where one
/// pipeline must not mix keys of different nodes — to one call per item, all at once; the
/// replies in order either way.
async fn per_key_on_a_cluster<T>(
    pool: &RedisPool,
    items: &[T],
    add: impl Fn(&mut redis::Pipeline, &T),
) -> Result<Vec<redis::Value>, StoreError> {
    if pool.is_cluster() {
        // Boxed, as the rare path: the future of every call stays the size of the common one.
        let each = Box::pin(try_join_all(items.iter().map(|item| pool.pipeline(|p| add(p, item))))).await?;
        return Ok(each.into_iter().flatten().collect());
    }
    Ok(pool
        .pipeline(|p| {
            for item in items {
                add(p, item);
            }
        })
        .await?)
}

/// One counter's answer (an INCRBY's, or a GET's). An error that concerns this counter alone —
/// the increment would overflow it, or the key holds something else than a counter — is that
/// request's answer (the counter is over any limit), not a Redis outage: it must not flip
/// health, count as an outage or be let through by `REDIS_FAILURE_MODE=allow`. Any other error
/// is classified by `shared::redis` (`RedisCallError::is_transient`): LOADING, READONLY, OOM, …
/// concern Redis as a whole (the failure mode applies); the rest fail this call.
fn counter_value(reply: RedisResult<u64>, key: &str) -> Result<u64, StoreError> {
    match reply {
        Ok(value) => Ok(value),
        Err(e) if is_counter_fault(&e) => {
            tracing::debug!(key, "counter cannot be incremented, answering over the limit: {e}");
            Ok(u64::MAX)
        }
        Err(e) => Err(StoreError::Redis(e.into())),
    }
}

fn is_counter_fault(error: &RedisError) -> bool {
    match error.code() {
        Some("WRONGTYPE") => true,
        Some("ERR") => {
            error.detail().is_some_and(|d| d.contains("overflow") || d.contains("not an integer or out of range"))
        }
        // A GET of a key that holds a string which is not a number.
        None => error.kind() == redis::ErrorKind::Parse,
        _ => false,
    }
}

async fn read_on(redis: &Redis, counters: Vec<CounterUpdate<'_>>) -> Result<Vec<u64>, StoreError> {
    // GETs rather than MGET: MGET across hash slots fails on a cluster.
    let replies = per_key_on_a_cluster(&redis.pool, &counters, |p, counter| {
        p.cmd("GET").arg(counter.key);
    })
    .await?;
    let replies = check_len(replies, counters.len())?;
    replies
        .into_iter()
        .zip(&counters)
        .map(|(reply, counter)| {
            counter_value(redis_reply::<Option<u64>>(reply).map(Option::unwrap_or_default), counter.key)
        })
        .collect()
}

impl CounterStore for RedisStore {
    fn increment<'a>(&'a self, updates: &'a [CounterUpdate<'a>], _now: u64) -> StoreFuture<'a, Vec<u64>> {
        Box::pin(traced("INCRBY EXPIRE", updates.len(), self.on_each_pool(updates, |u| u.window, increment_on)))
    }

    fn current<'a>(&'a self, counters: &'a [CounterUpdate<'a>], _now: u64) -> StoreFuture<'a, Vec<u64>> {
        Box::pin(traced("GET", counters.len(), self.on_each_pool(counters, |c| c.window, read_on)))
    }

    fn run<'a>(&'a self, steps: &'a [Step<'a>], now_us: u64) -> StoreFuture<'a, Vec<StepResult>> {
        let run_on = move |redis: &'a Redis, part| redis.run(part, now_us);
        Box::pin(traced("EVALSHA", steps.len(), self.on_each_pool(steps, Step::window, run_on)))
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.main.pool.ping().await?;
            if let Some(per_second) = &self.per_second {
                per_second.pool.ping().await?;
            }
            Ok(())
        })
    }

    fn name(&self) -> &'static str {
        "redis"
    }
}

/// The Redis round trip as a span (the reference's name), a child of the call's span.
fn traced<T>(
    operation: &'static str,
    counters: usize,
    work: impl std::future::Future<Output = Result<T, StoreError>>,
) -> impl std::future::Future<Output = Result<T, StoreError>> {
    let span = shared::traces::child_span(|| {
        tracing::info_span!(
            "Redis Pipeline Execution",
            otel.kind = "client",
            db.system = "redis",
            db.operation.name = operation,
            ratelimit.counters = counters,
        )
    });
    shared::traces::in_span(span, work)
}

/// `INCRBY key hits` + `EXPIRE key ttl` for one update; each reply on its own (one counter's
/// error reply does not fail the others).
fn add_increment(pipeline: &mut redis::Pipeline, update: &CounterUpdate<'_>) {
    // INCRBY takes a signed 64-bit increment: a larger `hits_addend` saturates there (and is
    // over any limit either way) instead of being refused as "not an integer".
    pipeline.cmd("INCRBY").arg(update.key).arg(update.hits.min(i64::MAX as u64));
    pipeline.cmd("EXPIRE").arg(update.key).arg(update.ttl);
}

fn check_len<T>(values: Vec<T>, expected: usize) -> Result<Vec<T>, StoreError> {
    if values.len() == expected {
        Ok(values)
    } else {
        Err(StoreError::ShortAnswer { expected, got: values.len() })
    }
}

#[cfg(test)]
mod tests;

//! Counters in Redis, with the reference's commands and keys so that both services can share a
//! Redis (and counts survive a switch in the middle of a window): per counter `INCRBY key hits`
//! then `EXPIRE key ttl`, all of a request's counters in one pipeline — one round trip.
//!
//! Why a pipeline and not MULTI or a script: the reference pipelines, and a drop-in must leave
//! the same keys with the same TTL behaviour; INCRBY is atomic per key, which is what limits need.
//!
//! On a cluster, a request's keys may live on different nodes and one pipeline cannot span
//! them, so each key gets its own small pipeline and they all run at once (still one round trip
//! of latency).

use std::sync::Arc;

use futures_util::future::try_join_all;

use shared::redis::RedisPool;

use super::{CounterStore, CounterUpdate, StoreError, StoreFuture};

pub struct RedisStore {
    pool: Arc<RedisPool>,
}

impl RedisStore {
    pub fn new(pool: Arc<RedisPool>) -> RedisStore {
        RedisStore { pool }
    }
}

impl CounterStore for RedisStore {
    fn increment<'a>(&'a self, updates: &'a [CounterUpdate<'a>], _now: u64) -> StoreFuture<'a, Vec<u64>> {
        Box::pin(async move {
            let values: Vec<u64> = if self.pool.is_cluster() {
                let per_key = updates.iter().map(|update| async move {
                    let pipeline = increment_pipeline(std::slice::from_ref(update));
                    let (value,): (u64,) = self.pool.query(&pipeline).await?;
                    Ok::<_, StoreError>(value)
                });
                try_join_all(per_key).await?
            } else {
                self.pool.query(&increment_pipeline(updates)).await?
            };
            check_len(values, updates.len())
        })
    }

    fn current<'a>(&'a self, keys: &'a [&'a str], _now: u64) -> StoreFuture<'a, Vec<u64>> {
        Box::pin(async move {
            // GETs rather than MGET: MGET across hash slots fails on a cluster.
            let values: Vec<Option<u64>> = if self.pool.is_cluster() {
                let per_key = keys.iter().map(|key| async move {
                    let (value,): (Option<u64>,) = self.pool.query(redis::pipe().cmd("GET").arg(*key)).await?;
                    Ok::<_, StoreError>(value)
                });
                try_join_all(per_key).await?
            } else {
                let mut pipeline = redis::pipe();
                for key in keys {
                    pipeline.cmd("GET").arg(*key);
                }
                self.pool.query(&pipeline).await?
            };
            check_len(values.into_iter().map(Option::unwrap_or_default).collect(), keys.len())
        })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move { Ok(self.pool.ping().await?) })
    }

    fn name(&self) -> &'static str {
        "redis"
    }
}

/// `INCRBY key hits` + `EXPIRE key ttl` per update; only the INCRBY results are returned.
fn increment_pipeline(updates: &[CounterUpdate<'_>]) -> redis::Pipeline {
    let mut pipeline = redis::pipe();
    for update in updates {
        pipeline.cmd("INCRBY").arg(update.key).arg(update.hits);
        pipeline.cmd("EXPIRE").arg(update.key).arg(update.ttl).ignore();
    }
    pipeline
}

fn check_len(values: Vec<u64>, expected: usize) -> Result<Vec<u64>, StoreError> {
    if values.len() == expected {
        Ok(values)
    } else {
        Err(StoreError::ShortAnswer { expected, got: values.len() })
    }
}

//! Counters in Redis, with the reference's commands and keys so that both services can share a
//! Redis (and counts survive a switch in the middle of a window): per counter `INCRBY key hits`
//! then `EXPIRE key ttl`, all of a request's counters in one pipeline — one round trip.
//!
//! Why a pipeline and not MULTI or a script: the reference pipelines, and a drop-in must leave
//! the same keys with the same TTL behaviour; INCRBY is atomic per key, which is what limits need.

use std::sync::Arc;

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
    fn increment<'a>(
        &'a self,
        updates: &'a [CounterUpdate<'a>],
        _now: u64,
    ) -> StoreFuture<'a, Vec<u64>> {
        Box::pin(async move {
            let mut pipeline = redis::pipe();
            for update in updates {
                pipeline.cmd("INCRBY").arg(update.key).arg(update.hits);
                pipeline
                    .cmd("EXPIRE")
                    .arg(update.key)
                    .arg(update.ttl)
                    .ignore();
            }
            let values: Vec<u64> = self.pool.query(&pipeline).await?;
            check_len(values, updates.len())
        })
    }

    fn current<'a>(&'a self, keys: &'a [&'a str], _now: u64) -> StoreFuture<'a, Vec<u64>> {
        Box::pin(async move {
            // GETs in a pipeline rather than MGET: MGET across hash slots fails on a cluster.
            let mut pipeline = redis::pipe();
            for key in keys {
                pipeline.cmd("GET").arg(*key);
            }
            let values: Vec<Option<u64>> = self.pool.query(&pipeline).await?;
            check_len(
                values.into_iter().map(Option::unwrap_or_default).collect(),
                keys.len(),
            )
        })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move { Ok(self.pool.ping().await?) })
    }

    fn name(&self) -> &'static str {
        "redis"
    }
}

fn check_len(values: Vec<u64>, expected: usize) -> Result<Vec<u64>, StoreError> {
    if values.len() == expected {
        Ok(values)
    } else {
        Err(StoreError::ShortAnswer {
            expected,
            got: values.len(),
        })
    }
}

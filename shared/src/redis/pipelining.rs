//! Auto-pipelining: the commands of concurrent callers leave for Redis together.
//!
//! A multiplexed connection already lets calls overlap, but each call is its own write: under
//! load Redis then reads a few commands per `read()` and spends most of its time on the system
//! calls around them, not on the commands. Here a caller adds its commands to the open batch
//! ([`Gather`]: sent one scheduler turn after its first caller, by a task of its own, so that a
//! cancelled call does not cancel the others'), which leaves as one pipeline on the next
//! connection; each caller gets its own replies.
//!
//! Bounds: a batch closes at `max_commands` (a caller that fills it sends it at once), so one
//! write never grows with the number of callers; the waiting callers are bounded by the calls in
//! progress, which the servers bound.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use redis::{Pipeline, Value};
use tokio::sync::oneshot;

use super::gather::Gather;
use super::{Connections, RedisCallError};

/// The replies to one caller's commands, in order; an error reply to one command is its
/// `Value::ServerError`, not a failure of the others.
pub type Replies = Vec<Value>;

/// Counts of what left, for tests and the metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PipelineStats {
    /// Writes to Redis (batches).
    pub batches: u64,
    /// Commands in them.
    pub commands: u64,
    /// Commands in the largest batch.
    pub largest: u64,
}

pub(super) struct Batcher {
    gather: Gather<Batch>,
    max_commands: usize,
    batches: AtomicU64,
    commands: AtomicU64,
    largest: AtomicU64,
}

struct Waiter {
    replies: Range<usize>,
    answer: oneshot::Sender<Result<Replies, RedisCallError>>,
}

#[derive(Default)]
struct Batch {
    pipeline: Pipeline,
    waiters: Vec<Waiter>,
}

impl Batcher {
    pub(super) fn new(max_commands: usize) -> Batcher {
        Batcher {
            gather: Gather::default(),
            max_commands: max_commands.max(1),
            batches: AtomicU64::new(0),
            commands: AtomicU64::new(0),
            largest: AtomicU64::new(0),
        }
    }

    pub(super) fn max_commands(&self) -> usize {
        self.max_commands
    }

    pub(super) fn stats(&self) -> PipelineStats {
        PipelineStats {
            batches: self.batches.load(Ordering::Relaxed),
            commands: self.commands.load(Ordering::Relaxed),
            largest: self.largest.load(Ordering::Relaxed),
        }
    }

    /// Adds the commands `build` writes to the open batch and waits for their replies.
    pub(super) async fn call(
        connections: &Arc<Connections>,
        build: impl FnOnce(&mut Pipeline),
    ) -> Result<Replies, RedisCallError> {
        let max_commands = connections.batcher.max_commands;
        let (answer, replies) = oneshot::channel();
        let add = |open: &mut Batch| {
            let start = open.pipeline.len();
            build(&mut open.pipeline);
            let end = open.pipeline.len();
            open.waiters.push(Waiter { replies: start..end, answer });
            end >= max_commands
        };
        Gather::add(connections, |c| &c.batcher.gather, add, |c, batch| async move { send(&c, batch).await });
        // The send task answers every waiter, with replies or an error; it only drops one if
        // it panicked.
        replies.await.unwrap_or_else(|_| Err(RedisCallError::Abandoned))
    }
}

async fn send(connections: &Connections, batch: Batch) {
    let Batch { mut pipeline, mut waiters } = batch;
    // Each reply stays in its place, an error reply as a `Value::ServerError`: one caller's
    // refused command must not fail the others'.
    pipeline.ignore_errors();
    let count = pipeline.len();
    if count == 0 && waiters.is_empty() {
        return;
    }
    connections.batcher.batches.fetch_add(1, Ordering::Relaxed);
    connections.batcher.commands.fetch_add(count as u64, Ordering::Relaxed);
    connections.batcher.largest.fetch_max(count as u64, Ordering::Relaxed);
    let result: Result<Vec<Value>, _> =
        if count == 0 { Ok(Vec::new()) } else { connections.query_on(connections.next_slot(), &pipeline).await };
    match result {
        Ok(mut values) if values.len() == count => {
            // From the back, so that each caller's replies are the tail that is left.
            while let Some(waiter) = waiters.pop() {
                let replies = values.split_off(waiter.replies.start);
                // A caller that gave up no longer listens; its commands ran all the same.
                let _ = waiter.answer.send(Ok(replies));
            }
        }
        Ok(values) => {
            let error = RedisCallError::ShortAnswer { expected: count, got: values.len() };
            for waiter in waiters {
                let _ = waiter.answer.send(Err(error.clone()));
            }
        }
        Err(error) => {
            for waiter in waiters {
                let _ = waiter.answer.send(Err(error.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Against a real Redis. The runtime is single-threaded so that the order in which callers
    //! and the send task run is the scheduler's queue order, not a race.
    use std::time::Duration;

    use futures_util::future::join_all;
    use redis::Value;

    use crate::redis::{reply, RedisPool, RedisSettings, MAX_PIPELINE_COMMANDS};
    use crate::testing::RedisServer;

    fn pool(redis: &RedisServer, pool_size: usize, max_pipeline_commands: usize) -> RedisPool {
        let settings = RedisSettings::single_tcp(redis.url(), pool_size, Duration::from_secs(5));
        RedisPool::new(&RedisSettings { max_pipeline_commands, ..settings }).unwrap()
    }

    /// Caller `i` sets its own key to `i` and reads it back: each must get exactly its replies.
    async fn set_and_get(pool: &RedisPool, i: usize) -> Vec<Value> {
        pool.pipeline(|p| {
            p.cmd("SET").arg(format!("caller:{i}")).arg(i);
            p.cmd("GET").arg(format!("caller:{i}"));
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_write_and_each_gets_its_own_replies() {
        let redis = RedisServer::start();
        let pool = pool(&redis, 10, MAX_PIPELINE_COMMANDS);
        pool.ping().await.unwrap();
        let before = pool.pipeline_stats();
        let answers = join_all((0..200).map(|i| set_and_get(&pool, i))).await;
        for (i, replies) in answers.into_iter().enumerate() {
            assert_eq!(replies.len(), 2, "caller {i}");
            let ok: String = reply(replies[0].clone()).unwrap();
            let value: usize = reply(replies[1].clone()).unwrap();
            assert_eq!((ok.as_str(), value), ("OK", i));
        }
        let after = pool.pipeline_stats();
        assert_eq!(after.commands - before.commands, 400);
        // All 200 callers were ready before the send task's turn: one write carried them all.
        assert_eq!(after.batches - before.batches, 1, "{after:?}");
    }

    #[tokio::test]
    async fn a_batch_closes_at_its_bound_and_every_caller_is_still_answered() {
        let redis = RedisServer::start();
        let pool = pool(&redis, 2, 16);
        let answers = join_all((0..100).map(|i| set_and_get(&pool, i))).await;
        for (i, replies) in answers.into_iter().enumerate() {
            let value: usize = reply(replies[1].clone()).unwrap();
            assert_eq!(value, i);
        }
        let stats = pool.pipeline_stats();
        assert_eq!(stats.largest, 16, "{stats:?}");
        assert!(stats.batches >= 200 / 16, "{stats:?}");
    }

    #[tokio::test]
    async fn one_callers_error_reply_is_its_own() {
        let redis = RedisServer::start();
        let pool = pool(&redis, 1, MAX_PIPELINE_COMMANDS);
        pool.pipeline(|p| {
            p.cmd("SET").arg("text").arg("not a number");
        })
        .await
        .unwrap();
        let wrong = pool.pipeline(|p| {
            p.cmd("INCR").arg("text");
        });
        let right = pool.pipeline(|p| {
            p.cmd("INCR").arg("number");
        });
        let (wrong, right) = tokio::join!(wrong, right);
        let wrong = reply::<u64>(wrong.unwrap().remove(0)).unwrap_err();
        assert!(wrong.to_string().contains("not an integer"), "{wrong}");
        assert_eq!(reply::<u64>(right.unwrap().remove(0)).unwrap(), 1);
        assert_eq!(pool.pipeline_stats().batches, 2, "the SET, then both INCRs together");
    }

    #[tokio::test]
    async fn a_caller_that_gives_up_does_not_take_the_others_down() {
        let redis = RedisServer::start();
        let pool = pool(&redis, 1, MAX_PIPELINE_COMMANDS);
        let mut quitter = Box::pin(pool.pipeline(|p| {
            p.cmd("INCR").arg("quitter");
        }));
        // Polled once, its command is in the open batch; then it is dropped, as tonic drops a
        // call Envoy cancelled.
        assert!(futures_util::poll!(&mut quitter).is_pending());
        drop(quitter);
        let stayer = pool
            .pipeline(|p| {
                p.cmd("INCR").arg("stayer");
                p.cmd("GET").arg("quitter");
            })
            .await
            .unwrap();
        assert_eq!(reply::<u64>(stayer[0].clone()).unwrap(), 1);
        assert_eq!(reply::<u64>(stayer[1].clone()).unwrap(), 1, "the quitter's INCR ran before the GET");
        assert_eq!(pool.pipeline_stats().batches, 1);
    }

    #[tokio::test]
    async fn when_redis_is_gone_every_caller_gets_the_error_and_later_calls_recover() {
        let mut redis = RedisServer::start();
        let pool = pool(&redis, 1, MAX_PIPELINE_COMMANDS);
        pool.ping().await.unwrap();
        redis.stop();
        let answers = join_all((0..20).map(|i| set_and_get_result(&pool, i))).await;
        assert!(answers.iter().all(Result::is_err), "{answers:?}");
        redis.resume();
        crate::testing::eventually("the pool reconnects", Duration::from_secs(10), || async {
            pool.ping().await.is_ok()
        })
        .await;
        assert_eq!(set_and_get(&pool, 7).await.len(), 2);
    }

    async fn set_and_get_result(pool: &RedisPool, i: usize) -> Result<Vec<Value>, crate::redis::RedisCallError> {
        pool.pipeline(|p| {
            p.cmd("SET").arg(format!("caller:{i}")).arg(i);
        })
        .await
    }
}

//! The steps of concurrent requests, merged into one script run.
//!
//! Gathered as the pool's auto-pipelined commands are ([`Gather`]): a request adds its part (its
//! time, keys and arguments) to the open run, which leaves one scheduler turn after its first
//! request (no timer), runs the script once and hands each request its own slice of the answer.
//!
//! Each request's part stays atomic (a script runs with nothing between its commands), and the
//! requests of one run count one after the other, as they would in separate runs.
//!
//! Bounds: a run closes at `max_steps` (the request that reaches it sends it at once), so one
//! script run — during which Redis serves nobody else — never grows with the number of callers.
//! With `REDIS_PIPELINE_LIMIT=1` every request runs its own script, as nothing else is shared.
//!
//! The send is a task of its own, so a cancelled request does not cancel the other requests'
//! steps. A failed run fails each of its requests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use shared::redis::{Gather, RedisCallError, RedisPool};
use tokio::sync::oneshot;

use super::{answer_len, decode, encode, run_script};
use crate::store::{Step, StepResult, StoreError};

/// The most steps one merged script run carries, whatever `REDIS_PIPELINE_LIMIT` allows: Redis
/// serves nothing else while a script runs, so a run stays short (tens of microseconds).
pub const MAX_MERGED_STEPS: usize = 64;

/// Counts of what ran (three relaxed counters per run), read by the tests.
#[cfg(test)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MergeStats {
    /// Script runs.
    pub runs: u64,
    /// Requests in them.
    pub requests: u64,
    /// Requests in the largest run.
    pub largest: u64,
}

pub struct MergedScripts {
    pool: Arc<RedisPool>,
    max_steps: usize,
    gather: Gather<Run>,
    runs: AtomicU64,
    requests: AtomicU64,
    largest: AtomicU64,
}

#[derive(Default)]
struct Run {
    keys: Vec<String>,
    args: Vec<String>,
    steps: usize,
    waiters: Vec<Waiter>,
}

struct Waiter {
    /// How many values of the script's answer are this request's.
    values: usize,
    answer: oneshot::Sender<Result<Vec<i64>, StoreError>>,
}

impl MergedScripts {
    /// Merges at most `max_steps` steps per run (at least one request's, whatever its size).
    pub fn new(pool: Arc<RedisPool>, max_steps: usize) -> Arc<MergedScripts> {
        Arc::new(MergedScripts {
            pool,
            max_steps: max_steps.clamp(1, MAX_MERGED_STEPS),
            gather: Gather::default(),
            runs: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            largest: AtomicU64::new(0),
        })
    }

    #[cfg(test)]
    pub fn stats(&self) -> MergeStats {
        MergeStats {
            runs: self.runs.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            largest: self.largest.load(Ordering::Relaxed),
        }
    }

    /// Runs one request's `steps` at `now_us`, in the open run.
    pub async fn run(self: &Arc<Self>, steps: &[Step<'_>], now_us: u64) -> Result<Vec<StepResult>, StoreError> {
        let (answer, values) = oneshot::channel();
        let max_steps = self.max_steps;
        let add = |run: &mut Run| {
            encode(steps, now_us, &mut run.keys, &mut run.args);
            run.steps += steps.len();
            run.waiters.push(Waiter { values: answer_len(steps), answer });
            run.steps >= max_steps
        };
        Gather::add(self, |scripts| &scripts.gather, add, |scripts, run| async move { scripts.send(run).await });
        // The send task answers every waiter; it only drops one if it panicked.
        let flat = values.await.unwrap_or_else(|_| Err(StoreError::Redis(RedisCallError::Abandoned)))?;
        decode(steps, &flat)
    }

    async fn send(&self, run: Run) {
        let Run { keys, args, waiters, .. } = run;
        if waiters.is_empty() {
            return;
        }
        self.runs.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(waiters.len() as u64, Ordering::Relaxed);
        self.largest.fetch_max(waiters.len() as u64, Ordering::Relaxed);
        let expected: usize = waiters.iter().map(|w| w.values).sum();
        match run_script(&self.pool, &keys, &args).await {
            Ok(mut flat) if flat.len() == expected => {
                // From the back, so that each request's values are the tail that is left.
                for waiter in waiters.into_iter().rev() {
                    let mine = flat.split_off(flat.len() - waiter.values);
                    // A request that gave up no longer listens; its steps ran all the same.
                    let _ = waiter.answer.send(Ok(mine));
                }
            }
            Ok(flat) => {
                for waiter in waiters {
                    let _ = waiter.answer.send(Err(StoreError::ScriptAnswer { expected, got: flat.len() }));
                }
            }
            Err(error) => {
                for waiter in waiters {
                    let _ = waiter.answer.send(Err(StoreError::Redis(error.clone())));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;

//! Against a real Redis. The runtime is single-threaded so that the order in which requests and
//! the send task run is the scheduler's queue order, not a race.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use shared::redis::{reply, RedisPool, RedisSettings, MAX_PIPELINE_COMMANDS};
use shared::testing::RedisServer;

use super::*;
use crate::store::CounterUpdate;

fn pool(redis: &RedisServer, max_pipeline_commands: usize) -> Arc<RedisPool> {
    let settings = RedisSettings::single_tcp(redis.url(), 2, Duration::from_secs(5));
    Arc::new(RedisPool::new(&RedisSettings { max_pipeline_commands, ..settings }).unwrap())
}

/// One command on its own, its reply.
async fn command(pool: &RedisPool, words: &[&str]) -> redis::Value {
    let mut replies = pool
        .pipeline(|p| {
            p.cmd(words[0]).arg(&words[1..]);
        })
        .await
        .unwrap();
    replies.remove(0)
}

const BASE_US: u64 = 1_700_000_000_000_000;

/// Request `i`: a token bucket step on its own key, at its own time (`BASE_US + i` ms), and a
/// fixed window step on a counter every request shares.
async fn bucket_and_shared_counter(scripts: &Arc<MergedScripts>, i: u64) -> Result<Vec<StepResult>, StoreError> {
    let own = format!("{{b{i}}}tb");
    let steps = [
        Step::Bucket { key: &own, increment_us: 100, tolerance_us: 1_000 },
        Step::Window(CounterUpdate { key: "shared", hits: 1, ttl: 60, window: 60 }),
    ];
    scripts.run(&steps, BASE_US + i * 1_000).await
}

/// Each request's bucket took its own time; the shared counter counted every request once.
fn check_answers(answers: Vec<Result<Vec<StepResult>, StoreError>>) {
    let mut counts = Vec::new();
    for (i, answer) in answers.into_iter().enumerate() {
        let answer = answer.unwrap_or_else(|e| panic!("request {i}: {e}"));
        let tat_us = BASE_US + i as u64 * 1_000 + 100;
        assert_eq!(answer[0], StepResult::Bucket { allowed: true, tat_us }, "request {i}");
        match answer[1] {
            StepResult::Count(n) => counts.push(n),
            other => panic!("request {i}: {other:?}"),
        }
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=counts.len() as u64).collect::<Vec<_>>());
}

#[tokio::test]
async fn concurrent_requests_share_one_script_run_and_each_gets_its_own_answer() {
    let redis = RedisServer::start();
    let scripts = MergedScripts::new(pool(&redis, MAX_PIPELINE_COMMANDS), MAX_PIPELINE_COMMANDS);
    check_answers(join_all((0..30).map(|i| bucket_and_shared_counter(&scripts, i))).await);
    assert_eq!(scripts.stats(), MergeStats { runs: 1, requests: 30, largest: 30 });
}

#[tokio::test]
async fn a_run_closes_at_its_bound_and_every_request_is_still_answered() {
    let redis = RedisServer::start();
    let scripts = MergedScripts::new(pool(&redis, MAX_PIPELINE_COMMANDS), MAX_PIPELINE_COMMANDS);
    // 200 two-step requests: runs of at most MAX_MERGED_STEPS steps.
    check_answers(join_all((0..200).map(|i| bucket_and_shared_counter(&scripts, i))).await);
    let stats = scripts.stats();
    assert_eq!(stats.largest, MAX_MERGED_STEPS as u64 / 2, "{stats:?}");
    assert!(stats.runs >= 200 / stats.largest, "{stats:?}");
}

#[tokio::test]
async fn a_request_larger_than_the_bound_runs_whole_and_closes_the_open_run() {
    let redis = RedisServer::start();
    let scripts = MergedScripts::new(pool(&redis, MAX_PIPELINE_COMMANDS), MAX_PIPELINE_COMMANDS);
    let huge: Vec<Step<'_>> = (0..MAX_MERGED_STEPS * 3)
        .map(|_| Step::Window(CounterUpdate { key: "huge", hits: 1, ttl: 60, window: 60 }))
        .collect();
    let (before, whole, after) = tokio::join!(
        bucket_and_shared_counter(&scripts, 0),
        scripts.run(&huge, BASE_US),
        bucket_and_shared_counter(&scripts, 1),
    );
    check_answers(vec![before, after]);
    let counts: Vec<StepResult> = whole.unwrap();
    let expected: Vec<StepResult> = (1..=huge.len() as u64).map(StepResult::Count).collect();
    assert_eq!(counts, expected, "every step of the large request, in order, in one run");
    // The first request and the large one went together, at once; the last in a run of its own.
    assert_eq!(scripts.stats(), MergeStats { runs: 2, requests: 3, largest: 2 });
}

#[tokio::test]
async fn with_a_pipeline_limit_of_one_each_request_runs_alone() {
    let redis = RedisServer::start();
    let pool = pool(&redis, 1);
    let scripts = MergedScripts::new(pool.clone(), pool.max_pipeline_commands());
    check_answers(join_all((0..10).map(|i| bucket_and_shared_counter(&scripts, i))).await);
    assert_eq!(scripts.stats(), MergeStats { runs: 10, requests: 10, largest: 1 });
}

#[tokio::test]
async fn a_request_that_gives_up_does_not_take_the_others_down() {
    let redis = RedisServer::start();
    let pool = pool(&redis, MAX_PIPELINE_COMMANDS);
    let scripts = MergedScripts::new(pool.clone(), MAX_PIPELINE_COMMANDS);
    let mut quitter = Box::pin(bucket_and_shared_counter(&scripts, 0));
    // Polled once, its steps are in the open run; then it is dropped, as tonic drops a call
    // Envoy cancelled.
    assert!(futures_util::poll!(&mut quitter).is_pending());
    drop(quitter);
    let stayer = bucket_and_shared_counter(&scripts, 1).await.unwrap();
    assert_eq!(stayer[1], StepResult::Count(2), "the quitter's step ran before the stayer's");
    assert_eq!(scripts.stats().runs, 1);
    let kept: Option<String> = reply(command(&pool, &["GET", "{b0}tb"]).await).unwrap();
    assert_eq!(kept, Some((BASE_US + 100).to_string()), "the quitter's bucket step ran too");
}

#[tokio::test]
async fn a_run_that_fails_fails_each_of_its_requests_and_a_forgotten_script_is_loaded() {
    let redis = RedisServer::start();
    let pool = pool(&redis, MAX_PIPELINE_COMMANDS);
    let scripts = MergedScripts::new(pool.clone(), MAX_PIPELINE_COMMANDS);
    check_answers(join_all((0..5).map(|i| bucket_and_shared_counter(&scripts, i))).await);
    // Out of memory: the script's first write is refused, and so is the whole run.
    command(&pool, &["CONFIG", "SET", "maxmemory", "1"]).await;
    let failed = join_all((10..15).map(|i| bucket_and_shared_counter(&scripts, i))).await;
    for answer in failed {
        let error = answer.unwrap_err().to_string();
        assert!(error.contains("OOM"), "{error}");
    }
    command(&pool, &["CONFIG", "SET", "maxmemory", "0"]).await;
    // Redis lost its scripts (a restart, a failover): the run loads it again and counts once.
    command(&pool, &["SCRIPT", "FLUSH"]).await;
    let answers = join_all((0..3).map(|i| bucket_and_shared_counter(&scripts, 100 + i))).await;
    let counts: Vec<StepResult> = answers.into_iter().map(|a| a.unwrap()[1]).collect();
    assert_eq!(counts, [6, 7, 8].map(StepResult::Count), "five counted before the failure, none during it");
}

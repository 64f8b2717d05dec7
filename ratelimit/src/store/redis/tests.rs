//! Against a real Redis: what a key of the wrong type answers on each path (the counter is over
//! any limit, never an outage), and that a refused command is answered by the failure mode without
//! counting as an outage, while a stopped Redis is one.

use std::sync::Arc;
use std::time::Duration;

use shared::health::Health;
use shared::redis::{RedisPool, RedisSettings};
use shared::testing::RedisServer;

use super::*;
use crate::core::evaluate::Code;
use crate::service::test_limiter::{self, request};
use crate::service::{Clocks, FailureMode, RateLimiter};

fn pool(redis: &RedisServer, auth: Option<&str>) -> Arc<RedisPool> {
    let settings = RedisSettings::single_tcp(redis.url(), 1, Duration::from_secs(5));
    Arc::new(RedisPool::new(&RedisSettings { auth: auth.map(str::to_string), ..settings }).unwrap())
}

async fn command(pool: &RedisPool, words: &[&str]) {
    let mut pipeline = redis::pipe();
    pipeline.cmd(words[0]).arg(&words[1..]).ignore();
    pool.query::<()>(&pipeline).await.unwrap();
}

fn update(key: &str) -> CounterUpdate<'_> {
    CounterUpdate { key, hits: 1, ttl: 60, window: 60 }
}

#[tokio::test]
async fn a_key_of_the_wrong_type_is_over_the_limit_on_every_path() {
    let redis = RedisServer::start();
    let pool = pool(&redis, None);
    command(&pool, &["RPUSH", "list", "x"]).await;
    command(&pool, &["SET", "text", "not a number"]).await;
    let store = RedisStore::new(pool, None);

    let counted = store.increment(&[update("list"), update("fresh")], 0).await.unwrap();
    assert_eq!(counted, [u64::MAX, 1]);
    let read = store.current(&[update("list"), update("text"), update("fresh")], 0).await.unwrap();
    assert_eq!(read, [u64::MAX, u64::MAX, 1]);
    let steps = [
        Step::Window(update("list")),
        Step::Sliding { current: update("list"), previous: "text" },
        Step::Bucket { key: "list", increment_us: 100, tolerance_us: 1_000 },
    ];
    let results = store.run(&steps, 1_000_000).await.unwrap();
    assert_eq!(
        results,
        [
            StepResult::Count(u64::MAX),
            StepResult::Sliding { current: u64::MAX, previous: 0 },
            StepResult::Bucket { allowed: false, tat_us: 1_000_000 + 1_000 + 100 + 1 }
        ]
    );
}

fn limiter(store: RedisStore, health: Health, failure_mode: FailureMode) -> RateLimiter {
    let yaml = "domain: d\ndescriptors:\n  - key: fixed\n    rate_limit: {unit: minute, requests_per_unit: 5}\n  - key: sliding\n    rate_limit: {unit: minute, requests_per_unit: 5, algorithm: sliding_window}\n";
    test_limiter::limiter(Arc::new(store), failure_mode, health, Clocks::from_seconds(Arc::new(|| 1_000)), yaml)
}

/// With `REDIS_FAILURE_MODE=deny` and health following Redis: a counter planted with a list is
/// that request's OVER_LIMIT; a command Redis refuses for this user (an ACL) is answered by the
/// failure mode but is no outage (health unchanged); only a stopped Redis is an outage.
#[tokio::test]
async fn only_an_unreachable_redis_is_an_outage() {
    let mut redis = RedisServer::start();
    let admin = pool(&redis, None);
    command(&admin, &["ACL", "SETUSER", "limited", "on", ">pw", "~*", "&*", "+@all", "-evalsha", "-eval"]).await;
    let (health, _server, _follow) = Health::new("ratelimit");
    // Deny: a refused command must not let the call through, whatever its kind.
    let limiter = limiter(RedisStore::new(pool(&redis, Some("limited:pw")), None), health.clone(), FailureMode::Deny);

    let first = limiter.should_rate_limit(&request("fixed")).await.unwrap();
    assert_eq!(first.verdict.overall, Code::Ok);
    let mut keys = redis::pipe();
    keys.cmd("KEYS").arg("d_fixed_*");
    let (keys,): (Vec<String>,) = admin.query(&keys).await.unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    command(&admin, &["DEL", &keys[0]]).await;
    command(&admin, &["RPUSH", &keys[0], "x"]).await;
    let planted = limiter.should_rate_limit(&request("fixed")).await.unwrap();
    assert_eq!(planted.verdict.overall, Code::OverLimit);

    // Sliding windows run a script, which this user may not run: Redis refuses the command. Not
    // an outage (no health change, not counted as one), but the call is still answered by the
    // failure mode, as any failed Redis call always was: a refusal never opens the gate.
    let refused = limiter.should_rate_limit(&request("sliding")).await.unwrap();
    assert_eq!(refused.verdict.overall, Code::OverLimit, "deny answers a refused command");
    assert_eq!(limiter.metrics().failure_mode_answer("deny").get(), 1);
    assert_eq!(limiter.metrics().redis_outages.get(), 0, "not an outage");
    assert!(health.is_healthy() && !limiter.in_outage());

    redis.stop();
    let denied = limiter.should_rate_limit(&request("sliding")).await.unwrap();
    assert_eq!(denied.verdict.overall, Code::OverLimit, "the failure mode answers");
    assert_eq!(limiter.metrics().failure_mode_answer("deny").get(), 2);
    assert_eq!(limiter.metrics().redis_outages.get(), 1);
    assert!(!health.is_healthy() && limiter.in_outage());
}

//! A hot key with `HOT_KEY_BATCH_WINDOW`: many concurrent calls on one counter reach Redis as a
//! few `INCRBY`s of their sums, and the answers stay exact (as many OK as the limit allows).

mod support;

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use support::*;

const CONFIG: &str = "domain: hot\ndescriptors:\n  - key: k\n    rate_limit: {unit: minute, requests_per_unit: 30}\n";

/// `INCRBY` calls Redis has served so far.
async fn incrby_calls(redis: &shared::testing::RedisServer) -> u64 {
    let info: String = redis.command(redis::cmd("INFO").arg("commandstats")).await;
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_incrby:calls="))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

async fn burst(h: &Harness, calls: usize) -> (usize, usize) {
    let requests = (0..calls).map(|_| {
        let mut client = h.grpc.clone();
        tokio::spawn(async move {
            client.should_rate_limit(request("hot", vec![descriptor(&[("k", "v")])])).await.unwrap().into_inner()
        })
    });
    let mut ok = 0;
    let mut over = 0;
    for answer in futures_util::future::join_all(requests).await {
        match Code::try_from(answer.unwrap().overall_code).unwrap() {
            Code::Ok => ok += 1,
            _ => over += 1,
        }
    }
    (ok, over)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_key_is_batched_and_counted_exactly() {
    let h = Harness::start(Backend::Redis, &[("hot.yaml", CONFIG)], &[("HOT_KEY_BATCH_WINDOW", "100ms")]).await;
    let redis = h.redis.as_ref().unwrap();
    let before = incrby_calls(redis).await;
    assert_eq!(burst(&h, 50).await, (30, 20), "exactly the limit let through");
    let calls = incrby_calls(redis).await - before;
    assert!(calls <= 10, "50 requests in {calls} INCRBYs");
    let now = h.clock.now();
    let count: u64 = redis.command(redis::cmd("GET").arg(format!("hot_k_v_{}", now - now % 60))).await;
    assert_eq!(count, 50, "every hit counted once");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_window_each_request_is_its_own_increment() {
    let h = Harness::start(Backend::Redis, &[("hot.yaml", CONFIG)], &[]).await;
    let redis = h.redis.as_ref().unwrap();
    let before = incrby_calls(redis).await;
    assert_eq!(burst(&h, 50).await, (30, 20));
    assert_eq!(incrby_calls(redis).await - before, 50);
    h.stop().await;
}

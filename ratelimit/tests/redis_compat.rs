//! What sharing Redis with envoyproxy/ratelimit requires: the same keys, TTLs and counts, and
//! one limit held in total by several instances.

mod support;

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use support::*;

const CONFIG: &str = "domain: compat\ndescriptors:\n  - key: key\n    rate_limit: {unit: minute, requests_per_unit: 5}\n  - key: key2\n    value: value2\n    descriptors:\n      - key: subkey2\n        rate_limit: {unit: hour, requests_per_unit: 5}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_ttls_are_the_references() {
    let mut h = Harness::start(Backend::Redis, &[("c.yaml", CONFIG)], &[("CACHE_KEY_PREFIX", "pfx:")]).await;
    h.clock.advance(61);
    let now = h.clock.now();
    h.call(request(
        "compat",
        vec![descriptor(&[("key", "value")]), descriptor(&[("key2", "value2"), ("subkey2", "sv")])],
    ))
    .await
    .unwrap();
    let redis = h.redis.as_ref().unwrap();
    let minute_key = format!("pfx:compat_key_value_{}", now - now % 60);
    let hour_key = format!("pfx:compat_key2_value2_subkey2_sv_{}", now - now % 3600);
    let mut keys: Vec<String> = redis.command(redis::cmd("KEYS").arg("*")).await;
    keys.sort();
    assert_eq!(keys, vec![hour_key.clone(), minute_key.clone()]);
    let count: u64 = redis.command(redis::cmd("GET").arg(&minute_key)).await;
    assert_eq!(count, 1);
    // EXPIRATION_JITTER_MAX_SECONDS=0 in tests: the TTL is exactly the window.
    let ttl: i64 = redis.command(redis::cmd("TTL").arg(&minute_key)).await;
    assert!((59..=60).contains(&ttl), "ttl {ttl}");
    let ttl: i64 = redis.command(redis::cmd("TTL").arg(&hour_key)).await;
    assert!((3599..=3600).contains(&ttl), "ttl {ttl}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_survive_a_switch_mid_window() {
    let mut h = Harness::start(Backend::Redis, &[("c.yaml", CONFIG)], &[]).await;
    let now = h.clock.now();
    // As if the reference had already counted 3 hits in this window.
    let key = format!("compat_key_value_{}", now - now % 60);
    let _: u64 = h.redis.as_ref().unwrap().command(redis::cmd("INCRBY").arg(&key).arg(3)).await;
    let r = h.call(request("compat", vec![descriptor(&[("key", "value")])])).await.unwrap();
    assert_eq!(r.statuses[0].limit_remaining, 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiration_jitter_extends_ttls() {
    let mut h =
        Harness::start(Backend::Redis, &[("c.yaml", CONFIG)], &[("EXPIRATION_JITTER_MAX_SECONDS", "1000")]).await;
    let now = h.clock.now();
    let mut ttls = Vec::new();
    for value in 0..20 {
        h.call(request("compat", vec![descriptor(&[("key", &value.to_string())])])).await.unwrap();
        let key = format!("compat_key_{value}_{}", now - now % 60);
        let ttl: i64 = h.redis.as_ref().unwrap().command(redis::cmd("TTL").arg(&key)).await;
        ttls.push(ttl);
    }
    assert!(ttls.iter().all(|t| (59..1060).contains(t)), "{ttls:?}");
    assert!(ttls.iter().any(|t| *t > 60), "some jitter among {ttls:?}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_limit() {
    let mut a = Harness::start(Backend::Redis, &[("c.yaml", CONFIG)], &[]).await;
    let redis = a.redis.as_ref().unwrap();
    // A second service on the same Redis.
    let config = ConfigDir::new(&[("c.yaml", CONFIG)]);
    let mut env = base_env(&config);
    env.insert("REDIS_SOCKET_TYPE".into(), "tcp".into());
    env.insert("REDIS_URL".into(), redis.url());
    let settings = ratelimit::settings::Settings::from_env(&env).unwrap();
    let second = ratelimit::start(settings, a.clock.as_clock()).await.unwrap();
    let mut second_client =
        envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient::connect(
            format!("http://{}", second.grpc_addr.unwrap()),
        )
        .await
        .unwrap();

    let mut allowed = 0;
    for i in 0..10 {
        let req = request("compat", vec![descriptor(&[("key", "shared")])]);
        let response = if i % 2 == 0 {
            a.call(req).await.unwrap()
        } else {
            second_client.should_rate_limit(req).await.unwrap().into_inner()
        };
        if response.overall_code == Code::Ok as i32 {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 5, "the limit of 5 holds across both instances");
    second.shutdown().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_second_limits_go_to_their_own_redis() {
    let per_second = RedisServer::start();
    let config = "domain: ps\ndescriptors:\n  - key: fast\n    rate_limit: {unit: second, requests_per_unit: 2}\n  - key: slow\n    rate_limit: {unit: minute, requests_per_unit: 2}\n";
    let url = per_second.url();
    let mut h = Harness::start(
        Backend::Redis,
        &[("c.yaml", config)],
        &[("REDIS_PERSECOND", "true"), ("REDIS_PERSECOND_SOCKET_TYPE", "tcp"), ("REDIS_PERSECOND_URL", &url)],
    )
    .await;
    let now = h.clock.now();
    for remaining in [1, 0] {
        let r = h.call(request("ps", vec![descriptor(&[("fast", "a")]), descriptor(&[("slow", "a")])])).await.unwrap();
        assert_eq!((r.statuses[0].limit_remaining, r.statuses[1].limit_remaining), (remaining, remaining));
    }
    let main_keys: Vec<String> = h.redis.as_ref().unwrap().command(redis::cmd("KEYS").arg("*")).await;
    let second_keys: Vec<String> = per_second.command(redis::cmd("KEYS").arg("*")).await;
    assert_eq!(main_keys, vec![format!("ps_slow_a_{}", now - now % 60)]);
    assert_eq!(second_keys, vec![format!("ps_fast_a_{now}")]);
    h.stop().await;
}

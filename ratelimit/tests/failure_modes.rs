//! Redis stopped in the middle of a test: each REDIS_FAILURE_MODE answers as configured, the
//! outage is counted once, health follows when asked to, and service recovers by itself.

mod support;

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use support::*;

const CONFIG: &str = "domain: fm\ndescriptors:\n  - key: k\n    rate_limit: {unit: hour, requests_per_unit: 100}\n";

async fn with_outage(mode: &str, extra: &[(&str, &str)]) -> Harness {
    let mut settings = vec![("REDIS_FAILURE_MODE", mode)];
    settings.extend_from_slice(extra);
    let mut h = Harness::start(Backend::Redis, &[("fm.yaml", CONFIG)], &settings).await;
    let before = h.call(request("fm", vec![descriptor(&[("k", "v")])])).await.unwrap();
    assert_eq!(before.statuses[0].limit_remaining, 99);
    h.redis.as_mut().unwrap().stop();
    h
}

fn metric(h: &Harness, line_start: &str) -> Option<String> {
    h.running().limiter.metrics().registry.render().lines().find(|l| l.starts_with(line_start)).map(str::to_owned)
}

/// Brings Redis back and waits until calls are counted again.
async fn recover(h: &mut Harness) {
    h.redis.as_mut().unwrap().resume();
    shared::testing::eventually(
        "calls counted again after Redis came back",
        std::time::Duration::from_secs(5),
        async || {
            let call = h.call(request("fm", vec![descriptor(&[("k", "v")])])).await;
            call.is_ok_and(|r| r.statuses[0].current_limit.is_some() && r.statuses[0].code == Code::Ok as i32)
        },
    )
    .await;
    assert!(!h.running().limiter.in_outage());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_mode_fails_the_call_with_unavailable() {
    let mut h = with_outage("error", &[]).await;
    for _ in 0..5 {
        let err = h.call(request("fm", vec![descriptor(&[("k", "v")])])).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    }
    assert_eq!(
        metric(&h, "ratelimit_service_redis_outages_total").as_deref(),
        Some("ratelimit_service_redis_outages_total 1")
    );
    assert_eq!(
        metric(&h, "ratelimit_service_should_rate_limit_error{err_type=\"redis_error\"}").as_deref(),
        Some("ratelimit_service_should_rate_limit_error{err_type=\"redis_error\"} 5")
    );
    // Without REDIS_HEALTH_CHECK_ACTIVE_CONNECTION health does not follow Redis (as the reference).
    assert!(h.running().health.is_healthy());
    recover(&mut h).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_mode_answers_ok() {
    let mut h = with_outage("allow", &[]).await;
    for _ in 0..3 {
        let r = h.call(request("fm", vec![descriptor(&[("k", "v")])])).await.unwrap();
        assert_eq!(r.overall_code, Code::Ok as i32);
    }
    assert!(metric(&h, "ratelimit_service_failure_mode_answers_total{mode=\"allow\"} 3").is_some());
    recover(&mut h).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_mode_answers_over_limit_with_the_limit() {
    let mut h = with_outage("deny", &[]).await;
    let r = h.call(request("fm", vec![descriptor(&[("k", "v")]), descriptor(&[("unknown", "x")])])).await.unwrap();
    assert_eq!(r.overall_code, Code::OverLimit as i32);
    assert_eq!(r.statuses[0].code, Code::OverLimit as i32);
    assert_eq!(r.statuses[0].current_limit.as_ref().unwrap().requests_per_unit, 100);
    assert_eq!(r.statuses[1].code, Code::Ok as i32, "descriptors with no limit are not denied");
    // Retry-After is on by default, but no count decided this answer and the outage's length
    // is unknown: no header (the window's end would be a guess).
    assert!(r.response_headers_to_add.is_empty(), "{:?}", r.response_headers_to_add);
    recover(&mut h).await;
    // The count made before the outage is still there.
    let r = h.call(request("fm", vec![descriptor(&[("k", "v")])])).await.unwrap();
    assert!(r.statuses[0].limit_remaining < 99);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_redis_when_asked() {
    let mut h = with_outage("error", &[("REDIS_HEALTH_CHECK_ACTIVE_CONNECTION", "true")]).await;
    let _ = h.call(request("fm", vec![descriptor(&[("k", "v")])])).await;
    assert!(!h.running().health.is_healthy());
    let (status, _) = http(h.running().http_addr, "GET", "/healthcheck", "").await;
    assert_eq!(status, 500);
    // With no traffic at all, the background probe notices the return.
    h.redis.as_mut().unwrap().resume();
    h.eventually(|r| r.health.is_healthy()).await;
    let (status, body) = http(h.running().http_addr, "GET", "/healthcheck", "").await;
    assert_eq!((status, body.as_str()), (200, "OK"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_mode_counts_each_instances_share_in_memory_until_redis_returns() {
    let mut h = with_outage("local", &[("REDIS_FAILURE_LOCAL_INSTANCES", "4")]).await;
    let call = || request("fm", vec![descriptor(&[("k", "v")])]);
    // 100 an hour among 4 instances: this one lets 25 through while it counts alone.
    for left in (0..25).rev() {
        let r = h.call(call()).await.unwrap();
        assert_eq!((r.overall_code, r.statuses[0].limit_remaining), (Code::Ok as i32, left));
        assert_eq!(r.statuses[0].current_limit.as_ref().unwrap().requests_per_unit, 25);
    }
    let r = h.call(call()).await.unwrap();
    assert_eq!(r.overall_code, Code::OverLimit as i32, "its share is spent");
    assert!(metric(&h, "ratelimit_service_failure_mode_answers_total{mode=\"local\"} 26").is_some());
    assert_eq!(
        metric(&h, "ratelimit_service_redis_outages_total").as_deref(),
        Some("ratelimit_service_redis_outages_total 1"),
        "one outage, however many calls"
    );
    // Redis is back (restarted empty): the probe notices, and counting goes on in Redis — the
    // 26 counted alone stay with the outage.
    h.redis.as_mut().unwrap().resume();
    let limiter = h.running().limiter.clone();
    shared::testing::eventually("Redis is noticed again", std::time::Duration::from_secs(10), || {
        std::future::ready(!limiter.in_outage())
    })
    .await;
    let r = h.call(call()).await.unwrap();
    assert_eq!((r.overall_code, r.statuses[0].limit_remaining), (Code::Ok as i32, 99));
    let now = h.clock.now();
    let key = format!("fm_k_v_{}", now - now % 3600);
    let counted: u64 = h.redis.as_ref().unwrap().command(redis::cmd("GET").arg(&key)).await;
    assert_eq!(counted, 1, "counted in Redis");
    h.stop().await;
}

const FLAP: &str = "domain: flap\ndescriptors:\n  - key: k\n    rate_limit: {unit: hour, requests_per_unit: 5}\n";

/// Waits (bounded) until the probe has noticed Redis again.
async fn noticed_again(h: &Harness) {
    let limiter = h.running().limiter.clone();
    shared::testing::eventually("Redis is noticed again", std::time::Duration::from_secs(10), || {
        std::future::ready(!limiter.in_outage())
    })
    .await;
}

/// Redis stopped and started again three times within the hour: each outage goes on from what
/// the previous ones counted locally, so 5 an hour lets 5 through in all, not 5 per outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_mode_carries_each_counter_across_a_flapping_redis() {
    let mut h = Harness::start(Backend::Redis, &[("flap.yaml", FLAP)], &[("REDIS_FAILURE_MODE", "local")]).await;
    let call = || request("flap", vec![descriptor(&[("k", "v")])]);
    let mut admitted_locally = 0;
    for _ in 0..3 {
        h.redis.as_mut().unwrap().stop();
        for _ in 0..6 {
            if h.call(call()).await.unwrap().overall_code == Code::Ok as i32 {
                admitted_locally += 1;
            }
        }
        assert!(h.running().limiter.in_outage());
        h.redis.as_mut().unwrap().resume();
        noticed_again(&h).await;
        h.clock.advance(60);
    }
    assert_eq!(admitted_locally, 5, "one local budget for the hour, across three outages");
    h.stop().await;
}

/// A hung Redis (SIGSTOP: connections accepted, nothing answered) with a long REDIS_TIMEOUT:
/// calls answer from the local counters after REDIS_FAILURE_LOCAL_TIMEOUT, and the probe,
/// bounded by it too, notices Redis once it answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_mode_answers_from_memory_while_redis_hangs() {
    let settings =
        [("REDIS_FAILURE_MODE", "local"), ("REDIS_TIMEOUT", "60s"), ("REDIS_FAILURE_LOCAL_TIMEOUT", "250ms")];
    let mut h = Harness::start(Backend::Redis, &[("flap.yaml", FLAP)], &settings).await;
    let call = || request("flap", vec![descriptor(&[("k", "v")])]);
    assert_eq!(h.call(call()).await.unwrap().statuses[0].limit_remaining, 4);
    h.redis.as_ref().unwrap().freeze();
    // Far below REDIS_TIMEOUT: a call that waited for it would miss this deadline.
    let within = std::time::Duration::from_secs(20);
    for left in (0..5).rev() {
        let r = tokio::time::timeout(within, h.call(call())).await.expect("answered before REDIS_TIMEOUT").unwrap();
        assert_eq!((r.overall_code, r.statuses[0].limit_remaining), (Code::Ok as i32, left), "counted locally");
    }
    assert!(metric(&h, "ratelimit_service_failure_mode_answers_total{mode=\"local\"} 5").is_some());
    h.redis.as_ref().unwrap().thaw();
    noticed_again(&h).await;
    h.stop().await;
}

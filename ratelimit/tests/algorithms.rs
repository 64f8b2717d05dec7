//! The sliding window and the token bucket, one suite run against both backends (the memory
//! store and a real Redis running the script), with time moved by hand in microseconds; then
//! what only Redis has: the script's keys and TTLs, and recovery when Redis forgot the script.

#[macro_use]
mod support;

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitResponse;
use support::*;

const CONFIG: &str = r#"
domain: algo
descriptors:
  - key: sliding
    rate_limit: {unit: minute, requests_per_unit: 10, algorithm: sliding_window}
  - key: fixed
    rate_limit: {unit: minute, requests_per_unit: 10}
  - key: bucket
    rate_limit: {unit: second, requests_per_unit: 10, algorithm: token_bucket, burst: 5}
  - key: hourly
    rate_limit: {unit: hour, requests_per_unit: 60, algorithm: token_bucket}
  - key: closed_fixed
    rate_limit: {unit: minute, requests_per_unit: 0}
  - key: closed_sliding
    rate_limit: {unit: minute, requests_per_unit: 0, algorithm: sliding_window}
  - key: closed_bucket
    rate_limit: {unit: minute, requests_per_unit: 0, algorithm: token_bucket}
"#;

async fn start(backend: Backend) -> Harness {
    Harness::start(
        backend,
        &[("algo.yaml", CONFIG)],
        &[("LIMIT_RESPONSE_HEADERS_ENABLED", "true"), ("LOCAL_CACHE_SIZE_IN_BYTES", "1048576")],
    )
    .await
}

async fn ask(h: &mut Harness, key: &str, hits: u64) -> RateLimitResponse {
    let d = with_addend(descriptor(&[(key, "user-1")]), hits);
    h.call(request("algo", vec![d])).await.expect("an answer")
}

fn code(r: &RateLimitResponse) -> Code {
    Code::try_from(r.overall_code).unwrap()
}

fn remaining_and_reset(r: &RateLimitResponse) -> (u32, i64) {
    let status = &r.statuses[0];
    (status.limit_remaining, status.duration_until_reset.as_ref().map_or(-1, |d| d.seconds))
}

fn header<'a>(r: &'a RateLimitResponse, name: &str) -> &'a str {
    r.response_headers_to_add.iter().find(|h| h.key == name).map_or("", |h| h.value.as_str())
}

/// The boundary burst a fixed window allows and a sliding window does not: 10 requests at the
/// last second of a minute, 10 more at the first second of the next.
async fn no_double_burst_at_a_window_boundary(backend: Backend) {
    let mut h = start(backend).await;
    h.clock.advance(59);
    for key in ["sliding", "fixed"] {
        for i in 0..10 {
            assert_eq!(code(&ask(&mut h, key, 1).await), Code::Ok, "{key} request {i}");
        }
    }
    h.clock.advance(1);
    assert_eq!(code(&ask(&mut h, "fixed", 1).await), Code::Ok, "the fixed window starts again");
    let refused = ask(&mut h, "sliding", 1).await;
    assert_eq!(code(&refused), Code::OverLimit, "the previous minute still counts in full");
    // 10 × 1.0 + 1 (this one, counted) > 10; the first that fits comes once 2 of the 10 decayed.
    assert_eq!(remaining_and_reset(&refused), (0, 12));
    assert_eq!(header(&refused, "Retry-After"), "12", "Envoy's 429 says when a request fits again");
    // Half a minute later: 10 × 0.5 + 1 (the refused one) + 1 = 7.
    h.clock.advance(30);
    let half = ask(&mut h, "sliding", 1).await;
    assert_eq!((code(&half), remaining_and_reset(&half).0), (Code::Ok, 3));
    assert_eq!(header(&half, "RateLimit-Remaining"), "3");
    h.stop().await;
}

/// Even traffic under the limit passes a sliding window forever (one request every 7 s against
/// 10 a minute); traffic over it (one every 5 s) is refused within its second minute. (At
/// exactly the limit the two-window estimate can over-count by a fraction of a request and
/// refuse one: its error bound, see the docs.)
async fn steady_traffic_under_the_limit_passes(backend: Backend) {
    let mut h = start(backend).await;
    for second in 0..300 {
        if second % 7 == 0 {
            let r = ask(&mut h, "sliding", 1).await;
            assert_eq!(code(&r), Code::Ok, "second {second}");
        }
        h.clock.advance(1);
    }
    let mut first_refusal = None;
    for second in 0..180 {
        if second % 5 == 0 && code(&ask(&mut h, "sliding", 1).await) == Code::OverLimit {
            first_refusal.get_or_insert(second);
        }
        h.clock.advance(1);
    }
    assert!(first_refusal.is_some_and(|s| s < 120), "12 a minute against 10: {first_refusal:?}");
    h.stop().await;
}

/// A bucket of 5 refilled at 10 a second: the burst, then one request per 100 ms.
async fn a_token_bucket_allows_its_burst_then_its_rate(backend: Backend) {
    let mut h = start(backend).await;
    for expected_left in (0..5).rev() {
        let r = ask(&mut h, "bucket", 1).await;
        assert_eq!((code(&r), remaining_and_reset(&r).0), (Code::Ok, expected_left));
    }
    let refused = ask(&mut h, "bucket", 1).await;
    assert_eq!((code(&refused), remaining_and_reset(&refused)), (Code::OverLimit, (0, 1)), "wait 0.1 s → 1 s");
    assert_eq!(header(&refused, "RateLimit-Reset"), "1");
    assert_eq!(header(&refused, "Retry-After"), "1");
    assert_eq!(code(&ask(&mut h, "bucket", 1).await), Code::OverLimit, "a refused request took nothing");
    h.clock.advance_micros(100_000);
    assert_eq!(code(&ask(&mut h, "bucket", 1).await), Code::Ok, "one token back after 100 ms");
    assert_eq!(code(&ask(&mut h, "bucket", 1).await), Code::OverLimit);
    // A check that takes nothing (hits_addend 0, as Envoy sends before a costed request) fits
    // as long as the bucket is not overdrawn, and changes nothing.
    h.clock.advance_micros(100_000);
    let probe = ask(&mut h, "bucket", 0).await;
    assert_eq!((code(&probe), remaining_and_reset(&probe).0), (Code::Ok, 1));
    assert_eq!(remaining_and_reset(&ask(&mut h, "bucket", 0).await).0, 1, "the probe took nothing");
    // Full again after half a second; never more than the burst however long it rests.
    h.clock.advance(3600);
    assert_eq!(remaining_and_reset(&ask(&mut h, "bucket", 1).await).0, 4);
    h.stop().await;
}

/// A cost larger than the burst never fits; costs are taken whole.
async fn costs_are_taken_whole(backend: Backend) {
    let mut h = start(backend).await;
    assert_eq!(code(&ask(&mut h, "bucket", 6).await), Code::OverLimit, "more than the burst");
    let r = ask(&mut h, "bucket", 4).await;
    assert_eq!((code(&r), remaining_and_reset(&r).0), (Code::Ok, 1));
    assert_eq!(code(&ask(&mut h, "bucket", 2).await), Code::OverLimit);
    assert_eq!(code(&ask(&mut h, "bucket", 1).await), Code::Ok, "the refused 2 took nothing");
    // An hourly bucket: 60 an hour is one a minute.
    for _ in 0..60 {
        assert_eq!(code(&ask(&mut h, "hourly", 1).await), Code::Ok);
    }
    let refused = ask(&mut h, "hourly", 1).await;
    assert_eq!((code(&refused), remaining_and_reset(&refused).1), (Code::OverLimit, 60));
    h.stop().await;
}

/// A request mixing algorithms is answered per descriptor, in one store call.
async fn one_request_mixes_algorithms(backend: Backend) {
    let mut h = start(backend).await;
    let descriptors = vec![
        descriptor(&[("fixed", "u")]),
        descriptor(&[("sliding", "u")]),
        with_addend(descriptor(&[("bucket", "u")]), 5),
    ];
    let r = h.call(request("algo", descriptors.clone())).await.unwrap();
    let remaining: Vec<u32> = r.statuses.iter().map(|s| s.limit_remaining).collect();
    assert_eq!((code(&r), remaining), (Code::Ok, vec![9, 9, 0]));
    let r = h.call(request("algo", descriptors)).await.unwrap();
    let codes: Vec<i32> = r.statuses.iter().map(|s| s.code).collect();
    assert_eq!(codes, vec![Code::Ok as i32, Code::Ok as i32, Code::OverLimit as i32]);
    assert_eq!(code(&r), Code::OverLimit);
    h.stop().await;
}

/// A limit of 0 refuses every request, whatever the algorithm (a bucket of 0 once let one
/// request through per unit), now and a unit later.
async fn a_limit_of_zero_refuses_everything_whatever_the_algorithm(backend: Backend) {
    let mut h = start(backend).await;
    for _ in 0..2 {
        for key in ["closed_fixed", "closed_sliding", "closed_bucket"] {
            for _ in 0..3 {
                let r = ask(&mut h, key, 1).await;
                assert_eq!((code(&r), r.statuses[0].limit_remaining), (Code::OverLimit, 0), "{key}");
            }
        }
        h.clock.advance(61);
    }
    let refused = ask(&mut h, "closed_bucket", 1).await;
    assert_eq!(remaining_and_reset(&refused), (0, 60), "the bucket tells to come back in a unit");
    assert_eq!(header(&refused, "Retry-After"), "60");
    h.stop().await;
}

on_both_backends!(
    no_double_burst_at_a_window_boundary,
    steady_traffic_under_the_limit_passes,
    a_token_bucket_allows_its_burst_then_its_rate,
    costs_are_taken_whole,
    one_request_mixes_algorithms,
    a_limit_of_zero_refuses_everything_whatever_the_algorithm,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_keys_ttls_and_a_forgotten_script() {
    let mut h = start(Backend::Redis).await;
    let now = h.clock.now();
    ask(&mut h, "sliding", 1).await;
    ask(&mut h, "bucket", 1).await;
    let redis = h.redis.as_ref().unwrap();
    let mut keys: Vec<String> = redis.command(::redis::cmd("KEYS").arg("*")).await;
    keys.sort();
    let window = now - now % 60;
    assert_eq!(keys, vec![format!("{{algo_bucket_user-1_}}tb"), format!("{{algo_sliding_user-1_}}{window}")]);
    let ttl: i64 = redis.command(::redis::cmd("TTL").arg(&keys[1])).await;
    assert!((119..=120).contains(&ttl), "this window's counter lives two windows: {ttl}");
    let pttl: i64 = redis.command(::redis::cmd("PTTL").arg(&keys[0])).await;
    assert!((1000..=1100).contains(&pttl), "the arrival time lives until it passed: {pttl}");
    // Redis restarted or failed over and lost its scripts: the next call loads it again.
    let _: String = redis.command(::redis::cmd("SCRIPT").arg("FLUSH")).await;
    assert_eq!(code(&ask(&mut h, "sliding", 1).await), Code::Ok);
    let redis = h.redis.as_ref().unwrap();
    let count: u64 = redis.command(::redis::cmd("GET").arg(&keys[1])).await;
    assert_eq!(count, 2, "counted once, not twice, across the reload");
    h.stop().await;
}

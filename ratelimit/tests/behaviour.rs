//! One behaviour suite, run against both backends: the in-memory store and a real Redis.

#[macro_use]
mod support;

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use support::*;
use tonic::Code as GrpcCode;

const CONFIG: &str = r#"
domain: rl
descriptors:
  - key: client
    rate_limit: {unit: minute, requests_per_unit: 3, name: per-client}
  - key: route
    value: exact
    rate_limit: {unit: hour, requests_per_unit: 1}
  - key: route
    value: wild*
    rate_limit: {unit: hour, requests_per_unit: 2}
  - key: route
    rate_limit: {unit: hour, requests_per_unit: 5}
  - key: free
    rate_limit: {unlimited: true}
  - key: whitelisted
  - key: shadow
    shadow_mode: true
    rate_limit: {unit: hour, requests_per_unit: 1}
  - key: files
    value: top/*
    share_threshold: true
    rate_limit: {unit: hour, requests_per_unit: 2}
  - key: old
    rate_limit: {unit: hour, requests_per_unit: 1, name: old-limit}
  - key: new
    rate_limit: {unit: hour, requests_per_unit: 10, replaces: [{name: old-limit}]}
  - key: tight
    rate_limit: {unit: hour, requests_per_unit: 1}
  - key: roomy
    rate_limit: {unit: hour, requests_per_unit: 100}
  - key: tagged
    metadata: {team: payments, tier: {level: gold}}
    rate_limit: {unit: hour, requests_per_unit: 10}
  - key: quota1
    quota_mode: true
    rate_limit: {unit: hour, requests_per_unit: 1}
  - key: quota2
    quota_mode: true
    rate_limit: {unit: hour, requests_per_unit: 1}
"#;

async fn harness(backend: Backend, extra: &[(&str, &str)]) -> Harness {
    Harness::start(backend, &[("rl.yaml", CONFIG)], extra).await
}

fn code(response: &envoy_types::pb::envoy::service::ratelimit::v3::RateLimitResponse) -> Code {
    Code::try_from(response.overall_code).unwrap()
}

async fn counts_windows_and_answers_exactly(backend: Backend) {
    let mut h = harness(backend, &[]).await;
    for remaining in [2, 1, 0] {
        let r = h.call(request("rl", vec![descriptor(&[("client", "a")])])).await.unwrap();
        assert_eq!(code(&r), Code::Ok);
        let status = &r.statuses[0];
        assert_eq!(status.limit_remaining, remaining);
        let limit = status.current_limit.as_ref().unwrap();
        assert_eq!((limit.requests_per_unit, limit.unit, limit.name.as_str()), (3, 2, "per-client"));
        assert_eq!(status.duration_until_reset.as_ref().unwrap().seconds, 60);
    }
    h.clock.advance(45);
    let r = h.call(request("rl", vec![descriptor(&[("client", "a")])])).await.unwrap();
    assert_eq!(code(&r), Code::OverLimit);
    assert_eq!(r.statuses[0].limit_remaining, 0);
    assert_eq!(r.statuses[0].duration_until_reset.as_ref().unwrap().seconds, 15);
    // A key-only rule counts each value apart.
    let other = h.call(request("rl", vec![descriptor(&[("client", "b")])])).await.unwrap();
    assert_eq!((code(&other), other.statuses[0].limit_remaining), (Code::Ok, 2));
    // The next fixed window starts from zero.
    h.clock.advance(15);
    let r = h.call(request("rl", vec![descriptor(&[("client", "a")])])).await.unwrap();
    assert_eq!((code(&r), r.statuses[0].limit_remaining), (Code::Ok, 2));
    h.stop().await;
}

async fn most_specific_rule_wins(backend: Backend) {
    let mut h = harness(backend, &[]).await;
    let r = h
        .call(request(
            "rl",
            vec![
                descriptor(&[("route", "exact")]),
                descriptor(&[("route", "wildcat")]),
                descriptor(&[("route", "other")]),
            ],
        ))
        .await
        .unwrap();
    let limits: Vec<u32> = r.statuses.iter().map(|s| s.current_limit.as_ref().unwrap().requests_per_unit).collect();
    assert_eq!(limits, vec![1, 2, 5]);
    h.stop().await;
}

async fn no_limit_unlimited_and_unknown_domains(backend: Backend) {
    let mut h = harness(backend, &[]).await;
    let r = h
        .call(request(
            "rl",
            vec![descriptor(&[("free", "x")]), descriptor(&[("whitelisted", "x")]), descriptor(&[("nothing", "x")])],
        ))
        .await
        .unwrap();
    assert_eq!(code(&r), Code::Ok);
    assert_eq!(r.statuses[0].limit_remaining, u32::MAX);
    assert!(r.statuses.iter().all(|s| s.current_limit.is_none() && s.duration_until_reset.is_none()));
    assert_eq!((r.statuses[1].limit_remaining, r.statuses[2].limit_remaining), (0, 0));
    let unknown = h.call(request("nope", vec![descriptor(&[("client", "a")])])).await.unwrap();
    assert_eq!((code(&unknown), unknown.statuses.len()), (Code::Ok, 1));
    h.stop().await;
}

async fn hits_addend_and_check_only(backend: Backend) {
    let mut h = harness(backend, &[]).await;
    let mut req = request("rl", vec![descriptor(&[("client", "a")])]);
    req.hits_addend = 2;
    assert_eq!(h.call(req).await.unwrap().statuses[0].limit_remaining, 1);
    // hits_addend 0 reads without counting.
    for _ in 0..3 {
        let r = h.call(request("rl", vec![with_addend(descriptor(&[("client", "a")]), 0)])).await.unwrap();
        assert_eq!(r.statuses[0].limit_remaining, 1);
    }
    // One addend above what is left is rejected outright.
    let r = h.call(request("rl", vec![with_addend(descriptor(&[("client", "a")]), 2)])).await.unwrap();
    assert_eq!(code(&r), Code::OverLimit);
    h.stop().await;
}

/// A huge `hits_addend` (and a Redis counter that would overflow) is that request's answer —
/// over the limit — on both backends, never an outage answered per REDIS_FAILURE_MODE.
async fn huge_addends_saturate_over_the_limit(backend: Backend) {
    let mut h = harness(backend, &[("REDIS_FAILURE_MODE", "allow")]).await;
    for addend in [1 << 63, u64::MAX, 1 << 63] {
        let r = h.call(request("rl", vec![with_addend(descriptor(&[("roomy", "a")]), addend)])).await.unwrap();
        assert_eq!((code(&r), r.statuses[0].limit_remaining), (Code::OverLimit, 0), "addend {addend}");
    }
    // Past i64::MAX in Redis: INCRBY overflows; still this key's answer alone.
    let r = h.call(request("rl", vec![with_addend(descriptor(&[("roomy", "a")]), 1)])).await.unwrap();
    assert_eq!(code(&r), Code::OverLimit);
    let limiter = &h.running().limiter;
    assert!(!limiter.in_outage(), "no outage was declared");
    assert!(!limiter.metrics().registry.render().contains("ratelimit_service_failure_mode_answers"));
    let other = h.call(request("rl", vec![descriptor(&[("roomy", "b")])])).await.unwrap();
    assert_eq!((code(&other), other.statuses[0].limit_remaining), (Code::Ok, 99));
    h.stop().await;
}

async fn overrides_and_invalid_units(backend: Backend) {
    let mut h = harness(backend, &[]).await;
    // HOUR is 3 in Envoy's enum; the override beats the config's unlimited rule.
    let d = with_override(descriptor(&[("free", "x")]), 1, 3);
    let first = h.call(request("rl", vec![d.clone()])).await.unwrap();
    let limit = first.statuses[0].current_limit.as_ref().unwrap();
    assert_eq!((limit.requests_per_unit, limit.unit, first.statuses[0].limit_remaining), (1, 3, 0));
    assert_eq!(code(&h.call(request("rl", vec![d])).await.unwrap()), Code::OverLimit);
    let err = h.call(request("rl", vec![with_override(descriptor(&[("free", "x")]), 1, 0)])).await.unwrap_err();
    assert_eq!(err.code(), GrpcCode::InvalidArgument);
    assert!(err.message().contains("not a rate limit unit"), "{}", err.message());
    h.stop().await;
}

async fn shadow_rules_count_but_never_block(backend: Backend) {
    let mut h = harness(backend, &[]).await;
    for _ in 0..3 {
        let r = h.call(request("rl", vec![descriptor(&[("shadow", "x")])])).await.unwrap();
        assert_eq!(code(&r), Code::Ok);
    }
    let r = h.call(request("rl", vec![descriptor(&[("shadow", "x")])])).await.unwrap();
    assert_eq!((r.statuses[0].code, r.statuses[0].limit_remaining), (Code::Ok as i32, 0));
    assert!(r.statuses[0].current_limit.is_some());
    h.stop().await;
}

async fn global_shadow_mode_keeps_statuses(backend: Backend) {
    let mut h = harness(backend, &[("SHADOW_MODE", "true")]).await;
    h.call(request("rl", vec![descriptor(&[("tight", "x")])])).await.unwrap();
    let r = h.call(request("rl", vec![descriptor(&[("tight", "x")])])).await.unwrap();
    assert_eq!((code(&r), r.statuses[0].code), (Code::Ok, Code::OverLimit as i32));
    h.stop().await;
}

async fn share_threshold_shares_one_counter(backend: Backend) {
    let mut h = harness(backend, &[]).await;
    let a = h.call(request("rl", vec![descriptor(&[("files", "top/a")])])).await.unwrap();
    let b = h.call(request("rl", vec![descriptor(&[("files", "top/b")])])).await.unwrap();
    let c = h.call(request("rl", vec![descriptor(&[("files", "top/c")])])).await.unwrap();
    assert_eq!((a.statuses[0].limit_remaining, b.statuses[0].limit_remaining), (1, 0));
    assert_eq!(code(&c), Code::OverLimit);
    h.stop().await;
}

async fn replaces_within_a_request(backend: Backend) {
    let mut h = harness(backend, &[]).await;
    for _ in 0..3 {
        let r = h.call(request("rl", vec![descriptor(&[("old", "x")]), descriptor(&[("new", "x")])])).await.unwrap();
        assert_eq!(code(&r), Code::Ok);
        assert!(r.statuses[0].current_limit.is_none(), "the replaced limit is gone");
    }
    // Alone, the old limit applies and was never counted.
    let r = h.call(request("rl", vec![descriptor(&[("old", "x")])])).await.unwrap();
    assert_eq!((code(&r), r.statuses[0].limit_remaining), (Code::Ok, 0));
    h.stop().await;
}

async fn quota_descriptors_fail_only_together(backend: Backend) {
    let mut h = harness(backend, &[]).await;
    let both = || request("rl", vec![descriptor(&[("quota1", "x")]), descriptor(&[("quota2", "x")])]);
    assert_eq!(code(&h.call(both()).await.unwrap()), Code::Ok);
    // Spend quota1 only: one quota left, still OK.
    let r = h
        .call(request("rl", vec![descriptor(&[("quota1", "x")]), with_addend(descriptor(&[("quota2", "x")]), 0)]))
        .await
        .unwrap();
    assert_eq!(code(&r), Code::Ok);
    assert_eq!(code(&h.call(both()).await.unwrap()), Code::OverLimit);
    h.stop().await;
}

async fn same_key_twice_counts_twice(backend: Backend) {
    let mut h = harness(backend, &[]).await;
    let r = h.call(request("rl", vec![descriptor(&[("client", "a")]), descriptor(&[("client", "a")])])).await.unwrap();
    assert_eq!((r.statuses[0].limit_remaining, r.statuses[1].limit_remaining), (2, 1));
    h.stop().await;
}

async fn response_headers_when_enabled(backend: Backend) {
    let mut h =
        harness(backend, &[("LIMIT_RESPONSE_HEADERS_ENABLED", "true"), ("LIMIT_REMAINING_HEADER", "X-Left")]).await;
    h.clock.advance(600);
    let r = h.call(request("rl", vec![descriptor(&[("roomy", "x")]), descriptor(&[("client", "a")])])).await.unwrap();
    let headers: Vec<(String, String)> =
        r.response_headers_to_add.iter().map(|h| (h.key.clone(), h.value.clone())).collect();
    assert_eq!(
        headers,
        vec![
            ("RateLimit-Limit".into(), "3".into()),
            ("X-Left".into(), "2".into()),
            ("RateLimit-Reset".into(), "60".into())
        ]
    );
    h.stop().await;
}

/// Envoy adds `response_headers_to_add` to the 429 it sends: an OVER_LIMIT answer says when the
/// refusing limit lets a request through again (Gatehouse's, on unless
/// `LIMIT_RETRY_AFTER_HEADER_ENABLED=false`, which answers as the reference does).
async fn over_limit_answers_carry_retry_after(backend: Backend) {
    let mut h = harness(backend, &[]).await;
    h.clock.advance(600);
    let tight = || request("rl", vec![descriptor(&[("tight", "x")])]);
    let ok = h.call(tight()).await.unwrap();
    assert!(ok.response_headers_to_add.is_empty(), "OK: nothing to wait for");
    let refused = h.call(tight()).await.unwrap();
    assert_eq!(code(&refused), Code::OverLimit);
    let wait = refused.statuses[0].duration_until_reset.as_ref().unwrap().seconds;
    assert!((1..=3600).contains(&wait), "{wait}");
    let headers: Vec<(String, String)> =
        refused.response_headers_to_add.iter().map(|h| (h.key.clone(), h.value.clone())).collect();
    assert_eq!(headers, vec![("Retry-After".to_string(), wait.to_string())], "until the hour's window ends");
    h.stop().await;

    let mut h = harness(backend, &[("LIMIT_RETRY_AFTER_HEADER_ENABLED", "false")]).await;
    h.call(tight()).await.unwrap();
    let refused = h.call(tight()).await.unwrap();
    assert_eq!(code(&refused), Code::OverLimit);
    assert!(refused.response_headers_to_add.is_empty(), "off: the reference's answer");
    h.stop().await;
}

async fn stop_increment_keeps_other_quota(backend: Backend) {
    let mut h = harness(backend, &[("STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT", "true")]).await;
    let pair = || request("rl", vec![descriptor(&[("roomy", "x")]), descriptor(&[("tight", "x")])]);
    let first = h.call(pair()).await.unwrap();
    assert_eq!(first.statuses[0].limit_remaining, 99);
    for _ in 0..3 {
        let r = h.call(pair()).await.unwrap();
        assert_eq!(code(&r), Code::OverLimit);
        assert_eq!(r.statuses[0].limit_remaining, 99, "the roomy counter is not spent while tight is over");
    }
    h.stop().await;
}

async fn local_cache_answers_known_over_limit_keys(backend: Backend) {
    let mut h = harness(backend, &[("LOCAL_CACHE_SIZE_IN_BYTES", "100000")]).await;
    for _ in 0..2 {
        h.call(request("rl", vec![descriptor(&[("tight", "x")])])).await.unwrap();
    }
    // The second call found the key over; from now on it is answered from the cache.
    let r = h.call(request("rl", vec![descriptor(&[("tight", "x")])])).await.unwrap();
    assert_eq!(code(&r), Code::OverLimit);
    let metrics = h.running().limiter.metrics().registry.render();
    assert!(
        metrics.contains("ratelimit_service_rate_limit_over_limit_with_local_cache{domain=\"rl\",key1=\"tight\"} 1"),
        "{metrics}"
    );
    if let Some(redis) = &h.redis {
        let window = h.clock.now() - h.clock.now() % 3600;
        let count: u64 = redis.command(::redis::cmd("GET").arg(format!("rl_tight_x_{window}"))).await;
        assert_eq!(count, 2, "the cached call never reached Redis");
    }
    h.stop().await;
}

async fn service_errors_have_the_references_texts(backend: Backend) {
    let mut h = harness(backend, &[]).await;
    let err = h.call(request("", vec![descriptor(&[("client", "a")])])).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (GrpcCode::Unknown, "rate limit domain must not be empty"));
    let err = h.call(request("rl", vec![])).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (GrpcCode::Unknown, "rate limit descriptor list must not be empty"));
    h.stop().await;
}

async fn dynamic_metadata_when_enabled(backend: Backend) {
    use envoy_types::pb::google::protobuf::value::Kind;
    let mut h = harness(backend, &[("RESPONSE_DYNAMIC_METADATA", "true")]).await;
    let mut req = request("rl", vec![with_addend(descriptor(&[("tagged", "x")]), 2)]);
    req.hits_addend = 3;
    let r = h.call(req).await.unwrap();
    let metadata = r.dynamic_metadata.expect("dynamic metadata");
    let field = |name: &str| metadata.fields.get(name).and_then(|v| v.kind.clone());
    assert_eq!(field("domain"), Some(Kind::StringValue("rl".into())));
    assert_eq!(field("hitsAddend"), Some(Kind::NumberValue(3.0)));
    let Some(Kind::ListValue(descriptors)) = field("descriptors") else { panic!("descriptors") };
    let Some(Kind::StructValue(first)) = descriptors.values[0].kind.clone() else { panic!("a struct") };
    let Some(Kind::ListValue(entries)) = first.fields["entries"].kind.clone() else { panic!("entries") };
    assert_eq!(entries.values[0].kind, Some(Kind::StringValue("tagged=x".into())));
    assert_eq!(first.fields["hitsAddend"].kind, Some(Kind::NumberValue(2.0)));
    let Some(Kind::StructValue(config_metadata)) = field("metadata") else { panic!("metadata") };
    assert_eq!(config_metadata.fields["team"].kind, Some(Kind::StringValue("payments".into())));
    // Off by default.
    let mut plain = harness(backend, &[]).await;
    assert!(plain.call(request("rl", vec![descriptor(&[("tagged", "x")])])).await.unwrap().dynamic_metadata.is_none());
    plain.stop().await;
    h.stop().await;
}

on_both_backends!(
    counts_windows_and_answers_exactly,
    most_specific_rule_wins,
    no_limit_unlimited_and_unknown_domains,
    hits_addend_and_check_only,
    huge_addends_saturate_over_the_limit,
    overrides_and_invalid_units,
    shadow_rules_count_but_never_block,
    global_shadow_mode_keeps_statuses,
    share_threshold_shares_one_counter,
    replaces_within_a_request,
    quota_descriptors_fail_only_together,
    same_key_twice_counts_twice,
    response_headers_when_enabled,
    over_limit_answers_carry_retry_after,
    stop_increment_keeps_other_quota,
    local_cache_answers_known_over_limit_keys,
    service_errors_have_the_references_texts,
    dynamic_metadata_when_enabled,
);

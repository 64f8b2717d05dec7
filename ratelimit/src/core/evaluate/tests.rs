use super::*;
use crate::core::config::ConfigSource;
use crate::core::request::{LimitOverride, RequestDescriptor};

const NOW: u64 = 1234;

fn config(content: &str) -> RateLimitConfig {
    RateLimitConfig::load(&[ConfigSource { name: "config.t.yaml".into(), content: content.into() }], false).unwrap()
}

fn request(domain: &str, descriptors: &[&[(&str, &str)]]) -> RateLimitRequest {
    RateLimitRequest {
        domain: domain.into(),
        descriptors: descriptors
            .iter()
            .map(|d| RequestDescriptor::new(d.iter().map(|(k, v)| Entry::new(*k, *v)).collect()))
            .collect(),
        hits_addend: 0,
    }
}

fn counted(plan: &Plan, i: usize) -> &Counted {
    match &plan.descriptors[i] {
        Planned::Counted(c) => c,
        other => panic!("descriptor {i} is not counted: {other:?}"),
    }
}

/// Decides with every counted descriptor at `after` = its hits + `already`.
fn decide_with(plan: &Plan, already: &[u64], settings: &EvaluationSettings) -> Verdict {
    let mut i = 0;
    let values: Vec<Option<CounterValue>> = plan
        .descriptors
        .iter()
        .map(|p| match p {
            Planned::Counted(c) => {
                let v = CounterValue::Counted { after: already[i] + c.hits, applied: c.hits };
                i += 1;
                Some(v)
            }
            _ => None,
        })
        .collect();
    decide(plan, &values, settings, NOW)
}

#[test]
fn counter_keys_are_the_references() {
    let cfg = config("domain: domain\ndescriptors:\n  - key: key\n    rate_limit: {unit: second, requests_per_unit: 1}\n  - key: key2\n    value: value2\n    descriptors:\n      - key: subkey2\n        rate_limit: {unit: minute, requests_per_unit: 1}\n");
    let settings = EvaluationSettings::default();
    let p = plan(
        &cfg,
        &request("domain", &[&[("key", "value")], &[("key2", "value2"), ("subkey2", "subvalue2")]]),
        &settings,
        NOW,
    );
    assert_eq!(counted(&p, 0).key, "domain_key_value_1234");
    assert_eq!(counted(&p, 1).key, "domain_key2_value2_subkey2_subvalue2_1200");
    let prefixed = EvaluationSettings { cache_key_prefix: "prefix:".into(), ..settings };
    let p = plan(&cfg, &request("domain", &[&[("key", "value")]]), &prefixed, NOW);
    assert_eq!(counted(&p, 0).key, "prefix:domain_key_value_1234");
}

#[test]
fn share_threshold_uses_the_pattern_in_the_key() {
    let cfg = config("domain: share-threshold-test\ndescriptors:\n  - key: files\n    value: files/*\n    share_threshold: true\n    rate_limit: {unit: hour, requests_per_unit: 1}\n  - key: other\n    value: o*\n    rate_limit: {unit: hour, requests_per_unit: 1}\n");
    let p = plan(
        &cfg,
        &request("share-threshold-test", &[&[("files", "files/a")], &[("files", "files/b")], &[("other", "oa")]]),
        &EvaluationSettings::default(),
        NOW,
    );
    assert_eq!(counted(&p, 0).key, "share-threshold-test_files_files/*_0");
    assert_eq!(counted(&p, 0).key, counted(&p, 1).key);
    assert_eq!(counted(&p, 2).key, "share-threshold-test_other_oa_0");
}

#[test]
fn limits_count_and_answer_exactly() {
    let cfg = config(
        "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: minute, requests_per_unit: 3, name: the-limit}\n",
    );
    let settings = EvaluationSettings::default();
    let p = plan(&cfg, &request("d", &[&[("k", "v")]]), &settings, NOW);
    let ok = decide_with(&p, &[1], &settings);
    assert_eq!(ok.overall, Code::Ok);
    assert_eq!(ok.statuses[0].limit_remaining, 1);
    assert_eq!(ok.statuses[0].duration_until_reset, Some(26));
    assert_eq!(&*ok.statuses[0].current_limit.as_ref().unwrap().name, "the-limit");
    let last = decide_with(&p, &[2], &settings);
    assert_eq!((last.overall, last.statuses[0].limit_remaining), (Code::Ok, 0));
    let over = decide_with(&p, &[3], &settings);
    assert_eq!((over.overall, over.statuses[0].limit_remaining), (Code::OverLimit, 0));
    assert_eq!(over.over_limit_keys, vec![("d_k_v_1200".to_string(), 60)]);
}

#[test]
fn statuses_for_no_limit_unlimited_and_unknown_domain() {
    let cfg = config("domain: d\ndescriptors:\n  - key: free\n    rate_limit: {unlimited: true}\n  - key: white\n");
    let settings = EvaluationSettings::default();
    let p = plan(&cfg, &request("d", &[&[("free", "x")], &[("white", "x")], &[("none", "x")]]), &settings, NOW);
    let v = decide_with(&p, &[], &settings);
    assert_eq!(v.statuses[0].limit_remaining, u32::MAX);
    assert_eq!(v.statuses[0].current_limit, None);
    assert_eq!(v.statuses[1], DescriptorStatus::no_limit());
    assert_eq!(v.statuses[2], DescriptorStatus::no_limit());
    let unknown = plan(&cfg, &request("nope", &[&[("free", "x")]]), &settings, NOW);
    assert!(!unknown.domain_found);
}

#[test]
fn hits_addend_rules() {
    let cfg = config("domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: second, requests_per_unit: 10}\n");
    let settings = EvaluationSettings::default();
    let mut req = request("d", &[&[("k", "a")], &[("k", "b")]]);
    req.hits_addend = 0;
    assert_eq!(counted(&plan(&cfg, &req, &settings, NOW), 0).hits, 1);
    req.hits_addend = 4;
    req.descriptors[1].hits_addend = Some(0);
    let p = plan(&cfg, &req, &settings, NOW);
    assert_eq!((counted(&p, 0).hits, counted(&p, 1).hits), (4, 0));
    // A single addend larger than the limit is rejected outright.
    req.descriptors[0].hits_addend = Some(11);
    let p = plan(&cfg, &req, &settings, NOW);
    assert_eq!(decide_with(&p, &[0, 0], &settings).overall, Code::OverLimit);
}

#[test]
fn overrides_bypass_the_tree_but_not_unknown_domains() {
    let cfg = config("domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unlimited: true}\n    shadow_mode: true\n");
    let settings = EvaluationSettings::default();
    let mut req = request("d", &[&[("k", "v"), ("x", "")]]);
    req.descriptors[0].limit_override = Some(LimitOverride { requests_per_unit: 2, unit: Unit::Hour });
    let p = plan(&cfg, &req, &settings, NOW);
    let c = counted(&p, 0);
    assert_eq!((c.requests_per_unit, c.unit, c.shadow_mode), (2, Unit::Hour, false));
    assert_eq!(c.stat, StatRef::Dynamic("d.k_v.x".into()));
    assert_eq!(c.key, "d_k_v_x__0");
    req.domain = "unknown".into();
    assert_eq!(plan(&cfg, &req, &settings, NOW).descriptors[0], Planned::NoLimit { quota: false });
}

#[test]
fn replaces_within_one_request() {
    let cfg = config("domain: d\ndescriptors:\n  - key: a\n    rate_limit: {unit: second, requests_per_unit: 1, name: A}\n  - key: b\n    rate_limit: {unit: second, requests_per_unit: 1, replaces: [{name: A}]}\n  - key: c\n    rate_limit: {unlimited: true, replaces: [{name: B2}]}\n  - key: d\n    rate_limit: {unit: second, requests_per_unit: 1, name: B2}\n");
    let settings = EvaluationSettings::default();
    let p = plan(&cfg, &request("d", &[&[("a", "")], &[("b", "")]]), &settings, NOW);
    assert_eq!(p.descriptors[0], Planned::NoLimit { quota: false });
    assert!(matches!(p.descriptors[1], Planned::Counted(_)));
    // Without the replacing descriptor in the same request, A applies.
    let p = plan(&cfg, &request("d", &[&[("a", "")]]), &settings, NOW);
    assert!(matches!(p.descriptors[0], Planned::Counted(_)));
    // An unlimited limit can replace.
    let p = plan(&cfg, &request("d", &[&[("c", "")], &[("d", "")]]), &settings, NOW);
    assert_eq!(p.descriptors, vec![Planned::Unlimited, Planned::NoLimit { quota: false }]);
}

#[test]
fn shadow_mode_per_rule_and_global() {
    let cfg = config("domain: d\ndescriptors:\n  - key: s\n    shadow_mode: true\n    rate_limit: {unit: second, requests_per_unit: 1}\n  - key: e\n    rate_limit: {unit: second, requests_per_unit: 1}\n");
    let settings = EvaluationSettings::default();
    let p = plan(&cfg, &request("d", &[&[("s", "")]]), &settings, NOW);
    let v = decide_with(&p, &[5], &settings);
    assert_eq!((v.overall, v.statuses[0].code, v.statuses[0].limit_remaining), (Code::Ok, Code::Ok, 0));
    assert_eq!(v.stats[0].unwrap().shadow_mode, 1);
    let global = EvaluationSettings { global_shadow_mode: true, ..settings };
    let p = plan(&cfg, &request("d", &[&[("e", "")]]), &global, NOW);
    let v = decide_with(&p, &[5], &global);
    assert_eq!((v.overall, v.statuses[0].code, v.global_shadow_applied), (Code::Ok, Code::OverLimit, true));
}

#[test]
fn quota_mode_fails_only_when_every_quota_is_over() {
    let cfg = config("domain: d\ndescriptors:\n  - key: q1\n    quota_mode: true\n    rate_limit: {unit: second, requests_per_unit: 1}\n  - key: q2\n    quota_mode: true\n    rate_limit: {unit: second, requests_per_unit: 1}\n");
    let settings = EvaluationSettings::default();
    let p = plan(&cfg, &request("d", &[&[("q1", "")], &[("q2", "")]]), &settings, NOW);
    assert_eq!(decide_with(&p, &[5, 0], &settings).overall, Code::Ok);
    assert_eq!(decide_with(&p, &[5, 5], &settings).overall, Code::OverLimit);
    // Globally, a descriptor with no limit counts as a passing quota descriptor.
    let global = EvaluationSettings { global_quota_mode: true, ..settings };
    let p = plan(&cfg, &request("d", &[&[("q1", "")], &[("none", "")]]), &global, NOW);
    assert_eq!(decide_with(&p, &[5], &global).overall, Code::Ok);
}

#[test]
fn near_limit_and_over_limit_statistics() {
    let cfg = config("domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: second, requests_per_unit: 10}\n");
    let settings = EvaluationSettings::default();
    let mut req = request("d", &[&[("k", "")]]);
    req.hits_addend = 3;
    let p = plan(&cfg, &req, &settings, NOW);
    // 7 → 10: threshold 8, so 2 near-limit hits, all within.
    let s = decide_with(&p, &[7], &settings).stats[0].unwrap();
    assert_eq!((s.total_hits, s.within_limit, s.near_limit, s.over_limit), (3, 3, 2, 0));
    // 9 → 12: over by 2, and 10 − max(8, 9) = 1 near-limit hit.
    let s = decide_with(&p, &[9], &settings).stats[0].unwrap();
    assert_eq!((s.within_limit, s.near_limit, s.over_limit), (0, 1, 2));
    // Already over: every hit is over.
    let s = decide_with(&p, &[12], &settings).stats[0].unwrap();
    assert_eq!((s.near_limit, s.over_limit), (0, 3));
}

#[test]
fn response_headers_pick_the_tightest_or_the_last_over_limit() {
    let cfg = config("domain: d\ndescriptors:\n  - key: a\n    rate_limit: {unit: minute, requests_per_unit: 10}\n  - key: b\n    rate_limit: {unit: hour, requests_per_unit: 5}\n");
    let settings = EvaluationSettings { response_headers: Some(HeaderNames::default()), ..Default::default() };
    let p = plan(&cfg, &request("d", &[&[("a", "")], &[("b", "")]]), &settings, NOW);
    let v = decide_with(&p, &[0, 0], &settings);
    assert_eq!(
        v.headers,
        vec![
            ("RateLimit-Limit".to_string(), "5".to_string()),
            ("RateLimit-Remaining".to_string(), "4".to_string()),
            ("RateLimit-Reset".to_string(), "2366".to_string()),
        ]
    );
    let v = decide_with(&p, &[20, 0], &settings);
    assert_eq!(v.headers[0].1, "10");
    assert!(decide_with(&p, &[0, 0], &EvaluationSettings::default()).headers.is_empty());
}

#[test]
fn stopping_increments_keeps_other_descriptors_quota() {
    let a = Counted {
        key: "a".into(),
        hits: 1,
        unit: Unit::Second,
        requests_per_unit: 5,
        name: Arc::from(""),
        shadow_mode: false,
        quota: false,
        stat: StatRef::Limit(0),
        algorithm: crate::core::algorithm::Algorithm::FixedWindow,
        previous_key: None,
    };
    let b = Counted { requests_per_unit: 1, key: "b".into(), ..a.clone() };
    assert_eq!(addends_when_stopping_over_limit(&[&a, &b], &[0, 1]), vec![0, 1]);
    assert_eq!(addends_when_stopping_over_limit(&[&a, &b], &[0, 0]), vec![1, 1]);
}

#[test]
fn detailed_and_value_to_metric_stat_keys() {
    let cfg = config("domain: d\ndescriptors:\n  - key: route\n    value_to_metric: true\n    descriptors:\n      - key: method\n        rate_limit: {unit: second, requests_per_unit: 1}\n  - key: key7\n    detailed_metric: true\n    rate_limit: {unit: second, requests_per_unit: 1}\n");
    let settings = EvaluationSettings::default();
    let p = plan(
        &cfg,
        &request("d", &[&[("route", "draw"), ("method", "GET")], &[("key7", "unspecified_value")]]),
        &settings,
        NOW,
    );
    assert_eq!(counted(&p, 0).stat, StatRef::Dynamic("d.route_draw.method".into()));
    assert_eq!(counted(&p, 1).stat, StatRef::Dynamic("d.key7_unspecified_value".into()));
}

#[test]
fn metadata_of_passing_descriptors_is_merged_first_wins() {
    let cfg = config("domain: d\ndescriptors:\n  - key: a\n    metadata: {team: x, nested: {one: 1}}\n    rate_limit: {unit: second, requests_per_unit: 5}\n  - key: b\n    metadata: {team: y, nested: {two: 2}}\n    rate_limit: {unit: second, requests_per_unit: 5}\n");
    let settings = EvaluationSettings::default();
    let p = plan(&cfg, &request("d", &[&[("a", "")], &[("b", "")]]), &settings, NOW);
    let v = decide_with(&p, &[0, 0], &settings);
    let merged = serde_json::Value::Object(merged_metadata(&p, &v));
    assert_eq!(merged, serde_json::json!({"team": "x", "nested": {"one": 1, "two": 2}}));
}

#[test]
fn metadata_of_a_later_descriptor_only_is_kept_and_none_is_not_stored() {
    let cfg = config("domain: d\ndescriptors:\n  - key: a\n    rate_limit: {unit: second, requests_per_unit: 5}\n  - key: b\n    metadata: {team: payments}\n    rate_limit: {unit: second, requests_per_unit: 5}\n");
    let settings = EvaluationSettings::default();
    // The metadata list is only as long as the last descriptor that has some.
    let p = plan(&cfg, &request("d", &[&[("a", "")], &[("b", "")], &[("a", "")]]), &settings, NOW);
    assert_eq!(p.metadata.len(), 2);
    assert_eq!(p.metadata[0], None);
    let v = decide_with(&p, &[0, 0, 0], &settings);
    assert_eq!(serde_json::Value::Object(merged_metadata(&p, &v)), serde_json::json!({"team": "payments"}));
    // Over its limit, the descriptor's metadata is left out.
    let v = decide_with(&p, &[0, 5, 0], &settings);
    assert!(merged_metadata(&p, &v).is_empty());

    let p = plan(&cfg, &request("d", &[&[("a", "")], &[("a", "")]]), &settings, NOW);
    assert!(p.metadata.is_empty(), "no node has metadata: nothing stored");
}

#[test]
fn counter_keys_carry_the_window_start() {
    let cfg = config("domain: d\ndescriptors:\n  - key: a\n    rate_limit: {unit: minute, requests_per_unit: 5}\n");
    let settings = EvaluationSettings { cache_key_prefix: "p:".into(), ..EvaluationSettings::default() };
    let p = plan(&cfg, &request("d", &[&[("a", "x")]]), &settings, 1_700_000_059);
    assert_eq!(counted(&p, 0).key, "p:d_a_x_1700000040");
    let p = plan(&cfg, &request("d", &[&[("a", "x")]]), &settings, 0);
    assert_eq!(counted(&p, 0).key, "p:d_a_x_0");
}

#[test]
fn the_lookup_buffer_kept_between_requests_is_bounded() {
    let cfg = config("domain: d\ndescriptors:\n  - key: a\n    rate_limit: {unit: second, requests_per_unit: 5}\n");
    let settings = EvaluationSettings::default();
    let huge = "v".repeat(1 << 20);
    let p = plan(&cfg, &request("d", &[&[("a", &huge)]]), &settings, NOW);
    assert!(matches!(p.descriptors[0], Planned::Counted(_)), "a huge value still matches its key");
    assert!(SCRATCH.with_borrow(|s| s.capacity()) <= SCRATCH_KEPT_BYTES);
    plan(&cfg, &request("d", &[&[("a", "small")]]), &settings, NOW);
    let kept = SCRATCH.with_borrow(|s| s.capacity());
    assert!(kept > 0 && kept <= SCRATCH_KEPT_BYTES, "an ordinary request's buffer is kept: {kept}");
}

fn retry_after_of(v: &Verdict) -> Option<&str> {
    v.headers.iter().find(|(name, _)| name == RETRY_AFTER).map(|(_, value)| value.as_str())
}

/// A fixed window refuses until its end; with several enforced limits over, until the last one
/// ends; OK answers, shadow mode and the setting turned off carry none.
#[test]
fn retry_after_is_the_longest_wait_of_the_refusing_limits() {
    let cfg = config("domain: d\ndescriptors:\n  - key: m\n    rate_limit: {unit: minute, requests_per_unit: 3}\n  - key: h\n    rate_limit: {unit: hour, requests_per_unit: 3}\n  - key: s\n    shadow_mode: true\n    rate_limit: {unit: day, requests_per_unit: 3}\n");
    let settings = EvaluationSettings::default();
    assert!(settings.retry_after, "on by default");
    let p = plan(&cfg, &request("d", &[&[("m", "")], &[("h", "")], &[("s", "")]]), &settings, NOW);
    // 1234 is 26s before the minute's end, 2366s before the hour's.
    assert_eq!(retry_after_of(&decide_with(&p, &[3, 0, 0], &settings)), Some("26"));
    assert_eq!(retry_after_of(&decide_with(&p, &[3, 3, 0], &settings)), Some("2366"));
    assert_eq!(decide_with(&p, &[3, 0, 0], &settings).headers, vec![(RETRY_AFTER.to_string(), "26".to_string())]);
    assert_eq!(retry_after_of(&decide_with(&p, &[0, 0, 0], &settings)), None, "OK: no Retry-After");
    assert_eq!(retry_after_of(&decide_with(&p, &[0, 0, 3], &settings)), None, "a shadow-mode limit refuses nothing");
    let off = EvaluationSettings { retry_after: false, ..settings.clone() };
    assert!(decide_with(&p, &[3, 3, 0], &off).headers.is_empty(), "off: the reference's answer");
    let global_shadow = EvaluationSettings { global_shadow_mode: true, ..settings };
    assert_eq!(retry_after_of(&decide_with(&p, &[3, 0, 0], &global_shadow)), None);
}

/// A quota answer is refused only while every quota descriptor is over: the first to reset ends it.
#[test]
fn retry_after_of_a_quota_is_its_first_reset() {
    let cfg = config("domain: d\ndescriptors:\n  - key: m\n    quota_mode: true\n    rate_limit: {unit: minute, requests_per_unit: 3}\n  - key: h\n    quota_mode: true\n    rate_limit: {unit: hour, requests_per_unit: 3}\n");
    let settings = EvaluationSettings::default();
    let p = plan(&cfg, &request("d", &[&[("m", "")], &[("h", "")]]), &settings, NOW);
    let both = decide_with(&p, &[3, 3], &settings);
    assert_eq!((both.overall, retry_after_of(&both)), (Code::OverLimit, Some("26")));
    assert_eq!(retry_after_of(&decide_with(&p, &[3, 0], &settings)), None, "one quota left: OK");
}

/// A sliding window refuses until the estimate has decayed enough, a token bucket until a token
/// is refilled: each algorithm's `duration_until_reset`, which the header repeats.
#[test]
fn retry_after_of_the_other_algorithms_is_when_a_hit_is_available_again() {
    let cfg = config("domain: d\ndescriptors:\n  - key: sliding\n    rate_limit: {unit: minute, requests_per_unit: 10, algorithm: sliding_window}\n  - key: bucket\n    rate_limit: {unit: minute, requests_per_unit: 10, algorithm: token_bucket}\n");
    let settings = EvaluationSettings::default();
    let now = Now::from(NOW);
    let sliding = plan(&cfg, &request("d", &[&[("sliding", "")]]), &settings, NOW);
    // 11 counted this minute, 26s left: it ends with 11 of 10, and the next window's weight of
    // those 11 falls to 9 after 60 * 2/11 s more (10.9s): 36.9s, rounded up.
    let v = decide(&sliding, &[Some(CounterValue::Sliding { current: 11, previous: 0 })], &settings, now);
    assert_eq!((v.overall, v.statuses[0].duration_until_reset), (Code::OverLimit, Some(37)));
    assert_eq!(retry_after_of(&v), Some("37"));
    let bucket = plan(&cfg, &request("d", &[&[("bucket", "")]]), &settings, NOW);
    // An empty bucket of 10 a minute refills a token every 6s.
    let empty = now.micros + 60 * MICROS;
    let v = decide(&bucket, &[Some(CounterValue::Bucket { allowed: false, tat_us: empty })], &settings, now);
    assert_eq!((v.overall, retry_after_of(&v)), (Code::OverLimit, Some("6")));
}

/// `REDIS_FAILURE_MODE=deny` refuses without `Retry-After`: no count decided it, and how long
/// Redis stays away is unknown (the window's end, 26s here, would be a guess; weeks for a month).
#[test]
fn no_retry_after_on_a_deny_without_the_store() {
    let cfg = config("domain: d\ndescriptors:\n  - key: m\n    rate_limit: {unit: minute, requests_per_unit: 3}\n");
    let p = plan(&cfg, &request("d", &[&[("m", "")]]), &EvaluationSettings::default(), NOW);
    assert!(EvaluationSettings::default().retry_after, "on by default, and still not sent");
    let denied = verdict_without_store(&p, true, NOW);
    assert_eq!(denied.overall, Code::OverLimit);
    assert_eq!(retry_after_of(&denied), None);
    assert!(denied.headers.is_empty());
    assert!(verdict_without_store(&p, false, NOW).headers.is_empty(), "allow: OK, nothing to wait for");
}

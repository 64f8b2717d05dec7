//! Property tests of every parser `ratelimit` feeds with outsiders' bytes: config files, `/json`
//! bodies and RLS requests. Whatever comes in, nothing panics, errors name their file, and what
//! parses goes through the whole evaluation. `scripts/fuzz.sh` runs them for longer.

#[path = "../../shared/fuzz/input.rs"]
mod input;

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::{Entry, RateLimitOverride};
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest as PbRequest;
use envoy_types::pb::google::protobuf::UInt64Value;
use proptest::prelude::*;
use prost::Message;
use ratelimit::core::config::ConfigSource;
use ratelimit::core::evaluate::{decide, plan, CounterValue, EvaluationSettings};
use ratelimit::core::{RateLimitConfig, RateLimitRequest};

const NOW: u64 = 1_800_000_000;

fn samples() -> Vec<String> {
    let example = include_str!("../../examples/ratelimit/config/example.yaml").to_string();
    let e2e = include_str!("../../examples/envoy/ratelimit/config/gatehouse-e2e.yaml").to_string();
    let rich = r#"domain: d
descriptors:
  - key: k
    value: v*
    share_threshold: true
    rate_limit: {unit: minute, requests_per_unit: 5, name: n}
    shadow_mode: true
  - key: a
    detailed_metric: true
    descriptors:
      - key: b
        rate_limit: {unlimited: true}
      - key: c
        rate_limit: {unit: hour, requests_per_unit: 1, replaces: [{name: n}]}
        quota_mode: true
"#
    .to_string();
    vec![example, e2e, rich]
}

/// A config every generated request is evaluated against.
fn config() -> RateLimitConfig {
    let sources: Vec<ConfigSource> = samples()
        .into_iter()
        .enumerate()
        .map(|(i, content)| ConfigSource { name: format!("s{i}.yaml"), content })
        .collect();
    RateLimitConfig::load(&sources[2..], false).expect("the rich sample loads")
}

/// Plans and decides `request` as if every counter had just reached its hits.
fn evaluate(config: &RateLimitConfig, request: &RateLimitRequest) {
    let settings = EvaluationSettings::default();
    let planned = plan(config, request, &settings, NOW);
    let mut values = vec![None; planned.descriptors.len()];
    for (index, counted) in planned.counted() {
        values[index] = Some(CounterValue::Counted { after: counted.hits, applied: counted.hits });
    }
    let verdict = decide(&planned, &values, &settings, NOW);
    assert_eq!(verdict.statuses.len(), request.descriptors.len());
}

fn rls_samples() -> Vec<Vec<u8>> {
    let descriptor = |entries: &[(&str, &str)]| RateLimitDescriptor {
        entries: entries.iter().map(|(k, v)| Entry { key: k.to_string(), value: v.to_string() }).collect(),
        ..Default::default()
    };
    let mut limited = descriptor(&[("k", "value")]);
    limited.limit = Some(RateLimitOverride { requests_per_unit: 3, unit: 2 });
    limited.hits_addend = Some(UInt64Value { value: u64::MAX });
    [
        PbRequest { domain: "d".into(), descriptors: vec![descriptor(&[("a", "x"), ("c", "y")])], hits_addend: 1 },
        PbRequest { domain: "d".into(), descriptors: vec![limited, descriptor(&[("k", "vv")])], hits_addend: 0 },
    ]
    .iter()
    .map(Message::encode_to_vec)
    .collect()
}

proptest! {
    #[test]
    fn config_files(content in input::text(samples(), input::YAML_TOKENS)) {
        let sources = [ConfigSource { name: "f.yaml".into(), content }];
        if let Err(e) = RateLimitConfig::load(&sources, false) {
            prop_assert!(e.to_string().starts_with("f.yaml: "), "{}", e);
        }
        for error in RateLimitConfig::validate_all(&sources, true) {
            prop_assert!(error.to_string().starts_with("f.yaml: "), "{}", error);
        }
    }

    #[test]
    fn json_bodies(body in input::text(
        vec![
            r#"{"domain":"d","descriptors":[{"entries":[{"key":"a","value":"x"},{"key":"c","value":"y"}]}]}"#.into(),
            r#"{"domain":"d","hits_addend":3,"descriptors":[{"entries":[{"key":"k","value":"v1"}],"limit":{"requests_per_unit":2,"unit":"SECOND"},"hits_addend":18446744073709551615}]}"#.into(),
        ],
        input::JSON_TOKENS,
    )) {
        if let Ok(request) = ratelimit::http::json::parse_request(body.as_bytes()) {
            evaluate(&config(), &request);
        }
    }

    #[test]
    fn rls_requests(bytes in input::bytes(rls_samples())) {
        if let Ok(decoded) = PbRequest::decode(bytes.as_slice()) {
            if let Ok(request) = ratelimit::grpc::to_core(decoded) {
                evaluate(&config(), &request);
            }
        }
    }
}

use std::sync::Arc;

use super::*;
use crate::core::evaluate::{Code, CurrentLimit, DescriptorStatus, Verdict};
use crate::core::unit::Unit;
use envoy_types::pb::envoy::config::core::v3::HeaderValue;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code as PbCode;

type Headers = Vec<(String, String)>;

/// The generated message for the same statuses and headers, built the ordinary way.
fn generated(overall: Code, statuses: &[DescriptorStatus], headers: &Headers) -> RateLimitResponse {
    let overall_code = match overall {
        Code::Ok => PbCode::Ok,
        Code::OverLimit => PbCode::OverLimit,
    };
    // Written out here rather than through `code`, so that a wrong mapping there shows.
    assert_eq!((PbCode::Ok as i32, PbCode::OverLimit as i32), (1, 2));
    RateLimitResponse {
        overall_code: overall_code as i32,
        statuses: statuses.iter().map(crate::grpc::status).collect(),
        response_headers_to_add: headers
            .iter()
            .map(|(key, value)| HeaderValue { key: key.clone(), value: value.clone(), ..HeaderValue::default() })
            .collect(),
        ..RateLimitResponse::default()
    }
}

fn limited(requests_per_unit: u32, unit: Unit, name: &str, remaining: u32, reset: Option<u64>) -> DescriptorStatus {
    DescriptorStatus {
        code: if remaining == 0 { Code::OverLimit } else { Code::Ok },
        current_limit: Some(CurrentLimit { requests_per_unit, unit, name: Arc::from(name) }),
        limit_remaining: remaining,
        duration_until_reset: reset,
    }
}

fn unlimited() -> DescriptorStatus {
    DescriptorStatus { code: Code::Ok, current_limit: None, limit_remaining: 0, duration_until_reset: None }
}

/// Statuses covering every field present and absent, zero and multi-byte values, every unit,
/// a named and an unnamed limit, a reset of zero seconds (a present, empty `Duration`); each
/// without headers, and with `Retry-After`, `RateLimit-*` headers, an empty and a long value.
fn cases() -> Vec<(Code, Vec<DescriptorStatus>, Headers)> {
    let units = [Unit::Second, Unit::Minute, Unit::Hour, Unit::Day, Unit::Week, Unit::Month, Unit::Year];
    let mut cases = vec![
        (Code::Ok, vec![]),
        (Code::Ok, vec![unlimited()]),
        (Code::Ok, vec![limited(10, Unit::Second, "", 9, Some(1))]),
        (Code::OverLimit, vec![limited(5, Unit::Minute, "per-user", 0, Some(0))]),
        (Code::Ok, vec![limited(u32::MAX, Unit::Year, &"n".repeat(300), u32::MAX, Some(u64::from(u32::MAX) * 4))]),
        (Code::Ok, vec![limited(0, Unit::Hour, "", 0, None)]),
        (Code::OverLimit, vec![unlimited(), limited(300, Unit::Day, "a", 0, Some(86_399)), unlimited()]),
    ];
    for (i, unit) in units.into_iter().enumerate() {
        cases.push((Code::Ok, vec![limited(128 << i, unit, "u", 127 + i as u32, Some(16_384 << i))]));
    }
    let header = |k: &str, v: &str| (k.to_string(), v.to_string());
    let header_sets: [Headers; 4] = [
        vec![],
        vec![header("Retry-After", "26")],
        vec![header("RateLimit-Limit", "5"), header("RateLimit-Remaining", "0"), header("Retry-After", "1")],
        vec![header("x-empty", ""), header("x-long", &"v".repeat(200))],
    ];
    cases
        .into_iter()
        .flat_map(|(overall, statuses)| header_sets.iter().map(move |h| (overall, statuses.clone(), h.clone())))
        .collect()
}

#[test]
fn the_hand_written_answer_is_byte_for_byte_the_generated_message() {
    for (overall, statuses, headers) in cases() {
        let expected = generated(overall, &statuses, &headers);
        let answer = RlsAnswer::Statuses { overall, statuses: statuses.clone(), headers };
        assert_eq!(answer.encoded_len(), expected.encoded_len(), "{statuses:?}");
        assert_eq!(answer.encode_to_vec(), expected.encode_to_vec(), "{statuses:?}");
        assert_eq!(RateLimitResponse::decode(answer.encode_to_vec().as_slice()).unwrap(), expected);
    }
}

#[test]
fn decoding_gives_the_generated_message() {
    let statuses = vec![limited(10, Unit::Second, "x", 3, Some(1))];
    let headers = vec![("Retry-After".to_string(), "1".to_string())];
    let answer = RlsAnswer::Statuses { overall: Code::Ok, statuses: statuses.clone(), headers: headers.clone() };
    let decoded = RlsAnswer::decode(answer.encode_to_vec().as_slice()).unwrap();
    assert_eq!(decoded, RlsAnswer::Message(generated(Code::Ok, &statuses, &headers)));
    assert_eq!(decoded.encode_to_vec(), answer.encode_to_vec());
}

#[test]
fn only_an_answer_without_metadata_is_written_by_hand() {
    let request = crate::core::RateLimitRequest { domain: "d".into(), descriptors: vec![], hits_addend: 0 };
    let verdict = |headers: Vec<(String, String)>| Verdict {
        overall: Code::Ok,
        statuses: vec![limited(10, Unit::Second, "", 9, Some(1))],
        headers,
        stats: vec![],
        over_limit_keys: vec![],
        global_shadow_applied: false,
    };
    let decision = |verdict, dynamic_metadata| crate::service::Decision { verdict, dynamic_metadata };

    let plain = crate::grpc::to_answer(&request, decision(verdict(vec![]), None));
    assert!(matches!(plain, RlsAnswer::Statuses { .. }), "{plain:?}");

    // Headers (an OVER_LIMIT answer's Retry-After) are written by hand too; metadata goes
    // through the generated message, whole.
    let headers = vec![("Retry-After".to_string(), "10".to_string())];
    let with_headers = crate::grpc::to_answer(&request, decision(verdict(headers.clone()), None));
    assert!(matches!(&with_headers, RlsAnswer::Statuses { headers: written, .. } if *written == headers));
    let with_metadata = crate::grpc::to_answer(&request, decision(verdict(vec![]), Some(Default::default())));
    let RlsAnswer::Message(message) = with_metadata else { panic!("metadata needs the message") };
    assert!(message.dynamic_metadata.is_some());
}

//! Deny rules, shadow rules, named policies and an unknown policy through the real gRPC adapter,
//! with the decision log and the metrics they write (the rule model's unit tests are in
//! core/decision/tests/rules.rs).

mod support;

use std::time::Duration;

use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use ext_authz::testing::SigningKey;
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};
use support::*;

const RULES: &str = "    - name: no-deletes
      action: deny
      methods: [DELETE]
      path: /orders/*
      error: {code: READ_ONLY, message: orders are read-only}
    - name: tenant-check
      action: deny
      path: /orders/*
      when: \"'x-tenant' in request.headers && request.headers['x-tenant'] == 'blocked'\"
      mode: shadow
";

const SECTIONS: &str = "policies:
  open-orders:
    default: allow
  later:
    mode: shadow
    default: deny
decision_log: {enabled: true, to: decisions.jsonl}
";

/// `check_request` naming `policy` in Envoy's context_extensions.
fn for_policy(policy: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> CheckRequest {
    let mut request = check_request(method, path, headers);
    let attributes = request.attributes.as_mut().unwrap();
    attributes.context_extensions.insert("policy".into(), policy.into());
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_rules_shadow_answers_and_policies_through_grpc() {
    let key = SigningKey::rsa("key-a", Algorithm::RS256, RSA_A);
    let idp = JwksServer::start(&[&key]).await;
    let mut h = Harness::start_with_sections(idp, key, RULES, SECTIONS).await;
    let bearer = format!("Bearer {}", h.token(json!({})));

    let refused = h.check("DELETE", "/orders/1", &[("authorization", &bearer), ("x-request-id", "r-deny")]).await;
    let (status_code, _, body) = denial(&refused);
    assert_eq!((status(&refused), status_code), (7, 403), "PERMISSION_DENIED, 403");
    assert_eq!(body["error"]["code"], "READ_ONLY");
    assert_eq!(body["error"]["message"], "orders are read-only");

    let shadowed = h
        .check("GET", "/orders/1", &[("authorization", &bearer), ("x-tenant", "blocked"), ("x-request-id", "r-shadow")])
        .await;
    assert_eq!(status(&shadowed), 0, "a shadow rule never changes the answer");

    let opened = h.grpc.check(for_policy("open-orders", "GET", "/orders/1", &[("x-request-id", "r-open")])).await;
    assert_eq!(status(&opened.unwrap().into_inner()), 0, "the named policy answers: default allow");

    let unknown = h.grpc.check(for_policy("nope", "GET", "/public/x", &[("x-request-id", "r-nope")])).await;
    let (status_code, _, body) = denial(&unknown.unwrap().into_inner());
    assert_eq!((status_code, body["error"]["code"].as_str()), (403, Some("UNKNOWN_POLICY")), "even a public path");

    let later = h.grpc.check(for_policy("later", "GET", "/public/x", &[("x-request-id", "r-later")])).await;
    assert_eq!(status(&later.unwrap().into_inner()), 0, "a shadow policy: routes answers");

    let file = h.dir.path().join("decisions.jsonl");
    let five_lines = || async { std::fs::read_to_string(&file).unwrap_or_default().lines().count() == 5 };
    shared::testing::eventually("five decision lines", Duration::from_secs(5), five_lines).await;
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let by_id = |id: &str| lines.iter().find(|l| l["request_id"] == id).unwrap_or_else(|| panic!("{id}: {text}"));
    assert_eq!((&by_id("r-deny")["route"], &by_id("r-deny")["reason"]), (&json!("no-deletes"), &json!("deny_rule")));
    assert_eq!(
        by_id("r-shadow")["shadow"],
        json!([{"policy": "routes", "rule": "tenant-check", "would": "deny", "code": "DENIED"}])
    );
    assert_eq!(by_id("r-shadow")["decision"], "allow");
    assert_eq!((&by_id("r-open")["policy"], &by_id("r-open")["route"]), (&json!("open-orders"), &json!("default")));
    assert_eq!(by_id("r-nope")["reason"], "unknown_policy");
    assert!(by_id("r-nope").get("policy").is_none(), "no policy answered");
    assert_eq!(
        by_id("r-later")["shadow"],
        json!([{"policy": "later", "rule": "default", "would": "deny", "code": "FORBIDDEN"}])
    );
    assert!(by_id("r-deny").get("shadow").is_none(), "nothing to say, no key");

    let metrics = h.metrics().await;
    for series in [
        r#"ext_authz_shadow_decisions_total{policy="routes",rule="tenant-check",would="deny"} 1"#,
        r#"ext_authz_shadow_decisions_total{policy="later",rule="default",would="deny"} 1"#,
        r#"ext_authz_decisions_total{decision="deny",reason="deny_rule"} 1"#,
        r#"ext_authz_decisions_total{decision="deny",reason="unknown_policy"} 1"#,
    ] {
        assert!(metrics.contains(series), "{series} in {metrics}");
    }
    assert!(!metrics.contains("nope"), "a request's policy name is never a label");
    h.stop().await;
}

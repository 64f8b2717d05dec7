//! The rule model's metrics are bounded by the config, whatever the requests (review finding
//! 18): thousands of requests with random paths, methods, headers and `context_extensions`
//! values go through the service's own check, and every label of the rule model's families is
//! a name from the config (a policy, a rule, a known reason), so the series stay at the
//! config's size.

mod support;

use std::collections::{BTreeSet, HashMap};

use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use serde_json::json;
use support::*;

/// Deny rules whose conditions fail to evaluate on most requests (a header or a context entry
/// left out), a shadow rule, a named policy and a shadow policy.
const RULES: &str = r#"    - name: tenant-check
      action: deny
      path: /*
      when: request.headers['x-tenant'] == 'evil'
    - name: strict-orders
      mode: shadow
      path: /orders/*
      accept: [jwt]
      when: identity.claims.org == request.headers['x-org']
"#;

const SECTIONS: &str = r#"
policies:
  strict:
    rules:
      - name: ctx-tenant
        action: deny
        path: /*
        when: context['tenant'] == 'evil'
      - name: read
        path: /*
        accept: [jwt]
    default: deny
  trial:
    mode: shadow
    rules:
      - name: everything
        path: /*
        accept: [jwt]
    default: deny
"#;

/// A small deterministic generator (xorshift): the same requests on every run.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }

    /// A fresh value nobody configured.
    fn word(&mut self) -> String {
        format!("v{:x}", self.next() % 1_000_000)
    }
}

/// The label values of `family`'s series, by label name.
fn labels(text: &str, family: &str) -> (usize, HashMap<String, BTreeSet<String>>) {
    let mut values: HashMap<String, BTreeSet<String>> = HashMap::new();
    let series: Vec<&str> = text.lines().filter(|line| line.starts_with(&format!("{family}{{"))).collect();
    for line in &series {
        let inside = &line[family.len() + 1..line.find('}').unwrap()];
        for pair in inside.split(',') {
            let (name, value) = pair.split_once('=').unwrap();
            values.entry(name.to_string()).or_default().insert(value.trim_matches('"').to_string());
        }
    }
    (series.len(), values)
}

fn within(values: &HashMap<String, BTreeSet<String>>, label: &str, allowed: &[&str]) {
    for value in values.get(label).into_iter().flatten() {
        assert!(allowed.contains(&value.as_str()), "label {label}={value:?} is not a config name");
    }
}

#[tokio::test]
async fn rule_metrics_stay_at_the_configs_size_whatever_the_requests() {
    let key = ext_authz::testing::SigningKey::rsa("key-a", jsonwebtoken::Algorithm::RS256, RSA_A);
    let idp = JwksServer::start(&[&key]).await;
    let harness = Harness::start_with_sections(idp, key, RULES, SECTIONS).await;
    let tokens: Vec<String> = ["acme", "globex"].iter().map(|org| harness.token(json!({"org": org}))).collect();
    let authorizer = harness.running().authorizer.clone();
    let mut draw = Draw(0x9e37_79b9_7f4a_7c15);
    for i in 0..5_000 {
        let word = draw.word();
        let path = match draw.next() % 4 {
            0 => format!("/orders/{word}"),
            1 => format!("/{word}/{}", draw.word()),
            2 => format!("/public/{word}?q={}", draw.word()),
            _ => draw.pick(&["/orders/1", "/admin/x", "/healthz", "/jobs/1"]).to_string(),
        };
        let method = draw.pick(&["GET", "POST", "DELETE", "PATCH", "get"]);
        let bearer = format!("Bearer {}", tokens[i % tokens.len()]);
        let mut headers = vec![("x-request-id", word.clone())];
        if draw.next().is_multiple_of(2) {
            headers.push(("authorization", bearer));
        }
        if draw.next().is_multiple_of(3) {
            headers.push(("x-tenant", draw.word()));
        }
        if draw.next().is_multiple_of(3) {
            headers.push(("x-org", draw.pick(&["acme", "globex"]).to_string()));
        }
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut check: CheckRequest = check_request(method, &path, &headers);
        let attributes = check.attributes.as_mut().unwrap();
        attributes.context_extensions = match draw.next() % 4 {
            0 => HashMap::new(),
            1 => HashMap::from([("policy".into(), draw.pick(&["strict", "trial"]).to_string())]),
            2 => HashMap::from([("policy".into(), draw.word())]),
            _ => HashMap::from([("policy".into(), "strict".into()), ("tenant".into(), draw.word())]),
        };
        let request = ext_authz::grpc::to_auth_request(check).expect("a request Envoy could send");
        authorizer.check(&request, "grpc", None).await;
    }
    let text = authorizer.metrics.registry.render();
    let policies = ["routes", "strict", "trial"];
    let rules = ["tenant-check", "strict-orders", "ctx-tenant", "read", "everything", "public", "default"];

    let (series, values) = labels(&text, "ext_authz_condition_errors_total");
    assert!(series > 0, "the requests made conditions fail:\n{text}");
    within(&values, "policy", &policies);
    within(&values, "rule", &["tenant-check", "ctx-tenant"]);
    assert!(series <= 2, "one series per rule with conditions: {series}");

    let (series, values) = labels(&text, "ext_authz_shadow_decisions_total");
    assert!(series > 0, "shadow rules and the shadow policy answered:\n{text}");
    within(&values, "policy", &policies);
    within(&values, "rule", &rules);
    within(&values, "would", &["allow", "deny"]);
    assert!(series <= policies.len() * rules.len() * 2);

    let (series, values) = labels(&text, "ext_authz_shadow_condition_errors_total");
    within(&values, "policy", &policies);
    within(&values, "rule", &rules);
    assert!(series <= policies.len() * rules.len());

    // Decisions by reason: the service's own fixed labels, the unknown policies included.
    let (series, values) = labels(&text, "ext_authz_decisions_total");
    within(&values, "decision", &["allow", "deny", "error"]);
    assert!(values["reason"].contains("unknown_policy"), "random policy names were denied:\n{text}");
    assert!(series <= 40, "{series} decision series");
    for line in text.lines().filter(|line| line.starts_with("ext_authz_")) {
        assert!(!line.contains("\"v"), "a request's value became a label: {line}");
    }
    harness.stop().await;
}

//! Deny rules on routes that take no credential (review findings 1 and 4): a credential the
//! request carries anyway is verified for the deny rules that read `identity`, and a method
//! override is a method to a deny rule.

use super::rules::{deny_rule, with_method, CONTRACTOR};
use super::*;

fn contractor_world() -> World {
    let mut w = World::new();
    let rule = Rule { methods: vec!["DELETE".into()], ..deny_rule("no-contractor-deletes", "/*", &[CONTRACTOR], None) };
    w.engine.routes.rules.insert(0, rule);
    w
}

fn delete(w: &World, target: &str, token: &str) -> Decision {
    w.check_request(&with_method("DELETE", target, &[("authorization", &format!("Bearer {token}"))]), None)
}

#[test]
fn a_valid_token_on_an_open_route_is_judged_by_the_deny_rules() {
    let mut w = contractor_world();
    let contractor = w.token(json!({"employment": "contractor"}));
    let staff = w.token(json!({"employment": "staff"}));
    // A public path.
    assert_eq!(denied(delete(&w, "/public/page", &contractor)).reason, "deny_rule");
    let allow = allowed(delete(&w, "/public/page", &staff));
    assert_eq!(allow.reason, "public");
    assert!(allow.identity.is_none(), "the identity feeds the deny rules only: no identity headers");
    assert!(!allow.remove.iter().any(|h| h == "authorization"), "the credential is left as it came");
    // A workload-only route.
    let from_shop = |token: &str| {
        let mut request = with_method("DELETE", "/internal/stock", &[("authorization", &format!("Bearer {token}"))]);
        request.peer_spiffe_id = Some(shared::spiffe::SpiffeId::parse("spiffe://shop.test/ns/shop/sa/web").unwrap());
        w.check_request(&request, None)
    };
    assert_eq!(denied(from_shop(&contractor)).reason, "deny_rule");
    assert_eq!(allowed(from_shop(&staff)).reason, "workload");
    // `default: deny`: the deny rule's own answer.
    assert_eq!(denied(delete(&w, "/nowhere", &contractor)).reason, "deny_rule");
    assert_eq!(denied(delete(&w, "/nowhere", &staff)).reason, "no_route");
    // `default: allow`.
    w.engine.routes.default = DefaultPolicy::Allow;
    assert_eq!(denied(delete(&w, "/nowhere", &contractor)).reason, "deny_rule");
    assert_eq!(allowed(delete(&w, "/nowhere", &staff)).reason, "default_allow");
    // An API key is a credential too (its metadata are its claims).
    let key = with_method("DELETE", "/public/page", &[("x-api-key", API_KEY)]);
    assert_eq!(allowed(w.check_request(&key, None)).reason, "public", "the key's metadata is no contractor");
}

#[test]
fn a_bad_token_on_an_open_route_is_no_identity_never_a_401() {
    let w = contractor_world();
    for token in ["x.y.z", &w.token(json!({"employment": "contractor", "exp": NOW - 3600}))] {
        assert_eq!(allowed(delete(&w, "/public/page", token)).reason, "public", "invalid or expired: none");
    }
    let other = w.token(json!({"employment": "contractor", "iss": "https://other.test"}));
    assert_eq!(allowed(delete(&w, "/public/page", &other)).reason, "public", "an issuer we do not know: none");
}

#[test]
fn an_unknown_key_on_an_open_route_is_fetched_once_then_no_identity() {
    let mut w = contractor_world();
    let rotated = SigningKey::rsa("k2", Algorithm::RS256, RSA_A);
    let claims =
        json!({"iss": "https://idp.test", "aud": "api", "sub": "u", "exp": NOW + 60, "employment": "contractor"});
    let request =
        with_method("DELETE", "/public/page", &[("authorization", &format!("Bearer {}", rotated.sign(&claims)))]);
    let first = decide(&w, &request, false).decision;
    assert_eq!(first, Decision::UnknownKey { provider: 0 }, "the service fetches the keys and asks again");
    let still_unknown = decide(&w, &request, true).decision;
    assert_eq!(allowed(still_unknown).reason, "public", "still unknown after the fetch: no identity, not a 401");
    // Once fetched, the key gives the identity, and the deny rule holds.
    w.keys = vec![Some(Arc::new(KeySet::from_jwks(&jwks(&[&w.key, &rotated])).unwrap()))];
    assert_eq!(denied(decide(&w, &request, true).decision).reason, "deny_rule");
    // Keys never loaded: a token that cannot be judged is not taken for no token.
    w.keys = vec![None];
    assert!(matches!(decide(&w, &request, false).decision, Decision::Unavailable(_)));
}

#[test]
fn without_a_deny_rule_reading_identity_an_open_route_reads_no_credential() {
    let w = World::new();
    let rotated = SigningKey::rsa("k2", Algorithm::RS256, RSA_A);
    let token = rotated.sign(&json!({"iss": "https://idp.test", "aud": "api", "sub": "u", "exp": NOW + 60}));
    assert_eq!(allowed(delete(&w, "/public/page", &token)).reason, "public", "no key fetch for a public path");
}

#[test]
fn a_method_override_is_a_method_to_a_deny_rule() {
    let w = contractor_world();
    let contractor = format!("Bearer {}", w.token(json!({"employment": "contractor"})));
    let post = |target: &str, headers: &[(&str, &str)]| {
        let mut all = vec![("authorization", contractor.as_str())];
        all.extend_from_slice(headers);
        w.check_request(&with_method("POST", target, &all), None)
    };
    assert_eq!(allowed(post("/public/page", &[])).reason, "public", "a POST is not a DELETE");
    for header in ["x-http-method-override", "x-http-method", "x-method-override", "x_http_method_override"] {
        assert_eq!(denied(post("/public/page", &[(header, "delete")])).reason, "deny_rule", "{header}");
    }
    assert_eq!(denied(post("/public/page?_method=DELETE", &[])).reason, "deny_rule");
    assert_eq!(allowed(post("/public/page", &[("x-http-method-override", "PATCH")])).reason, "public");
    // On an authenticated route too (the contractor's POST to an order would be allowed).
    let scoped = format!("Bearer {}", w.token(json!({"employment": "contractor", "scope": "orders:read"})));
    let request = with_method("POST", "/orders/1", &[("authorization", &scoped), ("x-http-method-override", "DELETE")]);
    assert_eq!(denied(w.check_request(&request, None)).reason, "deny_rule");
    // A rule without methods is not changed by one.
    let w = World::with_rules(vec![deny_rule("gets", "/public/*", &["request.method == 'GET'"], None)]);
    let request = with_method("POST", "/public/page", &[("x-http-method-override", "GET")]);
    assert_eq!(allowed(w.check_request(&request, None)).reason, "public", "conditions see the request's method");
}

/// The engine's verdict, asked first (`refetched: false`) or again after a key fetch.
fn decide<'w>(w: &'w World, request: &AuthRequest, refetched: bool) -> Verdict<'w> {
    let ctx =
        Context { keys: &w.keys, api_keys: &w.api_keys, cache: &w.cache, token_rules: 0, now: NOW, session: None };
    match refetched {
        false => w.engine.decide(request, &ctx),
        true => w.engine.decide_refetched(request, &ctx),
    }
}

/// The login's own paths (callback, logout) are answered before the policy's rules; the deny
/// rules that read no identity are judged for them first (review finding 14).
#[test]
fn deny_rules_without_identity_are_judged_alone_for_the_login_paths() {
    let outside = Rule {
        addresses: crate::core::routes::AddressMatch {
            not_client_ips: vec!["10.0.0.0/8".parse().unwrap()],
            ..Default::default()
        },
        ..deny_rule("only-inside", "/*", &[], Some("OUTSIDE"))
    };
    let mut w = World::new();
    w.engine.routes.rules.insert(0, outside);
    w.engine.routes.rules.insert(0, deny_rule("contractors", "/*", &[CONTRACTOR], None));
    let ctx =
        Context { keys: &w.keys, api_keys: &w.api_keys, cache: &w.cache, token_rules: 0, now: NOW, session: None };
    let from = |peer: &str| {
        let mut request = request("/oauth2/callback?code=c&state=s", &[]);
        request.peer_address = Some(peer.parse().unwrap());
        request
    };
    let verdict = w.engine.deny_early(&from("203.0.113.9"), &ctx).expect("outside: denied");
    assert_eq!(denied(verdict.decision).code.as_str(), "OUTSIDE");
    assert_eq!(verdict.route, Some("only-inside"));
    assert!(w.engine.deny_early(&from("10.1.2.3"), &ctx).is_none(), "inside: the login goes on");
}

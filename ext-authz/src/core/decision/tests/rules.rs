//! The rule model of issue 35: deny rules and their order, `when` conditions, address lists,
//! shadow rules and policies, and named policies chosen by the gateway's route.

use std::net::IpAddr;

use super::*;
use crate::core::cel;
use crate::core::client_address::ClientAddress;
use crate::core::routes::{parse_cidr, Action, AddressMatch, Mode, NamedPolicy};

/// `rule` with these `when` conditions.
fn when(rule: Rule, conditions: &[&str]) -> Rule {
    let when = conditions.iter().map(|c| Arc::new(cel::compile(c).unwrap_or_else(|e| panic!("{c}: {e}")))).collect();
    Rule { when, ..rule }
}

/// A deny rule on `path` with these conditions, and its own code (or `DENIED`).
pub(super) fn deny_rule(name: &str, path: &str, conditions: &[&str], code: Option<&str>) -> Rule {
    let code = code.map_or(ErrorCode::Denied, |c| ErrorCode::Custom(c.into()));
    let action = Action::Deny { code, message: format!("denied by rule {name}").into() };
    when(Rule { action, ..Rule::allow(name, PathMatch::parse(path).unwrap(), Requirements::default()) }, conditions)
}

fn shadow(rule: Rule) -> Rule {
    Rule { mode: Mode::Shadow, ..rule }
}

impl World {
    /// A world whose `routes` rules start with `rules`.
    pub(super) fn with_rules(rules: Vec<Rule>) -> World {
        let mut world = World::new();
        world.engine.routes.rules.splice(0..0, rules);
        world
    }

    fn verdict(&self, request: &AuthRequest) -> Verdict<'_> {
        let ctx = Context {
            keys: &self.keys,
            api_keys: &self.api_keys,
            cache: &self.cache,
            token_rules: 0,
            now: NOW,
            session: None,
        };
        self.engine.decide(request, &ctx)
    }

    fn bearer(&self, claims: Value) -> String {
        format!("Bearer {}", self.token(claims))
    }
}

pub(super) fn with_method(method: &str, target: &str, headers: &[(&str, &str)]) -> AuthRequest {
    let headers = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    AuthRequest::new(method, "api.test", target, headers)
}

pub(super) const CONTRACTOR: &str = "has(identity.claims.employment) && identity.claims.employment == 'contractor'";

#[test]
fn a_deny_rule_wins_over_every_allow_public_paths_included() {
    let w = World::with_rules(vec![
        deny_rule("no-public-deletes", "/public/*", &["request.method == 'DELETE'"], None),
        deny_rule("no-order-deletes", "/orders/*", &["request.method == 'DELETE'"], Some("READ_ONLY")),
    ]);
    let refused = denied(w.check_request(&with_method("DELETE", "/public/page", &[]), None));
    assert_eq!((refused.status, &refused.code, refused.reason), (403, &ErrorCode::Denied, "deny_rule"));
    assert_eq!(refused.message, "denied by rule no-public-deletes");
    let body: Value = serde_json::from_str(&error_body(&refused, "r1", "t")).unwrap();
    assert_eq!(body["error"]["code"], "DENIED");
    assert_eq!(allowed(w.check("/public/page", &[])).reason, "public", "GET is not denied");

    let bearer = w.bearer(json!({}));
    let refused = denied(w.check_request(&with_method("DELETE", "/orders/1", &[("authorization", &bearer)]), None));
    assert_eq!((refused.status, refused.code.as_str()), (403, "READ_ONLY"), "its own code, over a valid token");
    let body: Value = serde_json::from_str(&error_body(&refused, "r1", "t")).unwrap();
    assert_eq!(
        body["error"],
        json!({"code": "READ_ONLY", "message": "denied by rule no-order-deletes", "request_id": "r1"})
    );
    let verdict = w.verdict(&with_method("DELETE", "/orders/1", &[]));
    assert_eq!((verdict.route, verdict.policy), (Some("no-order-deletes"), None), "the deny rule is the route");
}

#[test]
fn a_deny_rule_that_reads_no_identity_is_judged_before_a_401() {
    let w = World::with_rules(vec![deny_rule(
        "blocked-tenant",
        "/orders/*",
        &["request.headers['x-tenant'] == 'blocked'"],
        None,
    )]);
    let refused = denied(w.check("/orders/1", &[("x-tenant", "blocked")]));
    assert_eq!((refused.status, refused.reason), (403, "deny_rule"), "not 401: no credential is looked at first");
    let missing = denied(w.check("/orders/1", &[("x-tenant", "acme")]));
    assert_eq!((missing.status, missing.reason), (401, "missing_credentials"));
}

#[test]
fn a_deny_rule_that_reads_identity_is_judged_once_the_credential_is_verified() {
    let w = World::with_rules(vec![deny_rule(
        "no-contractor-deletes",
        "/orders/*",
        &[CONTRACTOR],
        Some("CONTRACTOR_READ_ONLY"),
    )]);
    let contractor = w.bearer(json!({"employment": "contractor"}));
    let refused = denied(w.check("/orders/1", &[("authorization", &contractor)]));
    assert_eq!((refused.status, refused.code.as_str()), (403, "CONTRACTOR_READ_ONLY"));
    // Before the route's own scope check: deny wins over an allow rule's 403 too.
    let unscoped = w.bearer(json!({"employment": "contractor", "scope": "other"}));
    assert_eq!(denied(w.check("/orders/1", &[("authorization", &unscoped)])).code.as_str(), "CONTRACTOR_READ_ONLY");
    // Without a credential nothing is known of the caller: the route's 401.
    assert_eq!(denied(w.check("/orders/1", &[])).status, 401);
    // A bad token is the token's answer, not the rule's.
    assert_eq!(denied(w.check("/orders/1", &[("authorization", "Bearer x.y.z")])).status, 401);
    let employee = w.bearer(json!({"employment": "staff"}));
    assert_eq!(allowed(w.check("/orders/1", &[("authorization", &employee)])).reason, "authenticated");
}

#[test]
fn without_a_credential_identity_is_none_never_skipped() {
    let w = World::with_rules(vec![
        deny_rule("anonymous-posts", "/public/*", &["identity.kind == 'none'", "request.method == 'POST'"], None),
        deny_rule("no-claims", "/public/*", &["size(identity.claims) == 0", "request.method == 'PUT'"], None),
    ]);
    assert_eq!(denied(w.check_request(&with_method("POST", "/public/form", &[]), None)).reason, "deny_rule");
    assert_eq!(
        denied(w.check_request(&with_method("PUT", "/public/form", &[]), None)).message,
        "denied by rule no-claims"
    );
    assert_eq!(allowed(w.check("/public/form", &[])).reason, "public");
    // A workload-only route has no user either.
    let w = World::with_rules(vec![deny_rule("no-users", "/internal/*", &["identity.kind == 'none'"], None)]);
    let refused = denied(w.check_from("spiffe://shop.test/ns/shop/sa/web", "/internal/stock", &[]));
    assert_eq!(refused.reason, "deny_rule");
}

#[test]
fn an_erroring_condition_never_allows_in_allow_and_deny_rules() {
    // A claim the token lacks, read without has(): an error, in an allow rule...
    let guarded = when(
        Rule::allow(
            "org",
            PathMatch::parse("/orgs/{org}/*").unwrap(),
            requirements(vec![Credential::Jwt(None)], &[], vec![]),
        ),
        &["identity.claims.org == route.org"],
    );
    let w = World::with_rules(vec![guarded]);
    let bearer = w.bearer(json!({}));
    let request = request("/orgs/acme/orders", &[("authorization", &bearer)]);
    let verdict = w.verdict(&request);
    let refused = denied(verdict.decision);
    assert_eq!((refused.status, refused.code.as_str(), refused.reason), (403, "CONDITION_ERROR", "condition_error"));
    assert_eq!(refused.message, "condition 1 of rule org cannot be evaluated");
    let failed = &verdict.notes.condition_errors;
    assert_eq!(failed.len(), 1);
    assert_eq!((failed[0].policy, failed[0].rule, failed[0].index, failed[0].shadow), (ROUTES, "org", 0, false));
    assert!(failed[0].error.contains("org"), "the text names the key: {}", failed[0].error);
    // ...and in a deny rule, which then denies (with CONDITION_ERROR, not its own code).
    let w = World::with_rules(vec![deny_rule(
        "strict",
        "/orders/*",
        &["identity.claims.employment == 'contractor'"],
        Some("NO"),
    )]);
    let bearer = w.bearer(json!({}));
    let refused = denied(w.check("/orders/1", &[("authorization", &bearer)]));
    assert_eq!((refused.code.as_str(), refused.reason), ("CONDITION_ERROR", "condition_error"));
}

#[test]
fn allow_conditions_come_after_scopes_and_read_the_template() {
    let rule = when(
        Rule::allow(
            "org-orders",
            PathMatch::parse("/orgs/{org}/orders").unwrap(),
            requirements(vec![Credential::Jwt(None)], &["orders:read"], vec![]),
        ),
        &["has(identity.claims.org)", "identity.claims.org == route.org"],
    );
    let w = World::with_rules(vec![rule]);
    let acme = w.bearer(json!({"org": "acme"}));
    assert_eq!(allowed(w.check("/orgs/acme/orders", &[("authorization", &acme)])).reason, "authenticated");
    let other = denied(w.check("/orgs/globex/orders", &[("authorization", &acme)]));
    assert_eq!((other.status, &other.code, other.reason), (403, &ErrorCode::Forbidden, "condition_false"));
    assert_eq!(other.message, "condition 2 of rule org-orders does not hold");
    let unscoped = w.bearer(json!({"org": "acme", "scope": "x"}));
    assert_eq!(denied(w.check("/orgs/acme/orders", &[("authorization", &unscoped)])).reason, "insufficient_scope");
}

fn ips(texts: &[&str]) -> Vec<ipnet::IpNet> {
    texts.iter().map(|t| parse_cidr(t).unwrap()).collect()
}

fn from(peer: &str, target: &str, headers: &[(&str, &str)]) -> AuthRequest {
    let mut request = request(target, headers);
    request.peer_address = Some(peer.parse::<IpAddr>().unwrap());
    request
}

#[test]
fn address_lists_on_the_client_and_the_peer_v4_and_v6() {
    let only_internal = Rule {
        action: Action::Deny { code: ErrorCode::Custom("INTERNAL_ONLY".into()), message: "internal only".into() },
        addresses: AddressMatch { not_client_ips: ips(&["10.0.0.0/8", "fd00::/8"]), ..AddressMatch::default() },
        ..Rule::allow("only-internal", PathMatch::parse("/admin").unwrap(), Requirements::default())
    };
    let lan_peer = Rule {
        addresses: AddressMatch { peer_ips: ips(&["192.168.0.0/16", "2001:db8::/32"]), ..AddressMatch::default() },
        ..Rule::allow("lan", PathMatch::parse("/lan").unwrap(), requirements(vec![Credential::ApiKey], &[], vec![]))
    };
    let mut w = World::with_rules(vec![only_internal, lan_peer]);
    for inside in ["10.1.2.3", "fd00::7", "::ffff:10.0.0.1"] {
        assert_eq!(
            denied(w.check_request(&from(inside, "/admin", &[]), None)).reason,
            "missing_credentials",
            "{inside}"
        );
    }
    for outside in ["192.0.2.1", "2001:db8::1"] {
        assert_eq!(
            denied(w.check_request(&from(outside, "/admin", &[]), None)).code.as_str(),
            "INTERNAL_ONLY",
            "{outside}"
        );
    }
    assert_eq!(denied(w.check("/admin", &[])).code.as_str(), "INTERNAL_ONLY", "an unknown client is not inside");
    // An allow rule whose peer list does not hold is not the route: the default denies.
    assert_eq!(denied(w.check_request(&from("203.0.113.9", "/lan", &[]), None)).reason, "no_route");
    assert_eq!(denied(w.check_request(&from("192.168.1.1", "/lan", &[]), None)).reason, "missing_credentials");
    assert_eq!(denied(w.check_request(&from("2001:db8::9", "/lan", &[]), None)).reason, "missing_credentials");

    // Behind one trusted proxy the client is its entry; what the client wrote left of it is not read.
    w.engine.client_address = ClientAddress { trusted_hops: 1, ..ClientAddress::default() };
    let via = |xff: &str| from("192.0.2.200", "/admin", &[("x-forwarded-for", xff)]);
    assert_eq!(denied(w.check_request(&via("10.9.9.9,192.0.2.200"), None)).reason, "missing_credentials");
    let spoofed = via("10.0.0.1, 203.0.113.7,192.0.2.200");
    assert_eq!(
        denied(w.check_request(&spoofed, None)).code.as_str(),
        "INTERNAL_ONLY",
        "a spoofed entry changes nothing"
    );
}

#[test]
fn a_shadow_rule_never_changes_the_answer_but_is_noted() {
    let would_deny =
        shadow(deny_rule("stricter", "/orders/*", &["request.headers['x-tenant'] == 'acme'"], Some("TENANT")));
    let would_allow = shadow(Rule::allow(
        "open-orders",
        PathMatch::parse("/orders/*").unwrap(),
        requirements(vec![Credential::Jwt(None)], &[], vec![]),
    ));
    let w = World::with_rules(vec![would_deny, would_allow]);
    let bearer = w.bearer(json!({}));
    let verdict = w.verdict(&request("/orders/1", &[("authorization", &bearer), ("x-tenant", "acme")]));
    assert_eq!(allowed(verdict.decision).reason, "authenticated", "the enforced rule answers");
    assert_eq!(verdict.route, Some("orders"));
    let deny_hit = ShadowHit {
        policy: ROUTES,
        rule: "stricter",
        would: Would::Deny,
        code: Some(ErrorCode::Custom("TENANT".into())),
    };
    let allow_hit = ShadowHit { policy: ROUTES, rule: "open-orders", would: Would::Allow, code: None };
    assert_eq!(verdict.notes.shadow, [deny_hit, allow_hit]);
    // A shadow rule's failing condition is noted and counted, and still changes nothing.
    let erring = shadow(deny_rule("erring", "/orders/*", &["identity.claims.missing == 'x'"], None));
    let w = World::with_rules(vec![erring]);
    let bearer = w.bearer(json!({}));
    let verdict = w.verdict(&request("/orders/1", &[("authorization", &bearer)]));
    assert_eq!(verdict.notes.shadow[0].code, Some(ErrorCode::ConditionError));
    assert_eq!(verdict.notes.condition_errors.len(), 1);
    assert!(verdict.notes.condition_errors[0].shadow, "a would-be answer, never counted as a denial");
    assert_eq!(allowed(verdict.decision).reason, "authenticated");
    // Without a shadow rule there is nothing to note (and nothing was allocated for it).
    let w = World::new();
    let verdict = w.verdict(&request("/orders/1", &[("authorization", &bearer)]));
    assert!(verdict.notes.shadow.is_empty() && verdict.notes.shadow.capacity() == 0);
}

/// `routes` as in [`World::new`] plus a deny rule; a policy `open` (everything allowed) and a
/// shadow policy `strict` (everything denied).
fn with_policies() -> World {
    let mut w = World::with_rules(vec![deny_rule("no-deletes", "/*", &["request.method == 'DELETE'"], None)]);
    let open = RouteTable { public: vec![], rules: vec![], default: DefaultPolicy::Allow };
    let strict = RouteTable { public: vec![], rules: vec![], default: DefaultPolicy::Deny };
    w.engine.policies.named.insert("open".into(), NamedPolicy { table: open, mode: Mode::Enforce });
    w.engine.policies.named.insert("strict".into(), NamedPolicy { table: strict, mode: Mode::Shadow });
    w
}

#[test]
fn a_policy_is_chosen_by_context_extension_or_route_metadata() {
    let w = with_policies();
    assert_eq!(denied(w.check("/orders/1", &[])).status, 401, "no policy named: routes");
    let mut by_extension = request("/orders/1", &[]);
    by_extension.context_extensions.insert("policy".into(), "open".into());
    let verdict = w.verdict(&by_extension);
    assert_eq!((verdict.policy, verdict.route), (Some("open"), Some("default")));
    assert_eq!(allowed(verdict.decision).reason, "default_allow");
    let mut by_metadata = request("/orders/1", &[]);
    let metadata =
        json!({"envoy-gateway": {"resources": [{"kind": "HTTPRoute", "annotations": {"gatehouse-policy": "open"}}]}});
    let at = w.engine.policies.selector.route_metadata.as_ref().unwrap();
    by_metadata.route_annotation = crate::core::routes::RouteAnnotation::from_json(&metadata, at);
    assert_eq!(allowed(w.check_request(&by_metadata, None)).reason, "default_allow");
    // `routes`' deny rules apply whichever policy answers.
    let mut delete = with_method("DELETE", "/orders/1", &[]);
    delete.context_extensions.insert("policy".into(), "open".into());
    assert_eq!(denied(w.check_request(&delete, None)).message, "denied by rule no-deletes");
}

#[test]
fn an_unknown_policy_fails_closed() {
    let w = with_policies();
    for target in ["/orders/1", "/public/page"] {
        let mut request = request(target, &[]);
        request.context_extensions.insert("policy".into(), "nope".into());
        let verdict = w.verdict(&request);
        assert_eq!((verdict.policy, verdict.route), (None, None));
        let refused = denied(verdict.decision);
        assert_eq!((refused.status, refused.code.as_str(), refused.reason), (403, "UNKNOWN_POLICY", "unknown_policy"));
    }
}

#[test]
fn a_shadow_policy_never_changes_the_answer_but_is_noted() {
    let w = with_policies();
    let mut request = request("/public/page", &[]);
    request.context_extensions.insert("policy".into(), "strict".into());
    let verdict = w.verdict(&request);
    assert_eq!(allowed(verdict.decision).reason, "public", "routes answers");
    assert_eq!(verdict.policy, None);
    assert_eq!(
        verdict.notes.shadow,
        [ShadowHit { policy: "strict", rule: "default", would: Would::Deny, code: Some(ErrorCode::Forbidden) }]
    );
}

#[test]
fn a_shadow_rule_after_the_rule_it_would_replace_is_still_noted() {
    let stricter = shadow(Rule::allow(
        "orders-strict",
        PathMatch::parse("/orders/*").unwrap(),
        requirements(vec![Credential::Jwt(None)], &["orders:admin"], vec![]),
    ));
    let mut w = World::new();
    w.engine.routes.rules.push(stricter);
    let bearer = w.bearer(json!({}));
    let verdict = w.verdict(&request("/orders/1", &[("authorization", &bearer)]));
    assert_eq!(verdict.route, Some("orders"), "the enforced rule answers");
    assert_eq!(allowed(verdict.decision).reason, "authenticated");
    let hit = &verdict.notes.shadow;
    assert_eq!(hit.len(), 1, "{hit:?}");
    assert_eq!(
        (hit[0].rule, hit[0].would, &hit[0].code),
        ("orders-strict", Would::Deny, &Some(ErrorCode::InsufficientScope))
    );
    // A shadow rule the request does not match is not noted.
    let verdict = w.verdict(&request("/any", &[("authorization", &bearer)]));
    assert!(verdict.notes.shadow.is_empty());
}

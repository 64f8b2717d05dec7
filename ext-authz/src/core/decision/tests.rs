use super::*;
use crate::core::apikeys::{format_hash, hash_key};
use crate::core::claims::ClaimPath;
use crate::core::identity::{ArrayFormat, IdentityHeaders};
use crate::core::identity_part::IdentityAnswer;
use crate::core::jwt::JwtPolicy;
use crate::core::routes::{ClaimRule, Condition, PathMatch, Rule};
use crate::core::routes::{Credential, DefaultPolicy, RouteTable};
use crate::core::session::model::Session;
use crate::core::session::stamp::Stamp;
use crate::testing::{jwks, SigningKey};
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};
use std::collections::HashMap;

const RSA_A: &str = include_str!("../../../tests/fixtures/rsa-a.pem");
const NOW: u64 = 1_800_000_000;
const API_KEY: &str = "ghk_test-key-0123456789";

mod open_routes;
mod principals;
mod rules;

fn requirements(credentials: Vec<Credential>, scopes: &[&str], claims: Vec<ClaimRule>) -> Requirements {
    Requirements {
        credentials,
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        claims,
        ..Requirements::default()
    }
}

/// A rule requiring one of these workloads and, unless `credentials` is empty, a user too.
fn workload_requirements(
    principals: &[&str],
    credentials: Vec<Credential>,
    request_principals: &[&str],
) -> Requirements {
    Requirements {
        credentials,
        principals: principals.iter().map(|p| shared::spiffe::IdPattern::parse(p).unwrap()).collect(),
        request_principals: request_principals
            .iter()
            .map(|p| crate::core::principals::TextPattern::parse(p).unwrap())
            .collect(),
        ..Requirements::default()
    }
}

fn engine() -> Engine {
    let bearer = CredentialSource::Header { name: "authorization".into(), prefix: "Bearer ".into() };
    let rule = |name: &str, path: &str, requires| Rule::allow(name, PathMatch::parse(path).unwrap(), requires);
    Engine {
        policies: crate::core::routes::Policies::default(),
        client_address: crate::core::client_address::ClientAddress::default(),
        routes: RouteTable {
            public: vec![PathMatch::parse("/public/*").unwrap()],
            rules: vec![
                rule(
                    "orders",
                    "/orders/*",
                    requirements(vec![Credential::Jwt(None), Credential::ApiKey], &["orders:read"], vec![]),
                ),
                rule(
                    "admin",
                    "/admin",
                    requirements(
                        vec![Credential::Jwt(None)],
                        &[],
                        vec![ClaimRule {
                            claim: ClaimPath::parse("role"),
                            condition: Condition::Equals(json!("admin")),
                        }],
                    ),
                ),
                Rule {
                    upstream: Some(0),
                    ..rule("any", "/any", requirements(vec![Credential::Jwt(None), Credential::ApiKey], &[], vec![]))
                },
                Rule {
                    upstream: Some(1),
                    ..rule(
                        "internal",
                        "/internal/*",
                        workload_requirements(&["spiffe://shop.test/ns/shop/sa/*"], vec![], &[]),
                    )
                },
                rule(
                    "partner",
                    "/partner/*",
                    workload_requirements(
                        &["spiffe://shop.test/ns/partners/**"],
                        vec![Credential::Jwt(None), Credential::ApiKey],
                        &["https://idp.test/u1", "https://other.test/*"],
                    ),
                ),
                rule(
                    "app",
                    "/app/*",
                    requirements(vec![Credential::Session, Credential::Jwt(None)], &["email"], vec![]),
                ),
            ],
            default: DefaultPolicy::Deny,
        },
        providers: vec![Provider {
            name: "corp".into(),
            policy: JwtPolicy {
                issuer: "https://idp.test".into(),
                audiences: vec!["api".into()],
                algorithms: vec![Algorithm::RS256],
                leeway: 60,
                require_exp: true,
            },
            sources: vec![
                bearer,
                CredentialSource::Query("access_token".into()),
                CredentialSource::Cookie("token".into()),
            ],
        }],
        api_key_sources: vec![CredentialSource::Header { name: "x-api-key".into(), prefix: String::new() }],
        identity: Arc::new(IdentityAnswer {
            headers: IdentityHeaders {
                rules: IdentityHeaders::defaults(),
                arrays: ArrayFormat::Join(",".into()),
                payload_header: None,
            },
            dynamic_metadata: true,
            metadata_claims: vec![ClaimPath::parse("plan")],
        }),
        workload: crate::core::principals::WorkloadIdentity {
            header: Some("x-client-principal".into()),
            ..Default::default()
        },
        forward_credential: false,
        forward_api_keys: false,
        sessions: Some(SessionPolicy {
            provider: "corp-login".into(),
            cookie_name: "gh_session".into(),
            forward_access_token: true,
            pass_client_authorization: false,
            pass_method_override: false,
            csrf_origins: Some(vec!["https://api.test".into(), "https://admin.api.test".into()]),
        }),
    }
}

struct World {
    engine: Engine,
    key: SigningKey,
    keys: Vec<Option<Arc<KeySet>>>,
    api_keys: ApiKeyStore,
    cache: TokenCache,
}

impl World {
    fn new() -> World {
        let key = SigningKey::rsa("k1", Algorithm::RS256, RSA_A);
        let keys = vec![Some(Arc::new(KeySet::from_jwks(&jwks(&[&key])).unwrap()))];
        let api_keys = ApiKeyStore::from_documents(vec![(
            "keys.yaml".into(),
            json!({"keys": [{"hash": format_hash(&hash_key(API_KEY)), "client_id": "billing", "scopes": ["orders:read"], "org_id": "acme"}]}),
        )])
        .unwrap();
        World { engine: engine(), key, keys, api_keys, cache: TokenCache::new(100) }
    }

    fn token(&self, patch: Value) -> String {
        let mut claims =
            json!({"iss": "https://idp.test", "aud": "api", "sub": "u1", "exp": NOW + 300, "scope": "orders:read"});
        for (k, v) in patch.as_object().unwrap() {
            claims[k] = v.clone();
        }
        self.key.sign(&claims)
    }

    fn check(&self, target: &str, headers: &[(&str, &str)]) -> Decision {
        self.check_with_session(target, headers, None)
    }

    fn check_with_session(&self, target: &str, headers: &[(&str, &str)], session: Option<&Session>) -> Decision {
        self.check_request(&request(target, headers), session)
    }

    /// A request from the workload `peer` (a SPIFFE ID, as Envoy's `source.principal` gives it).
    fn check_from(&self, peer: &str, target: &str, headers: &[(&str, &str)]) -> Decision {
        let mut request = request(target, headers);
        request.peer_spiffe_id = Some(shared::spiffe::SpiffeId::parse(peer).unwrap());
        self.check_request(&request, None)
    }

    fn check_request(&self, request: &AuthRequest, session: Option<&Session>) -> Decision {
        let ctx = Context {
            keys: &self.keys,
            api_keys: &self.api_keys,
            cache: &self.cache,
            token_rules: 0,
            now: NOW,
            session,
        };
        self.engine.check(request, &ctx)
    }
}

fn request(target: &str, headers: &[(&str, &str)]) -> AuthRequest {
    let headers: HashMap<String, String> = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    AuthRequest::new("GET", "api.test", target, headers)
}

fn allowed(decision: Decision) -> Allow {
    match decision {
        Decision::Allow(allow) => allow,
        other => panic!("expected allow, got {other:?}"),
    }
}

fn denied(decision: Decision) -> Deny {
    match decision {
        Decision::Deny(deny) => deny,
        other => panic!("expected deny, got {other:?}"),
    }
}

#[test]
fn a_valid_token_gets_identity_headers_and_loses_the_credential() {
    let w = World::new();
    let bearer = format!("Bearer {}", w.token(json!({"email": "u1@test"})));
    let allow = allowed(w.check("/orders/1", &[("authorization", &bearer), ("x-user-id", "spoofed")]));
    assert!(allow.all_headers().any(|h| h == ("x-user-id", "u1")));
    assert!(allow.all_headers().any(|h| h == ("x-user-email", "u1@test")));
    // Owned headers this identity does not set are removed, and so is the credential.
    assert!(allow.all_removed().any(|h| h == "x-org-id") && allow.all_removed().any(|h| h == "x-user-role"));
    assert!(allow.all_removed().any(|h| h == "authorization"));
    assert!(!allow.all_removed().any(|h| h == "x-user-id"), "a header we set is never also removed");
    assert_eq!(allow.metadata["user_id"], "u1");
    assert!(!allow.metadata.contains_key("plan"), "a metadata claim the identity lacks is left out");
    let with_plan = format!("Bearer {}", w.token(json!({"plan": {"requests_per_unit": 5, "unit": "MINUTE"}})));
    let planned = allowed(w.check("/orders/1", &[("authorization", &with_plan)]));
    assert_eq!(planned.metadata["plan"], json!({"requests_per_unit": 5, "unit": "MINUTE"}), "copied as it is");
    let mut quiet = World::new();
    Arc::make_mut(&mut quiet.engine.identity).dynamic_metadata = false;
    let bearer = format!("Bearer {}", quiet.token(json!({})));
    let allow = allowed(quiet.check("/orders/1", &[("authorization", &bearer)]));
    assert!(allow.metadata.is_empty(), "no dynamic metadata when turned off");
    assert!(allow.all_headers().any(|h| h == ("x-user-id", "u1")), "headers as before");
}

#[test]
fn public_paths_still_strip_identity_headers() {
    let allow = allowed(World::new().check("/public/a", &[("x-user-id", "spoofed")]));
    assert!(allow.all_headers().next().is_none());
    let removed: Vec<_> = allow.all_removed().collect();
    assert_eq!(removed.len(), 6, "the five identity headers and the principal's: {removed:?}");
}

#[test]
fn dot_segments_cannot_borrow_a_public_rule() {
    let w = World::new();
    for path in ["/public/../orders/1", "/public/%2e%2e/orders/1", "/public/./../orders/1"] {
        let deny = denied(w.check(path, &[]));
        assert_eq!((deny.status, deny.reason), (401, "missing_credentials"), "{path}");
    }
    for path in ["/public/..%2forders/1", "/public/%2F..%2Forders", "/public/..\\orders", "/public//../orders/1"] {
        let deny = denied(w.check(path, &[]));
        assert_eq!((deny.status, deny.code, deny.reason), (400, ErrorCode::BadRequest, "bad_path"), "{path}");
    }
    assert!(matches!(w.check("/public/./a", &[]), Decision::Allow(_)));
}

/// What each path gets with no credential (public `/public/*`, `/orders/*` needs one): a `;`
/// as written or encoded is a 400 wherever it sits, so a parameter some servers strip can
/// never move a request from one rule to another; one in the query is not the path's.
#[test]
fn path_parameters_cannot_borrow_a_public_rule() {
    let w = World::new();
    for (target, status) in [
        ("/public/..;/orders/1", 400),
        ("/public/.;/orders/1", 400),
        ("/public/..;x=y/orders/1", 400),
        ("/public/%2e%2e;/orders/1", 400),
        ("/public/%2E%2e%3B/orders/1", 400),
        ("/public/..%3b/orders/1", 400),
        ("/public/page;jsessionid=ABC", 400),
        ("/public;x/page", 400),
        ("/public/;x/../orders/1", 400),
        ("/public/page;", 400),
        ("/orders/1;jsessionid=ABC", 400),
        ("/public/page?a=;/../orders/1", 200),
        ("/public/page?jsessionid=;x", 200),
    ] {
        let decision = w.check(target, &[]);
        if status == 200 {
            assert!(matches!(decision, Decision::Allow(_)), "{target}: {decision:?}");
            continue;
        }
        let deny = denied(decision);
        assert_eq!((deny.status, deny.code, deny.reason), (400, ErrorCode::BadRequest, "bad_path"), "{target}");
        assert!(deny.message.contains("';'"), "{target}: {}", deny.message);
    }
}

#[test]
fn every_401_carries_a_challenge() {
    let bare = deny(401, ErrorCode::LoginFailed, "no", None, "test");
    assert_eq!(bare.challenge(), Some("Bearer"));
    assert_eq!(deny(403, ErrorCode::Forbidden, "no", None, "test").challenge(), None);
    assert_eq!(deny(401, ErrorCode::Unauthorized, "no", Some("Basic".into()), "test").challenge(), Some("Basic"));
}

#[test]
fn denies_with_the_right_code() {
    let w = World::new();
    let missing = denied(w.check("/orders/1", &[]));
    assert_eq!(
        (missing.status, missing.code, missing.www_authenticate.as_deref()),
        (401, ErrorCode::Unauthorized, Some("Bearer"))
    );
    let expired =
        denied(w.check("/orders/1", &[("authorization", &format!("Bearer {}", w.token(json!({"exp": NOW - 100}))))]));
    assert_eq!((expired.status, expired.code), (401, ErrorCode::ExpiredToken));
    assert!(expired.www_authenticate.unwrap().starts_with(r#"Bearer error="invalid_token""#));
    let scope =
        denied(w.check("/orders/1", &[("authorization", &format!("Bearer {}", w.token(json!({"scope": "other"}))))]));
    assert_eq!((scope.status, scope.code), (403, ErrorCode::InsufficientScope));
    let claim =
        denied(w.check("/admin", &[("authorization", &format!("Bearer {}", w.token(json!({"role": "user"}))))]));
    assert_eq!((claim.status, claim.code), (403, ErrorCode::Forbidden));
    assert!(matches!(
        w.check("/admin", &[("authorization", &format!("Bearer {}", w.token(json!({"role": "admin"}))))]),
        Decision::Allow(_)
    ));
    let no_route = denied(w.check("/elsewhere", &[]));
    assert_eq!((no_route.status, no_route.code), (403, ErrorCode::Forbidden));
    let garbage = denied(w.check("/orders/1", &[("authorization", "Bearer not-a-jwt")]));
    assert_eq!((garbage.status, garbage.reason), (401, "malformed_token"));
    let foreign = denied(
        w.check("/orders/1", &[("authorization", &format!("Bearer {}", w.token(json!({"iss": "https://evil"}))))]),
    );
    assert_eq!(foreign.message, "wrong issuer");
}

#[test]
fn api_keys_and_credential_locations() {
    let w = World::new();
    let allow = allowed(w.check("/orders/1", &[("x-api-key", API_KEY)]));
    assert!(allow.all_headers().any(|h| h == ("x-user-id", "billing")));
    assert!(allow.all_headers().any(|h| h == ("x-org-id", "acme")));
    assert!(allow.all_removed().any(|h| h == "x-api-key"));
    let unknown = denied(w.check("/orders/1", &[("x-api-key", "ghk_nope")]));
    assert_eq!(unknown.reason, "invalid_api_key");
    assert_eq!(unknown.challenge(), Some(r#"Bearer error="invalid_token", error_description="invalid API key""#));
    let mut forwarding = World::new();
    forwarding.engine.forward_api_keys = true;
    assert!(!allowed(forwarding.check("/orders/1", &[("x-api-key", API_KEY)])).all_removed().any(|h| h == "x-api-key"));
    let token = forwarding.token(json!({}));
    let jwt = allowed(forwarding.check("/orders/1", &[("authorization", &format!("Bearer {token}"))]));
    assert!(jwt.all_removed().any(|h| h == "authorization"), "only API keys are forwarded");

    let token = w.token(json!({}));
    let allow = allowed(w.check(&format!("/any?x=1&access_token={token}"), &[]));
    assert_eq!(allow.remove_query, vec!["access_token".to_string()]);
    assert_eq!(allow.upstream, Some(0), "the rule's upstream credential is named for the service layer");
    assert_eq!(allowed(w.check("/orders/1", &[("x-api-key", API_KEY)])).upstream, None);
    let allow = allowed(w.check("/any", &[("cookie", &format!("a=1; token={token}; b=2"))]));
    assert!(allow.all_headers().any(|h| h == ("cookie", "a=1; b=2")));
}

#[test]
fn unknown_keys_and_missing_keys_are_not_denials() {
    let mut w = World::new();
    let rotated = SigningKey::rsa("k2", Algorithm::RS256, RSA_A);
    let token = rotated.sign(&json!({"iss": "https://idp.test", "aud": "api", "sub": "u", "exp": NOW + 60}));
    assert_eq!(w.check("/any", &[("authorization", &format!("Bearer {token}"))]), Decision::UnknownKey { provider: 0 });
    w.keys = vec![None];
    assert!(matches!(w.check("/any", &[("authorization", &format!("Bearer {token}"))]), Decision::Unavailable(_)));
}

#[test]
fn verified_tokens_are_cached_until_expiry() {
    let w = World::new();
    let token = w.token(json!({}));
    allowed(w.check("/any", &[("authorization", &format!("Bearer {token}"))]));
    // Remembered with the keys that verified it, until its exp (NOW + 300, plus the leeway).
    let (provider, keys, _) = w.cache.get(&token, NOW, 0).expect("cached");
    assert_eq!((provider, Some(keys)), (0, w.keys[0].as_ref().map(|k| k.fingerprint())));
    assert!(w.cache.get(&token, NOW + 3600, 0).is_none());
    // Without keys (none loaded yet), a cached token is not taken on trust either.
    let mut w = w;
    w.keys = vec![None];
    assert!(matches!(w.check("/any", &[("authorization", &format!("Bearer {token}"))]), Decision::Unavailable(_)));
}

#[test]
fn error_body_shape() {
    let deny = deny(403, ErrorCode::InsufficientScope, "missing scope: a", None, "insufficient_scope");
    let body: Value = serde_json::from_str(&error_body(&deny, "req-1", "2026-01-01T00:00:00.000Z")).unwrap();
    assert_eq!(
        body,
        json!({"error": {"code": "INSUFFICIENT_SCOPE", "message": "missing scope: a", "request_id": "req-1"},
               "metadata": {"success": false, "timestamp": "2026-01-01T00:00:00.000Z"}})
    );
}

fn session(scope: &str) -> Session {
    use crate::core::session::model::TokenSet;
    let claims = Arc::new(json!({"sub": "alice", "email": "alice@example.com", "groups": ["users"]}));
    let tokens = TokenSet {
        id_token: Some("id.token.x".into()),
        access_token: Some("opaque-access".into()),
        refresh_token: None,
        expires_in: Some(600),
        scope: Some(scope.into()),
    };
    Session::new("sid-1".into(), claims, tokens, Stamp::next(NOW), 3600)
}

#[test]
fn browsers_without_a_session_are_sent_to_login_and_api_calls_get_401() {
    let world = World::new();
    assert_eq!(world.check("/app/home", &[("accept", "text/html")]), Decision::Login);
    let deny = denied(world.check("/app/home", &[("accept", "application/json")]));
    assert_eq!((deny.status, deny.reason), (401, "missing_credentials"));
    // Routes that do not accept sessions never start a login.
    assert_eq!(denied(world.check("/orders/1", &[("accept", "text/html")])).status, 401);
    assert!(world.engine.accepts_session(&AuthRequest::new("GET", "api.test", "/app/x", HashMap::new())));
    assert!(!world.engine.accepts_session(&AuthRequest::new("GET", "api.test", "/orders/1", HashMap::new())));
}

#[test]
fn a_session_gets_the_same_identity_headers_and_its_cookies_stay_with_us() {
    let world = World::new();
    let s = session("openid email");
    let cookie = ("cookie", "theme=dark; gh_session_0=aaa; gh_session_1=bbb; gh_session_login_xyz=ccc; other=1");
    let allow = allowed(world.check_with_session("/app/home", &[cookie, ("x-user-id", "spoofed")], Some(&s)));
    let header = |name: &str| allow.all_headers().find(|(h, _)| *h == name).map(|(_, v)| v);
    assert_eq!(header("x-user-id"), Some("alice"));
    assert_eq!(header("authorization"), Some("Bearer opaque-access"));
    assert_eq!(header("cookie"), Some("theme=dark; other=1"));
    assert_eq!(allow.metadata["auth_method"], "session");
    assert_eq!(allow.metadata["provider"], "corp-login");
    assert!(!allow.all_removed().any(|h| h == "authorization"));
    // The granted scopes are the session's scopes.
    let deny = denied(world.check_with_session("/app/home", &[], Some(&session("openid"))));
    assert_eq!((deny.status, deny.reason), (403, "insufficient_scope"));
}

#[test]
fn session_cookies_never_reach_the_backend_whatever_the_credential() {
    let world = World::new();
    let token = world.token(json!({}));
    let auth = format!("Bearer {token}");
    let allow = allowed(world.check("/orders/1", &[("authorization", &auth), ("cookie", "gh_session=abc")]));
    assert!(allow.all_removed().any(|h| h == "cookie"));
    assert!(allow.all_removed().any(|h| h == "authorization"));
}

#[test]
fn method_overrides_do_not_ride_along_with_a_session_unless_configured() {
    let overrides = [
        ("x-http-method-override", "DELETE"),
        ("x-http-method", "PUT"),
        ("x-method-override", "PATCH"),
        ("x_http_method_override", "DELETE"),
    ];
    let mut world = World::new();
    let stripped = allowed(with_session_at(&world, "GET", "/app/home?_method=DELETE&page=2", &overrides));
    for (name, _) in overrides {
        assert!(stripped.all_removed().any(|h| h == name), "{name}");
    }
    assert_eq!(stripped.remove_query, ["_method"]);
    // Not seen (HTTP mode passes ext-authz only some headers): the names are removed anyway.
    let plain = allowed(with_session(&world, "GET", &[]));
    assert!(plain.remove_query.is_empty());
    assert_eq!(plain.all_removed().filter(|h| h.contains("method")).count(), 3);
    world.engine.sessions.as_mut().unwrap().pass_method_override = true;
    let passed = allowed(with_session_at(&world, "GET", "/app/home?_method=DELETE", &overrides));
    assert!(passed.remove_query.is_empty() && !passed.all_removed().any(|h| h.contains("method")));
}

/// A session request as the engine sees it, with the method and headers given.
fn with_session(world: &World, method: &str, headers: &[(&str, &str)]) -> Decision {
    with_session_at(world, method, "/app/home", headers)
}

fn with_session_at(world: &World, method: &str, target: &str, headers: &[(&str, &str)]) -> Decision {
    let headers: HashMap<String, String> = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let request = AuthRequest::new(method, "api.test", target, headers);
    let s = session("openid email");
    let ctx = Context {
        keys: &world.keys,
        api_keys: &world.api_keys,
        cache: &world.cache,
        token_rules: 0,
        now: NOW,
        session: Some(&s),
    };
    world.engine.check(&request, &ctx)
}

#[test]
fn the_csrf_guard_refuses_cross_site_state_changes_on_a_session() {
    let world = World::new();
    let refused = |method: &str, headers: &[(&str, &str)]| match with_session(&world, method, headers) {
        Decision::Deny(deny) => {
            assert_eq!((deny.status, deny.reason), (403, "csrf"));
            true
        }
        Decision::Allow(_) => false,
        other => panic!("{other:?}"),
    };
    // The table the logout check runs too (ext-authz/tests/fuzz_login/flows.rs).
    for case in crate::testing::origins::ORIGIN_CASES {
        let headers = case.headers("https://api.test", "https://admin.api.test");
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        for method in ["POST", "PUT", "PATCH", "DELETE"] {
            assert_eq!(refused(method, &headers), !case.allowed, "{method}: {}", case.why);
        }
    }
    assert!(!refused("GET", &[("origin", "https://evil.example")]), "reads are not state changes");
    // A host that is not one of ours has no origin of ours to come from.
    let mut elsewhere = World::new();
    elsewhere.engine.sessions.as_mut().unwrap().csrf_origins = Some(vec!["https://other.test".into()]);
    let same_origin = [("sec-fetch-site", "same-origin")];
    assert!(matches!(with_session(&elsewhere, "POST", &same_origin), Decision::Deny(_)));
    // Off unless configured.
    let mut open = World::new();
    open.engine.sessions.as_mut().unwrap().csrf_origins = None;
    assert!(matches!(with_session(&open, "POST", &[("origin", "https://evil.example")]), Decision::Allow(_)));
}

#[test]
fn a_client_authorization_header_does_not_ride_along_with_a_session() {
    let mut world = World::new();
    world.engine.sessions.as_mut().unwrap().forward_access_token = false;
    let allow = allowed(with_session(&world, "GET", &[("authorization", "Bearer client-made")]));
    assert!(allow.all_removed().any(|h| h == "authorization"), "{:?}", allow.all_removed().collect::<Vec<_>>());
    world.engine.sessions.as_mut().unwrap().pass_client_authorization = true;
    let allow = allowed(with_session(&world, "GET", &[("authorization", "Bearer client-made")]));
    assert!(!allow.all_removed().any(|h| h == "authorization"));
}

#[test]
fn a_cached_token_stops_when_its_key_is_rotated_away_and_survives_a_refresh_of_the_same_keys() {
    let mut world = World::new();
    let token = world.token(json!({}));
    let auth = format!("Bearer {token}");
    assert!(matches!(world.check("/orders/1", &[("authorization", &auth)]), Decision::Allow(_)));
    // A refresh that brings the same keys: the cached verification still counts.
    world.keys = vec![Some(Arc::new(KeySet::from_jwks(&jwks(&[&world.key])).unwrap()))];
    assert!(matches!(world.check("/orders/1", &[("authorization", &auth)]), Decision::Allow(_)));
    // The key is rotated away (same kid, another key): the cached token no longer passes.
    let other = SigningKey::rsa("k1", Algorithm::RS256, include_str!("../../../tests/fixtures/rsa-b.pem"));
    world.keys = vec![Some(Arc::new(KeySet::from_jwks(&jwks(&[&other])).unwrap()))];
    let deny = denied(world.check("/orders/1", &[("authorization", &auth)]));
    assert_eq!((deny.status, deny.reason), (401, "invalid_token"));
}

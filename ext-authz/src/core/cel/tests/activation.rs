//! Each variable and field of the documented activation, identity kinds, sharing and laziness.

use serde_json::json;

use super::{claims, compiled, identity, Fixture};
use crate::core::cel::{compile, Uses};
use crate::core::identity::AuthMethod;

#[test]
fn request_fields() {
    Fixture::new().holds(&[
        "request.method == 'GET'",
        "request.host == 'api.example.com'",
        "request.path == '/orgs/acme/orders'",
        "request.query.limit == '10'",
        // `tag` is repeated in the fixture: reading it is refused (see tests/hostile.rs).
        "request.headers['x-tenant'] == 'acme'",
        "request.headers['x-tenant'] == route.org",
        "request.id == 'req-1'",
        "!has(request.headers.authorization)",
        "'x-tenant' in request.headers",
        "request.headers.exists(name, name == 'x-tenant')",
    ]);
}

#[test]
fn header_names_are_lower_case() {
    let fixture = Fixture::new().header("x-org", "acme");
    assert!(fixture.eval("request.headers['X-Org'] == 'acme'").is_err(), "no such key: names are lower case");
    fixture.holds(&["request.headers['x-org'] == 'acme'"]);
}

#[test]
fn source_addresses() {
    let mut fixture = Fixture::new();
    fixture.holds(&["source.address == '10.1.2.3'", "source.client == '203.0.113.7'"]);
    fixture.source.peer = None;
    fixture.source.client = Some("2001:db8::1".parse().unwrap());
    fixture.holds(&["source.address == ''", "source.client == '2001:db8::1'"]);
}

#[test]
fn jwt_identity() {
    Fixture::new().jwt(claims()).holds(&[
        "identity.kind == 'jwt'",
        "identity.provider == 'corp'",
        "identity.claims.org == route.org",
        "identity.claims['email'].endsWith('@example.com')",
        "identity.claims.address.country == 'FR'",
        "'admins' in identity.claims.groups",
        "identity.scopes == ['orders:read', 'orders:write']",
        "'orders:write' in identity.scopes",
        "identity.claims.exp > now",
        "identity.principal == ''",
    ]);
}

#[test]
fn api_key_identity() {
    let mut fixture = Fixture::new();
    fixture.identity =
        Some(identity(AuthMethod::ApiKey, json!({"client_id": "ci-1", "tier": "gold"}), &["orders:read"]));
    fixture.holds(&[
        "identity.kind == 'api_key'",
        "identity.provider == ''",
        "identity.claims.tier == 'gold'",
        "identity.scopes == ['orders:read']",
    ]);
}

#[test]
fn session_identity() {
    let mut fixture = Fixture::new();
    fixture.identity = Some(identity(AuthMethod::Session { provider: "sso".into() }, claims(), &[]));
    fixture.holds(&["identity.kind == 'session'", "identity.provider == 'sso'", "identity.claims.sub == 'u-1'"]);
}

#[test]
fn no_identity() {
    let fixture = Fixture::new();
    fixture.holds(&[
        "identity.kind == 'none'",
        "identity.provider == ''",
        "identity.claims == {}",
        "size(identity.claims) == 0",
        "!has(identity.claims.org)",
        "identity.scopes == []",
    ]);
    assert!(fixture.eval("identity.claims.org == 'acme'").is_err(), "a missing claim is an error: write has() first");
}

#[test]
fn principal() {
    let mut fixture = Fixture::new();
    fixture.principal = Some(shared::spiffe::SpiffeId::parse("spiffe://example.org/ns/shop/sa/web").unwrap());
    fixture.holds(&[
        "identity.principal == 'spiffe://example.org/ns/shop/sa/web'",
        "identity.principal.startsWith('spiffe://example.org/')",
    ]);
}

#[test]
fn route_context_and_now() {
    let fixture = Fixture::new();
    fixture.holds(&[
        "route.org == 'acme'",
        "route == {'org': 'acme'}",
        "context.policy == 'orders-read'",
        "context['policy'].startsWith('orders')",
        "now == 1700000000",
        "now - 600 < 1700000000",
    ]);
    fixture.fails(&["has(context.missing)", "now < 0"]);
}

#[test]
fn missing_keys_and_wrong_runtime_types_are_errors() {
    let fixture = Fixture::new().jwt(claims());
    for source in [
        "request.headers['x-missing'] == 'a'",
        "route.nope == 'acme'",
        "context.nope == 'x'",
        "identity.claims.org > 3",
        "identity.claims.groups[5] == 'x'",
        "int(identity.claims.org) > 1",
    ] {
        let error = fixture.eval(source).expect_err(source);
        assert!(!error.0.is_empty(), "{source}");
    }
    assert_eq!(fixture.eval("route.nope == 'acme'").unwrap_err().0, "no such key: nope");
}

#[test]
fn a_non_boolean_result_at_run_time_is_an_error() {
    // A claim is `dyn`: whether it is a bool is told per request.
    let fixture = Fixture::new().jwt(json!({"admin": true, "org": "acme"}));
    assert_eq!(fixture.eval("identity.claims.admin"), Ok(true));
    assert_eq!(fixture.eval("identity.claims.org").unwrap_err().0, "the expression gave a string, not a bool");
}

#[test]
fn errors_never_repeat_request_values() {
    let fixture = Fixture::new().header("x-n", "secret-value-123").jwt(json!({"level": "top-secret-claim"}));
    for source in [
        "int(request.headers['x-n']) > 1",
        "request.headers['x-n'].inCidr('10.0.0.0/8')",
        "identity.claims.level > 1",
        "request.headers[request.headers['x-n']] == 'a'",
    ] {
        let error = fixture.eval(source).expect_err(source).0;
        assert!(!error.contains("secret"), "{source}: {error}");
    }
}

#[test]
fn uses_names_the_variables_read() {
    let uses = compile("identity.claims.org == route.org && now > 0").unwrap().uses();
    assert_eq!(uses, Uses { identity: true, route: true, now: true, ..Uses::default() });
    let uses = compile("request.method == 'DELETE' && source.client.inCidr('10.0.0.0/8')").unwrap().uses();
    assert_eq!(uses, Uses { request: true, source: true, ..Uses::default() });
    assert_eq!(compile("context.policy == 'a'").unwrap().uses(), Uses { context: true, ..Uses::default() });
    // A comprehension's own variable named like one of the activation's is not a use of it.
    assert_eq!(compile("[1].all(identity, identity > 0)").unwrap().uses(), Uses::default());
}

#[test]
fn expressions_share_one_activation_and_widen_it() {
    let fixture = Fixture::new().jwt(claims());
    let org = compiled("identity.claims.org == route.org");
    let email = compiled("identity.claims.email.endsWith('@example.com')");
    let all = compiled("identity.claims.exists(k, k == 'employment')");
    let tenant = compiled("request.headers['x-tenant'] == 'acme'");
    let results = fixture.eval_all(&[&org, &email, &all, &tenant, &org]);
    assert_eq!(results, vec![Ok(true); 5]);
}

#[test]
fn only_the_keys_read_are_bounded() {
    // An over-long header that no expression reads whole does not fail one reading another.
    let long = "x".repeat(crate::core::cel::MAX_STRING_BYTES + 1);
    let fixture = Fixture::new().header("x-long", &long);
    let tenant = compiled("request.headers['x-tenant'] == 'acme'");
    let every = compiled("request.headers.all(k, k != '')");
    assert_eq!(
        fixture.eval_all(&[&tenant, &every, &tenant]),
        vec![Ok(true), Err(fixture.eval("request.headers.all(k, k != '')").unwrap_err()), Ok(true)]
    );
    assert!(fixture.eval("request.headers['x-long'] != ''").is_err());
}

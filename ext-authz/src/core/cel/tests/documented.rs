//! The expressions docs/ext-authz.md, "Conditions (CEL)", shows: each compiles, and holds for a
//! request it describes.

use serde_json::json;

use super::Fixture;

#[test]
fn the_activation_table_examples() {
    let mut fixture = Fixture::new()
        .header("x-tenant", "acme")
        .jwt(json!({"org": "acme", "exp": 1_700_000_600, "scope": "orders:write"}));
    fixture.request.method = "DELETE".into();
    fixture.request.host = "api.example.com".into();
    fixture.request.query = "tenant=acme".into();
    fixture.source.peer = Some("10.0.0.1".parse().unwrap());
    fixture.source.client = Some("fd00::1".parse().unwrap());
    fixture.principal = Some(shared::spiffe::SpiffeId::parse("spiffe://example.org/ns/a/sa/b").unwrap());
    fixture.context.insert("tier".into(), "gold".into());
    fixture.holds(&[
        "request.method == 'DELETE'",
        "request.host == 'api.example.com'",
        "request.path.startsWith('/orgs/')",
        "request.query.tenant == route.org",
        "request.headers['x-tenant'] == 'acme'",
        "request.id != ''",
        "source.address.inCidr('10.0.0.0/8')",
        "source.client.inCidr('fd00::/8')",
        "identity.kind == 'jwt'",
        "identity.provider == 'corp'",
        "identity.claims.org == route.org",
        "'orders:write' in identity.scopes",
        "identity.principal.startsWith('spiffe://example.org/')",
        "route.org == 'acme'",
        "context.tier == 'gold'",
        "identity.claims.exp - now > 300",
        "has(identity.claims.org) && identity.claims.org == route.org",
        "'x-tenant' in request.headers",
    ]);
}

#[test]
fn the_examples() {
    let staff = Fixture::new().jwt(json!({"email": "ada@example.com", "employment": "contractor"}));
    staff.holds(&[
        "has(identity.claims.email) && identity.claims.email.endsWith('@example.com')",
        "has(identity.claims.employment) && identity.claims.employment == 'contractor'",
        // The client (203.0.113.7) is outside: the deny rule holds.
        "!source.client.inCidr('10.0.0.0/8')",
    ]);
    Fixture::new().fails(&[
        "has(identity.claims.org) && identity.claims.org == route.org",
        "has(identity.claims.employment) && identity.claims.employment == 'contractor'",
    ]);
}

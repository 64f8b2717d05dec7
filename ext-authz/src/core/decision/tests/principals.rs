//! Routes that name the calling workload (`principals`) and the user's `<iss>/<sub>`
//! (`request_principals`).

use super::*;
use crate::core::principals::{PrincipalSource, XFCC};

const WEB: &str = "spiffe://shop.test/ns/shop/sa/web";
const PARTNER: &str = "spiffe://shop.test/ns/partners/sa/acme";

fn header<'a>(allow: &'a Allow, name: &str) -> Option<&'a str> {
    allow.all_headers().find(|(k, _)| *k == name).map(|(_, v)| v)
}

#[test]
fn a_workload_only_route_lets_its_workloads_in_and_names_them() {
    let w = World::new();
    let allow = allowed(w.check_from(WEB, "/internal/stock", &[("x-client-principal", "spiffe://shop.test/admin")]));
    assert_eq!((allow.reason, allow.upstream), ("workload", Some(1)), "the rule's upstream credential is named");
    assert_eq!(header(&allow, "x-client-principal"), Some(WEB), "ours, not the client's copy");
    assert_eq!(allow.principal.as_deref(), Some(WEB));
    assert_eq!(allow.metadata["principal"], WEB);
    assert!(allow.identity.is_none() && !allow.metadata.contains_key("user_id"));
    assert!(allow.all_removed().any(|h| h == "x-user-id"), "no user: the user headers are removed");

    let other = denied(w.check_from("spiffe://shop.test/ns/other/sa/web", "/internal/stock", &[]));
    assert_eq!((other.status, other.reason), (403, "principal_not_allowed"));
    let deeper = denied(w.check_from("spiffe://shop.test/ns/shop/sa/web/x", "/internal/stock", &[]));
    assert_eq!(deeper.reason, "principal_not_allowed", "`*` is exactly one segment");
    let nobody = denied(w.check("/internal/stock", &[("x-client-principal", WEB)]));
    assert_eq!((nobody.status, nobody.reason), (403, "missing_principal"), "a header is not an identity");
}

#[test]
fn workload_and_user_together() {
    let w = World::new();
    let bearer = |sub: &str| format!("Bearer {}", w.token(json!({"sub": sub})));
    let allow = allowed(w.check_from(PARTNER, "/partner/orders", &[("authorization", &bearer("u1"))]));
    assert_eq!((allow.reason, header(&allow, "x-user-id")), ("authenticated", Some("u1")));
    assert_eq!((header(&allow, "x-client-principal"), &allow.metadata["principal"]), (Some(PARTNER), &json!(PARTNER)));
    assert_eq!(allow.metadata["user_id"], "u1", "the identity's metadata is kept beside the principal");

    let other_user = denied(w.check_from(PARTNER, "/partner/orders", &[("authorization", &bearer("u2"))]));
    assert_eq!((other_user.status, other_user.reason), (403, "request_principal"));
    let api_key = denied(w.check_from(PARTNER, "/partner/orders", &[("x-api-key", API_KEY)]));
    assert_eq!(api_key.reason, "request_principal", "an API key has no issuer and subject");
    let no_user = denied(w.check_from(PARTNER, "/partner/orders", &[]));
    assert_eq!(no_user.status, 401);
    // The workload is checked first: a wrong one is refused whatever token it carries.
    let wrong_workload = denied(w.check_from(WEB, "/partner/orders", &[("authorization", &bearer("u1"))]));
    assert_eq!(wrong_workload.reason, "principal_not_allowed");
}

#[test]
fn every_allowed_request_carries_the_principal_or_loses_the_header() {
    let w = World::new();
    let public = allowed(w.check_from(WEB, "/public/a", &[]));
    assert_eq!(header(&public, "x-client-principal"), Some(WEB));
    let anonymous = allowed(w.check("/public/a", &[("x-client-principal", WEB)]));
    assert!(anonymous.all_removed().any(|h| h == "x-client-principal"), "a client cannot name a workload");
    assert!(!anonymous.all_removed().any(|h| h == XFCC), "an untrusted XFCC is not ours to remove");
}

#[test]
fn a_trusted_xfcc_is_read_then_removed_and_a_forged_one_is_ignored_otherwise() {
    let mut w = World::new();
    let xfcc = format!("By=spiffe://shop.test/ns/gw/sa/envoy;URI={WEB}");
    let untrusted = denied(w.check("/internal/stock", &[(XFCC, &xfcc)]));
    assert_eq!(untrusted.reason, "missing_principal", "peer mode: the header names nobody");

    w.engine.workload.source = PrincipalSource::Xfcc;
    let allow = allowed(w.check("/internal/stock", &[(XFCC, &xfcc)]));
    assert_eq!(header(&allow, "x-client-principal"), Some(WEB));
    assert!(allow.all_removed().any(|h| h == XFCC), "consumed: the backend does not trust it again");
    let spliced = format!("URI=spiffe://shop.test/ns/shop/sa/admin;{xfcc}");
    assert_eq!(denied(w.check("/internal/stock", &[(XFCC, &spliced)])).reason, "missing_principal");
    let peer_only = denied(w.check_from(WEB, "/internal/stock", &[]));
    assert_eq!(peer_only.reason, "missing_principal", "one source at a time");
}

#[test]
fn workloads_of_other_trust_domains_are_nobody() {
    let mut w = World::new();
    w.engine.workload.trust_domains = vec!["shop.test".into()];
    assert_eq!(allowed(w.check_from(WEB, "/internal/stock", &[])).reason, "workload");
    let foreign = denied(w.check_from("spiffe://evil.test/ns/shop/sa/web", "/internal/stock", &[]));
    assert_eq!(foreign.reason, "missing_principal");
    let public = allowed(w.check_from("spiffe://evil.test/ns/shop/sa/web", "/public/a", &[]));
    assert!(public.all_removed().any(|h| h == "x-client-principal"), "not passed on either");
}

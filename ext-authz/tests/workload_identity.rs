//! Workload identity over Envoy's protocol, against the real service: the peer's SPIFFE ID from
//! `source.principal` or from the peer certificate Envoy sends (`include_peer_certificate`,
//! URL-encoded PEM, made here with openssl), route `principals`, the principal header and
//! dynamic metadata, and a trusted `x-forwarded-client-cert` in HTTP mode.

mod support;

use envoy_types::pb::envoy::service::auth::v3::attribute_context::Peer;
use envoy_types::pb::envoy::service::auth::v3::CheckResponse;
use ext_authz::testing::SigningKey;
use jsonwebtoken::Algorithm;
use serde_json::json;
use support::*;

const WEB: &str = "spiffe://shop.test/ns/shop/sa/web";

const RULES: &str = r#"    - name: internal
      path: /internal/*
      principals: ["spiffe://shop.test/ns/shop/sa/*"]
      accept: []
    - name: partner
      path: /partner/*
      principals: ["spiffe://shop.test/ns/partners/**"]
      accept: [jwt]
      request_principals: ["*/user-1"]
"#;

async fn harness(sections: &str) -> Harness {
    let key = SigningKey::rsa("key-a", Algorithm::RS256, RSA_A);
    let idp = JwksServer::start(&[&key]).await;
    Harness::start_with_sections(idp, key, RULES, sections).await
}

/// A Check from the mutual TLS peer Envoy describes with `principal` and `certificate`.
async fn check_from(
    h: &mut Harness,
    principal: &str,
    certificate: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> CheckResponse {
    let mut request = check_request("GET", path, headers);
    let attributes = request.attributes.as_mut().unwrap();
    attributes.source =
        Some(Peer { principal: principal.into(), certificate: certificate.into(), ..Default::default() });
    h.grpc.check(request).await.expect("Check answers").into_inner()
}

/// The PEM as Envoy puts it in `source.certificate` (its `urlEncodedPemEncodedPeerCertificate`).
fn envoy_url_encoded(pem: &str) -> String {
    let mut out = String::new();
    for c in pem.chars() {
        match c {
            '\n' => out.push_str("%0A"),
            ' ' => out.push_str("%20"),
            '+' => out.push_str("%2B"),
            '/' => out.push_str("%2F"),
            '=' => out.push_str("%3D"),
            c => out.push(c),
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peers_spiffe_id_opens_workload_routes_and_is_passed_on() {
    let mut h = harness("").await;
    let allowed =
        check_from(&mut h, WEB, "", "/internal/stock", &[("x-client-principal", "spiffe://shop.test/admin")]).await;
    assert_eq!(status(&allowed), 0, "{allowed:?}");
    let (headers, removed) = allowed_headers(&allowed);
    assert_eq!(headers["x-client-principal"], WEB, "ours, overwriting the client's");
    assert!(removed.contains(&"x-user-id".to_string()), "no user on a workload-only route");
    let metadata = allowed.dynamic_metadata.expect("metadata");
    assert_eq!(shared::proto::struct_to_json(metadata)["principal"], WEB);

    let other = check_from(&mut h, "spiffe://shop.test/ns/other/sa/web", "", "/internal/stock", &[]).await;
    let (code, _, body) = denial(&other);
    assert_eq!((code, body["error"]["code"].as_str()), (403, Some("FORBIDDEN")));
    assert_eq!(body["error"]["message"], "the calling workload is not allowed on this route");
    // Envoy gives a DNS SAN or the subject as the principal when there is no URI SAN: not a
    // workload identity.
    let dns = check_from(&mut h, "web.shop.test", "", "/internal/stock", &[]).await;
    assert_eq!(denial(&dns).2["error"]["message"], "this route needs the calling workload's identity (mutual TLS)");
    // The principal header of a public request: from the peer, or removed.
    let (headers, _) = allowed_headers(&check_from(&mut h, WEB, "", "/public/x", &[]).await);
    assert_eq!(headers["x-client-principal"], WEB);
    let (_, removed) = allowed_headers(&h.check("GET", "/public/x", &[("x-client-principal", WEB)]).await);
    assert!(removed.contains(&"x-client-principal".to_string()));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_certificate_names_the_workload_when_the_principal_does_not() {
    let mut h = harness("").await;
    let dir = tempfile::tempdir().unwrap();
    shared::testing::make_ca(dir.path(), "ca");
    // The first URI SAN is what Envoy reports as the principal; the SPIFFE ID comes second.
    shared::testing::make_cert(dir.path(), "ca", "web", &format!("URI:https://web.shop.test,URI:{WEB}"));
    let pem = std::fs::read_to_string(dir.path().join("web.pem")).unwrap();
    let certificate = envoy_url_encoded(&pem);
    assert!(certificate.contains("%2B") || certificate.contains("%2F"), "the encoding is exercised");
    let allowed = check_from(&mut h, "https://web.shop.test", &certificate, "/internal/stock", &[]).await;
    assert_eq!(status(&allowed), 0, "{allowed:?}");
    assert_eq!(allowed_headers(&allowed).0["x-client-principal"], WEB);
    let garbage =
        check_from(&mut h, "https://web.shop.test", "-----BEGIN%20CERTIFICATE-----%0Azz", "/internal/stock", &[]).await;
    assert_eq!(denial(&garbage).0, 403, "an unreadable certificate names nobody");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_and_request_principal_together() {
    let mut h = harness("").await;
    let partner = "spiffe://shop.test/ns/partners/sa/acme";
    let user_1 = format!("Bearer {}", h.token(json!({})));
    let user_2 = format!("Bearer {}", h.token(json!({"sub": "user-2"})));
    let allowed = check_from(&mut h, partner, "", "/partner/orders", &[("authorization", &user_1)]).await;
    let (headers, _) = allowed_headers(&allowed);
    assert_eq!((headers["x-user-id"].as_str(), headers["x-client-principal"].as_str()), ("user-1", partner));
    let metadata = allowed.dynamic_metadata.expect("metadata");
    assert!(metadata.fields.contains_key("user_id") && metadata.fields.contains_key("principal"));
    let (code, _, body) =
        denial(&check_from(&mut h, partner, "", "/partner/orders", &[("authorization", &user_2)]).await);
    assert_eq!(
        (code, body["error"]["message"].as_str()),
        (403, Some("the token's issuer and subject are not allowed on this route"))
    );
    let (code, _, _) = denial(&check_from(&mut h, WEB, "", "/partner/orders", &[("authorization", &user_1)]).await);
    assert_eq!(code, 403, "the workload decides first");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_xfcc_in_http_mode_is_read_and_removed_and_ignored_when_not_trusted() {
    let xfcc = format!("By=spiffe://shop.test/ns/gw/sa/envoy;Hash=ab12;URI={WEB}");
    let h = harness("workload_identity: {from: xfcc, trust_domains: [shop.test]}\n").await;
    let addr = h.running().http_addr;
    let (code, headers, _) = http(addr, "GET", "/authz/internal/stock", &[("x-forwarded-client-cert", &xfcc)]).await;
    assert_eq!(code, 200);
    assert_eq!(headers["x-client-principal"], WEB);
    assert!(headers["x-envoy-auth-headers-to-remove"].contains("x-forwarded-client-cert"), "{headers:?}");
    let foreign = xfcc.replace("shop.test/ns/shop", "evil.test/ns/shop");
    let (code, _, _) = http(addr, "GET", "/authz/internal/stock", &[("x-forwarded-client-cert", &foreign)]).await;
    assert_eq!(code, 403, "another trust domain is nobody");
    h.stop().await;

    let untrusting = harness("").await;
    let addr = untrusting.running().http_addr;
    let (code, _, body) = http(addr, "GET", "/authz/internal/stock", &[("x-forwarded-client-cert", &xfcc)]).await;
    assert_eq!(code, 403, "{body}");
    untrusting.stop().await;
}

//! Upstream credentials against the real service: a credential file set on allowed requests
//! (overwriting the client's copy) and followed through rotation; an OAuth2 client-credentials
//! token from a token server run here — fetched once for many concurrent requests, renewed
//! ahead of expiry in the background, kept through an outage while valid, a 503 when none can
//! be had, and back when the provider is. Time is the harness's clock, moved by hand.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use envoy_types::pb::envoy::service::auth::v3::CheckResponse;
use ext_authz::testing::SigningKey;
use jsonwebtoken::Algorithm;
use serde_json::json;
use support::token_server::{TokenServer, CLIENT_ID, CLIENT_SECRET};
use support::*;

const RULES: &str = r#"    - name: vendor
      path: /vendor/*
      accept: [api_key, jwt]
      upstream_credential: vendor-key
    - name: partner
      path: /partner/*
      accept: [jwt]
      upstream_credential: partner
    - name: posted
      path: /posted/*
      accept: [jwt]
      upstream_credential: posted
    - name: refused
      path: /refused/*
      accept: [jwt]
      upstream_credential: refused
"#;

fn sections(dir: &std::path::Path, tokens: &TokenServer) -> String {
    let file = |name: &str| dir.join(name).display().to_string();
    format!(
        r#"upstream_credentials:
  - name: vendor-key
    header: X-API-Key
    file: {vendor}
  - name: partner
    header: Authorization
    oauth2:
      issuer: {issuer}
      client_id: {CLIENT_ID}
      client_secret_file: {secret}
      scopes: [orders.read, orders.write]
      audience: https://partner.test
      resource: https://partner.test/api
      refresh_before: 60s
      timeout: 2s
  - name: posted
    header: Authorization
    oauth2:
      token_endpoint: {issuer}/token
      client_id: {CLIENT_ID}
      client_secret_file: {secret}
      auth_method: client_secret_post
  - name: refused
    header: Authorization
    oauth2:
      token_endpoint: {issuer}/token
      client_id: {CLIENT_ID}
      client_secret_file: {wrong}
"#,
        vendor = file("vendor.key"),
        secret = file("partner.secret"),
        wrong = file("wrong.secret"),
        issuer = tokens.url,
    )
}

async fn harness(tokens: &TokenServer, dir: &std::path::Path) -> Harness {
    write_file(&dir.join("vendor.key"), "vendor-key-1\n");
    write_file(&dir.join("partner.secret"), &format!("{CLIENT_SECRET}\n"));
    write_file(&dir.join("wrong.secret"), "not-the-secret");
    let key = SigningKey::rsa("key-a", Algorithm::RS256, RSA_A);
    let idp = JwksServer::start(&[&key]).await;
    Harness::start_with_sections(idp, key, RULES, &sections(dir, tokens)).await
}

/// The Authorization a JWT-carrying check on `path` gets upstream, or the denial's status.
async fn upstream_authorization(h: &mut Harness, path: &str) -> Result<String, (i32, serde_json::Value)> {
    let bearer = format!("Bearer {}", h.token(json!({})));
    let response = h.check("GET", path, &[("authorization", &bearer)]).await;
    if status(&response) != 0 {
        let (code, headers, body) = denial(&response);
        assert_eq!(headers.get("retry-after").map(String::as_str), Some("2"), "{headers:?}");
        return Err((code, body));
    }
    let (headers, removed) = allowed_headers(&response);
    assert!(!removed.contains(&"authorization".to_string()), "set, never also removed: {removed:?}");
    Ok(headers["authorization"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_file_is_set_over_the_clients_and_followed_through_rotation() {
    let tokens = TokenServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(&tokens, dir.path()).await;
    let vendor_key = |response: &CheckResponse| {
        let (headers, removed) = allowed_headers(response);
        assert!(!removed.contains(&"x-api-key".to_string()), "{removed:?}");
        headers["x-api-key"].clone()
    };
    // The client authenticates with its own API key, in the very header the vendor's key goes
    // in: the backend gets the vendor's.
    let response = h.check("GET", "/vendor/models", &[("x-api-key", API_KEY)]).await;
    assert_eq!(vendor_key(&response), "vendor-key-1");
    assert_eq!(allowed_headers(&response).0["x-user-id"], "billing", "the client's identity still goes up");

    write_file(&dir.path().join("vendor.key"), "vendor-key-2\n");
    shared::testing::eventually("the rotated key taken up", Duration::from_secs(10), async || {
        vendor_key(&h.check("GET", "/vendor/models", &[("x-api-key", API_KEY)]).await) == "vendor-key-2"
    })
    .await;
    // A broken rotation (an empty file) keeps the last good key, and says so.
    write_file(&dir.path().join("vendor.key"), "\n");
    let metrics_say = "ext_authz_reloads_total{result=\"error\",what=\"upstream_credentials\"} 1";
    shared::testing::eventually("the failed reload is counted", Duration::from_secs(10), || async {
        h.metrics().await.contains(metrics_say)
    })
    .await;
    assert_eq!(vendor_key(&h.check("GET", "/vendor/models", &[("x-api-key", API_KEY)]).await), "vendor-key-2");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_credentials_token_is_fetched_once_renewed_early_and_kept_through_an_outage() {
    let tokens = TokenServer::start().await;
    tokens.delay_ms.store(1500, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(&tokens, dir.path()).await;

    // Many requests at once while the first token is on its way: one token request.
    let grpc = h.grpc.clone();
    let bearer = format!("Bearer {}", h.token(json!({})));
    let checks = (0..20).map(|_| {
        let (mut grpc, bearer) = (grpc.clone(), bearer.clone());
        tokio::spawn(async move {
            let request = check_request("GET", "/partner/orders", &[("authorization", &bearer)]);
            grpc.check(request).await.unwrap().into_inner()
        })
    });
    for check in futures_util::future::join_all(checks).await {
        assert_eq!(allowed_headers(&check.unwrap()).0["authorization"], "Bearer tok-1");
    }
    tokens.delay_ms.store(0, Ordering::SeqCst);
    assert_eq!(tokens.issued.load(Ordering::SeqCst), 1, "single flight");

    // 61 s later the token (120 s) is in its renewal window: still used, renewed behind.
    h.clock.advance(61);
    assert_eq!(upstream_authorization(&mut h, "/partner/orders").await.unwrap(), "Bearer tok-1");
    shared::testing::eventually("a renewed token", Duration::from_secs(10), async || {
        upstream_authorization(&mut h, "/partner/orders").await.unwrap() == "Bearer tok-2"
    })
    .await;
    assert_eq!(tokens.issued.load(Ordering::SeqCst), 2, "one renewal");
    assert_eq!(tokens.form("grant_type").as_deref(), Some("client_credentials"));
    assert_eq!(
        (tokens.form("client_id").as_deref(), tokens.form("client_secret").as_deref()),
        (Some(CLIENT_ID), Some(CLIENT_SECRET))
    );
    assert_eq!(tokens.form("audience").as_deref(), Some("https://partner.test"));
    assert_eq!(tokens.form("resource").as_deref(), Some("https://partner.test/api"));
    assert_eq!(tokens.form("scope").as_deref(), Some("orders.read orders.write"));

    // The provider goes down in the next renewal window: the current token goes on.
    tokens.failing.store(true, Ordering::SeqCst);
    h.clock.advance(61);
    assert_eq!(upstream_authorization(&mut h, "/partner/orders").await.unwrap(), "Bearer tok-2");
    let failed = "ext_authz_upstream_token_requests_total{credential=\"partner\",result=\"error\"} 1";
    shared::testing::eventually("the failed renewal is counted", Duration::from_secs(10), || async {
        h.metrics().await.contains(failed)
    })
    .await;
    assert_eq!(upstream_authorization(&mut h, "/partner/orders").await.unwrap(), "Bearer tok-2");

    // Past its expiry with the provider still down: a 503, never a request without it.
    h.clock.advance(60);
    let (code, body) = upstream_authorization(&mut h, "/partner/orders").await.unwrap_err();
    assert_eq!((code, body["error"]["code"].as_str()), (503, Some("UNAVAILABLE")), "{body}");
    assert_eq!(body["error"]["message"], "the upstream's credential is unavailable; retry later");

    // The provider is back: the next request after the retry pause gets a new token.
    tokens.failing.store(false, Ordering::SeqCst);
    h.clock.advance(2);
    assert_eq!(upstream_authorization(&mut h, "/partner/orders").await.unwrap(), "Bearer tok-3");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_post_works_and_a_refused_client_gets_503_without_its_secret_in_the_answer() {
    let tokens = TokenServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(&tokens, dir.path()).await;
    let token = upstream_authorization(&mut h, "/posted/x").await.unwrap();
    assert_eq!(token, "Bearer other-1", "only the posted credential got a token");
    let (code, body) = upstream_authorization(&mut h, "/refused/x").await.unwrap_err();
    assert_eq!(code, 503);
    assert!(!body.to_string().contains("not-the-secret") && !body.to_string().contains("invalid_client"), "{body}");
    assert!(tokens.refused.load(Ordering::SeqCst) >= 1);
    h.stop().await;
}

//! Envoy's gRPC ext_authz protocol against a real JWKS server: identity headers, the uniform
//! errors, API keys, routes, and the security cases.

mod support;

use ext_authz::testing::{forged, SigningKey};
use jsonwebtoken::Algorithm;
use serde_json::json;
use support::*;

const UNAUTHENTICATED: i32 = 16;
const PERMISSION_DENIED: i32 = 7;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_token_yields_identity_headers_and_never_a_spoofed_one() {
    let mut h = Harness::start().await;
    let token = h.token(json!({"https://example.com/claims": {"tenant": "t-9"}}));
    let response = h
        .check(
            "GET",
            "/orders/7?x=1",
            &[("authorization", &format!("Bearer {token}")), ("x-user-id", "admin"), ("x-org-id", "evil")],
        )
        .await;
    assert_eq!(status(&response), 0);
    let (headers, removed) = allowed_headers(&response);
    assert_eq!(headers["x-user-id"], "user-1", "ours, set with OVERWRITE_IF_EXISTS_OR_ADD");
    assert_eq!(headers["x-user-email"], "u1@example.com");
    assert_eq!(headers["x-user-scopes"], "orders:read,profile");
    assert_eq!(headers["x-tenant"], "t-9", "a claim name with dots, then a nested key");
    // The client's x-org-id is removed because this identity has no org; so is the token.
    assert!(removed.contains(&"x-org-id".to_string()) && removed.contains(&"x-user-role".to_string()));
    assert!(removed.contains(&"authorization".to_string()));
    let metadata = response.dynamic_metadata.expect("identity in dynamic metadata");
    assert!(metadata.fields.contains_key("user_id"));
    h.stop().await;
}

/// A backend that reads `_` as `-` (CGI's `HTTP_X_USER_ID`, and frameworks that fold names)
/// must not find the client's `x_user_id` beside ours: every spelling of a header we set or
/// remove is removed, on a verified identity, an API key and a public route alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_underscore_spelling_of_an_identity_header_is_removed() {
    let mut h = Harness::start().await;
    let token = format!("Bearer {}", h.token(json!({})));
    let smuggled = [("X_User_ID", "victim"), ("x-user_id", "victim"), ("x_org_id", "evil"), ("my_header", "kept")];
    for credential in [("authorization", token.as_str()), ("x-api-key", API_KEY)] {
        let sent: Vec<(&str, &str)> = [credential].into_iter().chain(smuggled).collect();
        // Twice: the second answer reuses the identity's encoded part, and still removes them.
        for _ in 0..2 {
            let (headers, removed) = allowed_headers(&h.check("GET", "/orders/1", &sent).await);
            assert!(headers.contains_key("x-user-id"), "{}", credential.0);
            for spelling in ["x_user_id", "x-user_id", "x_org_id"] {
                assert!(removed.contains(&spelling.to_string()), "{}: {spelling} in {removed:?}", credential.0);
            }
            assert!(!removed.contains(&"my_header".to_string()), "not one of ours");
            assert!(!removed.contains(&"x-user-id".to_string()), "ours is set, never removed");
        }
    }
    let (headers, removed) = allowed_headers(&h.check("GET", "/public/page", &smuggled).await);
    assert!(headers.is_empty());
    for name in ["x-user-id", "x_user_id", "x-user_id", "x_org_id"] {
        assert!(removed.contains(&name.to_string()), "{name} in {removed:?}");
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uniform_json_errors() {
    let mut h = Harness::start().await;
    let response = h.check("GET", "/orders/7", &[]).await;
    assert_eq!(status(&response), UNAUTHENTICATED);
    let (http_status, headers, body) = denial(&response);
    assert_eq!((http_status, headers["www-authenticate"].as_str()), (401, "Bearer"));
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(body["error"]["code"], "UNAUTHORIZED");
    assert_eq!(body["error"]["request_id"], "req-42");
    assert_eq!(body["metadata"]["success"], false);
    assert!(body["metadata"]["timestamp"].as_str().unwrap().ends_with('Z'));

    let expired = h.token(json!({"exp": NOW - 3600}));
    let (code, headers, body) =
        denial(&h.check("GET", "/orders/7", &[("authorization", &format!("Bearer {expired}"))]).await);
    assert_eq!((code, body["error"]["code"].as_str()), (401, Some("EXPIRED_TOKEN")));
    assert!(headers["www-authenticate"].starts_with(r#"Bearer error="invalid_token""#));

    let narrow = h.token(json!({"scope": "profile"}));
    let response = h.check("GET", "/orders/7", &[("authorization", &format!("Bearer {narrow}"))]).await;
    assert_eq!(status(&response), PERMISSION_DENIED);
    let (code, headers, body) = denial(&response);
    assert_eq!((code, body["error"]["code"].as_str()), (403, Some("INSUFFICIENT_SCOPE")));
    assert!(headers["www-authenticate"].contains(r#"error="insufficient_scope""#));

    let user = h.token(json!({"https://example.com/roles": ["viewer"]}));
    let (code, _, body) = denial(&h.check("GET", "/admin/x", &[("authorization", &format!("Bearer {user}"))]).await);
    assert_eq!((code, body["error"]["code"].as_str()), (403, Some("FORBIDDEN")));
    let admin = h.token(json!({"https://example.com/roles": ["viewer", "admin"]}));
    assert_eq!(status(&h.check("GET", "/admin/x", &[("authorization", &format!("Bearer {admin}"))]).await), 0);

    let (code, _, body) = denial(&h.check("GET", "/nowhere", &[]).await);
    assert_eq!((code, body["error"]["code"].as_str()), (403, Some("FORBIDDEN")));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_public_paths_and_other_token_locations() {
    let mut h = Harness::start().await;
    let (headers, removed) = allowed_headers(&h.check("GET", "/orders/1", &[("x-api-key", API_KEY)]).await);
    assert_eq!((headers["x-user-id"].as_str(), headers["x-org-id"].as_str()), ("billing", "acme"));
    assert!(removed.contains(&"x-api-key".to_string()));
    let (code, _, body) = denial(&h.check("GET", "/orders/1", &[("x-api-key", "ghk_guessed")]).await);
    assert_eq!((code, body["error"]["message"].as_str()), (401, Some("invalid API key")));

    let (headers, removed) = allowed_headers(&h.check("POST", "/public/form", &[("x-user-id", "spoof")]).await);
    assert!(headers.is_empty() && removed.contains(&"x-user-id".to_string()));

    let token = h.token(json!({}));
    assert_eq!(status(&h.check("GET", &format!("/orders/1?access_token={token}"), &[]).await), 0);
    assert_eq!(status(&h.check("GET", "/orders/1", &[("cookie", &format!("a=1; token={token}"))]).await), 0);

    let job = SigningKey::hmac(Algorithm::HS256, HMAC_SECRET.as_bytes())
        .sign(&json!({"iss": "jobs", "sub": "nightly", "exp": NOW + 60}));
    let (headers, _) = allowed_headers(&h.check("POST", "/jobs/run", &[("x-job-token", &job)]).await);
    assert_eq!(headers["x-user-id"], "nightly");
    // A corp token is not accepted where only the jobs provider is.
    assert_eq!(status(&h.check("POST", "/jobs/run", &[("x-job-token", &token)]).await), UNAUTHENTICATED);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_algorithm_family() {
    let rs = SigningKey::rsa("rs", Algorithm::RS256, RSA_A);
    let ps = SigningKey::rsa("ps", Algorithm::PS256, RSA_B);
    let es256 = SigningKey::ec("es256", Algorithm::ES256);
    let es384 = SigningKey::ec("es384", Algorithm::ES384);
    let ed = SigningKey::ed25519("ed");
    let idp = JwksServer::start(&[&rs, &ps, &es256, &es384, &ed]).await;
    let mut h = Harness::start_with(idp, SigningKey::rsa("rs", Algorithm::RS256, RSA_A), "").await;
    for key in [&rs, &ps, &es256, &es384, &ed] {
        let token = key.sign(&h.claims(json!({})));
        assert_eq!(
            status(&h.check("GET", "/orders/1", &[("authorization", &format!("Bearer {token}"))]).await),
            0,
            "{:?}",
            key.alg
        );
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacks_are_refused() {
    let mut h = Harness::start().await;
    let claims = h.claims(json!({}));
    let bearer = |t: &str| format!("Bearer {t}");
    let refused = |r: &envoy_types::pb::envoy::service::auth::v3::CheckResponse| status(r) == UNAUTHENTICATED;

    let none = forged(&json!({"alg": "none", "typ": "JWT"}), &claims, b"");
    assert!(refused(&h.check("GET", "/orders/1", &[("authorization", &bearer(&none))]).await), "alg none");

    // HS256 signed with the RSA public key as the secret, naming the real key id.
    let public = h.key.jwk()["n"].as_str().unwrap().as_bytes().to_vec();
    let mut attacker = SigningKey::hmac(Algorithm::HS256, &public);
    attacker.kid = "key-a".into();
    assert!(
        refused(&h.check("GET", "/orders/1", &[("authorization", &bearer(&attacker.sign(&claims)))]).await),
        "confusion"
    );

    let other = SigningKey::rsa("key-a", Algorithm::RS256, RSA_B);
    assert!(
        refused(&h.check("GET", "/orders/1", &[("authorization", &bearer(&other.sign(&claims)))]).await),
        "bad signature"
    );
    for patch in [json!({"nbf": NOW + 3600}), json!({"iss": "https://evil.example"}), json!({"aud": "another-api"})] {
        let token = h.token(patch.clone());
        assert!(refused(&h.check("GET", "/orders/1", &[("authorization", &bearer(&token))]).await), "{patch}");
    }
    let huge = format!("{}.{}.{}", "a".repeat(10_000), "b".repeat(10_000), "c");
    let (_, _, body) = denial(&h.check("GET", "/orders/1", &[("authorization", &bearer(&huge))]).await);
    assert_eq!(body["error"]["message"], "malformed token: token too large");
    for garbage in ["abc", "a.b.c", "....", "Zm9v.YmFy.YmF6"] {
        assert!(refused(&h.check("GET", "/orders/1", &[("authorization", &bearer(garbage))]).await), "{garbage}");
    }
    let metrics = h.metrics().await;
    assert!(metrics.contains(r#"ext_authz_decisions_total{decision="deny",reason="malformed_token"}"#), "{metrics}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_refetches_once_and_a_kid_flood_does_not_flood_the_idp() {
    let mut h = Harness::start().await;
    let first = h.idp.hits();
    assert_eq!(first, 1, "one fetch at start");
    // The provider rotates to a new key; its tokens name a kid we have not seen.
    let rotated = SigningKey::rsa("key-b", Algorithm::RS256, RSA_B);
    h.idp.publish(&[&h.key, &rotated]);
    let token = rotated.sign(&h.claims(json!({})));
    assert_eq!(status(&h.check("GET", "/orders/1", &[("authorization", &format!("Bearer {token}"))]).await), 0);
    assert_eq!(h.idp.hits(), 2, "one refetch for the unknown kid");
    // Now a flood of made-up kids: at most one fetch per unknown_kid_min_interval (10 s).
    for i in 0..50 {
        let fake = SigningKey::rsa(&format!("made-up-{i}"), Algorithm::RS256, RSA_B).sign(&h.claims(json!({})));
        let response = h.check("GET", "/orders/1", &[("authorization", &format!("Bearer {fake}"))]).await;
        assert_eq!(status(&response), UNAUTHENTICATED);
    }
    assert_eq!(h.idp.hits(), 2, "the flood caused no fetch (the last one was moments ago)");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_header_maps_are_understood() {
    use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
    let mut h = Harness::start().await;
    let mut request = check_request("GET", "/orders/1", &[]);
    let http = request.attributes.as_mut().unwrap().request.as_mut().unwrap().http.as_mut().unwrap();
    http.header_map = Some(HeaderMap {
        headers: vec![HeaderValue {
            key: "x-api-key".into(),
            raw_value: API_KEY.as_bytes().to_vec(),
            ..Default::default()
        }],
    });
    let response = h.grpc.check(request).await.unwrap().into_inner();
    assert_eq!(status(&response), 0);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_checked_again_gets_the_same_answer_from_its_reused_part() {
    let mut h = Harness::start().await;
    let token = format!("Bearer {}", h.token(json!({})));
    for credential in [("x-api-key", API_KEY), ("authorization", token.as_str())] {
        // The first check builds and encodes the identity's part; the next ones reuse it.
        let first = h.check("GET", "/orders/1", &[credential]).await;
        for _ in 0..3 {
            assert_eq!(h.check("GET", "/orders/1", &[credential]).await, first, "{}", credential.0);
        }
        let (headers, removed) = allowed_headers(&first);
        assert!(headers.contains_key("x-user-id") && !removed.contains(&"x-user-id".to_string()));
        assert!(removed.contains(&credential.0.to_string()), "the credential is still removed");
        assert!(first.dynamic_metadata.expect("metadata").fields.contains_key("user_id"));
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_the_service_does_not_have_is_unimplemented() {
    use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse};
    let h = Harness::start().await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", h.running().grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static("/envoy.service.auth.v3.Authorization/Other");
    let codec = tonic_prost::ProstCodec::<CheckRequest, CheckResponse>::default();
    let answer = grpc.unary(tonic::Request::new(CheckRequest::default()), path, codec).await;
    assert_eq!(answer.unwrap_err().code(), tonic::Code::Unimplemented);
    h.stop().await;
}

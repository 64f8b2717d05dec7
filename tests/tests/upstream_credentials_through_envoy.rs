//! Two-layer auth through a real Envoy: the client authenticates with its own API key or token
//! (layer 1), ext-authz sets the provider's credential upstream (layer 2) — a key from a file,
//! or a client-credentials token from the real OpenID Provider. The backend gets the injected
//! credential and never the client's; the client gets neither back; a rotated key file takes
//! effect without a restart.

use std::time::Duration;

use base64::Engine as _;
use e2e::stack::{API_KEY, PARTNER_RESOURCE, SERVICE_CLIENT_ID, VENDOR_KEY};
use e2e::{Stack, StackOptions};
use serde_json::{json, Value};

/// The headers of the last request that reached the backend on `path`.
fn seen_upstream(stack: &Stack, path: &str) -> Value {
    let seen = stack.upstream.all();
    let last =
        seen.iter().rev().find(|r| r["path"] == path).unwrap_or_else(|| panic!("{path} never reached the backend"));
    last["headers"].clone()
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backend_gets_the_injected_credential_and_the_client_never_sees_it() {
    let stack =
        Stack::start(StackOptions { upstream_credentials: true, memory_backend: true, ..StackOptions::default() })
            .await;
    let issuer = stack.provider.as_ref().expect("the OpenID Provider").issuer();

    // A key from a file, in the very header the client's own API key came in.
    let reply = stack.get("/third-party/vendor/models", &[("x-api-key", API_KEY)]).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let upstream = seen_upstream(&stack, "/third-party/vendor/models");
    assert_eq!(upstream["x-api-key"], json!([VENDOR_KEY]), "the vendor's key, not the client's");
    assert_eq!(upstream["x-user-id"], json!(["demo-client"]), "the client's identity still goes up");
    let visible = format!("{:?}{}", reply.headers, reply.body);
    assert!(!visible.contains(VENDOR_KEY), "the client never sees the key: {visible}");

    // A client-credentials token from the OpenID Provider, over a client-sent Authorization.
    let reply = stack
        .get("/third-party/partner/orders", &[("x-api-key", API_KEY), ("authorization", "Bearer forged-by-client")])
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let upstream = seen_upstream(&stack, "/third-party/partner/orders");
    let authorization = upstream["authorization"].as_array().expect("one authorization header").clone();
    assert_eq!(authorization.len(), 1, "only ours: {authorization:?}");
    let token = authorization[0].as_str().unwrap().strip_prefix("Bearer ").expect("a bearer token").to_string();
    let token_claims = claims(&token);
    assert_eq!(token_claims["iss"], json!(issuer), "{token_claims}");
    assert_eq!(token_claims["client_id"], json!(SERVICE_CLIENT_ID));
    assert_eq!(token_claims["aud"], json!(PARTNER_RESOURCE));
    assert!(token_claims["scope"].as_str().unwrap_or_default().contains("orders.read"), "{token_claims}");
    assert!(!format!("{:?}{}", reply.headers, reply.body).contains(&token), "the client never sees the token");

    // A user's own token is its credential: removed, and replaced by ours (the same cached one).
    let user = stack.token(json!({"sub": "user-upstream"}));
    let reply = stack.get("/third-party/partner/orders", &[("authorization", &format!("Bearer {user}"))]).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let upstream = seen_upstream(&stack, "/third-party/partner/orders");
    assert_eq!(upstream["authorization"], json!([format!("Bearer {token}")]));
    assert_eq!(upstream["x-user-id"], json!(["user-upstream"]));

    // The key file is rotated (as a Secret update lands): taken up without a restart.
    let file = stack.dir().join("vendor.key");
    std::fs::write(file.with_extension("tmp"), "vendor-key-e2e-0002\n").unwrap();
    std::fs::rename(file.with_extension("tmp"), &file).unwrap();
    let authorizer = stack.ext_authz.as_ref().expect("running").authorizer.clone();
    let reloaded = "ext_authz_reloads_total{result=\"ok\",what=\"upstream_credentials\"} 1";
    shared::testing::eventually("the rotated key is read", Duration::from_secs(10), || {
        std::future::ready(authorizer.metrics.registry.render().contains(reloaded))
    })
    .await;
    let reply = stack.get("/third-party/vendor/models", &[("authorization", &format!("Bearer {user}"))]).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(seen_upstream(&stack, "/third-party/vendor/models")["x-api-key"], json!(["vendor-key-e2e-0002"]));

    // Without credentials, layer 1 refuses before anything is injected.
    let reply = stack.get("/third-party/partner/orders", &[]).await;
    assert_eq!(reply.status, 401);
    stack.shutdown().await;
}

/// A token endpoint that accepts connections and never answers. ext-authz answers 503 within
/// its default token timeout (1 s, below Envoy's 2 s), so the gateway never has to decide
/// alone; and where a wait does outlast Envoy's timeout with `failure_mode_allow: true`, the
/// shipped config strips the client's credentials and forged identity before the request goes
/// on unchecked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_token_endpoint_never_lets_the_clients_credentials_through() {
    // Never accepted: the kernel completes connections into the backlog, nothing reads them.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let stack = Stack::start(StackOptions {
        upstream_credentials: true,
        memory_backend: true,
        ext_authz_fail_open: true,
        hung_token_endpoint: Some(hung.local_addr().unwrap()),
        ..StackOptions::default()
    })
    .await;
    let client = [
        ("x-api-key", API_KEY),
        ("authorization", "Bearer the-clients-own-token"),
        ("cookie", "session=the-clients-session"),
        ("x-user-id", "forged-admin"),
    ];

    // The default token timeout: our 503, before Envoy's timeout; nothing reaches the backend.
    let reply = stack.get("/third-party/stalled/orders", &client).await;
    assert_eq!(reply.status, 503, "{reply:?}");
    assert!(reply.body.contains("UNAVAILABLE"), "{reply:?}");
    assert!(stack.upstream.all().iter().all(|r| r["path"] != "/third-party/stalled/orders"), "never upstream");

    // A token timeout past Envoy's: Envoy gives up and, failing open, lets the request on —
    // without any credential or identity of the client's. The token was asked for at start and
    // that failed: past the pause after a failure (ext-authz's clock moved on, not waited), the
    // request asks again and waits.
    let authorizer = stack.ext_authz.as_ref().expect("running").authorizer.clone();
    let failed = r#"ext_authz_upstream_token_requests_total{credential="hung",result="error"} 1"#;
    shared::testing::eventually("the start's token request failed", Duration::from_secs(10), || {
        std::future::ready(authorizer.metrics.registry.render().contains(failed))
    })
    .await;
    stack.clock.advance(60);
    let reply = stack.get("/third-party/hung/orders", &client).await;
    assert_eq!(reply.status, 200, "failed open: {reply:?}");
    let upstream = seen_upstream(&stack, "/third-party/hung/orders");
    assert_eq!(upstream["x-envoy-auth-failure-mode-allowed"], json!(["true"]), "{upstream}");
    for header in ["x-api-key", "authorization", "cookie", "x-user-id"] {
        assert!(upstream.get(header).is_none(), "{header} reached the backend: {upstream}");
    }

    // The mark is Envoy's alone: a client that sends it on a request ext-authz answers neither
    // strips what ext-authz set nor tells the backend the check was skipped.
    let marked = [("x-api-key", API_KEY), ("x-envoy-auth-failure-mode-allowed", "true")];
    let reply = stack.get("/third-party/vendor/models", &marked).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let upstream = seen_upstream(&stack, "/third-party/vendor/models");
    assert_eq!(upstream["x-api-key"], json!([VENDOR_KEY]), "{upstream}");
    assert_eq!(upstream["x-user-id"], json!(["demo-client"]), "{upstream}");
    assert!(upstream.get("x-envoy-auth-failure-mode-allowed").is_none(), "{upstream}");
    stack.shutdown().await;
    drop(hung);
}

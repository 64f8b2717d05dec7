//! Requests through a real Envoy: authentication, identity headers, per-client limits and the
//! failure behaviour, checked by what the client and the demo backend see.

use e2e::stack::API_KEY;

/// Envoy's X-RateLimit-Reset for an hourly window, read at `reply` time (±2 s for the clock
/// moving between the request and this check).
fn assert_hourly_reset(reply: &e2e::http::Reply) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let expected = 3600 - now % 3600;
    let got: u64 = reply.header("x-ratelimit-reset").expect("x-ratelimit-reset").parse().unwrap();
    assert!(got.abs_diff(expected) <= 2, "reset {got}, expected {expected}");
}
use e2e::{Stack, StackOptions};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_scenarios() {
    let stack = Stack::start(StackOptions::default()).await;

    let missing = stack.get("/orders/1", &[]).await;
    assert_eq!(missing.status, 401, "{missing:?}");
    assert_eq!(missing.json()["error"]["code"], "UNAUTHORIZED");
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));

    let token = stack.token(json!({"email": "u1@example.com"}));
    let ok = stack
        .get(
            "/orders/1?x=1",
            &[("authorization", &format!("Bearer {token}")), ("x-user-id", "admin"), ("x-user-role", "root")],
        )
        .await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let seen = ok.json();
    assert_eq!(seen["path"], "/orders/1?x=1");
    assert_eq!(seen["headers"]["x-user-id"], json!(["user-1"]), "exactly one x-user-id, ours");
    assert_eq!(seen["headers"]["x-org-id"], json!(["org-1"]));
    assert_eq!(seen["headers"]["x-user-email"], json!(["u1@example.com"]));
    assert!(seen["headers"].get("x-user-role").is_none(), "a client-sent identity header never survives");
    assert!(seen["headers"].get("authorization").is_none(), "the token is stripped");

    let key = stack.get("/orders/2", &[("x-api-key", API_KEY)]).await;
    assert_eq!(key.status, 200);
    assert_eq!(key.json()["headers"]["x-user-id"], json!(["demo-client"]));

    let narrow = stack.token(json!({"scope": "profile"}));
    let forbidden = stack.get("/orders/3", &[("authorization", &format!("Bearer {narrow}"))]).await;
    assert_eq!((forbidden.status, forbidden.json()["error"]["code"].as_str()), (403, Some("INSUFFICIENT_SCOPE")));

    let public = stack.get("/public/page", &[("x-user-id", "spoof")]).await;
    assert_eq!(public.status, 200);
    assert!(public.json()["headers"].get("x-user-id").is_none());
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_api_key_limit_with_exact_headers() {
    let stack = Stack::start(StackOptions::default()).await;
    for remaining in [2, 1, 0] {
        let r = stack.get("/orders/1", &[("x-api-key", API_KEY)]).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert!(r.json()["headers"].get("x-api-key").is_none(), "the key never reaches the backend");
        // Envoy's draft-03 header: the tightest limit, then every limit that applied (the API
        // client 3, keyed on the client id in ext-authz's metadata; the x-user-id ext-authz
        // injected 4; the source address 20).
        assert_eq!(r.header("x-ratelimit-limit"), Some("3, 3;w=3600, 4;w=3600, 20;w=3600"));
        assert_eq!(r.header("x-ratelimit-remaining"), Some(remaining.to_string().as_str()));
        assert_hourly_reset(&r);
    }
    let limited = stack.get("/orders/1", &[("x-api-key", API_KEY)]).await;
    assert_eq!(limited.status, 429, "{limited:?}");
    assert_eq!(limited.header("x-ratelimit-remaining"), Some("0"));
    // The service's Retry-After reaches the client on Envoy's 429: the refusing limit's reset.
    let retry_after: u64 = limited.header("retry-after").expect("retry-after on the 429").parse().unwrap();
    assert_eq!(Some(retry_after.to_string().as_str()), limited.header("x-ratelimit-reset"), "{limited:?}");
    assert_uniform_error(&limited, "RATE_LIMITED");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_user_limit_keys_on_the_header_ext_authz_injected() {
    let stack = Stack::start(StackOptions::default()).await;
    let alice = stack.token(json!({"sub": "alice"}));
    let bob = stack.token(json!({"sub": "bob"}));
    for remaining in [3, 2, 1, 0] {
        let r = stack.get("/orders/1", &[("authorization", &format!("Bearer {alice}"))]).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-ratelimit-limit"), Some("4, 4;w=3600, 20;w=3600"));
        assert_eq!(r.header("x-ratelimit-remaining"), Some(remaining.to_string().as_str()));
        assert_hourly_reset(&r);
    }
    assert_eq!(stack.get("/orders/1", &[("authorization", &format!("Bearer {alice}"))]).await.status, 429);
    // A client cannot dodge its limit by sending someone else's x-user-id: ext-authz overwrites it.
    let dodge = stack.get("/orders/1", &[("authorization", &format!("Bearer {alice}")), ("x-user-id", "carol")]).await;
    assert_eq!(dodge.status, 429);
    assert_eq!(stack.get("/orders/1", &[("authorization", &format!("Bearer {bob}"))]).await.status, 200);
    stack.shutdown().await;
}

/// Envoy's own answers have the JSON shape of ext-authz's denials, with the request id Envoy
/// gave the request (at the edge it replaces a client's own `x-request-id`).
fn assert_uniform_error(reply: &e2e::http::Reply, code: &str) {
    assert_eq!(reply.header("content-type"), Some("application/json"), "{reply:?}");
    let body = reply.json();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["request_id"].as_str().is_some_and(|id| id.len() >= 16), "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert_eq!(body["metadata"]["success"], false, "{body}");
    let timestamp = body["metadata"]["timestamp"].as_str().unwrap();
    assert!(timestamp.len() == 24 && timestamp.ends_with('Z') && timestamp.as_bytes()[10] == b'T', "{timestamp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ext_authz_down_fails_closed() {
    let mut stack = Stack::start(StackOptions::default()).await;
    assert_eq!(stack.get("/orders/1", &[("x-api-key", API_KEY)]).await.status, 200);
    stack.stop_ext_authz().await;
    let r = stack.get("/orders/1", &[("x-api-key", API_KEY)]).await;
    assert_eq!(r.status, 503, "failure_mode_allow: false and status_on_error 503 when the auth service is gone");
    assert!(!r.body.contains("\"headers\""), "the backend was not reached");
    assert_uniform_error(&r, "UNAVAILABLE");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_source_address_limit() {
    let stack = Stack::start(StackOptions::default()).await;
    for remaining in (0..20).rev() {
        let r = stack.get("/public/page", &[]).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-ratelimit-limit"), Some("20, 20;w=3600"));
        assert_eq!(r.header("x-ratelimit-remaining"), Some(remaining.to_string().as_str()));
        assert_hourly_reset(&r);
    }
    assert_eq!(stack.get("/public/page", &[]).await.status, 429);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ratelimit_instances_on_one_redis_hold_one_limit() {
    let stack = Stack::start(StackOptions::default()).await;
    let env = stack.ratelimit_env();
    let settings = ratelimit::settings::Settings::from_env(&env).unwrap();
    let second = ratelimit::start(settings, ratelimit::service::system_clock()).await.unwrap();
    let (_second_envoy, second_port) = stack.second_envoy(second.grpc_addr.unwrap().port());
    let mut statuses = Vec::new();
    for i in 0..6 {
        let port = if i % 2 == 0 { stack.port } else { second_port };
        statuses.push(e2e::http::send(port, "GET", "/orders/1", &[("x-api-key", API_KEY)]).await.status);
    }
    assert_eq!(statuses, vec![200, 200, 200, 429, 429, 429], "3 per hour in total across both");
    second.shutdown().await;
    stack.shutdown().await;
}

/// Stops Redis, checks the answer, brings Redis back and checks that limits count again.
async fn redis_outage(options: StackOptions, expected: u16) {
    let mut stack = Stack::start(options).await;
    assert_eq!(stack.get("/orders/1", &[("x-api-key", API_KEY)]).await.status, 200);
    stack.redis.as_mut().expect("a Redis").stop();
    let during = stack.get("/orders/1", &[("x-api-key", API_KEY)]).await;
    assert_eq!(during.status, expected, "{during:?}");
    if expected == 200 {
        assert_eq!(during.json()["headers"]["x-user-id"], json!(["demo-client"]), "auth still ran");
    }
    stack.redis.as_mut().expect("a Redis").resume();
    let recovered = shared::testing::eventually_some(
        "traffic rate limited again once Redis returns",
        std::time::Duration::from_secs(5),
        async || {
            Some(stack.get("/orders/1", &[("x-api-key", API_KEY)]).await)
                .filter(|r| r.header("x-ratelimit-remaining").is_some())
        },
    )
    .await;
    assert_eq!(recovered.status, 200);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_envoy_fails_open_by_default() {
    redis_outage(StackOptions::default(), 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_envoy_failure_mode_deny() {
    redis_outage(StackOptions { failure_mode_deny: true, ..StackOptions::default() }, 500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_service_failure_mode_deny() {
    let options =
        StackOptions { ratelimit_env: vec![("REDIS_FAILURE_MODE", "deny".into())], ..StackOptions::default() };
    redis_outage(options, 429).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_service_failure_mode_allow_even_with_envoy_failing_closed() {
    let options = StackOptions {
        ratelimit_env: vec![("REDIS_FAILURE_MODE", "allow".into())],
        failure_mode_deny: true,
        ..StackOptions::default()
    };
    redis_outage(options, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_scenarios_in_envoys_http_ext_authz_mode() {
    let stack =
        Stack::start(StackOptions { envoy_config: Some("envoy-http-authz.yaml"), ..StackOptions::default() }).await;
    let missing = stack.get("/orders/1", &[]).await;
    assert_eq!(missing.status, 401, "{missing:?}");
    assert_eq!(missing.json()["error"]["code"], "UNAUTHORIZED");
    let token = stack.token(json!({}));
    let ok = stack
        .get(
            "/orders/1",
            &[("authorization", &format!("Bearer {token}")), ("x-user-id", "admin"), ("x-user-role", "root")],
        )
        .await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let seen = ok.json();
    assert_eq!(seen["headers"]["x-user-id"], json!(["user-1"]));
    assert!(seen["headers"].get("x-user-role").is_none(), "removed through x-envoy-auth-headers-to-remove");
    assert!(seen["headers"].get("authorization").is_none());
    let key = stack.get("/orders/2", &[("x-api-key", API_KEY)]).await;
    assert_eq!((key.status, key.json()["headers"]["x-user-id"].clone()), (200, json!(["demo-client"])));
    let narrow = stack.token(json!({"scope": "profile"}));
    let forbidden = stack.get("/orders/3", &[("authorization", &format!("Bearer {narrow}"))]).await;
    assert_eq!((forbidden.status, forbidden.json()["error"]["code"].as_str()), (403, Some("INSUFFICIENT_SCOPE")));
    assert_eq!(stack.get("/public/x", &[]).await.status, 200);
    stack.shutdown().await;
}

/// What a client controls in the request line and headers gets it nothing: the per-address
/// limit counts the TCP peer whatever X-Forwarded-For says, and a dot-segment path cannot
/// borrow the public rule to reach a protected route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_forwarded_for_and_dot_segments_get_nowhere() {
    let stack = Stack::start(StackOptions::default()).await;
    for path in ["/public/../orders/1", "/public/%2e%2e/orders/1", "/public/./../orders/1"] {
        let r = stack.get(path, &[]).await;
        assert_eq!(r.status, 401, "{path}: {r:?}");
    }
    // Envoy resolves this one as RFC 3986 does (the `..` takes the empty segment): the backend
    // is asked for the public path that was authorized, not for /orders/1.
    let r = stack.get("/public//../orders/1", &[]).await;
    assert_eq!((r.status, r.json()["path"].as_str()), (200, Some("/public/orders/1")), "{r:?}");
    for path in ["/public/..%2forders/1", "/public/%2F..%2Forders/1"] {
        let r = stack.get(path, &[]).await;
        assert_eq!(r.status, 400, "{path}: {r:?}");
    }
    // The per-address limit is 20 an hour (one used above); each request claims another address.
    for i in 1..20 {
        let r = stack.get("/public/page", &[("x-forwarded-for", &format!("203.0.113.{i}"))]).await;
        assert_eq!(r.status, 200, "request {i}: {r:?}");
        assert_eq!(r.json()["path"], "/public/page");
    }
    let limited = stack.get("/public/page", &[("x-forwarded-for", "198.51.100.7")]).await;
    assert_eq!(limited.status, 429, "{limited:?}");
    assert_uniform_error(&limited, "RATE_LIMITED");
    stack.shutdown().await;
}

//! Path parameters (`;`) through the real Envoy, in both ext_authz modes: the Tomcat and Jetty
//! case (`..;` resolved as `..`, so `/public/..;/orders/1` is `/orders/1` to them) and the
//! Spring case (`;jsessionid=` and matrix parameters stripped) can never use the public prefix
//! to reach a protected path, and no path with a `;` reaches the backend.
//!
//! Two kinds of path, as the shipped Envoy treats them (see docs/ext-authz.md, "Paths"):
//! Envoy's `normalize_path` resolves a literal `..;x` or `.;x` segment itself (dropping the
//! parameter), so ext-authz decides on the path the backend is then given; every other `;`
//! (the encoded dots `%2e%2e;`, an encoded `%3B`, `;jsessionid=`) reaches ext-authz, which
//! refuses it with 400.

use e2e::http::Reply;
use e2e::{Stack, StackOptions};
use serde_json::json;

/// Forwarded by Envoy with their `;` (or `%3B`): refused by ext-authz before routing.
const REFUSED: [&str; 12] = [
    // Tomcat, Jetty 9: `..` once the parameter is cut off; Envoy decodes the dots, not the `;`.
    "/public/%2e%2e;/orders/1",
    "/public/%2E%2e;/orders/1",
    "/public/%2e%2e;x=y/orders/1",
    "/public/%2e;/orders/1",
    "/public/a/%2e%2e;/%2e%2e;/orders/1",
    // An encoded `;`: a parameter to a filter that decodes before another strips.
    "/public/..%3b/orders/1",
    "/public/%2E%2e%3B/orders/1",
    // Spring: a session id or matrix parameter, stripped by some servers and not others.
    "/public/page;jsessionid=ABC",
    "/public;x/page",
    // A segment that is only a parameter, and a trailing one.
    "/public/;/orders/1",
    "/public/page;",
    "/orders/1;jsessionid=ABC",
];

/// Resolved by Envoy as Tomcat would (`..;x` → `..`): ext-authz sees `/orders/1`, which
/// needs a credential.
const RESOLVED_BY_ENVOY: [&str; 3] = ["/public/..;/orders/1", "/public/..;x=y/orders/1", "/public/.;/../orders/1"];

/// ext-authz's uniform JSON error for a refused path, whichever mode carried it.
fn assert_refused(reply: &Reply, path: &str) {
    assert_eq!(reply.status, 400, "{path}: {reply:?}");
    assert_eq!(reply.header("content-type"), Some("application/json"), "{path}: {reply:?}");
    let body = reply.json();
    assert_eq!(body["error"]["code"], "BAD_REQUEST", "{path}: {body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("';'")), "{path}: {body}");
    assert!(body["error"]["request_id"].as_str().is_some_and(|id| !id.is_empty()), "{path}: {body}");
    assert_eq!(body["metadata"]["success"], false, "{path}: {body}");
}

/// Without a credential: a `;` path is refused, and one Envoy resolves lands on the protected
/// rule (each test then reads what reached the backend).
async fn no_parameter_borrows_the_public_rule(stack: &Stack) {
    for path in REFUSED {
        assert_refused(&stack.get(path, &[]).await, path);
    }
    for path in RESOLVED_BY_ENVOY {
        let r = stack.get(path, &[]).await;
        assert_eq!((r.status, r.json()["error"]["code"].as_str()), (401, Some("UNAUTHORIZED")), "{path}: {r:?}");
    }
}

/// No request with a parameter, written or encoded, reached the backend.
fn assert_no_parameter_reached_the_backend(stack: &Stack) {
    for seen in stack.upstream.all() {
        let path = seen["path"].as_str().unwrap_or_default().to_ascii_lowercase();
        let path = path.split('?').next().unwrap_or_default();
        assert!(!path.contains(';') && !path.contains("%3b"), "reached the backend: {seen}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_parameters_never_reach_a_protected_path() {
    let stack = Stack::start(StackOptions::default()).await;
    no_parameter_borrows_the_public_rule(&stack).await;

    // With a credential the refusal stands: a backend that strips `;jsessionid=` would serve
    // /orders/1, one that does not would see another resource; neither is asked.
    let token = stack.token(json!({"sub": "path-user"}));
    let bearer = format!("Bearer {token}");
    assert_refused(&stack.get("/orders/1;jsessionid=ABC", &[("authorization", &bearer)]).await, "with a token");
    // What Envoy resolves is what was authorized and what the backend is given.
    let resolved = stack.get("/orders/x/..;/1", &[("authorization", &bearer)]).await;
    assert_eq!((resolved.status, resolved.json()["path"].as_str()), (200, Some("/orders/1")), "{resolved:?}");
    // `..` takes the parameter-only segment with it before anyone routes: still public.
    let public = stack.get("/public/;x/../page", &[]).await;
    assert_eq!((public.status, public.json()["path"].as_str()), (200, Some("/public/page")), "{public:?}");

    assert_eq!(stack.upstream.all().len(), 2, "only the two allowed requests reached the backend");
    assert_no_parameter_reached_the_backend(&stack);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_parameters_never_reach_a_protected_path_in_http_mode() {
    let stack =
        Stack::start(StackOptions { envoy_config: Some("envoy-http-authz.yaml"), ..StackOptions::default() }).await;
    no_parameter_borrows_the_public_rule(&stack).await;
    assert!(stack.upstream.all().is_empty(), "{:?}", stack.upstream.all());
    stack.shutdown().await;
}

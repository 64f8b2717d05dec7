//! Envoy calls ext-authz over mutual TLS: its client certificate carries a SPIFFE ID, and
//! ext-authz (`server.grpc_tls` with `allowed_clients`) lets only the gateway's workload in. A
//! gateway with another identity gets no decision: Envoy answers 503 with its JSON body.

use e2e::stack::{API_KEY, GATEWAY_SPIFFE_ID};
use e2e::{Stack, StackOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_reaches_ext_authz_over_mutual_tls_only_with_an_allowed_identity() {
    let options =
        StackOptions { envoy_spiffe_id: Some(GATEWAY_SPIFFE_ID), memory_backend: true, ..StackOptions::default() };
    let stack = Stack::start(options).await;
    let allowed = stack.get("/orders/1", &[("x-api-key", API_KEY)]).await;
    assert_eq!(allowed.status, 200, "{allowed:?}");
    assert_eq!(allowed.json()["headers"]["x-user-id"], serde_json::json!(["demo-client"]), "decided by ext-authz");
    let denied = stack.get("/orders/1", &[]).await;
    assert_eq!(denied.status, 401, "ext-authz's own denial, over the same connection: {denied:?}");
    stack.shutdown().await;

    let intruder = StackOptions {
        envoy_spiffe_id: Some("spiffe://cluster.local/ns/other/sa/envoy"),
        memory_backend: true,
        ..StackOptions::default()
    };
    let stack = Stack::start(intruder).await;
    let refused = stack.get("/orders/1", &[("x-api-key", API_KEY)]).await;
    assert_eq!(refused.status, 503, "no TLS session, no decision: {refused:?}");
    assert_eq!(refused.json()["error"]["code"], "UNAVAILABLE");
    stack.shutdown().await;
}

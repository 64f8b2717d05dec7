//! Workload identity through a real Envoy: its listener takes mutual TLS, clients present
//! certificates with SPIFFE URI SANs (made here), and ext-authz's `internal` route allows one
//! workload only. Envoy passes `x-forwarded-client-cert` on as the client sent it, so a forged
//! one reaches ext-authz — which reads the identity from Envoy's own attributes instead.

use e2e::stack::{API_KEY, WORKLOADS};
use e2e::{Stack, StackOptions};
use serde_json::{json, Value};

/// An HTTPS client presenting workload `name`'s certificate (or none).
fn client(stack: &Stack, name: Option<&str>) -> reqwest::Client {
    let read = |file: String| std::fs::read(stack.dir().join(file)).unwrap();
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(&read("edge-ca.pem".into())).unwrap())
        .resolve("localhost", ([127, 0, 0, 1], stack.port).into())
        .http1_only();
    if let Some(name) = name {
        let pem = [read(format!("{name}.key")), read(format!("{name}.pem"))].concat();
        builder = builder.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    builder.build().unwrap()
}

async fn get(client: &reqwest::Client, port: u16, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut request = client.get(format!("https://localhost:{port}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("Envoy answers");
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    (status, serde_json::from_str(&body).unwrap_or_else(|_| json!({"raw": body})))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_workload_is_allowed_another_denied_and_a_forged_xfcc_is_ignored() {
    let stack =
        Stack::start(StackOptions { downstream_mtls: true, memory_backend: true, ..StackOptions::default() }).await;
    let [(checkout, checkout_id), (reviews, reviews_id)] = WORKLOADS;
    let (checkout_client, reviews_client) = (client(&stack, Some(checkout)), client(&stack, Some(reviews)));

    // The allowed workload reaches the backend, which learns who called — from Envoy's view of
    // the connection, not from what the client wrote (an XFCC Envoy passed on, as the backend
    // shows, so ext-authz saw it too).
    let forged = |id: &str| format!("By=spiffe://cluster.local/ns/gateway/sa/envoy;Hash=00;URI={id}");
    let claims_reviews = [("x-client-principal", reviews_id), ("x-forwarded-client-cert", &forged(reviews_id))];
    let (status, body) = get(&checkout_client, stack.port, "/internal/stock", &claims_reviews).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["headers"]["x-client-principal"], json!([checkout_id]), "set by ext-authz, not the client");
    assert_eq!(body["headers"]["x-forwarded-client-cert"], json!([forged(reviews_id)]), "passed through");

    // Another workload of the same mesh is refused with the uniform JSON body.
    let (status, body) = get(&reviews_client, stack.port, "/internal/stock", &[]).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("FORBIDDEN")), "{body}");
    assert_eq!(body["error"]["message"], "the calling workload is not allowed on this route");

    // It cannot pass itself off as the allowed one, by XFCC or by our own header.
    let forged = forged(checkout_id);
    for header in [("x-forwarded-client-cert", forged.as_str()), ("x-client-principal", checkout_id)] {
        let (status, body) = get(&reviews_client, stack.port, "/internal/stock", &[header]).await;
        assert_eq!(status, 403, "{header:?}: {body}");
    }

    // Workload and user identity side by side on a user route.
    let (status, body) = get(&checkout_client, stack.port, "/orders/1", &[("x-api-key", API_KEY)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["headers"]["x-user-id"], json!(["demo-client"]));
    assert_eq!(body["headers"]["x-client-principal"], json!([checkout_id]));

    // Without a client certificate there is no connection at all.
    let anonymous = client(&stack, None).get(format!("https://localhost:{}/public/x", stack.port)).send().await;
    assert!(anonymous.is_err(), "Envoy requires a client certificate: {anonymous:?}");
    stack.shutdown().await;
}

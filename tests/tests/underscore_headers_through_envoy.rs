//! Identity headers cannot be smuggled in another spelling: `X_User_ID` never reaches the
//! backend beside the `X-User-ID` ext-authz sets, in gRPC and HTTP mode. Twice over: the shipped
//! Envoy configs drop header names with underscores, and where an Envoy lets them through (its
//! default), ext-authz removes every spelling of the headers it sets or removes.

use e2e::stack::API_KEY;
use e2e::{Stack, StackOptions};
use serde_json::{json, Value};

const CONFIGS: [&str; 2] = ["envoy.yaml", "envoy-http-authz.yaml"];

/// The client's copies, in the spellings backends read as `x-user-id` / `x-org-id`.
const SMUGGLED: [(&str, &str); 3] = [("X_User_ID", "victim"), ("x-user_id", "victim"), ("X_Org_ID", "evil")];

/// The header names that reached the backend which read as `x-user-id` or `x-org-id` once `_`
/// is `-` and case is ignored, with their values.
fn identity_spellings(seen: &Value) -> Vec<(String, Value)> {
    let headers = seen["headers"].as_object().expect("the echoed headers");
    headers
        .iter()
        .filter(|(name, _)| matches!(name.replace('_', "-").to_ascii_lowercase().as_str(), "x-user-id" | "x-org-id"))
        .map(|(name, values)| (name.clone(), values.clone()))
        .collect()
}

/// Sends a token, an API key and a public request, each with the smuggled copies, and checks the
/// backend saw only ours.
async fn assert_only_ours_reach_the_backend(stack: &Stack, config: &str) {
    let bearer = format!("Bearer {}", stack.token(json!({"sub": "alice", "org_id": "acme"})));
    let cases = [
        ("/orders/1", ("authorization", bearer.as_str()), vec![("x-org-id", "acme"), ("x-user-id", "alice")]),
        ("/orders/2", ("x-api-key", API_KEY), vec![("x-org-id", "demo-org"), ("x-user-id", "demo-client")]),
        ("/public/page", ("accept", "*/*"), vec![]),
    ];
    for (path, credential, ours) in cases {
        let sent: Vec<(&str, &str)> = [credential].into_iter().chain(SMUGGLED).collect();
        let reply = stack.get(path, &sent).await;
        assert_eq!(reply.status, 200, "{config} {path}: {reply:?}");
        let expected: Vec<(String, Value)> = ours.iter().map(|(k, v)| (k.to_string(), json!([v]))).collect();
        assert_eq!(identity_spellings(&reply.json()), expected, "{config} {path}: {}", reply.body);
    }
}

/// Envoy's counter of dropped underscore headers (HTTP/1.1 here).
async fn dropped_by_envoy(stack: &Stack) -> u64 {
    let stats = e2e::http::send(stack.envoy.admin_port, "GET", "/stats?filter=dropped_headers_with_underscores", &[])
        .await
        .body;
    stats
        .lines()
        .find_map(|line| line.strip_prefix("http1.dropped_headers_with_underscores: "))
        .unwrap_or_else(|| panic!("no underscore counter in Envoy's stats: {stats}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_configs_drop_underscore_headers() {
    for config in CONFIGS {
        let options = StackOptions { envoy_config: Some(config), memory_backend: true, ..StackOptions::default() };
        let stack = Stack::start(options).await;
        assert_only_ours_reach_the_backend(&stack, config).await;
        // Three requests, three smuggled names each: Envoy dropped them, ext-authz never saw one.
        assert_eq!(dropped_by_envoy(&stack).await, 9, "{config}");
        stack.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ext_authz_removes_them_where_envoy_lets_them_through() {
    for config in CONFIGS {
        let options = StackOptions {
            envoy_config: Some(config),
            memory_backend: true,
            allow_underscore_headers: true,
            ..StackOptions::default()
        };
        let stack = Stack::start(options).await;
        // The same client headers reach ext-authz now; its removals keep them from the backend.
        assert_only_ours_reach_the_backend(&stack, config).await;
        assert_eq!(dropped_by_envoy(&stack).await, 0, "{config}: Envoy let them through");
        stack.shutdown().await;
    }
}

//! `demo`: the whole thing on loopback — Envoy on :10000 in front of the echo backend, with
//! ext-authz and ratelimit (in memory, or on a Redis with `--redis`) — plus ready-to-paste curl
//! lines with a dev token and a dev API key. Ctrl-C stops everything.

use e2e::stack::API_KEY;
use e2e::{Stack, StackOptions};
use serde_json::json;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let redis = std::env::args().any(|a| a == "--redis");
    let port: u16 =
        shared::env::Env::var(&shared::env::ProcessEnv, "DEMO_PORT").and_then(|p| p.parse().ok()).unwrap_or(10000);
    let options = StackOptions {
        memory_backend: !redis,
        listen_port: Some(port),
        // Per-minute limits: a 429 is easy to see, and the demo works again a minute later.
        ratelimit_root: Some("examples/demo"),
        ..StackOptions::default()
    };
    let stack = Stack::start(options).await;
    // Dev tokens valid for a day, signed by the test-only key the demo's ext-authz trusts.
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() + 86_400;
    let token = stack.token(json!({"sub": "dev-user", "email": "dev@example.com", "exp": exp}));
    let narrow = stack.token(json!({"sub": "dev-user", "scope": "profile", "exp": exp}));
    let base = format!("http://127.0.0.1:{port}");
    println!(
        r#"
Gatehouse demo is up: Envoy {base} → ext-authz + ratelimit ({backend}) → echo backend.
Every answer of the backend shows the request it received. Try:

  # no credential → 401 with the JSON error
  curl -i {base}/orders/1

  # a valid JWT → 200; the backend sees X-User-ID / X-Org-ID, never the client's own
  curl -s {base}/orders/1 -H 'Authorization: Bearer {token}' -H 'X-User-ID: spoofed'

  # the demo API key → 200 with its client id (the key itself never reaches the backend);
  # the 4th call within a minute → 429 with the JSON error (X-RateLimit-* headers)
  curl -i {base}/orders/1 -H 'x-api-key: {API_KEY}'

  # a token without the orders:read scope → 403 INSUFFICIENT_SCOPE
  curl -i {base}/orders/1 -H 'Authorization: Bearer {narrow}'

  # a public path → 200 with no credential (120 a minute per source address, every route)
  curl -i {base}/public/hello

Ctrl-C stops everything."#,
        backend = if redis { "Redis" } else { "in memory" },
    );
    shared::shutdown::signal().await;
    println!("stopping…");
    stack.shutdown().await;
    Ok(())
}

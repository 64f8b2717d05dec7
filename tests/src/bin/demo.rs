//! `demo`: the whole thing on loopback — Envoy on :10000 (`DEMO_PORT`) in front of the echo
//! backend, with ext-authz and ratelimit (in memory, or on a Redis with `--redis`) — plus
//! ready-to-paste curl lines with a dev token and a dev API key. Ctrl-C stops everything. A
//! taken port or a bad `DEMO_PORT` is one line on stderr and exit 69 or 64 (`e2e::demo`).

use std::process::ExitCode;

use e2e::demo::{self, DemoError};
use e2e::stack::API_KEY;
use e2e::{Stack, StackOptions};
use serde_json::json;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let redis = args.iter().any(|a| a == "--redis");
    let (stack, port) = match start(&args, redis).await {
        Ok(started) => started,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(e.exit_code());
        }
    };
    // Dev tokens valid for a day, signed by the test-only key the demo's ext-authz trusts.
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()) + 86_400;
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
    ExitCode::SUCCESS
}

/// The stack on `DEMO_PORT`, checked free before anything starts. Envoy can still find it
/// taken (another demo starting at the same moment): the stack is stopped again and that is
/// the answer.
async fn start(args: &[String], redis: bool) -> Result<(Stack, u16), DemoError> {
    let port = demo::port(&shared::env::ProcessEnv)?;
    demo::check_free(port, args)?;
    let options = StackOptions {
        memory_backend: !redis,
        listen_port: Some(port),
        // Per-minute limits: a 429 is easy to see, and the demo works again a minute later.
        ratelimit_root: Some("examples/demo"),
        ..StackOptions::default()
    };
    let stack = Stack::try_start(options).await.map_err(|log| demo::envoy_failed(port, args, &log))?;
    Ok((stack, port))
}

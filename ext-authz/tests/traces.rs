//! Traces from the real binary to a real OTLP receiver: the `telemetry.tracing` section with
//! the standard `OTEL_*` variables filling what it leaves out, the Check span continuing the
//! caller's trace (gRPC metadata first, then the request's own headers, then HTTP mode), the
//! provider calls as spans (their trace context sent along), and no credential in any span.

mod support;

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ext_authz::testing::SigningKey;
use jsonwebtoken::Algorithm;
use serde_json::json;
use shared::testing::{OtlpReceiver, ReceivedSpan};
use support::process::*;
use support::*;

const PARENT: &str = "00f067aa0ba902b7";
const WAIT: Duration = Duration::from_secs(20);

fn traceparent(trace: &str) -> String {
    format!("00-{trace}-{PARENT}-01")
}

fn check_span<'a>(spans: &'a [ReceivedSpan], trace: &str) -> Option<&'a ReceivedSpan> {
    spans.iter().find(|s| s.trace_id == trace && s.name == "Check")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_spans_continue_the_callers_trace_and_carry_no_credential() {
    let receiver = OtlpReceiver::start().await;
    let key = SigningKey::rsa("key-a", Algorithm::RS256, RSA_A);
    let idp = JwksServer::start(&[&key]).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("api-keys.yaml"), api_keys_yaml(&[(API_KEY, "billing", &["orders:read"])])).unwrap();
    let config = config_yaml(&idp.url, "")
        + "telemetry:\n  tracing:\n    enabled: true\n    protocol: grpc\n    service_namespace: gateway\n";
    let endpoint = receiver.grpc_endpoint();
    let mut process = AuthzProcess::start(
        &dir.path().join("ext-authz.yaml"),
        &config,
        &[
            ("JOBS_SECRET", HMAC_SECRET),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_SERVICE_NAME", "authz-under-test"),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ],
    );
    let mut client = process.grpc_client().await;
    let addr = process.http_addr();
    shared::testing::eventually("ext-authz ready (keys loaded)", WAIT, || async move {
        http(addr, "GET", "/readyz", &[]).await.0 == 200
    })
    .await;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let token = key.sign(&json!({"iss": idp.url, "aud": "orders-api", "sub": "user-1", "exp": now + 600,
        "scope": "orders:read"}));
    let bearer = format!("Bearer {token}");

    // 1. The trace in the gRPC metadata (where Envoy's ext_authz client writes its span) wins.
    let (from_metadata, from_headers) = ("4bf92f3577b34da6a3ce929d0e0e4736", "5bf92f3577b34da6a3ce929d0e0e4736");
    let mut request = tonic::Request::new(check_request(
        "GET",
        "/orders/1?page=2",
        &[("x-api-key", API_KEY), ("traceparent", &traceparent(from_headers))],
    ));
    request.metadata_mut().insert("traceparent", traceparent(from_metadata).parse().unwrap());
    let answer = client.check(request).await.unwrap().into_inner();
    assert_eq!(status(&answer), 0);
    // 2. Without it, the request's own headers are read (a JWT this time).
    let only_headers = "6bf92f3577b34da6a3ce929d0e0e4736";
    let request =
        check_request("GET", "/orders/2", &[("authorization", &bearer), ("traceparent", &traceparent(only_headers))]);
    assert_eq!(status(&client.check(request).await.unwrap().into_inner()), 0);
    // 3. HTTP mode: the headers of the request Envoy forwards.
    let http_trace = "7bf92f3577b34da6a3ce929d0e0e4736";
    let (code, _, _) =
        http(process.http_addr(), "GET", "/authz/admin/x", &[("traceparent", &traceparent(http_trace))]).await;
    assert_eq!(code, 401);

    let spans = receiver
        .wait_for("the three checks' spans", WAIT, |spans| {
            [from_metadata, only_headers, http_trace].iter().all(|trace| check_span(spans, trace).is_some())
        })
        .await;
    assert!(check_span(&spans, from_headers).is_none(), "the metadata's context must win over the headers'");
    let api_key = check_span(&spans, from_metadata).unwrap();
    assert_eq!(api_key.parent_span_id, PARENT);
    assert_eq!((api_key.kind, api_key.via), (2, "grpc"));
    assert_eq!(api_key.service, "authz-under-test");
    assert_eq!(api_key.resource["service.namespace"], "gateway");
    let attribute = |span: &ReceivedSpan, key: &str| span.attributes.get(key).cloned().unwrap_or_default();
    assert_eq!(attribute(api_key, "authz.decision"), "allow");
    assert_eq!(attribute(api_key, "authz.route"), "orders-read");
    assert_eq!(attribute(api_key, "authz.auth_method"), "api_key");
    assert_eq!(attribute(api_key, "authz.mode"), "grpc");
    let jwt = check_span(&spans, only_headers).unwrap();
    assert_eq!(jwt.parent_span_id, PARENT);
    assert_eq!((attribute(jwt, "authz.auth_method"), attribute(jwt, "authz.provider")), ("jwt".into(), "corp".into()));
    let denied = check_span(&spans, http_trace).unwrap();
    assert_eq!((attribute(denied, "authz.mode"), attribute(denied, "authz.decision")), ("http".into(), "deny".into()));
    assert_eq!(attribute(denied, "authz.route"), "admin");

    // The key set was fetched at start, through discovery: both calls are client spans.
    let spans = receiver
        .wait_for("the provider calls' spans", WAIT, |spans| {
            spans.iter().any(|s| s.name == "OIDC discovery") && spans.iter().any(|s| s.name == "JWKS fetch")
        })
        .await;
    let discovery = spans.iter().find(|s| s.name == "OIDC discovery").unwrap();
    assert_eq!(discovery.kind, 3);
    assert!(attribute(discovery, "url.full").ends_with("/.well-known/openid-configuration"));
    // The key server was told which span called it: it can join the trace.
    let fetch = spans.iter().find(|s| s.name == "JWKS fetch").unwrap();
    let sent = idp.traceparents.lock().first().cloned().unwrap_or_default();
    assert_eq!(sent, format!("00-{}-{}-01", fetch.trace_id, fetch.span_id), "traceparent sent to the key server");

    let everything = format!("{spans:?}");
    for secret in [API_KEY, token.as_str()] {
        assert!(!everything.contains(secret), "a credential reached a span");
    }
    assert!(process.terminate().success());
}

#[test]
fn bad_tracing_config_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ext-authz.yaml");
    std::fs::write(dir.path().join("api-keys.yaml"), api_keys_yaml(&[])).unwrap();
    let config = config_yaml("https://idp.example.com", "")
        + "telemetry:\n  tracing:\n    enabled: true\n    protocol: zipkin\n    sampling_rate: 2\n";
    std::fs::write(&file, ended(&config)).unwrap();
    let out = Command::new(BIN).arg("validate").arg(&file).env("JOBS_SECRET", HMAC_SECRET).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("telemetry.tracing.protocol") && stderr.contains("zipkin"), "{stderr}");

    let config = config_yaml("https://idp.example.com", "")
        + "telemetry:\n  tracing:\n    enabled: true\n    endpoint: collector:4317\n";
    std::fs::write(&file, ended(&config)).unwrap();
    let out = Command::new(BIN)
        .arg("validate")
        .arg(&file)
        .env("JOBS_SECRET", HMAC_SECRET)
        .env("OTEL_EXPORTER_OTLP_HEADERS", "api-key=s3cret,broken")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("telemetry.tracing.endpoint") && stderr.contains("OTEL_EXPORTER_OTLP_HEADERS"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");
}

/// Starts ext-authz exporting spans over gRPC to `endpoint` with the exporter variables `vars`,
/// ready to check; a check with the API key then makes a span.
async fn exporting_to(dir: &std::path::Path, endpoint: &str, vars: &[(&str, &str)]) -> (AuthzProcess, JwksServer) {
    let key = SigningKey::rsa("key-a", Algorithm::RS256, RSA_A);
    let idp = JwksServer::start(&[&key]).await;
    std::fs::write(dir.join("api-keys.yaml"), api_keys_yaml(&[(API_KEY, "billing", &["orders:read"])])).unwrap();
    let config = config_yaml(&idp.url, "") + "telemetry:\n  tracing:\n    enabled: true\n    protocol: grpc\n";
    let mut env = vec![("JOBS_SECRET", HMAC_SECRET), ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)];
    env.extend_from_slice(vars);
    let process = AuthzProcess::start(&dir.join("ext-authz.yaml"), &config, &env);
    process.wait_ready().await;
    (process, idp)
}

/// A collector that refuses every export: each failure counts in
/// `ext_authz_trace_export_failures_total`, and the log says so once per 30 s, not once an export.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_exports_are_counted_and_logged_once_per_burst() {
    let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("http://127.0.0.1:{refused}");
    let started = std::time::Instant::now();
    let (mut process, _idp) = exporting_to(dir.path(), &endpoint, &[("OTEL_BSP_SCHEDULE_DELAY", "20")]).await;
    let mut client = process.grpc_client().await;
    let addr = process.http_addr();
    let failures = || async move {
        let (_, _, metrics) = http(addr, "GET", "/metrics", &[]).await;
        let line = metrics.lines().find(|l| l.starts_with("ext_authz_trace_export_failures_total "));
        line.and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok()).unwrap_or(0)
    };
    // Each look sends one more check, whose span fails to export.
    let counted = shared::testing::eventually_some("3 failed exports counted", WAIT, async || {
        client.check(check_request("GET", "/orders/1", &[("x-api-key", API_KEY)])).await.unwrap();
        Some(failures().await).filter(|&counted| counted >= 3)
    })
    .await;
    assert!(process.terminate().success());
    let logged = process.stderr().matches("span export failed").count();
    let windows = 1 + started.elapsed().as_secs() as usize / 30;
    assert!(logged >= 1 && logged <= windows, "{logged} lines for {counted}+ failures:\n{}", process.stderr());
}

/// A collector that takes the connection and never answers: the stop waits for it at most
/// `TRACING_SHUTDOWN_TIMEOUT` (1 s by default) — `terminate` allows 10 s — where the export of
/// the queued spans alone would take the batch processor's 30 s bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_never_answers_does_not_hold_the_stop() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    // The spans wait in the queue until the stop sends them.
    let vars = [("OTEL_BSP_SCHEDULE_DELAY", "600000"), ("OTEL_EXPORTER_OTLP_TIMEOUT", "600000")];
    let (mut process, _idp) = exporting_to(dir.path(), &endpoint, &vars).await;
    let mut client = process.grpc_client().await;
    for _ in 0..3 {
        client.check(check_request("GET", "/orders/1", &[("x-api-key", API_KEY)])).await.unwrap();
    }
    assert!(process.terminate().success(), "{}", process.stderr());
    drop(silent);
}

//! Envoy's HTTP ext_authz mode, and operations: readiness that waits for keys, keys kept
//! through an identity-provider outage, Cache-Control pacing, hot reload of the config and of
//! API keys, health, metrics.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use ext_authz::testing::SigningKey;
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_mode_allows_with_200_and_denies_with_json() {
    let h = Harness::start().await;
    let addr = h.running().http_addr;
    let token = h.token(json!({}));
    let bearer = format!("Bearer {token}");
    // Envoy sends the original method and <prefix><original path and query>.
    let (status, headers, _) =
        http(addr, "GET", "/authz/orders/5?view=full", &[("authorization", &bearer), ("x-user-id", "spoof")]).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-user-id"], "user-1");
    assert!(headers["x-envoy-auth-headers-to-remove"].contains("x-org-id"));
    assert!(headers["x-envoy-auth-headers-to-remove"].contains("authorization"));

    let (status, headers, body) = http(addr, "GET", "/authz/orders/5", &[]).await;
    assert_eq!((status, headers["www-authenticate"].as_str()), (401, "Bearer"));
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "UNAUTHORIZED");
    // Envoy was not told to pass an x-request-id: one is made, so the body still names one.
    assert_eq!(body["error"]["request_id"].as_str().map(str::len), Some(16), "{body}");

    // Any method: a POST the rules do not allow is a 403, not a 405.
    let (status, _, body) = http(addr, "POST", "/authz/orders/5", &[("authorization", &bearer)]).await;
    assert_eq!(status, 403, "{body}");
    let (status, _, _) = http(addr, "DELETE", "/authz/public/x", &[]).await;
    assert_eq!(status, 200);
    let (status, _, _) = http(addr, "GET", "/elsewhere", &[]).await;
    assert_eq!(status, 404, "outside the prefix is not an authorization path");
    h.stop().await;
}

/// HTTP mode names every spelling of our identity headers in Envoy's removal list too (see
/// check_grpc.rs for why), whatever case the client wrote them in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_mode_removes_every_underscore_spelling_of_an_identity_header() {
    let h = Harness::start().await;
    let addr = h.running().http_addr;
    let bearer = format!("Bearer {}", h.token(json!({})));
    let smuggled = [("X_User_ID", "victim"), ("x-user_id", "victim"), ("X_Org_Id", "evil"), ("my_header", "kept")];
    for target in ["/authz/orders/5", "/authz/public/page"] {
        let sent: Vec<(&str, &str)> = [("authorization", bearer.as_str())].into_iter().chain(smuggled).collect();
        let (status, headers, _) = http(addr, "GET", target, &sent).await;
        assert_eq!(status, 200, "{target}");
        let removed: Vec<&str> = headers["x-envoy-auth-headers-to-remove"].split(", ").collect();
        for spelling in ["x_user_id", "x-user_id", "x_org_id"] {
            assert!(removed.contains(&spelling), "{target}: {spelling} in {removed:?}");
        }
        assert!(!removed.contains(&"my_header"), "{target}: not one of ours");
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_waits_for_keys_and_an_outage_keeps_the_last_good_ones() {
    let key = SigningKey::rsa("key-a", Algorithm::RS256, RSA_A);
    let idp = JwksServer::start(&[&key]).await;
    idp.failing.store(true, Ordering::SeqCst);
    let mut h = Harness::start_with(idp, key, "").await;
    let addr = h.running().http_addr;
    // Not ready, and where to look: where the provider's keys are set, that the fetch failed;
    // not its URL or error (anyone reaching the port reads /readyz; the log has them).
    shared::testing::eventually("/readyz says what is not ready", Duration::from_secs(5), async || {
        let (code, _, said) = http(addr, "GET", "/readyz", &[]).await;
        assert_eq!(code, 503);
        assert!(!said.contains(&h.idp.url) && !said.contains("corp"), "{said}");
        said == "JWT keys not loaded yet: jwt_providers[0].keys (fetch failed); the log says why"
    })
    .await;
    assert!(!h.running().health.is_healthy(), "grpc.health.v1 not serving either");
    assert_eq!(http(addr, "GET", "/healthz", &[]).await.0, 200, "liveness does not depend on the provider");
    // No keys yet: an internal failure (Envoy's failure_mode_allow decides), not a deny.
    let token = h.token(json!({}));
    let err = h
        .grpc
        .check(check_request("GET", "/orders/1", &[("authorization", &format!("Bearer {token}"))]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    assert_eq!(http(addr, "GET", "/authz/orders/1", &[("authorization", &format!("Bearer {token}"))]).await.0, 503);
    // API keys do not need the provider.
    assert_eq!(status(&h.check("GET", "/orders/1", &[("x-api-key", API_KEY)]).await), 0);

    h.idp.failing.store(false, Ordering::SeqCst);
    h.eventually(|| h.running().authorizer.ready()).await;
    assert_eq!(http(addr, "GET", "/readyz", &[]).await.0, 200);
    assert_eq!(status(&h.check("GET", "/orders/1", &[("authorization", &format!("Bearer {token}"))]).await), 0);

    // The provider goes down again: the keys we have keep working.
    h.idp.failing.store(true, Ordering::SeqCst);
    let other = SigningKey::rsa("key-x", Algorithm::RS256, RSA_B).sign(&h.claims(json!({})));
    let _ = h.check("GET", "/orders/1", &[("authorization", &format!("Bearer {other}"))]).await;
    let fresh = h.token(json!({"sub": "user-2"}));
    assert_eq!(status(&h.check("GET", "/orders/1", &[("authorization", &format!("Bearer {fresh}"))]).await), 0);
    assert!(h.metrics().await.contains(r#"ext_authz_jwks_fetches_total{provider="corp",result="error"}"#));
    h.stop().await;
}

/// The pacing rule itself (max-age within [min_interval, max_interval], else interval) is a
/// pure function, unit-tested in `jwks.rs`; this checks it end to end and without a clock: the
/// header as a real server sends it, read by the real client, decides the next refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_control_max_age_paces_refreshes_within_bounds() {
    // The harness: interval 1h, min_interval 200ms, max_interval 24h (the default).
    let cases = [(None, 3600), (Some(1), 1), (Some(7200), 7200), (Some(10_000_000), 86_400)];
    for (max_age, expected_secs) in cases {
        let key = SigningKey::rsa("key-a", Algorithm::RS256, RSA_A);
        let idp = JwksServer::start(&[&key]).await;
        idp.max_age.store(max_age.unwrap_or(0), Ordering::SeqCst);
        let h = Harness::start_with(idp.clone(), key, "").await;
        let planned = h.running().authorizer.policy().keys.planned_refresh(0);
        h.stop().await;
        assert_eq!(planned, Some(Duration::from_secs(expected_secs)), "max-age {max_age:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_and_api_keys_reload_without_restart() {
    let mut h = Harness::start().await;
    let bearer = format!("Bearer {}", h.token(json!({})));
    assert_eq!(status(&h.check("GET", "/reports/1", &[("authorization", &bearer)]).await), 7, "no rule yet");

    let extra = "    - name: reports\n      path: /reports/*\n      accept: [jwt]\n";
    write_file(&h.config_path(), &ended(&config_yaml(&h.idp.url, extra)));
    shared::testing::eventually("the new rule applies without a restart", Duration::from_secs(5), async || {
        status(&h.check("GET", "/reports/1", &[("authorization", &bearer)]).await) == 0
    })
    .await;

    // A broken config is refused; the last good one stays.
    let good = std::fs::read_to_string(h.config_path()).unwrap();
    write_file(&h.config_path(), "routes:\n  rules:\n    - path: nope\n...\n");
    reload_errors_reach(&h, "config", 1).await;
    assert_eq!(status(&h.check("GET", "/reports/1", &[("authorization", &bearer)]).await), 0);
    // Still ready (the last good config serves), and /readyz says what was refused and where
    // to look, not the file's path or its problem (which quotes the file's values).
    let addr = h.running().http_addr;
    let refused = "ready, serving the last good files: a change to the config was refused (the log says why; \
                   `ext-authz validate` lists every problem)";
    let (code, _, said) = http(addr, "GET", "/readyz", &[]).await;
    assert_eq!(code, 200);
    assert_eq!(said, refused);
    // A config deleted under a running service: the same.
    std::fs::remove_file(h.config_path()).unwrap();
    reload_errors_reach(&h, "config", 2).await;
    assert_eq!(http(addr, "GET", "/readyz", &[]).await.2, refused);
    // Put back: ready, and nothing refused any more.
    write_file(&h.config_path(), &good);
    shared::testing::eventually("the restored config is taken", Duration::from_secs(5), async || {
        http(addr, "GET", "/readyz", &[]).await.2 == "ready"
    })
    .await;

    // A new API key works once its hash is in the file.
    let new_key = "ghk_added-later-0000000000000000000000000000";
    assert_eq!(status(&h.check("GET", "/orders/1", &[("x-api-key", new_key)]).await), 16);
    write_file(
        &h.dir.path().join("api-keys.yaml"),
        &api_keys_yaml(&[(API_KEY, "billing", &["orders:read"]), (new_key, "reports", &["orders:read"])]),
    );
    h.eventually(|| h.running().authorizer.api_key_count() == 2).await;
    let (headers, _) = allowed_headers(&h.check("GET", "/orders/1", &[("x-api-key", new_key)]).await);
    assert_eq!(headers["x-user-id"], "reports");
    // A broken key file keeps the keys we have, and /readyz says so (not the plaintext key).
    write_file(&h.dir.path().join("api-keys.yaml"), "keys:\n  - key: plaintext\n    client_id: x\n...\n");
    reload_errors_reach(&h, "api_keys", 1).await;
    assert_eq!(h.running().authorizer.api_key_count(), 2);
    let said = http(addr, "GET", "/readyz", &[]).await.2;
    assert!(said.contains("a change to the API key files was refused (the log says why"), "{said}");
    assert!(!said.contains("plaintext"), "{said}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_health_metrics_and_shutdown() {
    let mut h = Harness::start().await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", h.running().grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let request = || tonic_health::pb::HealthCheckRequest { service: "envoy.service.auth.v3.Authorization".into() };
    shared::testing::eventually("gRPC health SERVING", Duration::from_secs(2), async || {
        health.check(request()).await.unwrap().into_inner().status == 1
    })
    .await;
    let token = h.token(json!({}));
    for _ in 0..3 {
        h.check("GET", "/orders/1", &[("authorization", &format!("Bearer {token}"))]).await;
    }
    let metrics = h.metrics().await;
    assert!(metrics.contains(r#"ext_authz_decisions_total{decision="allow",reason="authenticated"} 3"#), "{metrics}");
    assert!(metrics.contains(r#"ext_authz_check_duration_seconds_count{mode="grpc"} 3"#), "{metrics}");
    let addr = h.running().http_addr;
    h.stop().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "the HTTP listener is closed after shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_jwks_file_hmac_secret_file_and_a_directory_of_keys() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = SigningKey::ec("local", Algorithm::ES256);
    std::fs::write(d.join("jwks.json"), ext_authz::testing::jwks(&[&key])).unwrap();
    std::fs::write(d.join("hmac.secret"), "a-secret-of-at-least-thirty-two-bytes!!\n").unwrap();
    std::fs::create_dir(d.join("keys")).unwrap();
    // A mounted Secret: one file per key, plus Kubernetes' dot-entries that must be skipped.
    std::fs::write(
        d.join("keys/alpha.yaml"),
        api_keys_yaml(&[("ghk_alpha-000000000000000000000000000000", "alpha", &[])]),
    )
    .unwrap();
    std::fs::write(
        d.join("keys/beta.yaml"),
        api_keys_yaml(&[("ghk_beta-0000000000000000000000000000000", "beta", &[])]),
    )
    .unwrap();
    std::fs::create_dir(d.join("keys/..2026_11_22")).unwrap();
    std::fs::write(d.join("keys/..2026_11_22/alpha.yaml"), "not: [valid").unwrap();
    let config = r#"
server: {grpc_addr: "127.0.0.1:0", http_addr: "127.0.0.1:0"}
jwt_providers:
  - {name: local, issuer: local, algorithms: [ES256], keys: {jwks_file: jwks.json}}
  - {name: svc, issuer: svc, algorithms: [HS384], keys: {hmac_secret_file: hmac.secret}, from: [{header: x-svc-token}]}
api_keys: {dir: keys, from: [{query: api_key}]}
routes:
  default: authenticated
...
"#;
    std::fs::write(d.join("ext-authz.yaml"), config).unwrap();
    let config = ext_authz::config::load(&d.join("ext-authz.yaml"), &Default::default()).unwrap();
    let running = ext_authz::app::start(config, Default::default(), shared::testing::TestClock::at(NOW).as_clock())
        .await
        .unwrap();
    // Keys load in the background once the ports are open; start from a ready service, as Envoy
    // does (a check before that is an internal failure by design, tested elsewhere).
    let authorizer = running.authorizer.clone();
    shared::testing::eventually("keys loaded", std::time::Duration::from_secs(5), || {
        std::future::ready(authorizer.ready())
    })
    .await;
    let client = envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient::connect(
        format!("http://{}", running.grpc_addr),
    )
    .await
    .unwrap();
    let check = |path: String, headers: Vec<(&'static str, String)>| {
        let request = check_request("GET", &path, &headers.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>());
        let mut client = client.clone();
        async move { status(&client.check(request).await.unwrap().into_inner()) }
    };
    let local = key.sign(&json!({"iss": "local", "sub": "l", "exp": NOW + 60}));
    assert_eq!(check("/x".into(), vec![("authorization", format!("Bearer {local}"))]).await, 0);
    let svc = SigningKey::hmac(Algorithm::HS384, b"a-secret-of-at-least-thirty-two-bytes!!")
        .sign(&json!({"iss": "svc", "sub": "s", "exp": NOW + 60}));
    assert_eq!(
        check("/x".into(), vec![("x-svc-token", svc)]).await,
        0,
        "the trailing newline of the secret file is not part of the secret"
    );
    assert_eq!(check("/x?api_key=ghk_beta-0000000000000000000000000000000".into(), vec![]).await, 0);
    assert_eq!(running.authorizer.api_key_count(), 2);
    running.shutdown().await;
}

/// The decision log through the real gRPC adapter: one line per decision with who, what, where
/// and why — and never the credential that was presented, wherever it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_decision_log_records_each_decision_without_credentials() {
    let key = SigningKey::rsa("key-a", Algorithm::RS256, RSA_A);
    let idp = JwksServer::start(&[&key]).await;
    let sections = "decision_log: {enabled: true, to: decisions.jsonl}\n";
    let mut h = Harness::start_with_sections(idp, key, "", sections).await;
    let token = h.token(json!({"sub": "alice", "email": "alice@example.com"}));
    let bearer = format!("Bearer {token}");
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = format!("00-{trace}-00f067aa0ba902b7-01");
    let allowed = h
        .check(
            "GET",
            "/orders/1?access_token=also-a-secret",
            &[("authorization", &bearer), ("x-request-id", "r-allow"), ("traceparent", &parent)],
        )
        .await;
    assert_eq!(status(&allowed), 0);
    let wrong_key = "ghk_wrong-key-0000000000000000000000000000";
    let denied = h.check("GET", "/orders/2", &[("x-api-key", wrong_key), ("x-request-id", "r-deny")]).await;
    assert_eq!(status(&denied), 16);
    assert_eq!(status(&h.check("GET", "/public/x", &[("x-request-id", "r-public")]).await), 0);

    let file = h.dir.path().join("decisions.jsonl");
    let three_lines = || async { std::fs::read_to_string(&file).unwrap_or_default().lines().count() == 3 };
    shared::testing::eventually("three decision lines", Duration::from_secs(5), three_lines).await;
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let by_id = |id: &str| lines.iter().find(|l| l["request_id"] == id).unwrap_or_else(|| panic!("{id}: {text}"));
    let allow = by_id("r-allow");
    assert_eq!(
        (&allow["decision"], &allow["route"], &allow["path"], &allow["trace_id"], &allow["mode"], &allow["status"]),
        (&json!("allow"), &json!("orders-read"), &json!("/orders/1"), &json!(trace), &json!("grpc"), &json!(200))
    );
    assert_eq!(allow["identity"], json!({"id": "alice", "method": "jwt", "provider": "corp"}));
    assert!(allow["latency_us"].as_u64().is_some() && allow["time"].as_str().unwrap().ends_with('Z'));
    let deny = by_id("r-deny");
    assert_eq!(
        (&deny["decision"], &deny["reason"], &deny["status"], &deny["identity"]),
        (&json!("deny"), &json!("invalid_api_key"), &json!(401), &Value::Null)
    );
    assert_eq!(by_id("r-public")["route"], json!("public"));
    for secret in [token.as_str(), wrong_key, "also-a-secret", "alice@example.com"] {
        assert!(!text.contains(secret), "{secret} is in the decision log: {text}");
    }
    h.stop().await;
}

/// Waits (with a deadline) until `what`'s failed reloads are counted `count` times.
async fn reload_errors_reach(h: &Harness, what: &str, count: u64) {
    let series = format!(r#"ext_authz_reloads_total{{what="{what}",result="error"}} {count}"#);
    let reordered = format!(r#"ext_authz_reloads_total{{result="error",what="{what}"}} {count}"#);
    shared::testing::eventually(&format!("{count} failed {what} reloads"), Duration::from_secs(5), || async {
        let metrics = h.metrics().await;
        metrics.contains(&series) || metrics.contains(&reordered)
    })
    .await;
}

/// What a check remembers between checks — a verified token, an identity's built answer — is
/// remembered for the config it was made under: a reload that changes a provider's rules or
/// the identity headers applies to the very next check of the same token or key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_applies_to_cached_tokens_and_remembered_answers() {
    let mut h = Harness::start().await;
    let bearer = format!("Bearer {}", h.token(json!({})));
    for _ in 0..2 {
        assert_eq!(status(&h.check("GET", "/orders/1", &[("authorization", &bearer)]).await), 0);
        let (headers, _) = allowed_headers(&h.check("GET", "/orders/1", &[("x-api-key", API_KEY)]).await);
        assert_eq!(headers["x-user-id"], "billing");
    }
    let (hits, _) = h.running().authorizer.token_cache_lookups();
    assert!(hits >= 1, "the token was answered from the cache");

    // The provider now wants another audience; the user's header has another name.
    let config = config_yaml(&h.idp.url, "")
        .replace("audiences: [orders-api]", "audiences: [billing-api]")
        .replace("X-User-ID: [user_id, sub]", "X-Caller: [user_id, sub]");
    write_file(&h.config_path(), &ended(&config));
    let headers = shared::testing::eventually_some(
        "the API key's answer follows the new identity headers",
        Duration::from_secs(5),
        async || {
            let (headers, _) = allowed_headers(&h.check("GET", "/orders/1", &[("x-api-key", API_KEY)]).await);
            (headers.get("x-caller").map(String::as_str) == Some("billing")).then_some(headers)
        },
    )
    .await;
    assert!(!headers.contains_key("x-user-id"), "the old header is not ours any more: {headers:?}");
    let refused = h.check("GET", "/orders/1", &[("authorization", &bearer)]).await;
    assert_eq!(status(&refused), 16, "the cached token is verified again, against the new audience");
    h.stop().await;
}

//! `GRPC_SERVER_USE_TLS`: the gRPC server over TLS, its certificate rotated by replacing the
//! files (no restart), and mutual TLS with an optional client name check.

mod support;

use std::path::Path;
use std::time::Duration;

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use support::*;
use tonic::transport::Endpoint;

const CONFIG: &str = "domain: tls\ndescriptors:\n  - key: k\n    rate_limit: {unit: hour, requests_per_unit: 100}\n";

async fn start(extra: &[(&str, String)]) -> (ratelimit::Running, ConfigDir) {
    let config = ConfigDir::new(&[("c.yaml", CONFIG)]);
    let mut env = base_env(&config);
    env.insert("GRPC_SERVER_USE_TLS".into(), "true".into());
    env.insert("RUNTIME_POLL_INTERVAL".into(), "50ms".into());
    for (k, v) in extra {
        env.insert(k.to_string(), v.clone());
    }
    let settings = ratelimit::settings::Settings::from_env(&env).unwrap();
    let running = ratelimit::start(settings, TestClock::new().as_clock()).await.unwrap();
    (running, config)
}

/// One call over a fresh TLS connection trusting `ca`, optionally presenting `identity`.
async fn call(running: &ratelimit::Running, dir: &Path, ca: &str, identity: Option<&str>) -> Result<u32, String> {
    let tls = shared::testing::client_tls(dir, ca, identity);
    let endpoint =
        Endpoint::from_shared(format!("https://{}", running.grpc_addr.unwrap())).unwrap().tls_config(tls).unwrap();
    let channel = endpoint.connect().await.map_err(|e| format!("connect: {e:?}"))?;
    let response = RateLimitServiceClient::new(channel)
        .should_rate_limit(request("tls", vec![descriptor(&[("k", "v")])]))
        .await
        .map_err(|e| format!("call: {e:?}"))?;
    Ok(response.into_inner().statuses[0].limit_remaining)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_tls_and_picks_up_a_rotated_certificate() {
    let certs = tempfile::tempdir().unwrap();
    let d = certs.path();
    make_ca(d, "ca1");
    make_ca(d, "ca2");
    make_cert(d, "ca1", "server1", "DNS:localhost,IP:127.0.0.1");
    make_cert(d, "ca2", "server2", "DNS:localhost,IP:127.0.0.1");
    shared::testing::install_cert(d, "server1", "live");
    let path = |f: &str| d.join(f).display().to_string();
    let (running, _config) =
        start(&[("GRPC_SERVER_TLS_CERT", path("live.pem")), ("GRPC_SERVER_TLS_KEY", path("live.key"))]).await;

    assert_eq!(call(&running, d, "ca1", None).await, Ok(99));
    assert!(call(&running, d, "ca2", None).await.is_err(), "ca2 does not sign the first certificate");

    shared::testing::install_cert(d, "server2", "live");
    shared::testing::eventually("the rotated certificate served", Duration::from_secs(5), async || {
        call(&running, d, "ca2", None).await.is_ok()
    })
    .await;
    assert!(call(&running, d, "ca1", None).await.is_err(), "the old certificate is gone");
    let metrics = || running.limiter.metrics().registry.render();
    assert!(metrics().contains("ratelimit_reloads_total{result=\"ok\",what=\"tls\"}"), "{}", metrics());

    // A broken pair (a key that does not match) is refused, counted, and the served one stays.
    std::fs::copy(d.join("server1.key"), d.join("live.key.tmp")).unwrap();
    std::fs::rename(d.join("live.key.tmp"), d.join("live.key")).unwrap();
    let refused = shared::testing::poll(Duration::from_secs(5), async || {
        metrics().contains("ratelimit_reloads_total{result=\"error\",what=\"tls\"} 1").then_some(())
    });
    assert!(refused.await.is_some(), "the broken pair was never refused: {}", metrics());
    assert_eq!(call(&running, d, "ca2", None).await, Ok(97), "still served with the good pair");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_with_a_client_name() {
    let certs = tempfile::tempdir().unwrap();
    let d = certs.path();
    make_ca(d, "ca");
    make_cert(d, "ca", "server", "DNS:localhost,IP:127.0.0.1");
    make_cert(d, "ca", "envoy", "DNS:envoy.gateway.internal");
    make_cert(d, "ca", "stranger", "DNS:someone.else");
    let path = |f: &str| d.join(f).display().to_string();
    let (running, _config) = start(&[
        ("GRPC_SERVER_TLS_CERT", path("server.pem")),
        ("GRPC_SERVER_TLS_KEY", path("server.key")),
        ("GRPC_CLIENT_TLS_CACERT", path("ca.pem")),
        ("GRPC_CLIENT_TLS_SAN", "envoy.gateway.internal".into()),
    ])
    .await;
    assert_eq!(call(&running, d, "ca", Some("envoy")).await, Ok(99));
    assert!(call(&running, d, "ca", None).await.is_err(), "a client certificate is required");
    assert!(call(&running, d, "ca", Some("stranger")).await.is_err(), "only the named client is accepted");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_with_spiffe_ids() {
    let certs = tempfile::tempdir().unwrap();
    let d = certs.path();
    make_ca(d, "ca");
    make_cert(d, "ca", "server", "DNS:localhost,IP:127.0.0.1");
    make_cert(d, "ca", "orders", "URI:spiffe://cluster.local/ns/shop/sa/orders");
    make_cert(d, "ca", "billing", "URI:spiffe://cluster.local/ns/finance/sa/billing");
    make_cert(d, "ca", "foreign", "URI:spiffe://other.mesh/ns/shop/sa/orders");
    make_cert(d, "ca", "dns-only", "DNS:orders.shop.svc");
    let path = |f: &str| d.join(f).display().to_string();
    let (running, _config) = start(&[
        ("GRPC_SERVER_TLS_CERT", path("server.pem")),
        ("GRPC_SERVER_TLS_KEY", path("server.key")),
        ("GRPC_CLIENT_TLS_CACERT", path("ca.pem")),
        ("GRPC_CLIENT_TLS_SAN", "spiffe://cluster.local/ns/shop/*/*".into()),
    ])
    .await;
    assert_eq!(call(&running, d, "ca", Some("orders")).await, Ok(99), "a workload of namespace shop");
    assert!(call(&running, d, "ca", Some("billing")).await.is_err(), "another namespace");
    assert!(call(&running, d, "ca", Some("foreign")).await.is_err(), "another trust domain");
    assert!(call(&running, d, "ca", Some("dns-only")).await.is_err(), "no SPIFFE ID at all");
    running.shutdown().await;
}

#[test]
fn a_bad_spiffe_pattern_is_a_settings_error() {
    let env: std::collections::HashMap<String, String> =
        [("GRPC_CLIENT_TLS_SAN", "spiffe://td/**/sa")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let error = ratelimit::settings::Settings::from_env(&env).unwrap_err().to_string();
    assert!(error.contains("GRPC_CLIENT_TLS_SAN") && error.contains("'**' may only end a pattern"), "{error}");
}

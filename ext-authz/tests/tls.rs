//! Both ports over TLS and mutual TLS (`server.grpc_tls`, `server.http_tls`), from the real
//! binary: a client must trust the server's certificate, present one from the client CA, and
//! carry an allowed identity (SPIFFE ID patterns or DNS names); a rotated certificate is served
//! without a restart; bad sections are config errors naming the key.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use ext_authz::testing::SigningKey;
use jsonwebtoken::Algorithm;
use shared::testing::{make_ca, make_cert};
use support::process::*;
use support::*;
use tonic::transport::Endpoint;

const TLS: &str = "  http_check_prefix: /authz\n  grpc_tls:\n    cert_file: live.pem\n    key_file: live.key\n    \
                   client_ca_file: ca.pem\n    allowed_clients: [\"spiffe://cluster.local/ns/gateway/sa/*\", envoy.internal]\n";

/// A Check over a fresh TLS connection trusting `ca`, presenting `identity` when given: the
/// gRPC status of the answer (0 allowed), or the connection's or call's error.
async fn check(port: u16, dir: &Path, ca: &str, identity: Option<&str>) -> Result<i32, String> {
    let tls = shared::testing::client_tls(dir, ca, identity);
    let endpoint = Endpoint::from_shared(format!("https://127.0.0.1:{port}")).unwrap().tls_config(tls).unwrap();
    let channel = endpoint.connect().await.map_err(|e| format!("connect: {e:?}"))?;
    let answer = AuthorizationClient::new(channel)
        .check(check_request("GET", "/orders/1", &[("x-api-key", API_KEY)]))
        .await
        .map_err(|e| format!("call: {e:?}"))?;
    Ok(status(&answer.into_inner()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_allows_listed_workloads_and_follows_rotation() {
    let key = SigningKey::rsa("key-a", Algorithm::RS256, RSA_A);
    let idp = JwksServer::start(&[&key]).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_ca(d, "ca");
    make_ca(d, "ca2");
    make_cert(d, "ca", "server", "DNS:localhost,IP:127.0.0.1");
    make_cert(d, "ca2", "server2", "DNS:localhost,IP:127.0.0.1");
    make_cert(d, "ca", "envoy", "URI:spiffe://cluster.local/ns/gateway/sa/envoy");
    make_cert(d, "ca", "by-name", "DNS:envoy.internal");
    make_cert(d, "ca", "other-ns", "URI:spiffe://cluster.local/ns/shop/sa/envoy");
    make_cert(d, "ca2", "other-ca", "URI:spiffe://cluster.local/ns/gateway/sa/envoy");
    shared::testing::install_cert(d, "server", "live");
    std::fs::write(d.join("api-keys.yaml"), api_keys_yaml(&[(API_KEY, "billing", &["orders:read"])])).unwrap();
    let config = config_yaml(&idp.url, "").replace("  http_check_prefix: /authz\n", TLS);
    let mut p = AuthzProcess::start(&d.join("ext-authz.yaml"), &config, &[("JOBS_SECRET", HMAC_SECRET)]);

    assert_eq!(check(p.grpc, d, "ca", Some("envoy")).await, Ok(0), "an allowed SPIFFE ID");
    assert_eq!(check(p.grpc, d, "ca", Some("by-name")).await, Ok(0), "an allowed DNS name");
    assert!(check(p.grpc, d, "ca", Some("other-ns")).await.is_err(), "a workload not listed");
    assert!(check(p.grpc, d, "ca", Some("other-ca")).await.is_err(), "a certificate from another CA");
    assert!(check(p.grpc, d, "ca", None).await.is_err(), "no client certificate");
    let plain = AuthorizationClient::connect(format!("http://127.0.0.1:{}", p.grpc)).await;
    let plaintext_refused = match plain {
        Err(_) => true,
        Ok(mut client) => client.check(check_request("GET", "/orders/1", &[])).await.is_err(),
    };
    assert!(plaintext_refused, "plaintext gRPC is refused");

    // A rotated certificate (from another CA) is served without a restart.
    shared::testing::install_cert(d, "server2", "live");
    let addr = p.http_addr();
    shared::testing::eventually("the rotated certificate is served", Duration::from_secs(10), || async {
        check(p.grpc, d, "ca2", Some("envoy")).await.is_ok()
    })
    .await;
    let metrics = http(addr, "GET", "/metrics", &[]).await.2;
    assert!(metrics.contains("ext_authz_reloads_total{result=\"ok\",what=\"tls\"} 1"), "{metrics}");
    assert!(check(p.grpc, d, "ca", Some("envoy")).await.is_err(), "the old certificate is no longer served");
    assert!(p.terminate().success());
}

#[test]
fn bad_tls_sections_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("api-keys.yaml"), api_keys_yaml(&[])).unwrap();
    let file = d.join("ext-authz.yaml");
    let section = "  http_check_prefix: /authz\n  grpc_tls:\n    cert_file: missing.pem\n    key_file: \"\"\n    \
                   allowed_clients: [\"spiffe://td/**/x\", \"not a name\"]\n";
    std::fs::write(
        &file,
        ended(&config_yaml("https://idp.example.com", "").replace("  http_check_prefix: /authz\n", section)),
    )
    .unwrap();
    let out = Command::new(BIN).arg("validate").arg(&file).env("JOBS_SECRET", HMAC_SECRET).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for expected in ["server.grpc_tls.cert_file", "missing.pem", "server.grpc_tls.key_file"] {
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }
    assert!(stderr.contains("server.grpc_tls.allowed_clients: needs client_ca_file"), "{stderr}");
    assert!(stderr.contains("server.grpc_tls.allowed_clients[0]") && stderr.contains("'**' may only end"), "{stderr}");
    assert!(stderr.contains("server.grpc_tls.allowed_clients[1]") && stderr.contains("not a name"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_port_over_mutual_tls() {
    let key = SigningKey::rsa("key-a", Algorithm::RS256, RSA_A);
    let idp = JwksServer::start(&[&key]).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_ca(d, "ca");
    make_cert(d, "ca", "live", "DNS:localhost,IP:127.0.0.1");
    make_cert(d, "ca", "envoy", "URI:spiffe://cluster.local/ns/gateway/sa/envoy");
    make_cert(d, "ca", "other-ns", "URI:spiffe://cluster.local/ns/shop/sa/envoy");
    std::fs::write(d.join("api-keys.yaml"), api_keys_yaml(&[(API_KEY, "billing", &["orders:read"])])).unwrap();
    let section = "  http_check_prefix: /authz\n  http_tls:\n    cert_file: live.pem\n    key_file: live.key\n    \
                   client_ca_file: ca.pem\n    allowed_clients: [\"spiffe://cluster.local/ns/gateway/**\"]\n";
    let config = config_yaml(&idp.url, "").replace("  http_check_prefix: /authz\n", section);
    let mut p = AuthzProcess::start(&d.join("ext-authz.yaml"), &config, &[("JOBS_SECRET", HMAC_SECRET)]);
    let client = |identity: Option<&str>| {
        let read = |f: &str| std::fs::read(d.join(f)).unwrap();
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(reqwest::Certificate::from_pem(&read("ca.pem")).unwrap())
            .resolve("localhost", p.http_addr());
        if let Some(name) = identity {
            let pem = [read(&format!("{name}.pem")), read(&format!("{name}.key"))].concat();
            builder = builder.identity(reqwest::Identity::from_pem(&pem).unwrap());
        }
        builder.build().unwrap()
    };
    let url = |path: &str| format!("https://localhost:{}{path}", p.http);
    let check = client(Some("envoy")).get(url("/authz/orders/1")).header("x-api-key", API_KEY).send().await.unwrap();
    assert_eq!(check.status(), 200, "HTTP mode over mutual TLS");
    assert!(client(Some("other-ns")).get(url("/healthz")).send().await.is_err(), "a workload not listed");
    assert!(client(None).get(url("/healthz")).send().await.is_err(), "no client certificate");
    let plaintext = http(p.http_addr(), "GET", "/healthz", &[]).await;
    assert_ne!(plaintext.0, 200, "plaintext HTTP is not answered: {plaintext:?}");
    assert!(p.terminate().success());
}

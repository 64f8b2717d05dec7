//! The Redis connection settings against real servers: auth, TLS (with and without client
//! certificates), a three-node cluster and a sentinel.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::*;

/// A fixed window (`k`), a sliding window (`s`) and a token bucket (`b`): the reference's
/// pipeline and the algorithms' script on every topology.
const CONFIG: &str = "domain: topo\ndescriptors:\n  - key: k\n    rate_limit: {unit: hour, requests_per_unit: 3}\n  \
                      - key: s\n    rate_limit: {unit: hour, requests_per_unit: 3, algorithm: sliding_window}\n  \
                      - key: b\n    rate_limit: {unit: hour, requests_per_unit: 3, algorithm: token_bucket}\n";

/// Starts the service against Redis with these settings.
async fn start(extra: &[(&str, &str)]) -> Result<(ratelimit::Running, ConfigDir, TestClock), ratelimit::StartError> {
    let config = ConfigDir::new(&[("c.yaml", CONFIG)]);
    let mut env = base_env(&config);
    env.insert("REDIS_SOCKET_TYPE".into(), "tcp".into());
    env.insert("REDIS_TIMEOUT".into(), "2s".into());
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    let settings = ratelimit::settings::Settings::from_env(&env).expect("valid settings");
    let clock = TestClock::new();
    let running = ratelimit::start(settings, clock.as_clock()).await?;
    Ok((running, config, clock))
}

/// Three calls within the limit, then one over, on distinct values so keys spread over slots,
/// for each algorithm.
async fn assert_counts(running: &ratelimit::Running) {
    for key in ["k", "s", "b"] {
        assert_counts_of(running, key).await;
    }
}

async fn assert_counts_of(running: &ratelimit::Running, key: &str) {
    let mut client =
        envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient::connect(
            format!("http://{}", running.grpc_addr.unwrap()),
        )
        .await
        .unwrap();
    let values = ["a", "b", "c", "d", "e"];
    let descriptors = || values.iter().map(|v| descriptor(&[(key, v)])).collect::<Vec<_>>();
    for expected in [2, 1, 0] {
        let r = client.should_rate_limit(request("topo", descriptors())).await.unwrap().into_inner();
        assert!(r.statuses.iter().all(|s| s.limit_remaining == expected), "{key}: {r:?}");
    }
    let r = client.should_rate_limit(request("topo", descriptors())).await.unwrap().into_inner();
    assert_eq!(r.overall_code, 2, "{key}: OVER_LIMIT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_and_user_password_auth() {
    let redis = RedisServer::start_with(None, &["--requirepass", "s3cret-pw"]);
    for (auth, prefix) in [("s3cret-pw", "password:"), ("default:s3cret-pw", "user-password:")] {
        let settings = [("REDIS_URL", redis.url()), ("REDIS_AUTH", auth.into()), ("CACHE_KEY_PREFIX", prefix.into())];
        let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (running, _config, _clock) = start(&settings).await.unwrap();
        assert_counts(&running).await;
        running.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_fails_the_start_without_showing_it() {
    let redis = RedisServer::start_with(None, &["--requirepass", "right-pw"]);
    let error = start(&[
        ("REDIS_URL", &redis.url()),
        ("REDIS_AUTH", "wrong-pw"),
        ("REDIS_STARTUP_INITIAL_INTERVAL", "50ms"),
        ("REDIS_STARTUP_MAX_ELAPSED_TIME", "300ms"),
    ])
    .await
    .err()
    .expect("the start fails");
    let text = error.to_string();
    assert!(text.contains("did not answer PING"), "{text}");
    assert!(!text.contains("wrong-pw") && !text.contains("right-pw"), "{text}");
}

/// A CA, a server certificate for localhost/127.0.0.1 and a client certificate.
fn make_certificates(dir: &Path) {
    make_ca(dir, "ca");
    make_cert(dir, "ca", "server", "DNS:localhost,IP:127.0.0.1");
    make_cert(dir, "ca", "client", "DNS:client");
}

/// A TLS-only Redis (plain TCP off) on the helper's port.
fn tls_redis(certs: &Path, client_certificates: &str) -> RedisServer {
    let path = |f: &str| certs.join(f).display().to_string();
    RedisServer::start_with(
        None,
        &[
            "--port",
            "0",
            "--tls-port",
            "{port}",
            "--tls-cert-file",
            &path("server.pem"),
            "--tls-key-file",
            &path("server.key"),
            "--tls-ca-cert-file",
            &path("ca.pem"),
            "--tls-auth-clients",
            client_certificates,
        ],
    )
}

/// Settings that make a failing start fail fast.
const GIVE_UP_FAST: [(&str, &str); 2] =
    [("REDIS_STARTUP_MAX_ELAPSED_TIME", "300ms"), ("REDIS_STARTUP_INITIAL_INTERVAL", "50ms")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_verifies_the_server_with_a_private_ca() {
    let certs = tempfile::tempdir().unwrap();
    make_certificates(certs.path());
    let ca = certs.path().join("ca.pem").display().to_string();
    let redis = tls_redis(certs.path(), "no");
    let url = format!("localhost:{}", redis.port);
    let (running, _c, _k) =
        start(&[("REDIS_URL", &url), ("REDIS_TLS", "true"), ("REDIS_TLS_CACERT", &ca)]).await.unwrap();
    assert_counts(&running).await;
    running.shutdown().await;
    // Without our CA, the built-in roots do not trust the server: no start.
    let mut untrusted = vec![("REDIS_URL", url.as_str()), ("REDIS_TLS", "true")];
    untrusted.extend(GIVE_UP_FAST);
    assert!(start(&untrusted).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_presents_the_client_certificate() {
    let certs = tempfile::tempdir().unwrap();
    make_certificates(certs.path());
    let path = |f: &str| certs.path().join(f).display().to_string();
    let redis = tls_redis(certs.path(), "yes");
    let url = format!("localhost:{}", redis.port);
    let (running, _c, _k) = start(&[
        ("REDIS_URL", &url),
        ("REDIS_TLS", "true"),
        ("REDIS_TLS_CACERT", &path("ca.pem")),
        ("REDIS_TLS_CLIENT_CERT", &path("client.pem")),
        ("REDIS_TLS_CLIENT_KEY", &path("client.key")),
    ])
    .await
    .unwrap();
    assert_counts(&running).await;
    running.shutdown().await;
    // The same server refuses a client without a certificate.
    let ca = path("ca.pem");
    let mut anonymous = vec![("REDIS_URL", url.as_str()), ("REDIS_TLS", "true"), ("REDIS_TLS_CACERT", ca.as_str())];
    anonymous.extend(GIVE_UP_FAST);
    assert!(start(&anonymous).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_cluster() {
    let nodes: Vec<RedisServer> = (0..3)
        .map(|_| {
            RedisServer::start_with(
                None,
                &["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"],
            )
        })
        .collect();
    let addresses: Vec<String> = nodes.iter().map(RedisServer::url).collect();
    let status = Command::new("redis-cli")
        .arg("--cluster")
        .arg("create")
        .args(&addresses)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "redis-cli --cluster create");
    let info = async || -> String { nodes[0].command(redis::cmd("CLUSTER").arg("INFO")).await };
    let ok = shared::testing::poll(Duration::from_secs(15), async || {
        info().await.contains("cluster_state:ok").then_some(())
    });
    assert!(ok.await.is_some(), "cluster never became ok: {}", info().await);
    let (running, _c, _k) = start(&[("REDIS_TYPE", "cluster"), ("REDIS_URL", &addresses.join(","))]).await.unwrap();
    assert_counts(&running).await;
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_found_through_a_sentinel() {
    let master = RedisServer::start();
    let sentinel_config =
        format!("sentinel monitor gatehouse 127.0.0.1 {} 1\nsentinel resolve-hostnames yes\n", master.port);
    let sentinel = RedisServer::start_with(Some(&sentinel_config), &["--sentinel"]);
    let url = format!("gatehouse,{}", sentinel.url());
    let (running, _c, _k) = start(&[("REDIS_TYPE", "sentinel"), ("REDIS_URL", &url)]).await.unwrap();
    assert_counts(&running).await;
    running.shutdown().await;
    let keys: Vec<String> = master.command(redis::cmd("KEYS").arg("topo_*")).await;
    assert_eq!(keys.len(), 5, "counters live on the master the sentinel named");
}

//! Limits from an xDS server, the way Envoy Gateway delivers them: a real gRPC ADS server
//! (written here, speaking the protocol over loopback) pushes snapshots; the service loads,
//! ACKs or NACKs them, and re-subscribes after the stream breaks.

mod support;

use envoy_types::pb::ratelimit::config::ratelimit::v3 as rl;
use support::ads::AdsHarness;
use support::*;

fn domain_config(domain: &str, requests_per_unit: u32, unit: rl::RateLimitUnit) -> rl::RateLimitConfig {
    rl::RateLimitConfig {
        name: domain.into(),
        domain: domain.into(),
        descriptors: vec![rl::RateLimitDescriptor {
            key: "route".into(),
            value: "httproute/default/backend/rule/0".into(),
            descriptors: vec![rl::RateLimitDescriptor {
                key: "rule-0-match-0".into(),
                rate_limit: Some(rl::RateLimitPolicy { unit: unit as i32, requests_per_unit, ..Default::default() }),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn eg_request() -> envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest {
    request(
        "default/eg/http",
        vec![descriptor(&[("route", "httproute/default/backend/rule/0"), ("rule-0-match-0", "client-a")])],
    )
}

async fn start_service(ads_port: u16, extra: &[(&str, &str)]) -> (ratelimit::Running, TestClock) {
    let config = ConfigDir::new(&[]);
    let mut env = base_env(&config);
    for (k, v) in [
        ("CONFIG_TYPE", "GRPC_XDS_SOTW".to_string()),
        ("CONFIG_GRPC_XDS_SERVER_URL", format!("127.0.0.1:{ads_port}")),
        ("CONFIG_GRPC_XDS_NODE_ID", "envoy-ratelimit".into()),
        ("CONFIG_GRPC_XDS_NODE_METADATA", "cluster=eg,zone=a".into()),
        ("CONFIG_GRPC_XDS_CLIENT_ADDITIONAL_HEADERS", "x-tenant:blue".into()),
        ("XDS_CLIENT_BACKOFF_INITIAL_INTERVAL", "50ms".into()),
        ("CONFIG_GRPC_XDS_SERVER_CONNECT_RETRY_INTERVAL", "50ms".into()),
    ] {
        env.insert(k.into(), v);
    }
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    let settings = ratelimit::settings::Settings::from_env(&env).unwrap();
    let clock = TestClock::new();
    let running = ratelimit::start(settings, clock.as_clock()).await.unwrap();
    (running, clock)
}

async fn client(
    running: &ratelimit::Running,
) -> envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient<
    tonic::transport::Channel,
> {
    envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient::connect(format!(
        "http://{}",
        running.grpc_addr.unwrap()
    ))
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_acks_nacks_and_resubscribes() {
    let ads = AdsHarness::start(None).await;
    ads.push("1", vec![domain_config("default/eg/http", 2, rl::RateLimitUnit::Hour)]);
    // Without FORCE_START_WITHOUT_INITIAL_CONFIG the service serves only after the first snapshot.
    let (running, _clock) = start_service(ads.port, &[]).await;
    assert!(running.limiter.loaded().is_some(), "the first snapshot loaded before serving");

    let (headers, subscribe) = ads.next_request().await;
    let node = subscribe.node.as_ref().expect("the first request names the node");
    assert_eq!(node.id, "envoy-ratelimit");
    assert_eq!(node.metadata.as_ref().unwrap().fields.len(), 2);
    assert_eq!(subscribe.type_url, ratelimit::xds::TYPE_URL);
    assert_eq!(headers.get("x-tenant").unwrap(), "blue");
    let (_, ack) = ads.next_request().await;
    assert_eq!((ack.version_info.as_str(), ack.response_nonce.as_str(), ack.error_detail), ("1", "nonce-1", None));

    let mut rls = client(&running).await;
    assert_eq!(rls.should_rate_limit(eg_request()).await.unwrap().into_inner().statuses[0].limit_remaining, 1);

    // A snapshot that fails validation is NACKed with the reference's text; the old one stays.
    ads.push("2", vec![domain_config("default/eg/http", 5, rl::RateLimitUnit::Unknown)]);
    let (_, nack) = ads.next_request().await;
    assert_eq!((nack.version_info.as_str(), nack.response_nonce.as_str()), ("1", "nonce-2"));
    assert_eq!(nack.error_detail.unwrap().message, "default/eg/http: invalid rate limit unit 'UNKNOWN'");
    let r = rls.should_rate_limit(eg_request()).await.unwrap().into_inner();
    assert_eq!(
        (r.statuses[0].limit_remaining, r.statuses[0].current_limit.as_ref().unwrap().requests_per_unit),
        (0, 2)
    );

    // A good one replaces it; the count goes on (same unit, same counter).
    ads.push("3", vec![domain_config("default/eg/http", 5, rl::RateLimitUnit::Hour)]);
    let (_, ack) = ads.next_request().await;
    assert_eq!((ack.version_info.as_str(), ack.error_detail), ("3", None));
    assert_eq!(rls.should_rate_limit(eg_request()).await.unwrap().into_inner().statuses[0].limit_remaining, 2);

    // The stream breaks: the service subscribes again, telling the last version it accepted.
    ads.cut.send_modify(|n| *n += 1);
    let (_, again) = ads.next_request().await;
    assert_eq!((again.version_info.as_str(), again.node.unwrap().id.as_str()), ("3", "envoy-ratelimit"));

    // An empty snapshot (every limit deleted) loads an empty config: no limits apply.
    ads.push("4", vec![]);
    loop {
        let (_, request) = ads.next_request().await;
        if request.version_info == "4" {
            break;
        }
    }
    let r = rls.should_rate_limit(eg_request()).await.unwrap().into_inner();
    assert!(r.statuses[0].current_limit.is_none());
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_start_serves_before_the_first_snapshot() {
    // No ADS server listening yet.
    let port = free_port();
    let (running, _clock) = start_service(port, &[("FORCE_START_WITHOUT_INITIAL_CONFIG", "true")]).await;
    let mut rls = client(&running).await;
    let err = rls.should_rate_limit(eg_request()).await.unwrap_err();
    assert_eq!(err.message(), "no rate limit configuration loaded");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_to_the_xds_server() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_ca(d, "ca");
    make_cert(d, "ca", "server", "DNS:envoy-gateway,IP:127.0.0.1");
    make_cert(d, "ca", "client", "DNS:envoy-ratelimit");
    let read = |f: &str| std::fs::read(d.join(f)).unwrap();
    let path = |f: &str| d.join(f).display().to_string();
    let tls = tonic::transport::ServerTlsConfig::new()
        .identity(tonic::transport::Identity::from_pem(read("server.pem"), read("server.key")))
        .client_ca_root(tonic::transport::Certificate::from_pem(read("ca.pem")));
    let ads = AdsHarness::start(Some(tls)).await;
    ads.push("1", vec![domain_config("default/eg/http", 2, rl::RateLimitUnit::Minute)]);
    let (running, _clock) = start_service(
        ads.port,
        &[
            ("CONFIG_GRPC_XDS_SERVER_USE_TLS", "true"),
            ("CONFIG_GRPC_XDS_SERVER_TLS_CACERT", &path("ca.pem")),
            ("CONFIG_GRPC_XDS_CLIENT_TLS_CERT", &path("client.pem")),
            ("CONFIG_GRPC_XDS_CLIENT_TLS_KEY", &path("client.key")),
            ("CONFIG_GRPC_XDS_SERVER_TLS_SAN", "envoy-gateway"),
        ],
    )
    .await;
    let mut rls = client(&running).await;
    assert_eq!(rls.should_rate_limit(eg_request()).await.unwrap().into_inner().statuses[0].limit_remaining, 1);
    running.shutdown().await;
}

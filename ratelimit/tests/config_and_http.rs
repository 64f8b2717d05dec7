//! Config loading and hot reload, and the HTTP endpoints: /healthcheck, /json, /rlconfig,
//! /stats and the Prometheus metrics.

mod support;

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use support::*;

const GOOD: &str =
    "domain: web\ndescriptors:\n  - key: path\n    value: /api\n    rate_limit: {unit: hour, requests_per_unit: 2}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_config_at_start_serves_errors_until_fixed() {
    let mut h = Harness::start(
        Backend::Memory,
        &[("web.yaml", "domain: web\ndescriptors:\n  - key: k\n    rate_limit: {unit: fortnight}\n")],
        &[],
    )
    .await;
    let err = h.call(request("web", vec![descriptor(&[("path", "/api")])])).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (tonic::Code::Unknown, "no rate limit configuration loaded"));
    h.config.write("web.yaml", GOOD);
    h.eventually(|r| r.limiter.loaded().is_some()).await;
    let r = h.call(request("web", vec![descriptor(&[("path", "/api")])])).await.unwrap();
    assert_eq!(r.statuses[0].limit_remaining, 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_changes_and_keeps_the_last_good_config() {
    let mut h = Harness::start(Backend::Memory, &[("web.yaml", GOOD)], &[]).await;
    h.call(request("web", vec![descriptor(&[("path", "/api")])])).await.unwrap();

    // A broken file: counted, logged, and the old config keeps serving.
    h.config.write("web.yaml", "domain: web\nbogus: 1\n");
    h.eventually(|r| r.limiter.metrics().config_load_error.get() == 1).await;
    let r = h.call(request("web", vec![descriptor(&[("path", "/api")])])).await.unwrap();
    assert_eq!(r.statuses[0].limit_remaining, 0);

    // A new limit for the same key: counting continues on the same counter.
    h.config.write("web.yaml", &GOOD.replace("requests_per_unit: 2", "requests_per_unit: 5"));
    h.eventually(|r| r.limiter.metrics().config_load_success.get() == 2).await;
    let r = h.call(request("web", vec![descriptor(&[("path", "/api")])])).await.unwrap();
    assert_eq!((Code::try_from(r.overall_code).unwrap(), r.statuses[0].limit_remaining), (Code::Ok, 2));

    // A second file with the same domain is refused unless merging is on.
    h.config.write(
        "more.yaml",
        "domain: web\ndescriptors:\n  - key: other\n    rate_limit: {unit: hour, requests_per_unit: 1}\n",
    );
    h.eventually(|r| r.limiter.metrics().config_load_error.get() == 2).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_domain_config_merges_files() {
    let mut h = Harness::start(
        Backend::Memory,
        &[
            ("a.yaml", GOOD),
            (
                "b.yaml",
                "domain: web\ndescriptors:\n  - key: other\n    rate_limit: {unit: hour, requests_per_unit: 1}\n",
            ),
        ],
        &[("MERGE_DOMAIN_CONFIG", "true")],
    )
    .await;
    let r = h.call(request("web", vec![descriptor(&[("path", "/api")]), descriptor(&[("other", "x")])])).await.unwrap();
    assert!(r.statuses.iter().all(|s| s.current_limit.is_some()));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_endpoints() {
    let h = Harness::start(Backend::Memory, &[("web.yaml", GOOD)], &[("RESPONSE_DYNAMIC_METADATA", "true")]).await;
    let running = h.running();

    let (status, body) = http(running.http_addr, "GET", "/healthcheck", "").await;
    assert_eq!((status, body.as_str()), (200, "OK"));

    let call = r#"{"domain":"web","descriptors":[{"entries":[{"key":"path","value":"/api"}]}]}"#;
    let (status, body) = http(running.http_addr, "POST", "/json", call).await;
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["overallCode"], "OK");
    assert_eq!(json["statuses"][0]["currentLimit"], serde_json::json!({"requestsPerUnit": 2, "unit": "HOUR"}));
    assert_eq!(json["statuses"][0]["limitRemaining"], 1);
    assert_eq!(json["statuses"][0]["durationUntilReset"], "3600s");
    assert_eq!(json["dynamicMetadata"]["domain"], "web");
    http(running.http_addr, "POST", "/json", call).await;
    let (status, head, body) = http_with_head(running.http_addr, "POST", "/json", call).await;
    assert_eq!(status, 429);
    assert!(!body.contains("limitRemaining"), "zero values are omitted: {body}");
    // The hour's window ends in durationUntilReset: the 429 says so, as Envoy's does.
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let wait = json["statuses"][0]["durationUntilReset"].as_str().unwrap().trim_end_matches('s').to_string();
    assert!(head.to_ascii_lowercase().contains(&format!("\r\nretry-after: {wait}\r\n")), "{head}");
    assert_eq!(json["responseHeadersToAdd"], serde_json::json!([{"key": "Retry-After", "value": wait}]));

    let (status, body) = http(running.http_addr, "POST", "/json", "{not json").await;
    assert_eq!(status, 400);
    assert!(body.starts_with("invalid JSON"), "{body}");
    let (status, body) =
        http(running.http_addr, "POST", "/json", r#"{"domain":"","descriptors":[{"entries":[]}]}"#).await;
    assert_eq!((status, body.trim()), (400, "rate limit domain must not be empty"));

    let (status, body) = http(running.debug_addr, "GET", "/rlconfig", "").await;
    assert_eq!(
        (status, body.as_str()),
        (200, "web.path_/api: unit=HOUR requests_per_unit=2, shadow_mode: false, quota_mode: false\n")
    );

    let (status, body) = http(running.metrics_addr.unwrap(), "GET", "/metrics", "").await;
    assert_eq!(status, 200);
    for expected in [
        "ratelimit_service_rate_limit_total_hits{domain=\"web\",key1=\"path_/api\"} 3",
        "ratelimit_service_rate_limit_within_limit{domain=\"web\",key1=\"path_/api\"} 2",
        "ratelimit_service_rate_limit_over_limit{domain=\"web\",key1=\"path_/api\"} 1",
        "ratelimit_service_rate_limit_near_limit{domain=\"web\",key1=\"path_/api\"} 1",
        "ratelimit_service_config_load_success 1",
        "ratelimit_service_total_requests{grpc_method=\"ShouldRateLimit\"} 4",
        "ratelimit_service_should_rate_limit_error{err_type=\"service_error\"} 1",
        "ratelimit_service_response_time_seconds_count{grpc_method=\"ShouldRateLimit\"} 4",
    ] {
        assert!(body.contains(expected), "missing {expected:?} in\n{body}");
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_health_reports_serving_and_config_health() {
    let h = Harness::start(Backend::Memory, &[], &[("HEALTHY_WITH_AT_LEAST_ONE_CONFIG_LOADED", "true")]).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(
        tonic::transport::Channel::from_shared(format!("http://{}", h.running().grpc_addr.unwrap()))
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    let check = |service: &str| tonic_health::pb::HealthCheckRequest { service: service.into() };
    let status = health.check(check("ratelimit")).await.unwrap().into_inner().status;
    assert_eq!(status, tonic_health::pb::health_check_response::ServingStatus::NotServing as i32);
    h.config.write("web.yaml", GOOD);
    h.eventually(|r| r.health.is_healthy()).await;
    let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
    shared::testing::eventually("gRPC health SERVING", std::time::Duration::from_secs(1), async || {
        health.check(check("ratelimit")).await.unwrap().into_inner().status == serving
    })
    .await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_on_a_unix_socket() {
    let config = ConfigDir::new(&[("web.yaml", GOOD)]);
    let socket = config.root().join("ratelimit.sock");
    // A stale socket file from an earlier run is replaced.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let mut env = base_env(&config);
    env.insert("GRPC_UDS".into(), socket.display().to_string());
    let settings = ratelimit::settings::Settings::from_env(&env).unwrap();
    let running = ratelimit::start(settings, TestClock::new().as_clock()).await.unwrap();
    assert_eq!(running.grpc_addr, None);

    let path = socket.clone();
    let channel = tonic::transport::Endpoint::from_static("http://unix.socket")
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        }))
        .await
        .unwrap();
    let mut client =
        envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient::new(channel);
    let r = client.should_rate_limit(request("web", vec![descriptor(&[("path", "/api")])])).await.unwrap().into_inner();
    assert_eq!(r.statuses[0].limit_remaining, 1);
    running.shutdown().await;
}

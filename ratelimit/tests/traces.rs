//! Traces from the real binary to a real OTLP receiver: the reference's `TRACING_*` settings and
//! the `OTEL_EXPORTER_OTLP_*` variables, spans continuing the caller's trace (W3C and B3), the
//! Redis round trip as a child span, sampling, both OTLP protocols.

mod support;

use std::process::Command;
use std::time::Duration;

use shared::testing::{OtlpReceiver, ReceivedSpan};
use support::process::{Process, BIN};
use support::*;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";
const RPC: &str = "ShouldRateLimit Execution";
const REDIS: &str = "Redis Pipeline Execution";
const WAIT: Duration = Duration::from_secs(20);

fn config() -> ConfigDir {
    ConfigDir::new(&[(
        "c.yaml",
        "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: hour, requests_per_unit: 1}\n",
    )])
}

fn call(
    headers: &[(&'static str, &str)],
) -> tonic::Request<envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest> {
    let mut request = tonic::Request::new(request("d", vec![descriptor(&[("k", "v")]), descriptor(&[("k", "w")])]));
    for (name, value) in headers {
        request.metadata_mut().insert(*name, value.parse().unwrap());
    }
    request
}

fn in_trace<'a>(spans: &'a [ReceivedSpan], trace: &str, name: &str) -> Option<&'a ReceivedSpan> {
    spans.iter().find(|s| s.trace_id == trace && s.name == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continues_envoys_trace_over_grpc_with_the_redis_round_trip_as_a_child() {
    let receiver = OtlpReceiver::start().await;
    let redis = RedisServer::start();
    let config = config();
    let endpoint = receiver.grpc_endpoint();
    let mut p = Process::with_redis(
        &config,
        &redis.url(),
        &[
            ("TRACING_ENABLED", "true"),
            ("TRACING_EXPORTER_PROTOCOL", "grpc"),
            ("TRACING_SERVICE_NAMESPACE", "gateway"),
            ("TRACING_SERVICE_INSTANCE_ID", "ratelimit-0"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ],
    );
    let mut client = p.client().await;
    let traceparent = format!("00-{TRACE}-{PARENT}-01");
    let answer = client.should_rate_limit(call(&[("traceparent", &traceparent)])).await.unwrap().into_inner();
    assert_eq!(answer.overall_code, 1);
    let over = client.should_rate_limit(call(&[("traceparent", &traceparent)])).await.unwrap().into_inner();
    assert_eq!(over.overall_code, 2);

    let spans = receiver
        .wait_for("both calls' spans", WAIT, |spans| {
            spans.iter().filter(|s| s.trace_id == TRACE && s.name == RPC).count() == 2
                && spans.iter().filter(|s| s.trace_id == TRACE && s.name == REDIS).count() == 2
        })
        .await;
    let rpcs: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.trace_id == TRACE && s.name == RPC).collect();
    for rpc in &rpcs {
        assert_eq!(rpc.parent_span_id, PARENT, "a child of Envoy's span");
        assert_eq!(rpc.kind, 2, "server");
        assert_eq!(rpc.via, "grpc");
        assert_eq!(rpc.service, "RateLimit");
        assert_eq!(rpc.resource["service.namespace"], "gateway");
        assert_eq!(rpc.resource["service.instance.id"], "ratelimit-0");
        assert_eq!(rpc.attributes["ratelimit.domain"], "d");
        assert_eq!(rpc.attributes["ratelimit.descriptors"], "2");
        let redis_span =
            spans.iter().find(|s| s.name == REDIS && s.parent_span_id == rpc.span_id).expect("redis child");
        assert_eq!(redis_span.kind, 3, "client");
        assert_eq!(redis_span.attributes["db.system"], "redis");
        assert_eq!(redis_span.attributes["ratelimit.counters"], "2");
    }
    let mut decisions: Vec<&str> = rpcs.iter().map(|s| s.attributes["ratelimit.decision"].as_str()).collect();
    decisions.sort_unstable();
    assert_eq!(decisions, ["OK", "OVER_LIMIT"]);

    // B3 headers (Envoy's Zipkin tracer) are continued as well.
    let b3_trace = "80f198ee56343ba864fe8b2a57d3eff7";
    client
        .should_rate_limit(call(&[
            ("x-b3-traceid", b3_trace),
            ("x-b3-spanid", "e457b5a2e4d86bd1"),
            ("x-b3-sampled", "1"),
        ]))
        .await
        .unwrap();
    // A caller that decided not to sample is obeyed; a call with no trace starts its own.
    let unsampled = "11111111111111111111111111111111";
    client.should_rate_limit(call(&[("traceparent", &format!("00-{unsampled}-{PARENT}-00"))])).await.unwrap();
    client.should_rate_limit(call(&[])).await.unwrap();
    let spans = receiver
        .wait_for("the B3 call's and the root call's spans", WAIT, |spans| {
            in_trace(spans, b3_trace, RPC).is_some()
                && spans.iter().any(|s| s.name == RPC && s.parent_span_id.is_empty())
        })
        .await;
    assert_eq!(in_trace(&spans, b3_trace, RPC).unwrap().parent_span_id, "e457b5a2e4d86bd1");
    assert!(in_trace(&spans, unsampled, RPC).is_none(), "an unsampled parent's call was exported");
    p.sigterm();
    assert!(p.wait().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_over_http_and_samples_new_traces_by_rate() {
    let receiver = OtlpReceiver::start().await;
    let config = config();
    let endpoint = receiver.http_endpoint();
    let root = config.root().to_str().unwrap().to_string();
    let mut p = Process::start(&[
        ("RUNTIME_ROOT", &root),
        ("RUNTIME_SUBDIRECTORY", "ratelimit"),
        ("RUNTIME_WATCH_ROOT", "false"),
        ("TRACING_ENABLED", "true"),
        ("TRACING_SAMPLING_RATE", "0"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
    ]);
    let mut client = p.client().await;
    // Rate 0: a call that starts a trace is not recorded; a sampled parent's call is.
    client.should_rate_limit(call(&[])).await.unwrap();
    client.should_rate_limit(call(&[("traceparent", &format!("00-{TRACE}-{PARENT}-01"))])).await.unwrap();
    let spans = receiver.wait_for("the sampled call", WAIT, |spans| in_trace(spans, TRACE, RPC).is_some()).await;
    assert_eq!(spans.len(), 1, "only the sampled call, and no Redis span in memory: {spans:#?}");
    assert_eq!(spans[0].via, "http");
    assert_eq!(spans[0].parent_span_id, PARENT);

    // A request's own values are cut in span attributes: a 100 KB domain leaves 256 bytes.
    let long_trace = "22222222222222222222222222222222";
    let mut long = tonic::Request::new(request(&"d".repeat(100_000), vec![descriptor(&[("k", "v")])]));
    long.metadata_mut().insert("traceparent", format!("00-{long_trace}-{PARENT}-01").parse().unwrap());
    client.should_rate_limit(long).await.unwrap();
    let spans =
        receiver.wait_for("the long domain's call", WAIT, |spans| in_trace(spans, long_trace, RPC).is_some()).await;
    let domain = &in_trace(&spans, long_trace, RPC).unwrap().attributes["ratelimit.domain"];
    assert_eq!(domain.len(), shared::traces::MAX_ATTRIBUTE_BYTES);
    p.sigterm();
    assert!(p.wait().success());
}

#[test]
fn bad_tracing_settings_exit_64_naming_each() {
    let output = Command::new(BIN)
        .env_clear()
        .env("TRACING_EXPORTER_PROTOCOL", "zipkin")
        .env("TRACING_SAMPLING_RATE", "often")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")
        .env("OTEL_EXPORTER_OTLP_HEADERS", "api-key=s3cret,broken")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8(output.stderr).unwrap();
    for name in [
        "TRACING_EXPORTER_PROTOCOL",
        "TRACING_SAMPLING_RATE",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_HEADERS",
    ] {
        assert!(stderr.contains(name), "{name} not named: {stderr}");
    }
    assert!(!stderr.contains("s3cret"), "a header value was echoed: {stderr}");
}

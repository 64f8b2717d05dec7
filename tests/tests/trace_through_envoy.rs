//! One request through a real Envoy with its OpenTelemetry tracer on, and both services
//! exporting to the same real OTLP receiver: a single trace holds Envoy's spans and both
//! services' spans, each service span a child of the Envoy client span that called it.
//!
//! Its own test binary: the services run in this process, and the subscriber that exports
//! their spans is global to it.

use std::collections::HashMap;
use std::time::Duration;

use e2e::stack::API_KEY;
use e2e::{Stack, StackOptions};
use shared::env::EnvReader;
use shared::telemetry::{self, ExtraLayer, LogFormat};
use shared::testing::{OtlpReceiver, ReceivedSpan};
use shared::traces::{otlp_from_env, Protocol, TraceSettings, Tracing};

fn exporter(receiver: &OtlpReceiver, service: &str) -> Tracing {
    let env = HashMap::from([
        ("OTEL_EXPORTER_OTLP_ENDPOINT".to_string(), receiver.grpc_endpoint()),
        ("OTEL_BSP_SCHEDULE_DELAY".to_string(), "50".to_string()),
    ]);
    let mut reader = EnvReader::new(&env);
    let otlp = otlp_from_env(&mut reader, Protocol::Grpc, None);
    reader.finish().unwrap();
    let settings = TraceSettings {
        otlp,
        service_name: service.into(),
        service_namespace: None,
        service_instance_id: None,
        sampling_rate: 1.0,
    };
    Tracing::start(settings).unwrap()
}

fn one<'a>(spans: &[&'a ReceivedSpan], what: &str, test: impl Fn(&ReceivedSpan) -> bool) -> &'a ReceivedSpan {
    let found: Vec<&&ReceivedSpan> = spans.iter().filter(|s| test(s)).collect();
    assert_eq!(found.len(), 1, "{what}: expected exactly one, in {spans:#?}");
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_from_envoy_through_both_services() {
    let receiver = OtlpReceiver::start().await;
    let ratelimit = exporter(&receiver, "ratelimit");
    let ext_authz = exporter(&receiver, "ext-authz");
    let layers: Vec<ExtraLayer> =
        vec![Box::new(ratelimit.layer(&["ratelimit"])), Box::new(ext_authz.layer(&["ext_authz"]))];
    telemetry::init("warn", LogFormat::Text, &HashMap::new(), layers);

    let stack =
        Stack::start(StackOptions { trace_collector: Some(receiver.grpc_addr), ..StackOptions::default() }).await;
    let reply = stack.get("/orders/1", &[("x-api-key", API_KEY)]).await;
    assert_eq!(reply.status, 200, "{reply:?}");

    // The trace Envoy started is the one our Check span belongs to.
    let all = receiver
        .wait_for("the request's spans from Envoy and both services", Duration::from_secs(30), |spans| {
            let Some(check) = spans.iter().find(|s| s.name == "Check") else { return false };
            let trace: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.trace_id == check.trace_id).collect();
            trace.iter().any(|s| s.name == "ShouldRateLimit Execution")
                && trace.iter().any(|s| s.name == "Redis Pipeline Execution")
                && trace.iter().filter(|s| s.service == "envoy").count() >= 3
        })
        .await;
    let trace_id = &all.iter().find(|s| s.name == "Check").unwrap().trace_id;
    let trace: Vec<&ReceivedSpan> = all.iter().filter(|s| &s.trace_id == trace_id).collect();

    let ingress = one(&trace, "Envoy's ingress span", |s| s.service == "envoy" && s.parent_span_id.is_empty());
    let authz_client = one(&trace, "Envoy's ext_authz client span", |s| {
        s.service == "envoy" && s.name.contains("envoy.service.auth.v3.Authorization.Check")
    });
    let ratelimit_client = one(&trace, "Envoy's rate limit client span", |s| {
        s.service == "envoy" && s.name.contains("envoy.service.ratelimit.v3.RateLimitService.ShouldRateLimit")
    });
    let check = one(&trace, "ext-authz's Check span", |s| s.name == "Check");
    let should = one(&trace, "ratelimit's span", |s| s.name == "ShouldRateLimit Execution");
    let redis = one(&trace, "ratelimit's Redis span", |s| s.name == "Redis Pipeline Execution");

    assert_eq!(authz_client.parent_span_id, ingress.span_id, "Envoy's client spans hang off its ingress span");
    assert_eq!(ratelimit_client.parent_span_id, ingress.span_id);
    assert_eq!(check.parent_span_id, authz_client.span_id, "ext-authz continues Envoy's ext_authz call");
    assert_eq!(check.service, "ext-authz");
    assert_eq!(check.attributes["authz.decision"], "allow");
    assert_eq!(should.parent_span_id, ratelimit_client.span_id, "ratelimit continues Envoy's rate limit call");
    assert_eq!(should.service, "ratelimit");
    assert_eq!(should.attributes["ratelimit.domain"], "gatehouse-e2e");
    assert_eq!(redis.parent_span_id, should.span_id);
    assert!(!format!("{trace:?}").contains(API_KEY), "the API key reached a span");

    stack.shutdown().await;
    ratelimit.shutdown().await;
    ext_authz.shutdown().await;
}

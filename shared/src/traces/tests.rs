use std::collections::HashMap;
use std::time::Duration;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;

use super::*;

fn trace_id_of(headers: &[(&str, &str)]) -> Option<String> {
    let map: HashMap<String, String> = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let cx = propagator().extract(&map);
    let span = cx.span();
    let context = span.span_context();
    context.is_valid().then(|| context.trace_id().to_string())
}

#[test]
fn reads_w3c_first_then_b3() {
    let w3c = ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    let b3 = ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1");
    assert_eq!(trace_id_of(&[w3c, b3]).unwrap(), "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(trace_id_of(&[b3]).unwrap(), "80f198ee56343ba864fe8b2a57d3eff7");
    assert_eq!(trace_id_of(&[("traceparent", "00-zz-b7ad6b7169203331-01")]), None);
    assert_eq!(trace_id_of(&[]), None);
}

#[test]
fn instance_ids_are_random_uuids() {
    let a = random_instance_id();
    assert_eq!(a.len(), 36);
    assert_eq!(&a[14..15], "4");
    assert_ne!(a, random_instance_id());
}

#[test]
fn a_disabled_span_is_left_alone() {
    // No subscriber: the span is disabled and no header is even looked at.
    let map: HashMap<String, String> = HashMap::new();
    let span = CallTrace::read(&[&map]).span(|| tracing::info_span!("nothing"));
    record_error(&span, "not recorded");
    assert!(span.is_disabled());
}

#[test]
fn request_values_in_attributes_are_cut_at_the_bound() {
    let exact = "d".repeat(MAX_ATTRIBUTE_BYTES);
    assert_eq!(cut(&exact), exact);
    assert_eq!(cut(&format!("{exact}x")), exact);
    // A character across the bound is left out whole.
    let multibyte = format!("{}é", "d".repeat(MAX_ATTRIBUTE_BYTES - 1));
    assert_eq!(cut(&multibyte), "d".repeat(MAX_ATTRIBUTE_BYTES - 1));
    assert_eq!(cut(""), "");
}

/// The decision made before a call's span exists agrees with the exporter's sampler
/// (`ParentBased(TraceIdRatioBased(rate))`) wherever that is certain.
#[test]
fn a_call_is_recorded_as_the_sampler_would_decide() {
    opentelemetry::global::set_text_map_propagator(super::propagator());
    let headers = |pairs: &[(&str, &str)]| -> std::collections::HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    };
    let sampled = headers(&[("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]);
    let unsampled = headers(&[("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")]);
    let b3_unsampled = headers(&[
        ("x-b3-traceid", "4bf92f3577b34da6a3ce929d0e0e4736"),
        ("x-b3-spanid", "00f067aa0ba902b7"),
        ("x-b3-sampled", "0"),
    ]);
    let none = headers(&[]);
    let recorded_at = |rate, carriers: &[&dyn opentelemetry::propagation::Extractor]| {
        super::CallTrace::read_at(rate, carriers).recorded()
    };
    // No export running: the span is made (and is a disabled span, which costs nothing), and
    // no carrier is read.
    assert!(recorded_at(f64::NAN, &[&unsampled]));
    assert!(super::CallTrace::read_at(f64::NAN, &[&sampled]).parent.is_none());
    // A carried context decides, whatever the rate.
    assert!(recorded_at(0.0, &[&sampled]));
    assert!(!recorded_at(1.0, &[&unsampled]));
    assert!(!recorded_at(1.0, &[&b3_unsampled]));
    // The first carrier with a valid context wins.
    assert!(recorded_at(0.0, &[&none, &sampled]));
    // A new trace: rate 0 records nothing; above 0 the sampler decides by trace id.
    assert!(!recorded_at(0.0, &[&none]));
    assert!(recorded_at(0.5, &[&none]));
    // The parent kept is the context that decided.
    let read = super::CallTrace::read_at(0.0, &[&none, &sampled]);
    let parent = read.parent.expect("the sampled context");
    use opentelemetry::trace::TraceContextExt;
    assert_eq!(parent.span().span_context().trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
}

#[tokio::test]
async fn the_children_of_an_unrecorded_call_are_not_made() {
    // A subscriber that takes every span, so that a made span is a real one (this test's runtime
    // runs on this thread, where the default applies).
    let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry());
    let made = || tracing::info_span!("child");
    let inside = super::run_call(false, async { super::child_span(made).is_none() }).await;
    assert!(inside, "no span inside an unrecorded call");
    let recorded = super::run_call(true, async { super::child_span(made).is_none() }).await;
    let outside = super::child_span(made).is_none();
    assert!(!recorded && !outside, "made in a recorded call and outside any call");
}

/// Tracing to `endpoint` over gRPC with the exporter variables `vars`.
fn tracing_to(endpoint: String, vars: &[(&str, &str)]) -> Tracing {
    let mut env: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    env.insert("OTEL_EXPORTER_OTLP_ENDPOINT".into(), endpoint);
    let mut reader = crate::env::EnvReader::new(&env);
    let otlp = otlp_from_env(&mut reader, Protocol::Grpc, None);
    reader.finish().unwrap();
    let settings = TraceSettings {
        otlp,
        service_name: "test".into(),
        service_namespace: None,
        service_instance_id: None,
        sampling_rate: 1.0,
    };
    Tracing::start(settings).unwrap()
}

fn end_a_span(tracing: &Tracing) {
    use opentelemetry::trace::{Span as _, Tracer as _};
    tracing.provider.tracer("test").start("work").end();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_exports_are_counted() {
    // A port nobody listens on: every export is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let vars = [("OTEL_BSP_SCHEDULE_DELAY", "20"), ("OTEL_EXPORTER_OTLP_TIMEOUT", "2000")];
    let tracing = tracing_to(format!("http://127.0.0.1:{port}"), &vars);
    let before = export_failures();
    crate::testing::eventually("failed exports counted", Duration::from_secs(30), || {
        end_a_span(&tracing);
        async { export_failures() >= before + 2 }
    })
    .await;
    let registry = crate::metrics::Registry::default();
    render_export_failures(&registry, "svc_trace_export_failures_total");
    let text = registry.render();
    assert!(text.contains("# TYPE svc_trace_export_failures_total counter"), "{text}");
}

/// A collector that takes the connection and never answers (nothing reads it): the stop waits
/// `TRACING_SHUTDOWN_TIMEOUT`, not the export's own bound (the batch processor's 30 s, with an
/// export timeout of 10 minutes here), so it ends well within the 15 s asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_waits_no_longer_than_its_timeout_for_a_collector_that_never_answers() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let vars = [
        ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "600000"),
        ("TRACING_SHUTDOWN_TIMEOUT", "200ms"),
    ];
    let tracing = tracing_to(endpoint, &vars);
    for _ in 0..10 {
        end_a_span(&tracing);
    }
    tokio::time::timeout(Duration::from_secs(15), tracing.shutdown())
        .await
        .expect("the stop was held by a collector that never answers");
}

use std::collections::HashMap;

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
    let span = tracing::info_span!("nothing");
    let map: HashMap<String, String> = HashMap::new();
    continue_trace(&span, &[&map]);
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

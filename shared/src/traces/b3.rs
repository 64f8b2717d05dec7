//! B3 propagation (Zipkin's headers, which Envoy's Zipkin tracer and many meshes send): the
//! single `b3` header (`{trace}-{span}[-{sampled}[-{parent}]]`) or the `x-b3-*` headers.
//! Written here because the only maintained crate for it brings a whole Zipkin exporter.

use opentelemetry::propagation::{text_map_propagator::FieldIter, Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::Context;

const SINGLE: &str = "b3";
const TRACE_ID: &str = "x-b3-traceid";
const SPAN_ID: &str = "x-b3-spanid";
const SAMPLED: &str = "x-b3-sampled";
const FLAGS: &str = "x-b3-flags";
static FIELDS: std::sync::LazyLock<[String; 5]> =
    std::sync::LazyLock::new(|| [SINGLE, TRACE_ID, SPAN_ID, SAMPLED, FLAGS].map(String::from));

#[derive(Debug, Clone, Copy, Default)]
pub struct B3Propagator;

impl TextMapPropagator for B3Propagator {
    /// Writes the multiple-header form (the reference's default encoding).
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let context = span.span_context();
        if !context.is_valid() {
            return;
        }
        injector.set(TRACE_ID, context.trace_id().to_string());
        injector.set(SPAN_ID, context.span_id().to_string());
        injector.set(SAMPLED, if context.is_sampled() { "1" } else { "0" }.to_string());
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let found = extractor
            .get(SINGLE)
            .and_then(parse_single)
            .or_else(|| parse_multiple(extractor.get(TRACE_ID)?, extractor.get(SPAN_ID)?, extractor));
        match found {
            Some(context) => cx.with_remote_span_context(context),
            None => cx.clone(),
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(&*FIELDS)
    }
}

/// `{trace}-{span}[-{sampled}[-{parent}]]`; a bare sampling decision (`0`, `1`, `d`) carries no
/// context and is ignored.
fn parse_single(value: &str) -> Option<SpanContext> {
    let mut parts = value.trim().split('-');
    let trace = parts.next()?;
    let span = parts.next()?;
    let sampled = match parts.next() {
        None => None,
        Some("1" | "d") => Some(true),
        Some("0") => Some(false),
        Some(_) => return None,
    };
    if let Some(parent) = parts.next() {
        if SpanId::from_hex(parent).is_err() || parent.len() != 16 {
            return None;
        }
    }
    if parts.next().is_some() {
        return None;
    }
    span_context(trace, span, sampled.unwrap_or(false))
}

fn parse_multiple(trace: &str, span: &str, extractor: &dyn Extractor) -> Option<SpanContext> {
    let debug = extractor.get(FLAGS).map(str::trim) == Some("1");
    let sampled = debug || matches!(extractor.get(SAMPLED).map(str::trim), Some("1" | "true"));
    span_context(trace.trim(), span.trim(), sampled)
}

/// A 64-bit trace id is widened to 128 bits with leading zeros, as B3 specifies.
fn span_context(trace: &str, span: &str, sampled: bool) -> Option<SpanContext> {
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    if !(trace.len() == 16 || trace.len() == 32) || span.len() != 16 || !hex(trace) || !hex(span) {
        return None;
    }
    let trace_id = TraceId::from_hex(&format!("{trace:0>32}")).ok()?;
    let span_id = SpanId::from_hex(span).ok()?;
    let flags = if sampled { TraceFlags::SAMPLED } else { TraceFlags::default() };
    let context = SpanContext::new(trace_id, span_id, flags, true, TraceState::default());
    context.is_valid().then_some(context)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn extract(headers: &[(&str, &str)]) -> Option<SpanContext> {
        let map: HashMap<String, String> = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let cx = B3Propagator.extract(&map);
        let span = cx.span();
        let context = span.span_context().clone();
        context.is_valid().then_some(context)
    }

    #[test]
    fn reads_the_single_header() {
        let c = extract(&[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90")]).unwrap();
        assert_eq!(c.trace_id().to_string(), "80f198ee56343ba864fe8b2a57d3eff7");
        assert_eq!(c.span_id().to_string(), "e457b5a2e4d86bd1");
        assert!(c.is_sampled() && c.is_remote());
        assert!(!extract(&[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-0")]).unwrap().is_sampled());
        assert!(extract(&[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d")]).unwrap().is_sampled());
    }

    #[test]
    fn widens_64_bit_trace_ids() {
        let c = extract(&[("x-b3-traceid", "64fe8b2a57d3eff7"), ("x-b3-spanid", "e457b5a2e4d86bd1")]).unwrap();
        assert_eq!(c.trace_id().to_string(), "000000000000000064fe8b2a57d3eff7");
        assert!(!c.is_sampled(), "no sampling decision: not sampled (deferred)");
    }

    #[test]
    fn reads_the_multiple_headers_and_the_debug_flag() {
        let base = [("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"), ("x-b3-spanid", "e457b5a2e4d86bd1")];
        let with = |extra: (&'static str, &'static str)| {
            let mut headers = base.to_vec();
            headers.push(extra);
            extract(&headers).unwrap().is_sampled()
        };
        assert!(with(("x-b3-sampled", "1")));
        assert!(with(("x-b3-sampled", "true")));
        assert!(!with(("x-b3-sampled", "0")));
        assert!(with(("x-b3-flags", "1")));
    }

    #[test]
    fn refuses_malformed_values() {
        for bad in [
            "0",
            "1",
            "d",
            "xyz-e457b5a2e4d86bd1",
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2",
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-2",
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-zz",
            "00000000000000000000000000000000-e457b5a2e4d86bd1-1",
            "80f198ee56343ba864fe8b2a57d3eff7-0000000000000000-1",
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90-extra",
            "+0f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1",
        ] {
            assert!(extract(&[("b3", bad)]).is_none(), "{bad}");
        }
    }

    #[test]
    fn writes_what_it_reads() {
        let c = extract(&[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")]).unwrap();
        let mut out: HashMap<String, String> = HashMap::new();
        B3Propagator.inject_context(&Context::new().with_remote_span_context(c.clone()), &mut out);
        let pairs: Vec<(&str, &str)> = out.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(extract(&pairs).unwrap(), c);
    }
}

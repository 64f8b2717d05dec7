//! Traces: `tracing` spans exported as OpenTelemetry spans over OTLP (gRPC or HTTP/protobuf),
//! continuing the trace the caller (Envoy) started.
//!
//! Why spans stay `tracing` spans: with tracing off no layer is interested in them, so a span
//! macro costs one cached callsite check and the fields are never evaluated. The OTLP layer only
//! sees spans of the targets it is given (a service's own crate), so library spans never leak in.
//!
//! Settings follow the OpenTelemetry specification's environment variables (`OTEL_EXPORTER_OTLP_*`),
//! read through [`crate::env::Env`] and passed to the exporter explicitly, so tests can hand in
//! their own values and nothing is read behind the caller's back.

mod b3;
mod carrier;
mod counted;
mod otlp_env;

use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{BatchConfigBuilder, Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

pub use b3::B3Propagator;
pub use carrier::{HeaderCarrier, HeaderInjector};
pub use counted::{export_failures, render_export_failures};
pub use otlp_env::{
    otlp_from_env, OtlpSettings, Protocol, OTEL_BSP_MAX_QUEUE_SIZE, OTEL_BSP_SCHEDULE_DELAY,
    OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS, OTEL_EXPORTER_OTLP_TIMEOUT,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_HEADERS, OTEL_EXPORTER_OTLP_TRACES_TIMEOUT,
    OTLP_SETTINGS, TRACING_SHUTDOWN_TIMEOUT,
};

/// What a service exports, when tracing is on.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSettings {
    pub otlp: OtlpSettings,
    /// `service.name` of the resource.
    pub service_name: String,
    pub service_namespace: Option<String>,
    /// `service.instance.id`; a random one when unset (as the reference does).
    pub service_instance_id: Option<String>,
    /// Share of new traces (no sampled parent) recorded: 1 all, 0 none. A parent's decision wins.
    pub sampling_rate: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("OTLP trace exporter for {endpoint}: {source}")]
    Exporter { endpoint: String, source: opentelemetry_otlp::ExporterBuildError },
    #[error("OTLP over HTTP supports http:// endpoints only (got {0}); use the gRPC protocol for a TLS collector")]
    HttpsOverHttp(String),
}

/// A running export: spans are batched (bounded queue) and sent on the tokio runtime.
/// Dropping it does not flush; call [`Tracing::shutdown`] to send what is queued.
#[derive(Clone, Debug)]
pub struct Tracing {
    provider: SdkTracerProvider,
    pub settings: TraceSettings,
}

impl Tracing {
    /// Builds the exporter and installs the propagators (W3C trace context and B3) used by
    /// [`CallTrace`]. Must run inside a tokio runtime (the batch task is spawned on it).
    pub fn start(settings: TraceSettings) -> Result<Tracing, TraceError> {
        let otlp = &settings.otlp;
        let built = match otlp.protocol {
            Protocol::Grpc => {
                let mut builder = opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(otlp.endpoint.clone())
                    .with_timeout(otlp.timeout);
                if otlp.endpoint.starts_with("https://") {
                    builder = builder.with_tls_config(tonic::transport::ClientTlsConfig::new().with_webpki_roots());
                }
                let mut metadata = tonic::metadata::MetadataMap::new();
                for (name, value) in &otlp.headers {
                    if let (Ok(name), Ok(value)) = (
                        tonic::metadata::MetadataKey::from_bytes(name.as_bytes()),
                        tonic::metadata::MetadataValue::try_from(value.as_str()),
                    ) {
                        metadata.insert(name, value);
                    }
                }
                builder.with_metadata(metadata).build()
            }
            Protocol::HttpProtobuf => {
                if otlp.endpoint.starts_with("https://") {
                    return Err(TraceError::HttpsOverHttp(otlp.endpoint.clone()));
                }
                opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_endpoint(otlp.endpoint.clone())
                    .with_timeout(otlp.timeout)
                    .with_headers(otlp.headers.iter().cloned().collect())
                    .build()
            }
        };
        let exporter = built.map_err(|source| TraceError::Exporter { endpoint: otlp.endpoint.clone(), source })?;
        let batch = BatchConfigBuilder::default()
            .with_scheduled_delay(otlp.schedule_delay)
            .with_max_queue_size(otlp.max_queue_size)
            .build();
        let exporter = counted::Counted::new(exporter, otlp.timeout);
        let processor =
            BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).with_batch_config(batch).build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(settings.sampling_rate))))
            .with_resource(resource(&settings))
            .build();
        opentelemetry::global::set_text_map_propagator(propagator());
        ROOT_SAMPLING_RATE.store(settings.sampling_rate.to_bits(), std::sync::atomic::Ordering::Relaxed);
        Ok(Tracing { provider, settings })
    }

    /// The layer that turns the spans of `targets` (crate names, at INFO and above) into
    /// OpenTelemetry spans. Events inside those spans become span events.
    pub fn layer<S>(&self, targets: &[&str]) -> impl Layer<S> + Send + Sync + 'static
    where
        S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        let tracer = self.provider.tracer(self.settings.service_name.clone());
        let filter = targets.iter().fold(Targets::new(), |t, target| t.with_target(*target, LevelFilter::INFO));
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            // Each attribute costs every span its copy, conversion and encoding: none that say
            // where in our code or on which thread (or the Rust module as `target`). Nor is an
            // OpenTelemetry context made current on entering a span: outgoing calls take their
            // parent from the tracing span (`outgoing_headers`), so activation was pure cost.
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            .with_context_activation(false)
            .with_filter(filter)
    }

    /// Sends the spans still queued and stops the exporter, waiting at most
    /// `otlp.shutdown_timeout`. The SDK's own shutdown ignores its timeout and waits for the
    /// export in progress (up to the export timeout, seconds with a collector that is down or
    /// never answers), so the wait is bounded here; what is not sent by then is lost.
    pub async fn shutdown(&self) {
        let provider = self.provider.clone();
        let limit = self.settings.otlp.shutdown_timeout;
        let flushing = tokio::task::spawn_blocking(move || provider.shutdown());
        if tokio::time::timeout(limit, flushing).await.is_err() {
            tracing::warn!(?limit, "queued spans not sent: the collector did not take them in time");
        }
    }
}

fn resource(settings: &TraceSettings) -> Resource {
    let instance = settings.service_instance_id.clone().unwrap_or_else(random_instance_id);
    let mut attributes = vec![KeyValue::new("service.instance.id", instance)];
    if let Some(namespace) = &settings.service_namespace {
        attributes.push(KeyValue::new("service.namespace", namespace.clone()));
    }
    Resource::builder_empty().with_service_name(settings.service_name.clone()).with_attributes(attributes).build()
}

/// A random version-4 UUID, as the reference generates when no instance id is configured.
fn random_instance_id() -> String {
    let mut bytes: [u8; 16] = std::array::from_fn(|_| fastrand::u8(..));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// W3C trace context, else B3 (single or multiple headers). A composite applies its parts in
/// order, a later valid context replacing an earlier one, so B3 goes first: when a request
/// carries both, the W3C context (what Envoy's OpenTelemetry tracer writes) is the parent.
pub fn propagator() -> TextMapCompositePropagator {
    TextMapCompositePropagator::new(vec![
        Box::new(B3Propagator) as Box<dyn TextMapPropagator + Send + Sync>,
        Box::new(TraceContextPropagator::new()),
    ])
}

/// The sampling rate of the running export (as `f64` bits); NaN while no export runs.
static ROOT_SAMPLING_RATE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0x7ff8_0000_0000_0000);

tokio::task_local! {
    /// Set around the work of a call that will not be recorded, so that its child spans are not
    /// made either ([`child_span`]): made outside a recorded parent, they would be roots, cost
    /// as much, and at a rate above 0 could even be exported as orphans.
    static UNRECORDED_CALL: ();
}

/// What a call's trace contexts say, read once per call: whether the call will be recorded,
/// and the parent its span continues.
///
/// Recording is decided before the span is made, so that an unrecorded call costs no span at
/// all (the OpenTelemetry layer builds a span in full before the sampler drops it). It agrees
/// with the exporter's sampler where that is certain: a carried context decides (its sampled
/// flag); without one, a rate of 0 records nothing. Otherwise (a new trace at a rate above 0)
/// the span is made and the sampler decides as before. With no export running, nothing is
/// read: the span is made (a disabled span unless logs want it) and has no parent to take.
pub struct CallTrace {
    recorded: bool,
    /// The first carried context that is valid (e.g. the gRPC metadata Envoy's client wrote,
    /// then the request's own headers).
    parent: Option<opentelemetry::Context>,
}

impl CallTrace {
    pub fn read(carriers: &[&dyn opentelemetry::propagation::Extractor]) -> CallTrace {
        let rate = f64::from_bits(ROOT_SAMPLING_RATE.load(std::sync::atomic::Ordering::Relaxed));
        CallTrace::read_at(rate, carriers)
    }

    fn read_at(rate: f64, carriers: &[&dyn opentelemetry::propagation::Extractor]) -> CallTrace {
        use opentelemetry::trace::TraceContextExt;
        if rate.is_nan() {
            return CallTrace { recorded: true, parent: None };
        }
        for carrier in carriers {
            let context = opentelemetry::global::get_text_map_propagator(|p| p.extract(*carrier));
            let (valid, sampled) = {
                let carried = context.span();
                (carried.span_context().is_valid(), carried.span_context().is_sampled())
            };
            if valid {
                return CallTrace { recorded: sampled, parent: Some(context) };
            }
        }
        CallTrace { recorded: rate > 0.0, parent: None }
    }

    pub fn recorded(&self) -> bool {
        self.recorded
    }

    /// The call's span: `make()`, a child of the carried context, when the call is recorded;
    /// else no span (run the call's work with [`run_call`] so that its children are not made
    /// either).
    pub fn span(self, make: impl FnOnce() -> tracing::Span) -> tracing::Span {
        if !self.recorded {
            return tracing::Span::none();
        }
        let span = make();
        if let Some(parent) = self.parent.filter(|_| !span.is_disabled()) {
            let _ = span.set_parent(parent);
        }
        span
    }
}

/// Runs a call's work; when the call is not recorded, its [`child_span`]s are not made.
pub async fn run_call<T>(recorded: bool, work: impl std::future::Future<Output = T>) -> T {
    if recorded {
        work.await
    } else {
        UNRECORDED_CALL.scope((), work).await
    }
}

/// A span inside a call's work (a Redis round trip, a provider request): `make()`, unless the
/// call is not recorded. Work outside any call (a background key refresh) always gets its span.
pub fn child_span(make: impl FnOnce() -> tracing::Span) -> tracing::Span {
    if UNRECORDED_CALL.try_with(|_| ()).is_ok() {
        tracing::Span::none()
    } else {
        make()
    }
}

/// The current span's trace context as headers for an outgoing request (W3C `traceparent`, and
/// B3), so that the server called can join the trace; empty when no span is being exported.
pub fn outgoing_headers() -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    let span = tracing::Span::current();
    if !span.is_disabled() {
        let context = span.context();
        opentelemetry::global::get_text_map_propagator(|p| {
            p.inject_context(&context, &mut HeaderInjector(&mut headers))
        });
    }
    headers
}

/// The longest text a request puts in a span attribute, in bytes: a request's own values (a
/// rate limit domain, a method) are cut here, so a hostile request cannot make spans, or the
/// collector's storage, grow with it.
pub const MAX_ATTRIBUTE_BYTES: usize = 256;

/// `text` cut at [`MAX_ATTRIBUTE_BYTES`] (on a character boundary).
pub fn cut(text: &str) -> &str {
    if text.len() <= MAX_ATTRIBUTE_BYTES {
        return text;
    }
    let mut end = MAX_ATTRIBUTE_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Marks `span` as failed with a short, secret-free description.
pub fn record_error(span: &tracing::Span, description: impl Into<std::borrow::Cow<'static, str>>) {
    if !span.is_disabled() {
        span.set_status(opentelemetry::trace::Status::error(description));
    }
}

/// Runs `work` inside `span`, marking the span failed when the work fails. With tracing off the
/// span is disabled and this is the work alone.
///
/// A combinator rather than an `async fn`: an async fn keeps its future argument in its state
/// beside the copy it awaits, doubling the size of every future wrapped this way (and the bytes
/// copied each time a caller's future is boxed).
pub fn in_span<T, E: std::fmt::Display>(
    span: tracing::Span,
    work: impl std::future::Future<Output = Result<T, E>>,
) -> impl std::future::Future<Output = Result<T, E>> {
    use futures_util::FutureExt;
    use tracing::Instrument;
    let recorder = span.clone();
    work.instrument(span).inspect(move |result| {
        if let Err(e) = result {
            record_error(&recorder, e.to_string());
        }
    })
}

#[cfg(test)]
mod tests;

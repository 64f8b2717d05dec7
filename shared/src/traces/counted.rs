//! The span exporter, counted: every failed export (an error, or no answer within the export
//! timeout) adds to [`export_failures`] and is logged once per burst. Without it the SDK only
//! reports failures through its own internal logs, which the services do not turn on: a
//! collector that is down or refuses spans went unnoticed.
//!
//! The count is process-wide, as the exporter is (one per process, installed at start, before
//! any metrics registry exists); each service shows it as
//! `<service>_trace_export_failures_total` ([`render_export_failures`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use parking_lot::Mutex;

use crate::telemetry::LogBurst;

static EXPORT_FAILURES: AtomicU64 = AtomicU64::new(0);

/// Span exports that failed since the process started (each a batch of spans lost).
pub fn export_failures() -> u64 {
    EXPORT_FAILURES.load(Ordering::Relaxed)
}

/// Adds `name` (e.g. `ratelimit_trace_export_failures_total`) to every render of `registry`.
pub fn render_export_failures(registry: &crate::metrics::Registry, name: &'static str) {
    registry.add_collector(move |out| {
        let help = "Span exports that failed (the collector refused them, was unreachable or did not answer in time).";
        crate::metrics::counter_text(out, name, help, &[(Vec::new(), export_failures())]);
    });
}

#[derive(Debug)]
pub struct Counted<E> {
    inner: E,
    /// Each export's bound, so that one that never ends still counts as failed (the batch
    /// processor's own bound drops the export, and with it this wrapper, without a word).
    timeout: Duration,
    burst: Mutex<LogBurst>,
}

impl<E> Counted<E> {
    pub fn new(inner: E, timeout: Duration) -> Counted<E> {
        Counted { inner, timeout, burst: Mutex::default() }
    }

    fn failed(&self, error: &OTelSdkError) {
        EXPORT_FAILURES.fetch_add(1, Ordering::Relaxed);
        let logged = self.burst.lock().failed(std::time::Instant::now());
        if let Some(unsaid) = logged {
            tracing::warn!(
                failures = export_failures(),
                unsaid,
                "span export failed, spans lost (logged once per 30 s while it lasts): {error}"
            );
        }
    }
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let result = match tokio::time::timeout(self.timeout, self.inner.export(batch)).await {
            Ok(result) => result,
            Err(_) => Err(OTelSdkError::Timeout(self.timeout)),
        };
        if let Err(error) = &result {
            self.failed(error);
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

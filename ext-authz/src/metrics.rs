//! ext-authz metrics: decisions by outcome and reason, check latency, key fetches, reloads.

use shared::metrics::{CounterFamily, HistogramFamily, Registry};

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    decisions: CounterFamily,
    duration: HistogramFamily,
    pub jwks_fetches: CounterFamily,
    reloads: CounterFamily,
}

impl Default for Metrics {
    fn default() -> Self {
        let registry = Registry::default();
        Metrics {
            decisions: registry.counter_family(
                "ext_authz_decisions_total",
                "Check decisions by decision (allow, deny, error) and reason.",
            ),
            duration: registry.histogram_family(
                "ext_authz_check_duration_seconds",
                "Time to decide a check, by Envoy mode (grpc, http).",
                &[0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5],
            ),
            jwks_fetches: registry
                .counter_family("ext_authz_jwks_fetches_total", "JWKS fetches by provider and result."),
            reloads: registry
                .counter_family("ext_authz_reloads_total", "Config and API key reloads by what and result."),
            registry,
        }
    }
}

impl Metrics {
    pub fn decision(&self, decision: &'static str, reason: &'static str, mode: &'static str, seconds: f64) {
        self.decisions.with(vec![("decision", decision.into()), ("reason", reason.into())]).inc();
        self.duration.with(vec![("mode", mode.into())]).observe(seconds);
    }

    pub fn reload(&self, what: &'static str, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.reloads.with(vec![("what", what.into()), ("result", result.into())]).inc();
    }
}

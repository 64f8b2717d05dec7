//! ext-authz metrics: decisions by outcome and reason, check latency, key fetches, reloads,
//! failed rule conditions and shadow answers.

use std::collections::HashMap;
use std::sync::Arc;

use shared::metrics::{Counter, CounterFamily, Histogram, HistogramFamily, Registry};
use shared::reload::{Outcome, ReloadCounter};

use crate::core::decision::Notes;

/// Every (decision, reason) the authorizer reports, so their counters exist up front and the
/// hot path finds them without a lock or an allocation.
const OUTCOMES: &[(&str, &str)] = &[
    ("allow", "public"),
    ("allow", "default_allow"),
    ("allow", "authenticated"),
    ("allow", "workload"),
    ("deny", "no_route"),
    ("deny", "missing_credentials"),
    ("deny", "invalid_api_key"),
    ("deny", "malformed_token"),
    ("deny", "invalid_token"),
    ("deny", "expired_token"),
    ("deny", "insufficient_scope"),
    ("deny", "claim_rule"),
    ("deny", "unknown_key"),
    ("deny", "missing_principal"),
    ("deny", "principal_not_allowed"),
    ("deny", "request_principal"),
    ("deny", "upstream_credential"),
    ("deny", "deny_rule"),
    ("deny", "condition_false"),
    ("deny", "condition_error"),
    ("deny", "unknown_policy"),
    ("error", "unavailable"),
];

type LabelMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    decisions: CounterFamily,
    duration: HistogramFamily,
    pub jwks_fetches: CounterFamily,
    /// OAuth2 client-credentials token requests for upstream credentials, by credential and result.
    pub upstream_token_requests: CounterFamily,
    reloads: CounterFamily,
    /// Decision log lines lost because the writer could not keep up.
    pub decision_log_dropped: Counter,
    /// Conditions that could not be evaluated (the request was denied), by policy and rule
    /// (config names only).
    condition_errors: CounterFamily,
    /// The same for would-be answers (shadow rules, shadow policies): never a denial.
    shadow_condition_errors: CounterFamily,
    /// Shadow rules' and policies' would-be answers, by policy, rule and answer (config names only).
    shadow_decisions: CounterFamily,
    /// Handles of the known outcomes and modes (read-only after construction; keyed by the
    /// service's own labels, never by a request's, hence a fast hash).
    outcomes: Arc<LabelMap<(&'static str, &'static str), Counter>>,
    durations: Arc<LabelMap<&'static str, Histogram>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let registry = Registry::default();
        registry.include_process_metrics();
        shared::traces::render_export_failures(&registry, "ext_authz_trace_export_failures_total");
        let decisions = registry.counter_family(
            "ext_authz_decisions_total",
            "Check decisions by decision (allow, deny, error) and reason.",
        );
        let duration = registry.histogram_family(
            "ext_authz_check_duration_seconds",
            "Time to decide a check, by Envoy mode (grpc, http).",
            &[0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5],
        );
        let outcomes = OUTCOMES
            .iter()
            .map(|&(d, r)| ((d, r), decisions.with(vec![("decision", d.into()), ("reason", r.into())])))
            .collect();
        let durations = ["grpc", "http"].into_iter().map(|m| (m, duration.with(vec![("mode", m.into())]))).collect();
        Metrics {
            decisions,
            duration,
            outcomes: Arc::new(outcomes),
            durations: Arc::new(durations),
            jwks_fetches: registry
                .counter_family("ext_authz_jwks_fetches_total", "JWKS fetches by provider and result."),
            upstream_token_requests: registry.counter_family(
                "ext_authz_upstream_token_requests_total",
                "Client-credentials token requests for upstream credentials, by credential and result.",
            ),
            reloads: registry.counter_family(
                "ext_authz_reloads_total",
                "Reloads by what (config, api_keys, jwks_file, tls, upstream_credentials) and result.",
            ),
            decision_log_dropped: registry
                .counter_family(
                    "ext_authz_decision_log_dropped_total",
                    "Decision log lines dropped because the writer could not keep up.",
                )
                .with(vec![]),
            condition_errors: registry.counter_family(
                "ext_authz_condition_errors_total",
                "Rule conditions that could not be evaluated (the request was denied), by policy and rule.",
            ),
            shadow_condition_errors: registry.counter_family(
                "ext_authz_shadow_condition_errors_total",
                "Conditions of shadow rules and policies that could not be evaluated (a would-be denial only), \
                 by policy and rule.",
            ),
            shadow_decisions: registry.counter_family(
                "ext_authz_shadow_decisions_total",
                "Would-be answers of shadow rules and policies, by policy, rule and would (allow, deny).",
            ),
            registry,
        }
    }
}

impl Metrics {
    pub fn decision(&self, decision: &'static str, reason: &'static str, mode: &'static str, seconds: f64) {
        match self.outcomes.get(&(decision, reason)) {
            Some(counter) => counter.inc(),
            None => self.decisions.with(vec![("decision", decision.into()), ("reason", reason.into())]).inc(),
        }
        match self.durations.get(mode) {
            Some(histogram) => histogram.observe(seconds),
            None => self.duration.with(vec![("mode", mode.into())]).observe(seconds),
        }
    }
}

impl Metrics {
    /// Counts a decision's failed conditions and shadow answers. Every label is a name from
    /// the config (a policy, a rule, `public`, `default`), never a request's value: the series
    /// are bounded by the config.
    pub fn notes(&self, notes: &Notes<'_>) {
        for failed in &notes.condition_errors {
            let family = if failed.shadow { &self.shadow_condition_errors } else { &self.condition_errors };
            family.with(vec![("policy", failed.policy.into()), ("rule", failed.rule.into())]).inc();
        }
        for hit in &notes.shadow {
            let labels =
                vec![("policy", hit.policy.into()), ("rule", hit.rule.into()), ("would", hit.would.as_str().into())];
            self.shadow_decisions.with(labels).inc();
        }
    }
}

/// `ext_authz_reloads_total{what,result}`, for every reloadable file (`shared::reload`).
impl ReloadCounter for Metrics {
    fn count(&self, what: &'static str, outcome: Outcome) {
        self.reloads.with(vec![("what", what.into()), ("result", outcome.label().into())]).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::decision::{ConditionFailure, ErrorCode, ShadowHit, Would};

    fn series(metrics: &Metrics, family: &str) -> usize {
        metrics.registry.render().lines().filter(|line| line.starts_with(&format!("{family}{{"))).count()
    }

    /// The labels of the rule model's families are config names: however many requests come,
    /// the series are the config's (policies × rules × would), and a request's own value (a
    /// policy name nobody configured) is denied and counted under its reason, never a label.
    #[test]
    fn rule_metrics_are_bounded_by_the_config() {
        let metrics = Metrics::default();
        let rules = ["stricter", "read", "default"];
        for i in 0..10_000 {
            let rule = rules[i % rules.len()];
            let would = if i % 2 == 0 { Would::Deny } else { Would::Allow };
            let notes = Notes {
                shadow: vec![ShadowHit { policy: "routes", rule, would, code: Some(ErrorCode::Denied) }],
                condition_errors: vec![ConditionFailure {
                    policy: "routes",
                    rule,
                    index: i % 3,
                    shadow: i % 5 == 0,
                    error: String::new(),
                }],
            };
            metrics.notes(&notes);
            metrics.decision("deny", "unknown_policy", "grpc", 0.001);
        }
        assert_eq!(series(&metrics, "ext_authz_shadow_decisions_total"), rules.len() * 2);
        assert_eq!(series(&metrics, "ext_authz_condition_errors_total"), rules.len(), "by rule, not by condition");
        assert_eq!(series(&metrics, "ext_authz_shadow_condition_errors_total"), rules.len(), "shadow ones apart");
        let text = metrics.registry.render();
        assert!(
            text.contains("ext_authz_shadow_decisions_total{policy=\"routes\",rule=\"read\",would=\"allow\"}"),
            "{text}"
        );
        assert!(
            text.contains("ext_authz_decisions_total{decision=\"deny\",reason=\"unknown_policy\"} 10000"),
            "{text}"
        );
    }
}

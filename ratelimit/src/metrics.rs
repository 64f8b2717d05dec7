//! The service's metrics, under the names the reference's built-in Prometheus mapping gives them
//! (Envoy Gateway's dashboards query these): `ratelimit_service_rate_limit_<stat>{domain, key1[, key2]}`,
//! `ratelimit_service_should_rate_limit_error{err_type}`, `ratelimit_service_total_requests{grpc_method}`,
//! `ratelimit_service_response_time_seconds{grpc_method}`, `ratelimit_service_config_load_{success,error}`.
//! Reloads of every kind are also counted in our own `ratelimit_reloads_total{what,result}`.
//!
//! With a statsd sink, the same stats also go out under the reference's gostats names
//! (`ratelimit.service.rate_limit.<stat key>.total_hits`, `ratelimit_server.ShouldRateLimit.
//! response_time`, …): service-wide counters share their handle with the Prometheus series; a
//! limit's counters are kept per full stat key (Prometheus labels keep only two levels).

use std::time::Duration;

use shared::metrics::{Counter, CounterFamily, Gauge, Histogram, Labels, Registry};
use shared::reload::{Outcome, ReloadCounter};
use shared::statsd::{Statsd, Timer};

use crate::core::evaluate::StatDelta;
use crate::core::stat_key::sanitize;

/// The counters of one stat key.
#[derive(Clone)]
pub struct LimitStats {
    total_hits: Counter,
    within_limit: Counter,
    near_limit: Counter,
    over_limit: Counter,
    over_limit_with_local_cache: Counter,
    shadow_mode: Counter,
    /// The same six under the stat key's statsd names, in [`STATS`] order.
    statsd: Option<std::sync::Arc<[Counter; 6]>>,
}

/// A limit's stats, as gostats names them.
const STATS: [&str; 6] =
    ["total_hits", "within_limit", "near_limit", "over_limit", "over_limit_with_local_cache", "shadow_mode"];

impl LimitStats {
    pub fn record(&self, delta: &StatDelta) {
        self.total_hits.inc_by(delta.total_hits);
        self.within_limit.inc_by(delta.within_limit);
        self.near_limit.inc_by(delta.near_limit);
        self.over_limit.inc_by(delta.over_limit);
        self.over_limit_with_local_cache.inc_by(delta.over_limit_with_local_cache);
        self.shadow_mode.inc_by(delta.shadow_mode);
        if let Some(statsd) = &self.statsd {
            let values = [
                delta.total_hits,
                delta.within_limit,
                delta.near_limit,
                delta.over_limit,
                delta.over_limit_with_local_cache,
                delta.shadow_mode,
            ];
            for (counter, value) in statsd.iter().zip(values) {
                counter.inc_by(value);
            }
        }
    }
}

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    total_hits: CounterFamily,
    within_limit: CounterFamily,
    near_limit: CounterFamily,
    over_limit: CounterFamily,
    over_limit_with_local_cache: CounterFamily,
    shadow_mode: CounterFamily,
    domain_not_found: CounterFamily,
    pub redis_errors: Counter,
    pub service_errors: Counter,
    pub config_load_success: Counter,
    pub config_load_error: Counter,
    pub global_shadow_mode: Counter,
    pub total_requests: Counter,
    pub response_time: Histogram,
    /// Seconds or milliseconds, per `PROMETHEUS_RESPONSE_TIME_AS_MILLISECONDS`.
    pub response_time_scale: f64,
    failure_mode_answers: CounterFamily,
    pub redis_outages: Counter,
    pub local_cache_entries: Gauge,
    /// `ratelimit_reloads_total{what,result}`: every reload, whatever it reloads.
    reloads: CounterFamily,
    statsd: Option<Statsd>,
    response_timer: Option<Timer>,
}

impl Metrics {
    /// `statsd`: also send the stats there, under the reference's statsd names.
    pub fn new(response_time_in_millis: bool, statsd: Option<Statsd>) -> Metrics {
        let registry = Registry::default();
        registry.include_process_metrics();
        shared::traces::render_export_failures(&registry, "ratelimit_service_trace_export_failures_total");
        let stat =
            |name: &str, help: &str| registry.counter_family(&format!("ratelimit_service_rate_limit_{name}"), help);
        let method = || vec![("grpc_method", "ShouldRateLimit".to_string())];
        let (time_name, scale, bounds): (&str, f64, &[f64]) = if response_time_in_millis {
            (
                "ratelimit_service_response_time_milliseconds",
                1e3,
                &[0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 1000.0],
            )
        } else {
            (
                "ratelimit_service_response_time_seconds",
                1.0,
                &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0],
            )
        };
        let errors = registry
            .counter_family("ratelimit_service_should_rate_limit_error", "Failed ShouldRateLimit calls by cause.");
        let mut metrics = Metrics {
            total_hits: stat("total_hits", "Hits evaluated against a limit."),
            within_limit: stat("within_limit", "Hits within their limit."),
            near_limit: stat("near_limit", "Hits above NEAR_LIMIT_RATIO of their limit."),
            over_limit: stat("over_limit", "Hits over their limit."),
            over_limit_with_local_cache: stat(
                "over_limit_with_local_cache",
                "Over-limit hits answered from the local cache.",
            ),
            shadow_mode: stat("shadow_mode", "Over-limit hits let through by a shadow-mode rule."),
            domain_not_found: registry.counter_family(
                "ratelimit_service_rate_limit_domain_not_found",
                "Descriptors for a domain with no config.",
            ),
            redis_errors: errors.with(vec![("err_type", "redis_error".into())]),
            service_errors: errors.with(vec![("err_type", "service_error".into())]),
            config_load_success: registry
                .counter_family("ratelimit_service_config_load_success", "Successful config loads.")
                .with(vec![]),
            config_load_error: registry
                .counter_family(
                    "ratelimit_service_config_load_error",
                    "Failed config loads (the last good config stays).",
                )
                .with(vec![]),
            global_shadow_mode: registry
                .counter_family("ratelimit_service_global_shadow_mode", "OVER_LIMIT answers turned OK by SHADOW_MODE.")
                .with(vec![]),
            total_requests: registry
                .counter_family("ratelimit_service_total_requests", "ShouldRateLimit calls.")
                .with(method()),
            response_time: registry
                .histogram_family(time_name, "ShouldRateLimit response time.", bounds)
                .with(method()),
            response_time_scale: scale,
            failure_mode_answers: registry.counter_family(
                "ratelimit_service_failure_mode_answers_total",
                "Answers given by REDIS_FAILURE_MODE while Redis failed.",
            ),
            redis_outages: registry
                .counter_family("ratelimit_service_redis_outages_total", "Times Redis became unreachable.")
                .with(vec![]),
            reloads: registry.counter_family(
                "ratelimit_reloads_total",
                "Reloads by what (config, tls) and result (a refused one keeps the last good one in service).",
            ),
            local_cache_entries: registry
                .gauge_family("ratelimit_localcache_entries", "Keys in the local over-limit cache.")
                .with(vec![]),
            statsd: None,
            response_timer: None,
            registry,
        };
        if let Some(statsd) = statsd {
            metrics.send_to(statsd);
        }
        metrics
    }

    /// Registers the service-wide stats with `statsd` under the reference's names.
    fn send_to(&mut self, statsd: Statsd) {
        for (name, counter) in [
            ("ratelimit.service.config_load_success", &self.config_load_success),
            ("ratelimit.service.config_load_error", &self.config_load_error),
            ("ratelimit.service.global_shadow_mode", &self.global_shadow_mode),
            ("ratelimit.service.call.should_rate_limit.redis_error", &self.redis_errors),
            ("ratelimit.service.call.should_rate_limit.service_error", &self.service_errors),
            ("ratelimit_server.ShouldRateLimit.total_requests", &self.total_requests),
        ] {
            statsd.register_counter(name, counter);
        }
        statsd.register_gauge("ratelimit.localcache.entryCount", &self.local_cache_entries);
        // Shown where the statsd sink cannot be, at /stats on the debug port (the sinks are
        // exclusive, so a broken statsd is seen there).
        let sink = statsd.clone();
        self.registry.add_collector(move |out| {
            let help = "Sends to statsd that failed (unreachable, or not reading); each lost what it carried.";
            let series = [(Vec::new(), sink.send_failures())];
            shared::metrics::counter_text(out, "ratelimit_service_statsd_send_failures_total", help, &series);
        });
        self.response_timer = Some(statsd.timer("ratelimit_server.ShouldRateLimit.response_time"));
        self.statsd = Some(statsd);
    }

    /// One call's response time: the Prometheus histogram, and a statsd timer sample in whole
    /// milliseconds (as the reference sends it).
    pub fn observe_response_time(&self, elapsed: Duration) {
        self.response_time.observe(elapsed.as_secs_f64() * self.response_time_scale);
        if let Some(timer) = &self.response_timer {
            timer.record_ms(elapsed.as_millis() as u64);
        }
    }

    /// The counters for a configured limit's stat key (`<domain>.<level>…`).
    pub fn limit_stats(&self, stat_key: &str) -> LimitStats {
        self.stats(stat_key, CounterFamily::with)
    }

    /// The counters for a stat key made from request values (limit overrides, detailed
    /// metrics): bounded, past the bound they count under `overflow` labels.
    pub fn request_limit_stats(&self, stat_key: &str) -> LimitStats {
        self.stats(stat_key, CounterFamily::with_bounded)
    }

    fn stats(&self, stat_key: &str, series: impl Fn(&CounterFamily, Labels) -> Counter) -> LimitStats {
        let labels = labels_of(stat_key);
        LimitStats {
            total_hits: series(&self.total_hits, labels.clone()),
            within_limit: series(&self.within_limit, labels.clone()),
            near_limit: series(&self.near_limit, labels.clone()),
            over_limit: series(&self.over_limit, labels.clone()),
            over_limit_with_local_cache: series(&self.over_limit_with_local_cache, labels.clone()),
            shadow_mode: series(&self.shadow_mode, labels),
            statsd: self.statsd.as_ref().map(|statsd| {
                let prefix = format!("ratelimit.service.rate_limit.{}", sanitize(stat_key));
                std::sync::Arc::new(STATS.map(|stat| statsd.counter(&format!("{prefix}.{stat}"))))
            }),
        }
    }

    /// Counts descriptors for an unknown domain; the domain comes from the request, so the
    /// series are bounded.
    pub fn domain_not_found(&self, domain: &str, descriptors: u64) {
        let domain = sanitize(domain);
        if let Some(statsd) = &self.statsd {
            statsd.counter(&format!("ratelimit.service.rate_limit.{domain}.domain_not_found")).inc_by(descriptors);
        }
        self.domain_not_found.with_bounded(vec![("domain", domain)]).inc_by(descriptors);
    }

    pub fn failure_mode_answer(&self, mode: &'static str) -> Counter {
        self.failure_mode_answers.with(vec![("mode", mode.to_string())])
    }
}

/// Every reload in `ratelimit_reloads_total{what,result}`; config loads also in the drop-in
/// names the reference's dashboards and alerts read (`config_load_success`, `config_load_error`,
/// on Prometheus and statsd alike).
impl ReloadCounter for Metrics {
    fn count(&self, what: &'static str, outcome: Outcome) {
        self.reloads.with(vec![("what", what.to_string()), ("result", outcome.label().to_string())]).inc();
        if what == "config" {
            match outcome {
                Outcome::Loaded => self.config_load_success.inc(),
                Outcome::Refused => self.config_load_error.inc(),
            }
        }
    }
}

/// `domain`, `key1` and (for deeper keys) `key2` from a stat key, as the reference's mapping
/// derives them from the statsd name: the first three dot-separated segments.
fn labels_of(stat_key: &str) -> Labels {
    let sanitized = sanitize(stat_key);
    let mut segments = sanitized.split('.');
    let mut labels = vec![("domain", segments.next().unwrap_or_default().to_string())];
    labels.push(("key1", segments.next().unwrap_or_default().to_string()));
    if let Some(key2) = segments.next() {
        labels.push(("key2", key2.to_string()));
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_the_reference_mapping() {
        assert_eq!(labels_of("d.k_v"), vec![("domain", "d".into()), ("key1", "k_v".into())]);
        assert_eq!(labels_of("d.a.b.c"), vec![("domain", "d".into()), ("key1", "a".into()), ("key2", "b".into())]);
        assert_eq!(labels_of("d.ip_10.0.0.1")[1].1, "ip_10_0_0_1");
    }

    #[test]
    fn reloads_count_in_one_family_and_config_loads_in_the_drop_in_names_too() {
        let metrics = Metrics::new(false, None);
        metrics.count("config", Outcome::Loaded);
        metrics.count("config", Outcome::Refused);
        metrics.count("tls", Outcome::Refused);
        let text = metrics.registry.render();
        for series in [
            r#"ratelimit_reloads_total{result="ok",what="config"} 1"#,
            r#"ratelimit_reloads_total{result="error",what="config"} 1"#,
            r#"ratelimit_reloads_total{result="error",what="tls"} 1"#,
            "ratelimit_service_config_load_success 1",
            "ratelimit_service_config_load_error 1",
        ] {
            assert!(text.contains(series), "{series} in:\n{text}");
        }
    }
}

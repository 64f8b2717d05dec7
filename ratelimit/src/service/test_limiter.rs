//! A limiter over any store with one config of the test's, for the unit tests of the service
//! and of the stores (which check what a store's answers become at the service).

use super::*;
use crate::core::config::ConfigSource;
use crate::core::{Entry, RequestDescriptor};

/// `store` behind a limiter in `failure_mode`, health following the store, answering `yaml`
/// (domain `d`) at `clocks`.
pub(crate) fn limiter(
    store: Arc<dyn CounterStore>,
    failure_mode: FailureMode,
    health: Health,
    clocks: Clocks,
    yaml: &str,
) -> RateLimiter {
    let options = LimiterOptions {
        stop_increment_when_over_limit: false,
        failure_mode,
        expiration_jitter_max_seconds: 0,
        local_cache_size_in_bytes: 0,
        store_health: true,
        batch_window: None,
    };
    let limiter = RateLimiter::new(store, options, Metrics::new(false, None), health, clocks);
    let sources = [ConfigSource { name: "config.d.yaml".into(), content: yaml.into() }];
    let settings = ReloadableSettings {
        evaluation: crate::core::evaluate::EvaluationSettings::default(),
        merge_domains: false,
        dynamic_metadata: false,
    };
    limiter.install(RateLimitConfig::load(&sources, false).unwrap(), settings);
    limiter
}

/// One hit on the descriptor `key: v` of domain `d`.
pub(crate) fn request(key: &str) -> RateLimitRequest {
    RateLimitRequest {
        domain: "d".into(),
        descriptors: vec![RequestDescriptor::new(vec![Entry::new(key, "v")])],
        hits_addend: 0,
    }
}

//! The service's settings: the reference's environment variables (same names, same defaults,
//! same spellings), plus a few of our own, each declared once in [`vars`] (name, default,
//! parser, help) and printed from there by `--help`.
//!
//! This is the top of the crate: it reads the whole environment once, at start, and hands each
//! component its own settings type (the loader's [`RuntimeSettings`], the limiter's
//! [`LimiterOptions`] and [`ReloadableSettings`], the xDS client's [`XdsSettings`], Redis's
//! [`RedisSettings`]). No component reads the environment or imports this module.

mod later_failures;
pub mod vars;

use std::path::PathBuf;
use std::time::Duration;

use shared::env::{Env, EnvReader, Setting, SettingsError};
use shared::redis::{RedisSettings, SocketType, Topology};
use shared::statsd::{Format, Mogrifier, StatsdSettings, Transport};
use shared::telemetry::LogFormat;
use shared::tls::{AllowedClient, TlsFiles};
use shared::traces::TraceSettings;

use crate::core::evaluate::{EvaluationSettings, HeaderNames};
use crate::loader::RuntimeSettings;
use crate::service::{FailureMode, LimiterOptions, ReloadableSettings};
use crate::xds::{XdsSettings, XdsTls};
use vars::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Redis,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub grpc_host: String,
    pub grpc_port: u16,
    pub grpc_max_connection_age: Duration,
    pub grpc_max_connection_age_grace: Duration,
    /// `GRPC_MAX_CONNECTION_IDLE` (0: never).
    pub grpc_timeouts: shared::serve::GrpcTimeouts,
    /// `GRPC_UDS`: serve gRPC on this unix socket instead of `GRPC_HOST:GRPC_PORT`.
    pub grpc_uds: Option<PathBuf>,
    /// `GRPC_SERVER_USE_TLS` and its files.
    pub grpc_tls: Option<TlsFiles>,
    pub http_host: String,
    pub http_port: u16,
    pub debug_host: String,
    pub debug_port: u16,
    pub log_level: String,
    pub log_json: bool,
    pub runtime: RuntimeSettings,
    /// Set when `CONFIG_TYPE=GRPC_XDS_SOTW`: limits come from an xDS server, not files.
    pub xds: Option<XdsSettings>,
    pub force_start_without_initial_config: bool,
    pub healthy_with_at_least_one_config_loaded: bool,
    /// The limiter's options, fixed at start.
    pub limiter: LimiterOptions,
    /// The settings the reference re-reads at every config load. The environment of a running
    /// process never changes, so they are read once, here, and applied at every load.
    pub reloadable: ReloadableSettings,
    /// `MEMORY_MAX_COUNTERS`.
    pub memory_max_counters: usize,
    pub backend: Backend,
    /// Whether the backend was chosen by default (no BACKEND_TYPE, no REDIS_URL), for the log.
    pub backend_defaulted: bool,
    pub redis: RedisSettings,
    /// `REDIS_PERSECOND`: a second Redis for limits whose unit is SECOND.
    pub redis_per_second: Option<RedisSettings>,
    pub redis_startup_initial_interval: Duration,
    pub redis_startup_max_interval: Duration,
    pub redis_startup_max_elapsed: Duration,
    pub use_prometheus: bool,
    pub prometheus_addr: String,
    pub prometheus_path: String,
    pub response_time_in_millis: bool,
    pub shutdown_delay: Duration,
    pub shutdown_timeout: Duration,
    /// `USE_STATSD` / `USE_DOG_STATSD`: where statsd lines go.
    pub statsd: Option<StatsdSettings>,
    /// `TRACING_ENABLED`: where spans go, and as which service.
    pub tracing: Option<TraceSettings>,
    /// Non-fatal remarks about the settings, logged once telemetry is up.
    pub warnings: Vec<String>,
}

impl Settings {
    /// Parses every setting and reports every bad one at once.
    pub fn from_env(env: &dyn Env) -> Result<Settings, SettingsError> {
        let mut r = EnvReader::new(env);
        let mut warnings = Vec::new();

        let grpc_tls = grpc_tls(&mut r);
        let config_type = r.get(&CONFIG_TYPE);
        let xds = xds_settings(&mut r);
        for ignored in ["REDIS_PIPELINE_WINDOW", "REDIS_PERSECOND_PIPELINE_WINDOW", "REDIS_PERSECOND_PIPELINE_LIMIT"] {
            if r.raw(ignored).is_some() {
                // Declared (REDIS_PIPELINE_WINDOW) or not (the per-second ones), never parsed.
                warnings.push(format!(
                    "{ignored} is ignored: concurrent calls' commands are auto-pipelined (REDIS_PIPELINE_LIMIT bounds a write, for both Redis)"
                ));
            }
        }

        let sinks = stats_sinks(&mut r);
        let log_level = r.get(&LOG_LEVEL);
        if shared::telemetry::level_directive(&log_level).is_none() {
            r.fail("LOG_LEVEL", Some(log_level.clone()), "expected trace, debug, info, warn or error");
        }
        let log_json = r.get(&LOG_FORMAT) == LogFormat::Json;

        let redis_url = r.optional(&REDIS_URL);
        let backend_defaulted = r.raw(BACKEND_TYPE.name).is_none() && redis_url.is_none();
        let backend = match (r.optional(&BACKEND_TYPE), &redis_url) {
            (Some(BackendType::Redis), _) | (None, Some(_)) => Backend::Redis,
            (Some(BackendType::Memory), _) | (None, None) => Backend::Memory,
            (Some(BackendType::Memcache), _) => {
                r.fail("BACKEND_TYPE", r.raw(BACKEND_TYPE.name), "memcache is not supported; use redis or memory");
                Backend::Memory
            }
        };
        let batch_window = Some(r.get(&HOT_KEY_BATCH_WINDOW)).filter(|w| !w.is_zero());
        if batch_window.is_some_and(|w| w > Duration::from_millis(100)) {
            r.fail(
                "HOT_KEY_BATCH_WINDOW",
                r.raw("HOT_KEY_BATCH_WINDOW"),
                "at most 100ms: every request of a batch waits up to the window",
            );
        }
        let local_instances = r.get(&REDIS_FAILURE_LOCAL_INSTANCES);
        if local_instances == 0 {
            r.fail("REDIS_FAILURE_LOCAL_INSTANCES", Some("0".into()), "at least 1 instance counts");
        }
        let local_timeout = r.get(&REDIS_FAILURE_LOCAL_TIMEOUT);
        if local_timeout.is_zero() {
            r.fail(
                "REDIS_FAILURE_LOCAL_TIMEOUT",
                r.raw("REDIS_FAILURE_LOCAL_TIMEOUT"),
                "at least 1ms: 0 would never wait for Redis",
            );
        }
        // A call waits for its hot-key batch before Redis is asked: a timeout within the window
        // would give up on every call and count locally for good.
        let failure = r.get(&REDIS_FAILURE_MODE);
        let local_mode = failure == RedisFailure::Local;
        if let Some(window) = batch_window.filter(|w| local_mode && local_timeout <= *w * 2) {
            r.fail(
                "REDIS_FAILURE_LOCAL_TIMEOUT",
                r.raw("REDIS_FAILURE_LOCAL_TIMEOUT"),
                &format!("more than twice HOT_KEY_BATCH_WINDOW ({window:?}): a call waits for its batch first"),
            );
        }
        let failure_mode = match failure {
            RedisFailure::Error => FailureMode::Error,
            RedisFailure::Allow => FailureMode::Allow,
            RedisFailure::Deny => FailureMode::Deny,
            RedisFailure::Local => FailureMode::Local { instances: local_instances.max(1), timeout: local_timeout },
        };
        let pipeline_limit = pipeline_limit(&mut r);
        let redis = redis_settings(&mut r, &MAIN_REDIS, redis_url, pipeline_limit);
        let redis_per_second = if r.get(&REDIS_PERSECOND) {
            let url = r.optional(&REDIS_PERSECOND_URL);
            Some(redis_settings(&mut r, &PER_SECOND_REDIS, url, pipeline_limit))
        } else {
            None
        };
        if redis.tls_client_cert.is_some() != redis.tls_client_key.is_some() {
            r.fail("REDIS_TLS_CLIENT_KEY", None, "REDIS_TLS_CLIENT_CERT and REDIS_TLS_CLIENT_KEY go together");
        }
        if backend == Backend::Redis {
            later_failures::redis(&mut r, &MAIN_REDIS, &redis, false, &mut warnings);
            if let Some(per_second) = &redis_per_second {
                later_failures::redis(&mut r, &PER_SECOND_REDIS, per_second, redis.tls, &mut warnings);
            }
        }
        if let Some(files) = &grpc_tls {
            later_failures::grpc_tls_files(&mut r, files);
        }
        if config_type == ConfigSource::XdsSotw {
            later_failures::xds(&mut r, &xds);
        }
        for name in ["REDIS_POOL_ON_EMPTY_BEHAVIOR", "REDIS_PERSECOND_POOL_ON_EMPTY_BEHAVIOR"] {
            if let Some(v) = r.raw(name) {
                if !v.eq_ignore_ascii_case("WAIT") {
                    r.fail(name, Some(v), "only WAIT is supported, as in the reference");
                }
            }
        }

        let prometheus_addr = r.get(&PROMETHEUS_ADDR);
        if sinks.prometheus {
            later_failures::prometheus_addr(&mut r, &prometheus_addr);
        }
        let settings = Settings {
            grpc_host: r.get(&GRPC_HOST),
            grpc_port: r.get(&GRPC_PORT),
            grpc_max_connection_age: r.get(&GRPC_MAX_CONNECTION_AGE),
            grpc_max_connection_age_grace: r.get(&GRPC_MAX_CONNECTION_AGE_GRACE),
            grpc_timeouts: shared::serve::GrpcTimeouts {
                idle: Some(r.get(&GRPC_MAX_CONNECTION_IDLE)).filter(|idle| !idle.is_zero()),
                ..Default::default()
            },
            grpc_tls,
            grpc_uds: r.optional(&GRPC_UDS).map(PathBuf::from),
            http_host: r.get(&HOST),
            http_port: r.get(&PORT),
            debug_host: r.get(&DEBUG_HOST),
            debug_port: r.get(&DEBUG_PORT),
            log_level,
            log_json,
            runtime: RuntimeSettings {
                root: PathBuf::from(r.get(&RUNTIME_ROOT)),
                subdirectory: r.get(&RUNTIME_SUBDIRECTORY),
                app_directory: r.get(&RUNTIME_APPDIRECTORY),
                watch_root: r.get(&RUNTIME_WATCH_ROOT),
                ignore_dotfiles: r.get(&RUNTIME_IGNOREDOTFILES),
                poll_interval: r.get(&RUNTIME_POLL_INTERVAL),
            },
            xds: (config_type == ConfigSource::XdsSotw).then_some(xds),
            force_start_without_initial_config: r.get(&FORCE_START_WITHOUT_INITIAL_CONFIG),
            healthy_with_at_least_one_config_loaded: r.get(&HEALTHY_WITH_AT_LEAST_ONE_CONFIG_LOADED),
            limiter: LimiterOptions {
                stop_increment_when_over_limit: r.get(&STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT),
                failure_mode,
                expiration_jitter_max_seconds: r.get(&EXPIRATION_JITTER_MAX_SECONDS),
                local_cache_size_in_bytes: r.get(&LOCAL_CACHE_SIZE_IN_BYTES),
                store_health: r.get(&REDIS_HEALTH_CHECK_ACTIVE_CONNECTION),
                batch_window,
            },
            reloadable: reloadable_settings(&mut r),
            memory_max_counters: r.get(&MEMORY_MAX_COUNTERS),
            backend,
            backend_defaulted,
            redis,
            redis_per_second,
            redis_startup_initial_interval: r.get(&REDIS_STARTUP_INITIAL_INTERVAL),
            redis_startup_max_interval: r.get(&REDIS_STARTUP_MAX_INTERVAL),
            redis_startup_max_elapsed: r.get(&REDIS_STARTUP_MAX_ELAPSED_TIME),
            use_prometheus: sinks.prometheus,
            statsd: sinks.statsd,
            prometheus_addr,
            prometheus_path: r.get(&PROMETHEUS_PATH),
            response_time_in_millis: r.get(&PROMETHEUS_RESPONSE_TIME_AS_MILLISECONDS),
            shutdown_delay: r.get(&SHUTDOWN_DELAY),
            shutdown_timeout: r.get(&SHUTDOWN_TIMEOUT),
            tracing: trace_settings(&mut r),
            warnings,
        };
        r.finish()?;
        Ok(settings)
    }
}

struct StatsSinks {
    prometheus: bool,
    statsd: Option<StatsdSettings>,
}

/// The reference's stats sinks: `DISABLE_STATS` turns all off; otherwise at most one of
/// `USE_DOG_STATSD`, `USE_STATSD` (on by default) and `USE_PROMETHEUS`.
fn stats_sinks(r: &mut EnvReader<'_>) -> StatsSinks {
    let (dog, use_statsd, prometheus) = (r.get(&USE_DOG_STATSD), r.get(&USE_STATSD), r.get(&USE_PROMETHEUS));
    let host = r.get(&STATSD_HOST);
    let port = r.get(&STATSD_PORT);
    let transport = r.get(&STATSD_PROTOCOL);
    let extra_tags = extra_tags(r);
    let flush_interval = r.get(&STATS_FLUSH_INTERVAL);
    if flush_interval.is_zero() {
        r.fail(STATS_FLUSH_INTERVAL.name, Some("0s".into()), "must be longer than zero");
    }
    let mogrifier_ids = r.get(&USE_DOG_STATSD_MOGRIFIERS);
    if r.get(&DISABLE_STATS) {
        return StatsSinks { prometheus: false, statsd: None };
    }
    if [dog, use_statsd, prometheus].iter().filter(|on| **on).count() > 1 {
        let on: Vec<&str> = [(dog, "USE_DOG_STATSD"), (use_statsd, "USE_STATSD"), (prometheus, "USE_PROMETHEUS")]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, name)| *name)
            .collect();
        let reason = format!(
            "only one stats sink at a time, but {} are true (USE_STATSD is true unless set to false)",
            on.join(" and ")
        );
        r.fail("USE_STATSD", None, &reason);
    }
    let format = if dog { Some(Format::DogStatsd { mogrifiers: mogrifiers(r, &mogrifier_ids) }) } else { None };
    let statsd = match format {
        // DogStatsD goes over UDP, as the DataDog client does.
        Some(format) => {
            Some(StatsdSettings { host, port, transport: Transport::Udp, format, flush_interval, extra_tags })
        }
        None if use_statsd => {
            Some(StatsdSettings { host, port, transport, format: Format::Statsd, flush_interval, extra_tags })
        }
        None => None,
    };
    StatsSinks { prometheus: prometheus && !dog && !use_statsd, statsd }
}

/// `EXTRA_TAGS=k1:v1,k2:v2`, sorted by key as gostats sends them.
fn extra_tags(r: &mut EnvReader<'_>) -> Vec<(String, String)> {
    let text = r.get(&EXTRA_TAGS);
    let mut tags = Vec::new();
    for entry in text.split(',').filter(|e| !e.trim().is_empty()) {
        match entry.split_once(':') {
            Some((k, v)) if !k.trim().is_empty() => tags.push((k.trim().to_string(), v.trim().to_string())),
            _ => r.fail(EXTRA_TAGS.name, Some(text.clone()), &format!("entry {entry:?} is not key:value")),
        }
    }
    tags.sort();
    tags
}

/// `DOG_STATSD_MOGRIFIER_<ID>_{PATTERN,NAME,TAGS}` for each listed id, in order.
fn mogrifiers(r: &mut EnvReader<'_>, ids: &str) -> Vec<Mogrifier> {
    let mut out = Vec::new();
    for id in ids.split(',').map(str::trim).filter(|id| !id.is_empty()) {
        let var = |part: &str| format!("DOG_STATSD_MOGRIFIER_{id}_{part}");
        let (pattern, name, tags) = (r.raw(&var("PATTERN")), r.raw(&var("NAME")), r.raw(&var("TAGS")));
        match Mogrifier::new(pattern.as_deref(), name.as_deref(), tags.as_deref()) {
            Ok(m) => out.push(m),
            Err(e) => r.fail(&format!("DOG_STATSD_MOGRIFIER_{id}"), None, &e.to_string()),
        }
    }
    out
}

/// The reference's `TRACING_*` settings and the OpenTelemetry exporter variables; all are
/// checked even when tracing is off, so a typo shows before the day it is turned on.
fn trace_settings(r: &mut EnvReader<'_>) -> Option<TraceSettings> {
    let enabled = r.get(&TRACING_ENABLED);
    let protocol = r.get(&TRACING_EXPORTER_PROTOCOL);
    let otlp = shared::traces::otlp_from_env(r, protocol, None);
    let sampling_rate = r.get(&TRACING_SAMPLING_RATE);
    if !sampling_rate.is_finite() {
        r.fail(TRACING_SAMPLING_RATE.name, Some(sampling_rate.to_string()), "expected a number from 0 to 1");
    }
    let settings = TraceSettings {
        otlp,
        service_name: r.get(&TRACING_SERVICE_NAME),
        service_namespace: r.optional(&TRACING_SERVICE_NAMESPACE),
        service_instance_id: r.optional(&TRACING_SERVICE_INSTANCE_ID),
        // As the reference: at or above 1 every trace, at or below 0 none (unless a caller's
        // sampled parent says otherwise).
        sampling_rate: if sampling_rate.is_finite() { sampling_rate.clamp(0.0, 1.0) } else { 1.0 },
    };
    enabled.then_some(settings)
}

/// `GRPC_SERVER_USE_TLS` and its files.
fn grpc_tls(r: &mut EnvReader<'_>) -> Option<TlsFiles> {
    let (cert, key) = (r.optional(&GRPC_SERVER_TLS_CERT), r.optional(&GRPC_SERVER_TLS_KEY));
    let (client_ca, client_san) = (r.optional(&GRPC_CLIENT_TLS_CACERT), r.optional(&GRPC_CLIENT_TLS_SAN));
    let allowed_clients = match client_san.as_deref().map(AllowedClient::parse).transpose() {
        Ok(allowed) => allowed.into_iter().collect(),
        Err(e) => {
            r.fail(GRPC_CLIENT_TLS_SAN.name, client_san.clone(), &e.to_string());
            Vec::new()
        }
    };
    if !r.get(&GRPC_SERVER_USE_TLS) {
        return None;
    }
    match (cert, key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.into(),
            key: key.into(),
            client_ca: client_ca.map(PathBuf::from),
            allowed_clients,
        }),
        _ => {
            let reason = "GRPC_SERVER_USE_TLS=true needs GRPC_SERVER_TLS_CERT and GRPC_SERVER_TLS_KEY";
            r.fail("GRPC_SERVER_TLS_CERT", None, reason);
            None
        }
    }
}

/// The settings of one Redis: the main one (`REDIS_*`) or the per-second one
/// (`REDIS_PERSECOND_*`). Certificates are shared: `REDIS_TLS_CLIENT_CERT`, `_KEY`, `_CACERT`.
struct RedisVars {
    socket_type: Setting<SocketType>,
    topology: Setting<Topology>,
    url: Setting<String>,
    auth: Setting<String>,
    sentinel_auth: Setting<String>,
    tls: Setting<bool>,
    pool_size: Setting<usize>,
    timeout: Setting<Duration>,
}

const MAIN_REDIS: RedisVars = RedisVars {
    socket_type: REDIS_SOCKET_TYPE,
    topology: REDIS_TYPE,
    url: REDIS_URL,
    auth: REDIS_AUTH,
    sentinel_auth: REDIS_SENTINEL_AUTH,
    tls: REDIS_TLS,
    pool_size: REDIS_POOL_SIZE,
    timeout: REDIS_TIMEOUT,
};

const PER_SECOND_REDIS: RedisVars = RedisVars {
    socket_type: REDIS_PERSECOND_SOCKET_TYPE,
    topology: REDIS_PERSECOND_TYPE,
    url: REDIS_PERSECOND_URL,
    auth: REDIS_PERSECOND_AUTH,
    sentinel_auth: REDIS_PERSECOND_SENTINEL_AUTH,
    tls: REDIS_PERSECOND_TLS,
    pool_size: REDIS_PERSECOND_POOL_SIZE,
    timeout: REDIS_PERSECOND_TIMEOUT,
};

fn redis_settings(
    r: &mut EnvReader<'_>,
    vars: &RedisVars,
    url: Option<String>,
    max_pipeline_commands: usize,
) -> RedisSettings {
    let socket_type = r.get(&vars.socket_type);
    let topology = r.get(&vars.topology);
    let url = url.unwrap_or_else(|| vars.url.default.to_string());
    if topology == Topology::Sentinel && url.split(',').filter(|s| !s.trim().is_empty()).count() < 2 {
        r.fail(
            vars.url.name,
            Some(url.clone()),
            "Expected master name and a list of urls for the sentinels, in the format: <redis master name>,<sentinel1>,...,<sentineln>",
        );
    }
    let settings = RedisSettings {
        socket_type,
        topology,
        url,
        auth: r.secret(&vars.auth),
        sentinel_auth: r.secret(&vars.sentinel_auth),
        tls: r.get(&vars.tls),
        tls_client_cert: r.optional(&REDIS_TLS_CLIENT_CERT).map(PathBuf::from),
        tls_client_key: r.optional(&REDIS_TLS_CLIENT_KEY).map(PathBuf::from),
        tls_ca_cert: r.optional(&REDIS_TLS_CACERT).map(PathBuf::from),
        tls_skip_hostname_verification: r.get(&REDIS_TLS_SKIP_HOSTNAME_VERIFICATION),
        pool_size: r.get(&vars.pool_size),
        timeout: r.get(&vars.timeout),
        max_pipeline_commands,
    };
    if settings.pool_size == 0 {
        r.fail(vars.pool_size.name, Some("0".into()), "must be at least 1");
    }
    settings
}

/// `REDIS_PIPELINE_LIMIT`: 0 is the default bound; more than 65536 commands in one write would
/// only make Redis's reply buffer for it huge.
fn pipeline_limit(r: &mut EnvReader<'_>) -> usize {
    match r.get(&REDIS_PIPELINE_LIMIT) {
        0 => shared::redis::MAX_PIPELINE_COMMANDS,
        limit if limit > 65_536 => {
            r.fail(REDIS_PIPELINE_LIMIT.name, Some(limit.to_string()), "must be at most 65536 (0 = 1024)");
            shared::redis::MAX_PIPELINE_COMMANDS
        }
        limit => limit,
    }
}

fn xds_settings(r: &mut EnvReader<'_>) -> XdsSettings {
    let pairs = |r: &mut EnvReader<'_>, setting: &Setting<String>, separator: char| -> Vec<(String, String)> {
        let Some(raw) = r.optional(setting) else { return Vec::new() };
        let name = setting.name;
        let mut pairs = Vec::new();
        for item in raw.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match item.split_once(separator) {
                Some((k, v)) => pairs.push((k.trim().to_string(), v.trim().to_string())),
                None => r.fail(name, Some(raw.clone()), &format!("expected k1{separator}v1,k2{separator}v2")),
            }
        }
        pairs
    };
    let node_metadata = pairs(r, &CONFIG_GRPC_XDS_NODE_METADATA, '=');
    let headers = pairs(r, &CONFIG_GRPC_XDS_CLIENT_ADDITIONAL_HEADERS, ':');
    let use_tls = r.get(&CONFIG_GRPC_XDS_SERVER_USE_TLS);
    let ca_cert = r.optional(&CONFIG_GRPC_XDS_SERVER_TLS_CACERT).map(PathBuf::from);
    let client_cert = r.optional(&CONFIG_GRPC_XDS_CLIENT_TLS_CERT).map(PathBuf::from);
    let client_key = r.optional(&CONFIG_GRPC_XDS_CLIENT_TLS_KEY).map(PathBuf::from);
    let server_name = r.optional(&CONFIG_GRPC_XDS_SERVER_TLS_SAN);
    let tls = match (use_tls, ca_cert) {
        (false, _) => None,
        (true, Some(ca_cert)) => Some(XdsTls { ca_cert, client_cert, client_key, server_name }),
        (true, None) => {
            r.fail("CONFIG_GRPC_XDS_SERVER_TLS_CACERT", None, "required with CONFIG_GRPC_XDS_SERVER_USE_TLS=true");
            None
        }
    };
    XdsSettings {
        server_url: r.get(&CONFIG_GRPC_XDS_SERVER_URL),
        node_id: r.get(&CONFIG_GRPC_XDS_NODE_ID),
        node_metadata,
        headers,
        tls,
        backoff_initial: r.get(&XDS_CLIENT_BACKOFF_INITIAL_INTERVAL),
        backoff_max: r.get(&XDS_CLIENT_BACKOFF_MAX_INTERVAL),
        backoff_random_factor: r.get(&XDS_CLIENT_BACKOFF_RANDOM_FACTOR),
        backoff_jitter: r.get(&XDS_CLIENT_BACKOFF_JITTER),
        connect_retry_interval: r.get(&CONFIG_GRPC_XDS_SERVER_CONNECT_RETRY_INTERVAL),
        max_message_size: r.get(&XDS_CLIENT_MAX_MSG_SIZE_IN_BYTES),
    }
}

/// `SHADOW_MODE`, `QUOTA_MODE`, `NEAR_LIMIT_RATIO`, the response headers and `Retry-After`, `CACHE_KEY_PREFIX`,
/// `MERGE_DOMAIN_CONFIG` and `RESPONSE_DYNAMIC_METADATA`: applied at every config load.
fn reloadable_settings(r: &mut EnvReader<'_>) -> ReloadableSettings {
    let headers = r.get(&LIMIT_RESPONSE_HEADERS_ENABLED).then(|| HeaderNames {
        limit: r.get(&LIMIT_LIMIT_HEADER),
        remaining: r.get(&LIMIT_REMAINING_HEADER),
        reset: r.get(&LIMIT_RESET_HEADER),
    });
    let near_limit_ratio = r.get(&NEAR_LIMIT_RATIO);
    if !(0.0..=1.0).contains(&near_limit_ratio) {
        r.fail("NEAR_LIMIT_RATIO", Some(near_limit_ratio.to_string()), "must be between 0 and 1");
    }
    ReloadableSettings {
        evaluation: EvaluationSettings {
            cache_key_prefix: r.get(&CACHE_KEY_PREFIX),
            near_limit_ratio,
            global_shadow_mode: r.get(&SHADOW_MODE),
            global_quota_mode: r.get(&QUOTA_MODE),
            response_headers: headers,
            retry_after: r.get(&LIMIT_RETRY_AFTER_HEADER_ENABLED),
        },
        merge_domains: r.get(&MERGE_DOMAIN_CONFIG),
        dynamic_metadata: r.get(&RESPONSE_DYNAMIC_METADATA),
    }
}

/// `PORT` alone, for `ratelimit healthcheck` (which asks the local service, whatever else is
/// set); a bad value is the default, as the service would fail to start on it anyway.
pub fn http_port(env: &dyn Env) -> u16 {
    EnvReader::new(env).get(&PORT)
}

/// The declared defaults (`NEAR_LIMIT_RATIO` and the others read by [`reloadable_settings`]):
/// what a service started without those variables evaluates with. Here rather than beside the
/// type so that each default is written once, in [`vars`], and core stays out of settings.
impl Default for EvaluationSettings {
    fn default() -> Self {
        reloadable_settings(&mut EnvReader::new(&std::collections::HashMap::new())).evaluation
    }
}

/// The declared `LIMIT_*_HEADER` names.
impl Default for HeaderNames {
    fn default() -> Self {
        HeaderNames {
            limit: LIMIT_LIMIT_HEADER.default_value(),
            remaining: LIMIT_REMAINING_HEADER.default_value(),
            reset: LIMIT_RESET_HEADER.default_value(),
        }
    }
}

/// `MERGE_DOMAIN_CONFIG` alone, for `ratelimit validate` (which must not fail on settings it
/// does not use).
pub fn merge_domains(env: &dyn Env) -> bool {
    EnvReader::new(env).get(&MERGE_DOMAIN_CONFIG)
}

/// Settings for a service on loopback with ports the OS picks (read the bound addresses from
/// [`crate::Running`]), config files under `<runtime_root>/ratelimit/`. The starting point of
/// the tests, the end-to-end stack, the demo and the benchmarks; callers add the backend.
pub fn loopback_env(runtime_root: &std::path::Path) -> std::collections::HashMap<String, String> {
    let mut env: std::collections::HashMap<String, String> = [
        ("GRPC_HOST", "127.0.0.1"),
        ("GRPC_PORT", "0"),
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        ("DEBUG_HOST", "127.0.0.1"),
        ("DEBUG_PORT", "0"),
        ("RUNTIME_SUBDIRECTORY", "ratelimit"),
        ("RUNTIME_WATCH_ROOT", "false"),
        // No statsd server on a test machine (the reference's default sink is statsd).
        ("USE_STATSD", "false"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.insert("RUNTIME_ROOT".into(), runtime_root.display().to_string());
    env
}

/// The `--help` text: usage, then every setting with its default, section by section.
pub fn help_text() -> String {
    let mut out = String::from(
        "ratelimit — Envoy's global rate limit service, a drop-in for envoyproxy/ratelimit\n\n\
         USAGE:\n    ratelimit                      run the service (configured by environment variables)\n    \
         ratelimit validate <path>...   check config files or directories; exit 1 listing every error\n    \
         ratelimit validate --reference <path>...\n                                   the same, and whether envoyproxy/ratelimit can load them\n    \
         ratelimit healthcheck          exit 0 when the local service answers /healthcheck (for containers)\n    \
         ratelimit --help | --version\n\nSETTINGS (environment variables), by section:\n",
    );
    out.push_str(&shared::env::help_sections(vars::ALL, vars::SECTIONS));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;
    use std::collections::HashMap;

    /// Records every name the parser asks for.
    #[derive(Default)]
    struct Recording(Mutex<Vec<String>>, HashMap<String, String>);

    impl Env for Recording {
        fn var(&self, name: &str) -> Option<String> {
            self.0.lock().push(name.to_string());
            self.1.get(name).cloned()
        }
    }

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_start_on_memory() {
        let s = Settings::from_env(&env(&[])).unwrap();
        assert_eq!((s.backend, s.backend_defaulted), (Backend::Memory, true));
        assert_eq!((s.grpc_port, s.http_port, s.debug_port), (8081, 8080, 6070));
        assert_eq!(s.limiter.failure_mode, FailureMode::Error);
        assert_eq!(s.redis.socket_type, SocketType::Unix);
    }

    #[test]
    fn grpc_idle_timeout_defaults_to_five_minutes_and_0_turns_it_off() {
        let default = Settings::from_env(&env(&[])).unwrap();
        assert_eq!(default.grpc_timeouts.idle, Some(Duration::from_secs(300)));
        let off = Settings::from_env(&env(&[("GRPC_MAX_CONNECTION_IDLE", "0")])).unwrap();
        assert_eq!(off.grpc_timeouts.idle, None);
        let short = Settings::from_env(&env(&[("GRPC_MAX_CONNECTION_IDLE", "30s")])).unwrap();
        assert_eq!(short.grpc_timeouts.idle, Some(Duration::from_secs(30)));
    }

    #[test]
    fn redis_url_selects_redis() {
        let s = Settings::from_env(&env(&[
            ("REDIS_URL", "127.0.0.1:6379"),
            ("REDIS_SOCKET_TYPE", "tcp"),
            ("REDIS_TYPE", "single"),
        ]))
        .unwrap();
        assert_eq!(s.backend, Backend::Redis);
        assert_eq!(s.redis.topology, Topology::Single);
    }

    #[test]
    fn reports_every_bad_setting_without_secrets() {
        let err = Settings::from_env(&env(&[
            ("GRPC_PORT", "http"),
            ("REDIS_FAILURE_MODE", "maybe"),
            ("REDIS_TYPE", "sentinel"),
            ("REDIS_URL", "onlymaster"),
            ("REDIS_AUTH", "hunter2"),
            ("SHADOW_MODE", "sometimes"),
            ("REDIS_FAILURE_LOCAL_INSTANCES", "0"),
            ("HOT_KEY_BATCH_WINDOW", "1s"),
        ]))
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("HOT_KEY_BATCH_WINDOW=\"1s\" is not valid: at most 100ms"), "{text}");
        assert!(text.contains("REDIS_FAILURE_LOCAL_INSTANCES=\"0\""), "{text}");
        assert!(text.contains("GRPC_PORT=\"http\""), "{text}");
        assert!(text.contains("REDIS_FAILURE_MODE=\"maybe\""), "{text}");
        assert!(text.contains("Expected master name"), "{text}");
        assert!(text.contains("SHADOW_MODE"), "{text}");
        assert!(!text.contains("hunter2"));
    }

    #[test]
    fn the_local_failure_mode_takes_its_instance_count_and_timeout() {
        let s = Settings::from_env(&env(&[
            ("REDIS_FAILURE_MODE", "local"),
            ("REDIS_FAILURE_LOCAL_INSTANCES", "3"),
            ("REDIS_FAILURE_LOCAL_TIMEOUT", "100ms"),
        ]));
        let three = FailureMode::Local { instances: 3, timeout: Duration::from_millis(100) };
        assert_eq!(s.unwrap().limiter.failure_mode, three);
        let one = Settings::from_env(&env(&[("REDIS_FAILURE_MODE", "local")])).unwrap();
        assert_eq!(one.limiter.failure_mode, FailureMode::Local { instances: 1, timeout: Duration::from_millis(250) });
        let zero = Settings::from_env(&env(&[("REDIS_FAILURE_MODE", "local"), ("REDIS_FAILURE_LOCAL_TIMEOUT", "0s")]));
        assert!(zero.unwrap_err().to_string().contains("REDIS_FAILURE_LOCAL_TIMEOUT=\"0s\""));
        let within_batch = Settings::from_env(&env(&[
            ("REDIS_FAILURE_MODE", "local"),
            ("REDIS_FAILURE_LOCAL_TIMEOUT", "100ms"),
            ("HOT_KEY_BATCH_WINDOW", "50ms"),
        ]));
        let text = within_batch.unwrap_err().to_string();
        assert!(text.contains("more than twice HOT_KEY_BATCH_WINDOW (50ms)"), "{text}");
    }

    #[test]
    fn ignored_pipeline_settings_start_with_a_warning_whatever_their_value() {
        let s =
            Settings::from_env(&env(&[("REDIS_PIPELINE_WINDOW", "150us"), ("REDIS_PERSECOND_PIPELINE_LIMIT", "x")]))
                .unwrap();
        assert_eq!(s.warnings.len(), 2, "{:?}", s.warnings);
        assert!(s.warnings[0].starts_with("REDIS_PIPELINE_WINDOW is ignored"), "{:?}", s.warnings);
    }

    #[test]
    fn the_pipeline_limit_bounds_each_write_to_redis() {
        let limit = |value: &str| {
            Settings::from_env(&env(&[("REDIS_PIPELINE_LIMIT", value), ("REDIS_PERSECOND", "true")]))
                .map(|s| (s.redis.max_pipeline_commands, s.redis_per_second.map(|r| r.max_pipeline_commands)))
        };
        assert_eq!(limit("0").unwrap(), (1024, Some(1024)));
        assert_eq!(limit("1").unwrap(), (1, Some(1)));
        assert_eq!(limit("65536").unwrap(), (65536, Some(65536)));
        let text = limit("65537").unwrap_err().to_string();
        assert!(text.contains("REDIS_PIPELINE_LIMIT=\"65537\" is not valid: must be at most 65536"), "{text}");
        assert!(limit("eight").unwrap_err().to_string().contains("REDIS_PIPELINE_LIMIT=\"eight\""));
    }

    #[test]
    fn a_choice_reads_as_its_enum_and_an_unknown_spelling_names_the_accepted_ones() {
        let s = Settings::from_env(&env(&[
            ("REDIS_URL", "127.0.0.1:6379"),
            ("REDIS_SOCKET_TYPE", "TCP"),
            ("REDIS_TYPE", "cluster"),
            ("STATSD_PROTOCOL", "udp"),
            ("LOG_FORMAT", "json"),
            ("CONFIG_TYPE", "grpc_xds_sotw"),
            ("TRACING_ENABLED", "true"),
            ("TRACING_EXPORTER_PROTOCOL", "grpc"),
        ]))
        .unwrap();
        assert_eq!((s.redis.socket_type, s.redis.topology), (SocketType::Tcp, Topology::Cluster));
        assert_eq!(s.statsd.map(|statsd| statsd.transport), Some(Transport::Udp));
        assert!(s.log_json && s.xds.is_some());
        assert_eq!(s.tracing.map(|t| t.otlp.protocol), Some(shared::traces::Protocol::Grpc));
        let text = Settings::from_env(&env(&[("REDIS_FAILURE_MODE", "maybe"), ("REDIS_TYPE", "ring")]))
            .unwrap_err()
            .to_string();
        assert!(text.contains("REDIS_FAILURE_MODE=\"maybe\" is not valid: expected one of error, allow, deny, local"));
        assert!(text.contains("REDIS_TYPE=\"ring\" is not valid: expected one of SINGLE, CLUSTER, SENTINEL"), "{text}");
        let memcache = Settings::from_env(&env(&[("BACKEND_TYPE", "memcache")])).unwrap_err().to_string();
        assert!(memcache.contains("BACKEND_TYPE=\"memcache\" is not valid: memcache is not supported"), "{memcache}");
    }

    #[test]
    fn help_groups_the_settings_by_section() {
        let help = help_text();
        for section in vars::SECTIONS {
            assert!(help.contains(&format!("\n  {}:\n    {}\n", section.title, section.first)), "{help}");
        }
        let redis = help.find("\n  Redis:\n").unwrap();
        assert!(help[redis..].find("    REDIS_TIMEOUT\n") < help[redis..].find("\n  When Redis fails:\n"));
        assert!(help.contains(
            "    REDIS_SOCKET_TYPE\n        tcp or unix\n        values: tcp, unix\n        default: unix\n"
        ));
        assert!(help.contains("  Tracing (OpenTelemetry):\n"), "the OTLP settings close the tracing section");
        assert!(help.trim_end().ends_with(&format!("default: {}", shared::traces::TRACING_SHUTDOWN_TIMEOUT.default)));
    }

    #[test]
    fn the_core_defaults_are_the_declared_ones() {
        let evaluation = EvaluationSettings::default();
        assert_eq!(evaluation.near_limit_ratio, 0.8);
        assert_eq!(evaluation, Settings::from_env(&env(&[])).unwrap().reloadable.evaluation);
        assert_eq!(HeaderNames::default().limit, "RateLimit-Limit");
    }

    /// The settings tables of the README and docs/observability.md state the declared defaults.
    #[test]
    fn the_documented_defaults_are_the_declared_ones() {
        for doc in ["README.md", "docs/observability.md"] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(doc);
            let text = std::fs::read_to_string(&path).unwrap();
            let found = shared::env::documented_defaults(&text, ALL, &[]);
            assert!(found.problems.is_empty(), "{doc} and settings::vars differ:\n{}", found.problems.join("\n"));
            assert!(found.checked.len() >= 6, "{doc}: only {:?} compared", found.checked);
        }
    }

    #[test]
    fn every_declared_default_parses() {
        for setting in ALL {
            setting.default_parses().unwrap();
        }
    }

    #[test]
    fn help_shows_every_declared_setting_with_its_default() {
        let help = help_text();
        assert!(help.contains("    GRPC_PORT\n        port of the gRPC server\n        default: 8081\n"), "{help}");
        assert_eq!(help.matches("\n        default: ").count(), ALL.len());
    }

    #[test]
    fn every_setting_read_is_documented() {
        let recording = Recording(
            Mutex::default(),
            env(&[("LIMIT_RESPONSE_HEADERS_ENABLED", "true"), ("REDIS_PERSECOND", "true")]),
        );
        Settings::from_env(&recording).unwrap();
        let documented: Vec<&str> = ALL.iter().map(|s| s.name()).collect();
        let undocumented_ok = [
            "REDIS_POOL_ON_EMPTY_BEHAVIOR",
            "REDIS_PERSECOND_POOL_ON_EMPTY_BEHAVIOR",
            "REDIS_PERSECOND_PIPELINE_WINDOW",
            "REDIS_PERSECOND_PIPELINE_LIMIT",
        ];
        for name in recording.0.lock().iter() {
            assert!(
                documented.contains(&name.as_str()) || undocumented_ok.contains(&name.as_str()),
                "{name} is not declared in settings::vars::ALL"
            );
        }
        for name in documented {
            assert!(recording.0.lock().iter().any(|n| n == name), "{name} is documented but never read");
        }
    }
}

//! The service's settings: the reference's environment variables (same names, same defaults,
//! same spellings), plus a few of our own, each documented in [`SETTINGS`] for `--help`.

use std::path::PathBuf;
use std::time::Duration;

use shared::env::{Env, EnvReader, SettingsError};
use shared::redis::{RedisSettings, SocketType, Topology};
use shared::tls::TlsFiles;

use crate::core::evaluate::{EvaluationSettings, HeaderNames};
use crate::xds::{XdsSettings, XdsTls};

/// `(name, default, meaning)` of every setting, in the order `--help` prints them.
pub const SETTINGS: &[(&str, &str, &str)] = &[
    ("GRPC_HOST", "0.0.0.0", "address of the gRPC server (ShouldRateLimit, grpc.health.v1)"),
    ("GRPC_PORT", "8081", "port of the gRPC server"),
    ("GRPC_UDS", "", "serve gRPC on this unix socket path instead of GRPC_HOST:GRPC_PORT"),
    ("GRPC_MAX_CONNECTION_AGE", "24h", "close client connections after this long (lets load balancers rebalance)"),
    ("GRPC_MAX_CONNECTION_AGE_GRACE", "1h", "time given to calls on a connection closed for its age"),
    ("GRPC_SERVER_USE_TLS", "false", "serve gRPC over TLS (certificates re-read when their files change)"),
    ("GRPC_SERVER_TLS_CERT", "", "server certificate chain (PEM)"),
    ("GRPC_SERVER_TLS_KEY", "", "server key (PEM)"),
    ("GRPC_CLIENT_TLS_CACERT", "", "require client certificates signed by this CA (mutual TLS)"),
    ("GRPC_CLIENT_TLS_SAN", "", "with GRPC_CLIENT_TLS_CACERT: the client certificate must be valid for this DNS name or IP"),
    ("HOST", "0.0.0.0", "address of the HTTP server (GET /healthcheck, POST /json)"),
    ("PORT", "8080", "port of the HTTP server"),
    ("DEBUG_HOST", "0.0.0.0", "address of the debug server (/, /rlconfig, /stats)"),
    ("DEBUG_PORT", "6070", "port of the debug server"),
    ("LOG_LEVEL", "WARN", "trace, debug, info, warn, error (RUST_LOG, when set, overrides it)"),
    ("LOG_FORMAT", "text", "text or json (json fields: @timestamp, @message, level)"),
    ("CONFIG_TYPE", "FILE", "where limits come from: FILE (the RUNTIME_* tree) or GRPC_XDS_SOTW (an xDS server, as Envoy Gateway runs)"),
    ("CONFIG_GRPC_XDS_SERVER_URL", "localhost:18000", "xDS server host:port"),
    ("CONFIG_GRPC_XDS_NODE_ID", "default", "node id sent to the xDS server"),
    ("CONFIG_GRPC_XDS_NODE_METADATA", "", "node metadata, k1=v1,k2=v2"),
    ("CONFIG_GRPC_XDS_CLIENT_ADDITIONAL_HEADERS", "", "extra gRPC headers on the xDS stream, k1:v1,k2:v2"),
    ("CONFIG_GRPC_XDS_SERVER_USE_TLS", "false", "connect to the xDS server with TLS (needs CONFIG_GRPC_XDS_SERVER_TLS_CACERT)"),
    ("CONFIG_GRPC_XDS_SERVER_TLS_CACERT", "", "CA certificate (PEM) the xDS server is verified with"),
    ("CONFIG_GRPC_XDS_CLIENT_TLS_CERT", "", "client certificate (PEM) for mutual TLS to the xDS server"),
    ("CONFIG_GRPC_XDS_CLIENT_TLS_KEY", "", "client key (PEM) for mutual TLS to the xDS server"),
    ("CONFIG_GRPC_XDS_SERVER_TLS_SAN", "", "server name to verify instead of the URL's host"),
    ("CONFIG_GRPC_XDS_SERVER_CONNECT_RETRY_INTERVAL", "3s", "wait before re-dialling an unreachable xDS server"),
    ("XDS_CLIENT_BACKOFF_INITIAL_INTERVAL", "10s", "first wait before re-opening a broken xDS stream"),
    ("XDS_CLIENT_BACKOFF_MAX_INTERVAL", "60s", "longest wait before re-opening a broken xDS stream"),
    ("XDS_CLIENT_BACKOFF_RANDOM_FACTOR", "0.5", "random spread of the backoff"),
    ("XDS_CLIENT_BACKOFF_JITTER", "true", "randomise the backoff"),
    ("XDS_CLIENT_MAX_MSG_SIZE_IN_BYTES", "4194304", "largest xDS message accepted"),
    ("RUNTIME_ROOT", "/srv/runtime_data/current", "root of the config file tree (usually a symlink swapped on deploy)"),
    ("RUNTIME_SUBDIRECTORY", "", "subdirectory of RUNTIME_ROOT holding the application directory"),
    ("RUNTIME_APPDIRECTORY", "config", "directory (or key prefix) whose files are rate limit configs"),
    ("RUNTIME_WATCH_ROOT", "true", "true: read every file under ROOT/SUBDIRECTORY and keep the keys starting with APPDIRECTORY.; false: read ROOT/SUBDIRECTORY/APPDIRECTORY"),
    ("RUNTIME_IGNOREDOTFILES", "false", "skip files and directories whose name starts with a dot (set it for Kubernetes ConfigMap mounts)"),
    ("RUNTIME_POLL_INTERVAL", "1s", "how often config files and TLS certificates are checked for changes (hot reload)"),
    ("MERGE_DOMAIN_CONFIG", "false", "merge files that share a domain instead of rejecting the duplicate"),
    ("FORCE_START_WITHOUT_INITIAL_CONFIG", "false", "serve even before a config loads (calls fail with 'no rate limit configuration loaded')"),
    ("HEALTHY_WITH_AT_LEAST_ONE_CONFIG_LOADED", "false", "report unhealthy until a loaded config has at least one domain"),
    ("SHADOW_MODE", "false", "never answer OVER_LIMIT overall (statuses still say so); re-read at every config load"),
    ("QUOTA_MODE", "false", "treat every descriptor as a quota descriptor; re-read at every config load"),
    ("RESPONSE_DYNAMIC_METADATA", "false", "return the request and the matched limits' metadata as dynamic metadata"),
    ("LIMIT_RESPONSE_HEADERS_ENABLED", "false", "add RateLimit-Limit/-Remaining/-Reset headers to responses"),
    ("LIMIT_LIMIT_HEADER", "RateLimit-Limit", "name of the limit header"),
    ("LIMIT_REMAINING_HEADER", "RateLimit-Remaining", "name of the remaining header"),
    ("LIMIT_RESET_HEADER", "RateLimit-Reset", "name of the reset header"),
    ("CACHE_KEY_PREFIX", "", "prefix of every counter key"),
    ("EXPIRATION_JITTER_MAX_SECONDS", "300", "random extra TTL in [0, n) seconds on counter keys, to spread expiries"),
    ("NEAR_LIMIT_RATIO", "0.8", "fraction of a limit above which hits count as near_limit"),
    ("LOCAL_CACHE_SIZE_IN_BYTES", "0", "size of the in-process cache of keys over their limit (0 = off); cached keys are answered without Redis"),
    ("STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT", "false", "when a descriptor is over its limit, do not count the request against the others"),
    ("BACKEND_TYPE", "memory, or redis when REDIS_URL is set", "redis, or memory (one instance only: counters live in the process)"),
    ("MEMORY_MAX_COUNTERS", "1000000", "memory backend: most counters held at once (about 130 bytes each); past it the least-used go first"),
    ("REDIS_FAILURE_MODE", "error", "when Redis fails: error (gRPC UNAVAILABLE; Envoy's failure_mode_deny decides), allow (answer OK) or deny (answer OVER_LIMIT)"),
    ("REDIS_SOCKET_TYPE", "unix", "tcp or unix"),
    ("REDIS_TYPE", "SINGLE", "single, cluster or sentinel"),
    ("REDIS_URL", "/var/run/nutcracker/ratelimit.sock", "single: host:port or socket path; cluster: host:port,...; sentinel: master,host:port,..."),
    ("REDIS_AUTH", "", "password or user:password (never logged)"),
    ("REDIS_SENTINEL_AUTH", "", "password or user:password of the sentinels (never logged)"),
    ("REDIS_TLS", "false", "connect with TLS"),
    ("REDIS_TLS_CLIENT_CERT", "", "client certificate (PEM) for mutual TLS"),
    ("REDIS_TLS_CLIENT_KEY", "", "client key (PEM) for mutual TLS"),
    ("REDIS_TLS_CACERT", "", "CA certificate (PEM) to verify Redis with, instead of the built-in roots"),
    ("REDIS_TLS_SKIP_HOSTNAME_VERIFICATION", "false", "do not verify the server certificate (insecure)"),
    ("REDIS_POOL_SIZE", "10", "number of connections; each one pipelines concurrent requests"),
    ("REDIS_TIMEOUT", "10s", "dial and call timeout"),
    ("REDIS_HEALTH_CHECK_ACTIVE_CONNECTION", "false", "report unhealthy while Redis cannot be reached"),
    ("REDIS_STARTUP_INITIAL_INTERVAL", "1s", "first wait between startup connection attempts"),
    ("REDIS_STARTUP_MAX_INTERVAL", "30s", "longest wait between startup connection attempts"),
    ("REDIS_STARTUP_MAX_ELAPSED_TIME", "0", "give up starting after this long (0 = retry forever)"),
    ("REDIS_PERSECOND", "false", "send limits whose unit is SECOND to a second Redis, configured by REDIS_PERSECOND_*"),
    ("REDIS_PERSECOND_SOCKET_TYPE", "unix", "as REDIS_SOCKET_TYPE, for the per-second Redis"),
    ("REDIS_PERSECOND_TYPE", "SINGLE", "as REDIS_TYPE, for the per-second Redis"),
    ("REDIS_PERSECOND_URL", "/var/run/nutcracker/ratelimitpersecond.sock", "as REDIS_URL, for the per-second Redis"),
    ("REDIS_PERSECOND_AUTH", "", "as REDIS_AUTH, for the per-second Redis"),
    ("REDIS_PERSECOND_SENTINEL_AUTH", "", "as REDIS_SENTINEL_AUTH, for the per-second Redis"),
    ("REDIS_PERSECOND_TLS", "false", "as REDIS_TLS, for the per-second Redis (certificates as for the main one)"),
    ("REDIS_PERSECOND_POOL_SIZE", "10", "as REDIS_POOL_SIZE, for the per-second Redis"),
    ("REDIS_PERSECOND_TIMEOUT", "10s", "as REDIS_TIMEOUT, for the per-second Redis"),
    ("REDIS_PIPELINE_WINDOW", "0", "accepted for compatibility; connections always pipeline"),
    ("REDIS_PIPELINE_LIMIT", "0", "accepted for compatibility (deprecated in the reference)"),
    ("USE_PROMETHEUS", "false", "serve Prometheus metrics"),
    ("PROMETHEUS_ADDR", ":9090", "address of the metrics server"),
    ("PROMETHEUS_PATH", "/metrics", "path of the metrics"),
    ("PROMETHEUS_RESPONSE_TIME_AS_MILLISECONDS", "false", "report response times in milliseconds instead of seconds"),
    ("USE_STATSD", "false", "statsd output is not supported; use USE_PROMETHEUS"),
    ("SHUTDOWN_DELAY", "0s", "after a stop signal, report unhealthy for this long before closing listeners"),
    ("SHUTDOWN_TIMEOUT", "15s", "longest wait for in-flight calls to finish after a stop signal"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Redis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureMode {
    /// The call fails with UNAVAILABLE and Envoy's `failure_mode_deny` decides.
    Error,
    Allow,
    Deny,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeSettings {
    pub root: PathBuf,
    pub subdirectory: String,
    pub app_directory: String,
    pub watch_root: bool,
    pub ignore_dotfiles: bool,
    pub poll_interval: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub grpc_host: String,
    pub grpc_port: u16,
    pub grpc_max_connection_age: Duration,
    pub grpc_max_connection_age_grace: Duration,
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
    pub local_cache_size_in_bytes: u64,
    /// `MEMORY_MAX_COUNTERS`.
    pub memory_max_counters: usize,
    pub stop_increment_when_over_limit: bool,
    pub expiration_jitter_max_seconds: u64,
    pub backend: Backend,
    /// Whether the backend was chosen by default (no BACKEND_TYPE, no REDIS_URL), for the log.
    pub backend_defaulted: bool,
    pub failure_mode: FailureMode,
    pub redis: RedisSettings,
    /// `REDIS_PERSECOND`: a second Redis for limits whose unit is SECOND.
    pub redis_per_second: Option<RedisSettings>,
    pub redis_health_check_active_connection: bool,
    pub redis_startup_initial_interval: Duration,
    pub redis_startup_max_interval: Duration,
    pub redis_startup_max_elapsed: Duration,
    pub use_prometheus: bool,
    pub prometheus_addr: String,
    pub prometheus_path: String,
    pub response_time_in_millis: bool,
    pub shutdown_delay: Duration,
    pub shutdown_timeout: Duration,
    /// Non-fatal remarks about the settings, logged once telemetry is up.
    pub warnings: Vec<String>,
}

impl Settings {
    /// Parses every setting and reports every bad one at once.
    pub fn from_env(env: &dyn Env) -> Result<Settings, SettingsError> {
        let mut r = EnvReader::new(env);
        let mut warnings = Vec::new();

        let grpc_tls = if r.boolean("GRPC_SERVER_USE_TLS", false) {
            match (r.raw("GRPC_SERVER_TLS_CERT"), r.raw("GRPC_SERVER_TLS_KEY")) {
                (Some(cert), Some(key)) => Some(TlsFiles {
                    cert: cert.into(),
                    key: key.into(),
                    client_ca: r.raw("GRPC_CLIENT_TLS_CACERT").map(PathBuf::from),
                    client_san: r.raw("GRPC_CLIENT_TLS_SAN"),
                }),
                _ => {
                    let reason = "GRPC_SERVER_USE_TLS=true needs GRPC_SERVER_TLS_CERT and GRPC_SERVER_TLS_KEY";
                    r.fail("GRPC_SERVER_TLS_CERT", None, reason);
                    None
                }
            }
        } else {
            // Read anyway, so the documentation test sees every name.
            let _ = (r.raw("GRPC_SERVER_TLS_CERT"), r.raw("GRPC_SERVER_TLS_KEY"));
            let _ = (r.raw("GRPC_CLIENT_TLS_CACERT"), r.raw("GRPC_CLIENT_TLS_SAN"));
            None
        };
        let config_type = r.one_of("CONFIG_TYPE", "FILE", &["FILE", "GRPC_XDS_SOTW"]);
        let xds = xds_settings(&mut r);
        if r.boolean("USE_STATSD", false) {
            warnings.push("USE_STATSD=true is ignored: statsd output is not supported; set USE_PROMETHEUS=true".into());
        }
        for ignored in [
            "REDIS_PIPELINE_WINDOW",
            "REDIS_PIPELINE_LIMIT",
            "REDIS_PERSECOND_PIPELINE_WINDOW",
            "REDIS_PERSECOND_PIPELINE_LIMIT",
        ] {
            if r.raw(ignored).is_some() {
                warnings.push(format!("{ignored} is ignored: every connection pipelines concurrent requests"));
            }
        }

        let log_level = r.string("LOG_LEVEL", "WARN");
        if shared::telemetry::level_directive(&log_level).is_none() {
            r.fail("LOG_LEVEL", Some(log_level.clone()), "expected trace, debug, info, warn or error");
        }
        let log_json = r.one_of("LOG_FORMAT", "text", &["text", "json"]) == "json";

        let redis_url = r.raw("REDIS_URL");
        let backend_defaulted = r.raw("BACKEND_TYPE").is_none() && redis_url.is_none();
        let default_backend = if redis_url.is_some() { "redis" } else { "memory" };
        let backend = match r.one_of("BACKEND_TYPE", default_backend, &["redis", "memory", "memcache"]) {
            "redis" => Backend::Redis,
            "memory" => Backend::Memory,
            other => {
                r.fail("BACKEND_TYPE", Some(other.into()), "memcache is not supported; use redis or memory");
                Backend::Memory
            }
        };
        let failure_mode = match r.one_of("REDIS_FAILURE_MODE", "error", &["error", "allow", "deny"]) {
            "allow" => FailureMode::Allow,
            "deny" => FailureMode::Deny,
            _ => FailureMode::Error,
        };
        let redis = redis_settings(&mut r, "REDIS_", redis_url, "/var/run/nutcracker/ratelimit.sock");
        let redis_per_second = if r.boolean("REDIS_PERSECOND", false) {
            let url = r.raw("REDIS_PERSECOND_URL");
            Some(redis_settings(&mut r, "REDIS_PERSECOND_", url, "/var/run/nutcracker/ratelimitpersecond.sock"))
        } else {
            None
        };
        if redis.tls_client_cert.is_some() != redis.tls_client_key.is_some() {
            r.fail("REDIS_TLS_CLIENT_KEY", None, "REDIS_TLS_CLIENT_CERT and REDIS_TLS_CLIENT_KEY go together");
        }
        for name in ["REDIS_POOL_ON_EMPTY_BEHAVIOR", "REDIS_PERSECOND_POOL_ON_EMPTY_BEHAVIOR"] {
            if let Some(v) = r.raw(name) {
                if !v.eq_ignore_ascii_case("WAIT") {
                    r.fail(name, Some(v), "only WAIT is supported, as in the reference");
                }
            }
        }

        let near_limit_ratio: f32 = r.parse("NEAR_LIMIT_RATIO", 0.8f32);
        if !(0.0..=1.0).contains(&near_limit_ratio) {
            r.fail("NEAR_LIMIT_RATIO", Some(near_limit_ratio.to_string()), "must be between 0 and 1");
        }

        let settings = Settings {
            grpc_host: r.string("GRPC_HOST", "0.0.0.0"),
            grpc_port: r.parse("GRPC_PORT", 8081u16),
            grpc_max_connection_age: r.duration("GRPC_MAX_CONNECTION_AGE", Duration::from_secs(24 * 3600)),
            grpc_max_connection_age_grace: r.duration("GRPC_MAX_CONNECTION_AGE_GRACE", Duration::from_secs(3600)),
            grpc_tls,
            grpc_uds: r.raw("GRPC_UDS").map(PathBuf::from),
            http_host: r.string("HOST", "0.0.0.0"),
            http_port: r.parse("PORT", 8080u16),
            debug_host: r.string("DEBUG_HOST", "0.0.0.0"),
            debug_port: r.parse("DEBUG_PORT", 6070u16),
            log_level,
            log_json,
            runtime: RuntimeSettings {
                root: PathBuf::from(r.string("RUNTIME_ROOT", "/srv/runtime_data/current")),
                subdirectory: r.string("RUNTIME_SUBDIRECTORY", ""),
                app_directory: r.string("RUNTIME_APPDIRECTORY", "config"),
                watch_root: r.boolean("RUNTIME_WATCH_ROOT", true),
                ignore_dotfiles: r.boolean("RUNTIME_IGNOREDOTFILES", false),
                poll_interval: r.duration("RUNTIME_POLL_INTERVAL", Duration::from_secs(1)),
            },
            xds: (config_type == "GRPC_XDS_SOTW").then_some(xds),
            force_start_without_initial_config: r.boolean("FORCE_START_WITHOUT_INITIAL_CONFIG", false),
            healthy_with_at_least_one_config_loaded: r.boolean("HEALTHY_WITH_AT_LEAST_ONE_CONFIG_LOADED", false),
            local_cache_size_in_bytes: r.parse("LOCAL_CACHE_SIZE_IN_BYTES", 0u64),
            memory_max_counters: r.parse("MEMORY_MAX_COUNTERS", crate::store::memory::DEFAULT_MAX_COUNTERS),
            stop_increment_when_over_limit: r.boolean("STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT", false),
            expiration_jitter_max_seconds: r.parse("EXPIRATION_JITTER_MAX_SECONDS", 300u64),
            backend,
            backend_defaulted,
            failure_mode,
            redis,
            redis_per_second,
            redis_health_check_active_connection: r.boolean("REDIS_HEALTH_CHECK_ACTIVE_CONNECTION", false),
            redis_startup_initial_interval: r.duration("REDIS_STARTUP_INITIAL_INTERVAL", Duration::from_secs(1)),
            redis_startup_max_interval: r.duration("REDIS_STARTUP_MAX_INTERVAL", Duration::from_secs(30)),
            redis_startup_max_elapsed: r.duration("REDIS_STARTUP_MAX_ELAPSED_TIME", Duration::ZERO),
            use_prometheus: r.boolean("USE_PROMETHEUS", false),
            prometheus_addr: r.string("PROMETHEUS_ADDR", ":9090"),
            prometheus_path: r.string("PROMETHEUS_PATH", "/metrics"),
            response_time_in_millis: r.boolean("PROMETHEUS_RESPONSE_TIME_AS_MILLISECONDS", false),
            shutdown_delay: r.duration("SHUTDOWN_DELAY", Duration::ZERO),
            shutdown_timeout: r.duration("SHUTDOWN_TIMEOUT", Duration::from_secs(15)),
            warnings,
        };
        // Also validate the reloadable settings now, so a typo fails the start, not a reload.
        let mut errors = r.finish().err().map(|e| e.0).unwrap_or_default();
        if let Err(reloadable) = evaluation_settings(env) {
            for error in reloadable.0 {
                if !errors.contains(&error) {
                    errors.push(error);
                }
            }
        }
        if errors.is_empty() {
            Ok(settings)
        } else {
            Err(SettingsError(errors))
        }
    }
}

/// One Redis's settings, named `<prefix>SOCKET_TYPE`, `<prefix>URL`, … (`REDIS_` or
/// `REDIS_PERSECOND_`). Certificates are shared: `REDIS_TLS_CLIENT_CERT`, `_KEY`, `REDIS_TLS_CACERT`.
fn redis_settings(r: &mut EnvReader<'_>, prefix: &str, url: Option<String>, default_url: &str) -> RedisSettings {
    let name = |suffix: &str| format!("{prefix}{suffix}");
    let socket_type = match r.one_of(&name("SOCKET_TYPE"), "unix", &["tcp", "unix"]) {
        "tcp" => SocketType::Tcp,
        _ => SocketType::Unix,
    };
    let topology = match r.one_of(&name("TYPE"), "SINGLE", &["SINGLE", "CLUSTER", "SENTINEL"]) {
        "CLUSTER" => Topology::Cluster,
        "SENTINEL" => Topology::Sentinel,
        _ => Topology::Single,
    };
    let url = url.unwrap_or_else(|| default_url.to_string());
    if topology == Topology::Sentinel && url.split(',').filter(|s| !s.trim().is_empty()).count() < 2 {
        r.fail(
            &name("URL"),
            Some(url.clone()),
            "Expected master name and a list of urls for the sentinels, in the format: <redis master name>,<sentinel1>,...,<sentineln>",
        );
    }
    let path = |r: &mut EnvReader<'_>, name: &str| r.raw(name).map(PathBuf::from);
    let settings = RedisSettings {
        socket_type,
        topology,
        url,
        auth: r.raw(&name("AUTH")),
        sentinel_auth: r.raw(&name("SENTINEL_AUTH")),
        tls: r.boolean(&name("TLS"), false),
        tls_client_cert: path(r, "REDIS_TLS_CLIENT_CERT"),
        tls_client_key: path(r, "REDIS_TLS_CLIENT_KEY"),
        tls_ca_cert: path(r, "REDIS_TLS_CACERT"),
        tls_skip_hostname_verification: r.boolean("REDIS_TLS_SKIP_HOSTNAME_VERIFICATION", false),
        pool_size: r.parse(&name("POOL_SIZE"), 10usize),
        timeout: r.duration(&name("TIMEOUT"), Duration::from_secs(10)),
    };
    if settings.pool_size == 0 {
        r.fail(&name("POOL_SIZE"), Some("0".into()), "must be at least 1");
    }
    settings
}

fn xds_settings(r: &mut EnvReader<'_>) -> XdsSettings {
    let pairs = |r: &mut EnvReader<'_>, name: &str, separator: char| -> Vec<(String, String)> {
        let Some(raw) = r.raw(name) else { return Vec::new() };
        let mut pairs = Vec::new();
        for item in raw.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match item.split_once(separator) {
                Some((k, v)) => pairs.push((k.trim().to_string(), v.trim().to_string())),
                None => r.fail(name, Some(raw.clone()), &format!("expected k1{separator}v1,k2{separator}v2")),
            }
        }
        pairs
    };
    let node_metadata = pairs(r, "CONFIG_GRPC_XDS_NODE_METADATA", '=');
    let headers = pairs(r, "CONFIG_GRPC_XDS_CLIENT_ADDITIONAL_HEADERS", ':');
    let use_tls = r.boolean("CONFIG_GRPC_XDS_SERVER_USE_TLS", false);
    let ca_cert = r.raw("CONFIG_GRPC_XDS_SERVER_TLS_CACERT").map(PathBuf::from);
    let client_cert = r.raw("CONFIG_GRPC_XDS_CLIENT_TLS_CERT").map(PathBuf::from);
    let client_key = r.raw("CONFIG_GRPC_XDS_CLIENT_TLS_KEY").map(PathBuf::from);
    let server_name = r.raw("CONFIG_GRPC_XDS_SERVER_TLS_SAN");
    let tls = match (use_tls, ca_cert) {
        (false, _) => None,
        (true, Some(ca_cert)) => Some(XdsTls { ca_cert, client_cert, client_key, server_name }),
        (true, None) => {
            r.fail("CONFIG_GRPC_XDS_SERVER_TLS_CACERT", None, "required with CONFIG_GRPC_XDS_SERVER_USE_TLS=true");
            None
        }
    };
    XdsSettings {
        server_url: r.string("CONFIG_GRPC_XDS_SERVER_URL", "localhost:18000"),
        node_id: r.string("CONFIG_GRPC_XDS_NODE_ID", "default"),
        node_metadata,
        headers,
        tls,
        backoff_initial: r.duration("XDS_CLIENT_BACKOFF_INITIAL_INTERVAL", Duration::from_secs(10)),
        backoff_max: r.duration("XDS_CLIENT_BACKOFF_MAX_INTERVAL", Duration::from_secs(60)),
        backoff_random_factor: r.parse("XDS_CLIENT_BACKOFF_RANDOM_FACTOR", 0.5f64),
        backoff_jitter: r.boolean("XDS_CLIENT_BACKOFF_JITTER", true),
        connect_retry_interval: r.duration("CONFIG_GRPC_XDS_SERVER_CONNECT_RETRY_INTERVAL", Duration::from_secs(3)),
        max_message_size: r.parse("XDS_CLIENT_MAX_MSG_SIZE_IN_BYTES", 4 * 1024 * 1024usize),
    }
}

/// The settings the reference re-reads from the environment at every config load.
#[derive(Debug, Clone, PartialEq)]
pub struct ReloadableSettings {
    pub evaluation: EvaluationSettings,
    pub merge_domains: bool,
    pub dynamic_metadata: bool,
}

pub fn evaluation_settings(env: &dyn Env) -> Result<ReloadableSettings, SettingsError> {
    let mut r = EnvReader::new(env);
    let headers = r.boolean("LIMIT_RESPONSE_HEADERS_ENABLED", false).then(|| {
        let defaults = HeaderNames::default();
        HeaderNames {
            limit: r.string("LIMIT_LIMIT_HEADER", &defaults.limit),
            remaining: r.string("LIMIT_REMAINING_HEADER", &defaults.remaining),
            reset: r.string("LIMIT_RESET_HEADER", &defaults.reset),
        }
    });
    let reloadable = ReloadableSettings {
        evaluation: EvaluationSettings {
            cache_key_prefix: r.string("CACHE_KEY_PREFIX", ""),
            near_limit_ratio: r.parse("NEAR_LIMIT_RATIO", 0.8f32),
            global_shadow_mode: r.boolean("SHADOW_MODE", false),
            global_quota_mode: r.boolean("QUOTA_MODE", false),
            response_headers: headers,
        },
        merge_domains: r.boolean("MERGE_DOMAIN_CONFIG", false),
        dynamic_metadata: r.boolean("RESPONSE_DYNAMIC_METADATA", false),
    };
    r.finish()?;
    Ok(reloadable)
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
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.insert("RUNTIME_ROOT".into(), runtime_root.display().to_string());
    env
}

/// The `--help` text: usage, then every setting with its default.
pub fn help_text() -> String {
    let mut out = String::from(
        "ratelimit — Envoy's global rate limit service, a drop-in for envoyproxy/ratelimit\n\n\
         USAGE:\n    ratelimit                      run the service (configured by environment variables)\n    \
         ratelimit validate <path>...   check config files or directories; exit 1 listing every error\n    \
         ratelimit healthcheck          exit 0 when the local service answers /healthcheck (for containers)\n    \
         ratelimit --help | --version\n\nSETTINGS (environment variables):\n",
    );
    for (name, default, meaning) in SETTINGS {
        let default = if default.is_empty() { "\"\"" } else { default };
        out.push_str(&format!("    {name}\n        {meaning}\n        default: {default}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// Records every name the parser asks for.
    #[derive(Default)]
    struct Recording(Mutex<Vec<String>>, HashMap<String, String>);

    impl Env for Recording {
        fn var(&self, name: &str) -> Option<String> {
            self.0.lock().unwrap().push(name.to_string());
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
        assert_eq!(s.failure_mode, FailureMode::Error);
        assert_eq!(s.redis.socket_type, SocketType::Unix);
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
        ]))
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("GRPC_PORT=\"http\""), "{text}");
        assert!(text.contains("REDIS_FAILURE_MODE=\"maybe\""), "{text}");
        assert!(text.contains("Expected master name"), "{text}");
        assert!(text.contains("SHADOW_MODE"), "{text}");
        assert!(!text.contains("hunter2"));
    }

    #[test]
    fn every_setting_read_is_documented() {
        let recording = Recording(
            Mutex::default(),
            env(&[("LIMIT_RESPONSE_HEADERS_ENABLED", "true"), ("REDIS_PERSECOND", "true")]),
        );
        Settings::from_env(&recording).unwrap();
        let documented: Vec<&str> = SETTINGS.iter().map(|(n, _, _)| *n).collect();
        let undocumented_ok = [
            "REDIS_POOL_ON_EMPTY_BEHAVIOR",
            "REDIS_PERSECOND_POOL_ON_EMPTY_BEHAVIOR",
            "REDIS_PERSECOND_PIPELINE_WINDOW",
            "REDIS_PERSECOND_PIPELINE_LIMIT",
        ];
        for name in recording.0.lock().unwrap().iter() {
            assert!(
                documented.contains(&name.as_str()) || undocumented_ok.contains(&name.as_str()),
                "{name} is not in SETTINGS"
            );
        }
        for name in documented {
            assert!(recording.0.lock().unwrap().iter().any(|n| n == name), "{name} is documented but never read");
        }
    }
}

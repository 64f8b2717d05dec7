//! Every setting the service reads, declared once: name, default, parser (the `Setting`
//! constructor) and help; a choice with the enum each spelling stands for. [`ALL`] lists them
//! in the order `--help` prints them, under the headings of [`SECTIONS`].

use std::time::Duration;

use shared::env::{Documented, Section, Setting};
use shared::redis::{SocketType, Topology};
use shared::statsd::Transport;
use shared::telemetry::LogFormat;
use shared::traces::Protocol;

/// `CONFIG_TYPE`: where limits come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// The `RUNTIME_*` file tree.
    File,
    /// An xDS server (state of the world), as Envoy Gateway runs it.
    XdsSotw,
}

/// `BACKEND_TYPE` as written; memcache is the reference's, refused with a reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendType {
    Redis,
    Memory,
    Memcache,
}

/// `REDIS_FAILURE_MODE`; `Local` takes its instance count and timeout from their own settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisFailure {
    Error,
    Allow,
    Deny,
    Local,
}

const SOCKET_TYPES: &[(&str, SocketType)] = &[("tcp", SocketType::Tcp), ("unix", SocketType::Unix)];
const TOPOLOGIES: &[(&str, Topology)] =
    &[("SINGLE", Topology::Single), ("CLUSTER", Topology::Cluster), ("SENTINEL", Topology::Sentinel)];

pub const GRPC_HOST: Setting<String> =
    Setting::text("GRPC_HOST", "0.0.0.0", "address of the gRPC server (ShouldRateLimit, grpc.health.v1)");
pub const GRPC_PORT: Setting<u16> = Setting::number("GRPC_PORT", "8081", "port of the gRPC server");
pub const GRPC_UDS: Setting<String> =
    Setting::text("GRPC_UDS", "", "serve gRPC on this unix socket path instead of GRPC_HOST:GRPC_PORT");
pub const GRPC_MAX_CONNECTION_AGE: Setting<Duration> = Setting::duration(
    "GRPC_MAX_CONNECTION_AGE",
    "24h",
    "close client connections after this long (lets load balancers rebalance)",
);
pub const GRPC_MAX_CONNECTION_AGE_GRACE: Setting<Duration> =
    Setting::duration("GRPC_MAX_CONNECTION_AGE_GRACE", "1h", "time given to calls on a connection closed for its age");
pub const GRPC_MAX_CONNECTION_IDLE: Setting<Duration> = Setting::duration(
    "GRPC_MAX_CONNECTION_IDLE",
    "5m",
    "close a client connection with no call open for this long (GOAWAY; 0: never)",
);
pub const GRPC_SERVER_USE_TLS: Setting<bool> = Setting::boolean(
    "GRPC_SERVER_USE_TLS",
    "false",
    "serve gRPC over TLS (certificates re-read when their files change)",
);
pub const GRPC_SERVER_TLS_CERT: Setting<String> =
    Setting::text("GRPC_SERVER_TLS_CERT", "", "server certificate chain (PEM)");
pub const GRPC_SERVER_TLS_KEY: Setting<String> = Setting::text("GRPC_SERVER_TLS_KEY", "", "server key (PEM)");
pub const GRPC_CLIENT_TLS_CACERT: Setting<String> =
    Setting::text("GRPC_CLIENT_TLS_CACERT", "", "require client certificates signed by this CA (mutual TLS)");
pub const GRPC_CLIENT_TLS_SAN: Setting<String> = Setting::text(
    "GRPC_CLIENT_TLS_SAN",
    "",
    "with GRPC_CLIENT_TLS_CACERT: the client certificate must be valid for this DNS name or IP, or \
     carry a SPIFFE ID (URI SAN) matching this spiffe:// pattern ('*' one segment, final '**' any)",
);
pub const HOST: Setting<String> =
    Setting::text("HOST", "0.0.0.0", "address of the HTTP server (GET /healthcheck, POST /json)");
pub const PORT: Setting<u16> = Setting::number("PORT", "8080", "port of the HTTP server");
pub const DEBUG_HOST: Setting<String> =
    Setting::text("DEBUG_HOST", "0.0.0.0", "address of the debug server (/, /rlconfig, /stats)");
pub const DEBUG_PORT: Setting<u16> = Setting::number("DEBUG_PORT", "6070", "port of the debug server");
pub const LOG_LEVEL: Setting<String> =
    Setting::text("LOG_LEVEL", "WARN", "trace, debug, info, warn, error (RUST_LOG, when set, overrides it)");
pub const LOG_FORMAT: Setting<LogFormat> = Setting::choice(
    "LOG_FORMAT",
    "text",
    &[("text", LogFormat::Text), ("json", LogFormat::Json)],
    "text or json (json fields: @timestamp, @message, level)",
);
pub const CONFIG_TYPE: Setting<ConfigSource> = Setting::choice(
    "CONFIG_TYPE",
    "FILE",
    &[("FILE", ConfigSource::File), ("GRPC_XDS_SOTW", ConfigSource::XdsSotw)],
    "where limits come from: FILE (the RUNTIME_* tree) or GRPC_XDS_SOTW (an xDS server, as Envoy Gateway runs)",
);
pub const CONFIG_GRPC_XDS_SERVER_URL: Setting<String> =
    Setting::text("CONFIG_GRPC_XDS_SERVER_URL", "localhost:18000", "xDS server host:port");
pub const CONFIG_GRPC_XDS_NODE_ID: Setting<String> =
    Setting::text("CONFIG_GRPC_XDS_NODE_ID", "default", "node id sent to the xDS server");
pub const CONFIG_GRPC_XDS_NODE_METADATA: Setting<String> =
    Setting::text("CONFIG_GRPC_XDS_NODE_METADATA", "", "node metadata, k1=v1,k2=v2");
pub const CONFIG_GRPC_XDS_CLIENT_ADDITIONAL_HEADERS: Setting<String> =
    Setting::text("CONFIG_GRPC_XDS_CLIENT_ADDITIONAL_HEADERS", "", "extra gRPC headers on the xDS stream, k1:v1,k2:v2");
pub const CONFIG_GRPC_XDS_SERVER_USE_TLS: Setting<bool> = Setting::boolean(
    "CONFIG_GRPC_XDS_SERVER_USE_TLS",
    "false",
    "connect to the xDS server with TLS (needs CONFIG_GRPC_XDS_SERVER_TLS_CACERT)",
);
pub const CONFIG_GRPC_XDS_SERVER_TLS_CACERT: Setting<String> =
    Setting::text("CONFIG_GRPC_XDS_SERVER_TLS_CACERT", "", "CA certificate (PEM) the xDS server is verified with");
pub const CONFIG_GRPC_XDS_CLIENT_TLS_CERT: Setting<String> =
    Setting::text("CONFIG_GRPC_XDS_CLIENT_TLS_CERT", "", "client certificate (PEM) for mutual TLS to the xDS server");
pub const CONFIG_GRPC_XDS_CLIENT_TLS_KEY: Setting<String> =
    Setting::text("CONFIG_GRPC_XDS_CLIENT_TLS_KEY", "", "client key (PEM) for mutual TLS to the xDS server");
pub const CONFIG_GRPC_XDS_SERVER_TLS_SAN: Setting<String> =
    Setting::text("CONFIG_GRPC_XDS_SERVER_TLS_SAN", "", "server name to verify instead of the URL's host");
pub const CONFIG_GRPC_XDS_SERVER_CONNECT_RETRY_INTERVAL: Setting<Duration> = Setting::duration(
    "CONFIG_GRPC_XDS_SERVER_CONNECT_RETRY_INTERVAL",
    "3s",
    "wait before re-dialling an unreachable xDS server",
);
pub const XDS_CLIENT_BACKOFF_INITIAL_INTERVAL: Setting<Duration> =
    Setting::duration("XDS_CLIENT_BACKOFF_INITIAL_INTERVAL", "10s", "first wait before re-opening a broken xDS stream");
pub const XDS_CLIENT_BACKOFF_MAX_INTERVAL: Setting<Duration> =
    Setting::duration("XDS_CLIENT_BACKOFF_MAX_INTERVAL", "60s", "longest wait before re-opening a broken xDS stream");
pub const XDS_CLIENT_BACKOFF_RANDOM_FACTOR: Setting<f64> =
    Setting::number("XDS_CLIENT_BACKOFF_RANDOM_FACTOR", "0.5", "random spread of the backoff");
pub const XDS_CLIENT_BACKOFF_JITTER: Setting<bool> =
    Setting::boolean("XDS_CLIENT_BACKOFF_JITTER", "true", "randomise the backoff");
pub const XDS_CLIENT_MAX_MSG_SIZE_IN_BYTES: Setting<usize> =
    Setting::number("XDS_CLIENT_MAX_MSG_SIZE_IN_BYTES", "4194304", "largest xDS message accepted");
pub const RUNTIME_ROOT: Setting<String> = Setting::text(
    "RUNTIME_ROOT",
    "/srv/runtime_data/current",
    "root of the config file tree (usually a symlink swapped on deploy)",
);
pub const RUNTIME_SUBDIRECTORY: Setting<String> =
    Setting::text("RUNTIME_SUBDIRECTORY", "", "subdirectory of RUNTIME_ROOT holding the application directory");
pub const RUNTIME_APPDIRECTORY: Setting<String> =
    Setting::text("RUNTIME_APPDIRECTORY", "config", "directory (or key prefix) whose files are rate limit configs");
pub const RUNTIME_WATCH_ROOT: Setting<bool> = Setting::boolean("RUNTIME_WATCH_ROOT", "true", "true: read every file under ROOT/SUBDIRECTORY and keep the keys starting with APPDIRECTORY.; false: read ROOT/SUBDIRECTORY/APPDIRECTORY");
pub const RUNTIME_IGNOREDOTFILES: Setting<bool> = Setting::boolean(
    "RUNTIME_IGNOREDOTFILES",
    "false",
    "skip files and directories whose name starts with a dot (set it for Kubernetes ConfigMap mounts)",
);
pub const RUNTIME_POLL_INTERVAL: Setting<Duration> = Setting::duration(
    "RUNTIME_POLL_INTERVAL",
    "1s",
    "how often config files and TLS certificates are checked for changes (hot reload)",
);
pub const MERGE_DOMAIN_CONFIG: Setting<bool> = Setting::boolean(
    "MERGE_DOMAIN_CONFIG",
    "false",
    "merge files that share a domain instead of rejecting the duplicate",
);
pub const FORCE_START_WITHOUT_INITIAL_CONFIG: Setting<bool> = Setting::boolean(
    "FORCE_START_WITHOUT_INITIAL_CONFIG",
    "false",
    "serve even before a config loads (calls fail with 'no rate limit configuration loaded')",
);
pub const HEALTHY_WITH_AT_LEAST_ONE_CONFIG_LOADED: Setting<bool> = Setting::boolean(
    "HEALTHY_WITH_AT_LEAST_ONE_CONFIG_LOADED",
    "false",
    "report unhealthy until a loaded config has at least one domain",
);
pub const SHADOW_MODE: Setting<bool> =
    Setting::boolean("SHADOW_MODE", "false", "never answer OVER_LIMIT overall (statuses still say so)");
pub const QUOTA_MODE: Setting<bool> =
    Setting::boolean("QUOTA_MODE", "false", "treat every descriptor as a quota descriptor");
pub const RESPONSE_DYNAMIC_METADATA: Setting<bool> = Setting::boolean(
    "RESPONSE_DYNAMIC_METADATA",
    "false",
    "return the request and the matched limits' metadata as dynamic metadata",
);
pub const LIMIT_RESPONSE_HEADERS_ENABLED: Setting<bool> = Setting::boolean(
    "LIMIT_RESPONSE_HEADERS_ENABLED",
    "false",
    "add RateLimit-Limit/-Remaining/-Reset headers to responses",
);
pub const LIMIT_LIMIT_HEADER: Setting<String> =
    Setting::text("LIMIT_LIMIT_HEADER", "RateLimit-Limit", "name of the limit header");
pub const LIMIT_REMAINING_HEADER: Setting<String> =
    Setting::text("LIMIT_REMAINING_HEADER", "RateLimit-Remaining", "name of the remaining header");
pub const LIMIT_RESET_HEADER: Setting<String> =
    Setting::text("LIMIT_RESET_HEADER", "RateLimit-Reset", "name of the reset header");
pub const LIMIT_RETRY_AFTER_HEADER_ENABLED: Setting<bool> = Setting::boolean(
    "LIMIT_RETRY_AFTER_HEADER_ENABLED",
    "true",
    "add Retry-After (seconds until the refusing limit lets a request through, at least 1) to OVER_LIMIT answers, \
     which Envoy puts on its 429; false answers exactly as envoyproxy/ratelimit does",
);
pub const CACHE_KEY_PREFIX: Setting<String> = Setting::text("CACHE_KEY_PREFIX", "", "prefix of every counter key");
pub const EXPIRATION_JITTER_MAX_SECONDS: Setting<u64> = Setting::number(
    "EXPIRATION_JITTER_MAX_SECONDS",
    "300",
    "random extra TTL in [0, n) seconds on counter keys, to spread expiries",
);
pub const NEAR_LIMIT_RATIO: Setting<f32> =
    Setting::number("NEAR_LIMIT_RATIO", "0.8", "fraction of a limit above which hits count as near_limit");
pub const LOCAL_CACHE_SIZE_IN_BYTES: Setting<u64> = Setting::number(
    "LOCAL_CACHE_SIZE_IN_BYTES",
    "0",
    "size of the in-process cache of keys over their limit (0 = off); cached keys are answered without Redis",
);
pub const STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT: Setting<bool> = Setting::boolean(
    "STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT",
    "false",
    "when a descriptor is over its limit, do not count the request against the others",
);
pub const BACKEND_TYPE: Setting<BackendType> = Setting::choice(
    "BACKEND_TYPE",
    "",
    &[("redis", BackendType::Redis), ("memory", BackendType::Memory), ("memcache", BackendType::Memcache)],
    "redis, or memory (one instance only: counters live in the process); when unset: redis if REDIS_URL is set, \
     memory otherwise (memcache is the reference's, not supported)",
);
pub const MEMORY_MAX_COUNTERS: Setting<usize> = Setting::number(
    "MEMORY_MAX_COUNTERS",
    "1000000",
    "memory backend: most counters held at once (about 130 bytes each); past it the least-used go first",
);
pub const REDIS_FAILURE_MODE: Setting<RedisFailure> = Setting::choice(
    "REDIS_FAILURE_MODE",
    "error",
    &[
        ("error", RedisFailure::Error),
        ("allow", RedisFailure::Allow),
        ("deny", RedisFailure::Deny),
        ("local", RedisFailure::Local),
    ],
    "when Redis fails: error (gRPC UNAVAILABLE; Envoy's failure_mode_deny decides), allow (answer OK), deny \
     (answer OVER_LIMIT) or local (count in this instance's memory until Redis answers again)",
);
pub const HOT_KEY_BATCH_WINDOW: Setting<Duration> = Setting::duration(
    "HOT_KEY_BATCH_WINDOW",
    "0s",
    "opt-in, at most 100ms: increments of one counter arriving within this window go to Redis as one INCRBY of their sum (exact counts; each request waits up to the window)",
);
pub const REDIS_FAILURE_LOCAL_INSTANCES: Setting<u32> = Setting::number(
    "REDIS_FAILURE_LOCAL_INSTANCES",
    "1",
    "with REDIS_FAILURE_MODE=local: the instances sharing the traffic; each enforces its share (limit / instances, at least 1) while it counts alone",
);
pub const REDIS_FAILURE_LOCAL_TIMEOUT: Setting<Duration> = Setting::duration(
    "REDIS_FAILURE_LOCAL_TIMEOUT",
    "250ms",
    "with REDIS_FAILURE_MODE=local: how long a call (and the recovery probe) waits for Redis before counting locally (more than twice HOT_KEY_BATCH_WINDOW); a hung Redis costs each call this, not REDIS_TIMEOUT",
);
pub const REDIS_SOCKET_TYPE: Setting<SocketType> =
    Setting::choice("REDIS_SOCKET_TYPE", "unix", SOCKET_TYPES, "tcp or unix");
pub const REDIS_TYPE: Setting<Topology> =
    Setting::choice("REDIS_TYPE", "SINGLE", TOPOLOGIES, "single, cluster or sentinel");
pub const REDIS_URL: Setting<String> = Setting::text(
    "REDIS_URL",
    "/var/run/nutcracker/ratelimit.sock",
    "single: host:port or socket path; cluster: host:port,...; sentinel: master,host:port,...",
);
pub const REDIS_AUTH: Setting<String> = Setting::text("REDIS_AUTH", "", "password or user:password (never logged)");
pub const REDIS_SENTINEL_AUTH: Setting<String> =
    Setting::text("REDIS_SENTINEL_AUTH", "", "password or user:password of the sentinels (never logged)");
pub const REDIS_TLS: Setting<bool> = Setting::boolean("REDIS_TLS", "false", "connect with TLS");
pub const REDIS_TLS_CLIENT_CERT: Setting<String> =
    Setting::text("REDIS_TLS_CLIENT_CERT", "", "client certificate (PEM) for mutual TLS");
pub const REDIS_TLS_CLIENT_KEY: Setting<String> =
    Setting::text("REDIS_TLS_CLIENT_KEY", "", "client key (PEM) for mutual TLS");
pub const REDIS_TLS_CACERT: Setting<String> =
    Setting::text("REDIS_TLS_CACERT", "", "CA certificate (PEM) to verify Redis with, instead of the built-in roots");
pub const REDIS_TLS_SKIP_HOSTNAME_VERIFICATION: Setting<bool> = Setting::boolean(
    "REDIS_TLS_SKIP_HOSTNAME_VERIFICATION",
    "false",
    "do not verify the server certificate (insecure)",
);
pub const REDIS_POOL_SIZE: Setting<usize> =
    Setting::number("REDIS_POOL_SIZE", "10", "number of connections; each one pipelines concurrent requests");
pub const REDIS_TIMEOUT: Setting<Duration> = Setting::duration("REDIS_TIMEOUT", "10s", "dial and call timeout");
pub const REDIS_HEALTH_CHECK_ACTIVE_CONNECTION: Setting<bool> =
    Setting::boolean("REDIS_HEALTH_CHECK_ACTIVE_CONNECTION", "false", "report unhealthy while Redis cannot be reached");
pub const REDIS_STARTUP_INITIAL_INTERVAL: Setting<Duration> =
    Setting::duration("REDIS_STARTUP_INITIAL_INTERVAL", "1s", "first wait between startup connection attempts");
pub const REDIS_STARTUP_MAX_INTERVAL: Setting<Duration> =
    Setting::duration("REDIS_STARTUP_MAX_INTERVAL", "30s", "longest wait between startup connection attempts");
pub const REDIS_STARTUP_MAX_ELAPSED_TIME: Setting<Duration> =
    Setting::duration("REDIS_STARTUP_MAX_ELAPSED_TIME", "0", "give up starting after this long (0 = retry forever)");
pub const REDIS_PERSECOND: Setting<bool> = Setting::boolean(
    "REDIS_PERSECOND",
    "false",
    "send limits whose unit is SECOND to a second Redis, configured by REDIS_PERSECOND_*",
);
pub const REDIS_PERSECOND_SOCKET_TYPE: Setting<SocketType> = Setting::choice(
    "REDIS_PERSECOND_SOCKET_TYPE",
    "unix",
    SOCKET_TYPES,
    "as REDIS_SOCKET_TYPE, for the per-second Redis",
);
pub const REDIS_PERSECOND_TYPE: Setting<Topology> =
    Setting::choice("REDIS_PERSECOND_TYPE", "SINGLE", TOPOLOGIES, "as REDIS_TYPE, for the per-second Redis");
pub const REDIS_PERSECOND_URL: Setting<String> = Setting::text(
    "REDIS_PERSECOND_URL",
    "/var/run/nutcracker/ratelimitpersecond.sock",
    "as REDIS_URL, for the per-second Redis",
);
pub const REDIS_PERSECOND_AUTH: Setting<String> =
    Setting::text("REDIS_PERSECOND_AUTH", "", "as REDIS_AUTH, for the per-second Redis");
pub const REDIS_PERSECOND_SENTINEL_AUTH: Setting<String> =
    Setting::text("REDIS_PERSECOND_SENTINEL_AUTH", "", "as REDIS_SENTINEL_AUTH, for the per-second Redis");
pub const REDIS_PERSECOND_TLS: Setting<bool> = Setting::boolean(
    "REDIS_PERSECOND_TLS",
    "false",
    "as REDIS_TLS, for the per-second Redis (certificates as for the main one)",
);
pub const REDIS_PERSECOND_POOL_SIZE: Setting<usize> =
    Setting::number("REDIS_PERSECOND_POOL_SIZE", "10", "as REDIS_POOL_SIZE, for the per-second Redis");
pub const REDIS_PERSECOND_TIMEOUT: Setting<Duration> =
    Setting::duration("REDIS_PERSECOND_TIMEOUT", "10s", "as REDIS_TIMEOUT, for the per-second Redis");
// Text, not parsed: any value the reference takes (a duration such as `150us`) must start the
// service, with a warning that it is ignored.
pub const REDIS_PIPELINE_WINDOW: Setting<String> = Setting::text(
    "REDIS_PIPELINE_WINDOW",
    "0",
    "accepted for compatibility; concurrent calls' commands are auto-pipelined without a timer",
);
/// The reference's old meaning (the most commands pipelined before a flush), for our
/// auto-pipelining; the per-second Redis uses the same bound.
pub const REDIS_PIPELINE_LIMIT: Setting<usize> = Setting::number(
    "REDIS_PIPELINE_LIMIT",
    "0",
    "the most commands one write to Redis carries (concurrent calls share writes); 0 = 1024, 1 = each call its own",
);
pub const USE_PROMETHEUS: Setting<bool> = Setting::boolean("USE_PROMETHEUS", "false", "serve Prometheus metrics");
pub const PROMETHEUS_ADDR: Setting<String> = Setting::text("PROMETHEUS_ADDR", ":9090", "address of the metrics server");
pub const PROMETHEUS_PATH: Setting<String> = Setting::text("PROMETHEUS_PATH", "/metrics", "path of the metrics");
pub const PROMETHEUS_RESPONSE_TIME_AS_MILLISECONDS: Setting<bool> = Setting::boolean(
    "PROMETHEUS_RESPONSE_TIME_AS_MILLISECONDS",
    "false",
    "report response times in milliseconds instead of seconds",
);
pub const USE_STATSD: Setting<bool> = Setting::boolean(
    "USE_STATSD",
    "true",
    "send stats to STATSD_HOST:STATSD_PORT (the reference's default; only one of USE_STATSD, \
     USE_DOG_STATSD, USE_PROMETHEUS may be true)",
);
pub const STATSD_HOST: Setting<String> = Setting::text("STATSD_HOST", "localhost", "statsd (or DogStatsD) host");
pub const STATSD_PORT: Setting<u16> = Setting::number("STATSD_PORT", "8125", "statsd (or DogStatsD) port");
pub const STATSD_PROTOCOL: Setting<Transport> = Setting::choice(
    "STATSD_PROTOCOL",
    "tcp",
    &[("tcp", Transport::Tcp), ("udp", Transport::Udp)],
    "transport to statsd (gostats' variable)",
);
pub const USE_DOG_STATSD: Setting<bool> = Setting::boolean(
    "USE_DOG_STATSD",
    "false",
    "send stats in DataDog's dialect (tags as |#k:v) over UDP to STATSD_HOST:STATSD_PORT",
);
pub const USE_DOG_STATSD_MOGRIFIERS: Setting<String> = Setting::text(
    "USE_DOG_STATSD_MOGRIFIERS",
    "",
    "comma-separated ids of DOG_STATSD_MOGRIFIER_<ID>_PATTERN / _NAME / _TAGS name rewrites, tried in order",
);
pub const EXTRA_TAGS: Setting<String> =
    Setting::text("EXTRA_TAGS", "", "tags on every statsd series, k1:v1,k2:v2 (statsd: as name.__k1=v1)");
pub const STATS_FLUSH_INTERVAL: Setting<Duration> =
    Setting::duration("STATS_FLUSH_INTERVAL", "10s", "how often statsd counters and gauges are sent");
pub const DISABLE_STATS: Setting<bool> =
    Setting::boolean("DISABLE_STATS", "false", "send no stats anywhere (no statsd, no Prometheus server)");
pub const TRACING_ENABLED: Setting<bool> =
    Setting::boolean("TRACING_ENABLED", "false", "export OpenTelemetry spans over OTLP (OTEL_EXPORTER_OTLP_*)");
pub const TRACING_SERVICE_NAME: Setting<String> =
    Setting::text("TRACING_SERVICE_NAME", "RateLimit", "service.name of the exported spans");
pub const TRACING_SERVICE_NAMESPACE: Setting<String> =
    Setting::text("TRACING_SERVICE_NAMESPACE", "", "service.namespace of the exported spans");
pub const TRACING_SERVICE_INSTANCE_ID: Setting<String> = Setting::text(
    "TRACING_SERVICE_INSTANCE_ID",
    "",
    "service.instance.id of the exported spans (default: a random UUID)",
);
pub const TRACING_EXPORTER_PROTOCOL: Setting<Protocol> = Setting::choice(
    "TRACING_EXPORTER_PROTOCOL",
    "http",
    &[("http", Protocol::HttpProtobuf), ("grpc", Protocol::Grpc)],
    "OTLP over HTTP/protobuf or gRPC",
);
pub const TRACING_SAMPLING_RATE: Setting<f64> = Setting::number(
    "TRACING_SAMPLING_RATE",
    "1",
    "share of new traces recorded (0 to 1); a caller's sampling decision wins",
);
pub const SHUTDOWN_DELAY: Setting<Duration> = Setting::duration(
    "SHUTDOWN_DELAY",
    "0s",
    "after a stop signal, report unhealthy for this long before closing listeners",
);
pub const SHUTDOWN_TIMEOUT: Setting<Duration> =
    Setting::duration("SHUTDOWN_TIMEOUT", "15s", "longest wait for in-flight calls to finish after a stop signal");

/// The service's own settings, in `--help` order (the OTLP exporter's follow, from
/// `shared::traces`).
const OWN: &[&dyn Documented] = &[
    &GRPC_HOST,
    &GRPC_PORT,
    &GRPC_UDS,
    &GRPC_MAX_CONNECTION_AGE,
    &GRPC_MAX_CONNECTION_AGE_GRACE,
    &GRPC_MAX_CONNECTION_IDLE,
    &HOST,
    &PORT,
    &DEBUG_HOST,
    &DEBUG_PORT,
    &SHUTDOWN_DELAY,
    &SHUTDOWN_TIMEOUT,
    &GRPC_SERVER_USE_TLS,
    &GRPC_SERVER_TLS_CERT,
    &GRPC_SERVER_TLS_KEY,
    &GRPC_CLIENT_TLS_CACERT,
    &GRPC_CLIENT_TLS_SAN,
    &LOG_LEVEL,
    &LOG_FORMAT,
    &CONFIG_TYPE,
    &RUNTIME_ROOT,
    &RUNTIME_SUBDIRECTORY,
    &RUNTIME_APPDIRECTORY,
    &RUNTIME_WATCH_ROOT,
    &RUNTIME_IGNOREDOTFILES,
    &RUNTIME_POLL_INTERVAL,
    &MERGE_DOMAIN_CONFIG,
    &FORCE_START_WITHOUT_INITIAL_CONFIG,
    &HEALTHY_WITH_AT_LEAST_ONE_CONFIG_LOADED,
    &CONFIG_GRPC_XDS_SERVER_URL,
    &CONFIG_GRPC_XDS_NODE_ID,
    &CONFIG_GRPC_XDS_NODE_METADATA,
    &CONFIG_GRPC_XDS_CLIENT_ADDITIONAL_HEADERS,
    &CONFIG_GRPC_XDS_SERVER_USE_TLS,
    &CONFIG_GRPC_XDS_SERVER_TLS_CACERT,
    &CONFIG_GRPC_XDS_CLIENT_TLS_CERT,
    &CONFIG_GRPC_XDS_CLIENT_TLS_KEY,
    &CONFIG_GRPC_XDS_SERVER_TLS_SAN,
    &CONFIG_GRPC_XDS_SERVER_CONNECT_RETRY_INTERVAL,
    &XDS_CLIENT_BACKOFF_INITIAL_INTERVAL,
    &XDS_CLIENT_BACKOFF_MAX_INTERVAL,
    &XDS_CLIENT_BACKOFF_RANDOM_FACTOR,
    &XDS_CLIENT_BACKOFF_JITTER,
    &XDS_CLIENT_MAX_MSG_SIZE_IN_BYTES,
    &SHADOW_MODE,
    &QUOTA_MODE,
    &NEAR_LIMIT_RATIO,
    &RESPONSE_DYNAMIC_METADATA,
    &LIMIT_RESPONSE_HEADERS_ENABLED,
    &LIMIT_LIMIT_HEADER,
    &LIMIT_REMAINING_HEADER,
    &LIMIT_RESET_HEADER,
    &LIMIT_RETRY_AFTER_HEADER_ENABLED,
    &BACKEND_TYPE,
    &MEMORY_MAX_COUNTERS,
    &CACHE_KEY_PREFIX,
    &EXPIRATION_JITTER_MAX_SECONDS,
    &LOCAL_CACHE_SIZE_IN_BYTES,
    &STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT,
    &HOT_KEY_BATCH_WINDOW,
    &REDIS_SOCKET_TYPE,
    &REDIS_TYPE,
    &REDIS_URL,
    &REDIS_AUTH,
    &REDIS_SENTINEL_AUTH,
    &REDIS_TLS,
    &REDIS_TLS_CLIENT_CERT,
    &REDIS_TLS_CLIENT_KEY,
    &REDIS_TLS_CACERT,
    &REDIS_TLS_SKIP_HOSTNAME_VERIFICATION,
    &REDIS_POOL_SIZE,
    &REDIS_TIMEOUT,
    &REDIS_PIPELINE_WINDOW,
    &REDIS_PIPELINE_LIMIT,
    &REDIS_HEALTH_CHECK_ACTIVE_CONNECTION,
    &REDIS_STARTUP_INITIAL_INTERVAL,
    &REDIS_STARTUP_MAX_INTERVAL,
    &REDIS_STARTUP_MAX_ELAPSED_TIME,
    &REDIS_FAILURE_MODE,
    &REDIS_FAILURE_LOCAL_INSTANCES,
    &REDIS_FAILURE_LOCAL_TIMEOUT,
    &REDIS_PERSECOND,
    &REDIS_PERSECOND_SOCKET_TYPE,
    &REDIS_PERSECOND_TYPE,
    &REDIS_PERSECOND_URL,
    &REDIS_PERSECOND_AUTH,
    &REDIS_PERSECOND_SENTINEL_AUTH,
    &REDIS_PERSECOND_TLS,
    &REDIS_PERSECOND_POOL_SIZE,
    &REDIS_PERSECOND_TIMEOUT,
    &USE_PROMETHEUS,
    &PROMETHEUS_ADDR,
    &PROMETHEUS_PATH,
    &PROMETHEUS_RESPONSE_TIME_AS_MILLISECONDS,
    &USE_STATSD,
    &STATSD_HOST,
    &STATSD_PORT,
    &STATSD_PROTOCOL,
    &USE_DOG_STATSD,
    &USE_DOG_STATSD_MOGRIFIERS,
    &EXTRA_TAGS,
    &STATS_FLUSH_INTERVAL,
    &DISABLE_STATS,
    &TRACING_ENABLED,
    &TRACING_SERVICE_NAME,
    &TRACING_SERVICE_NAMESPACE,
    &TRACING_SERVICE_INSTANCE_ID,
    &TRACING_EXPORTER_PROTOCOL,
    &TRACING_SAMPLING_RATE,
];

/// Every setting, in `--help` order.
pub const ALL: &[&dyn Documented] = &ALL_ARRAY;
const ALL_ARRAY: [&dyn Documented; OWN.len() + shared::traces::OTLP_SETTINGS.len()] =
    shared::env::join(OWN, &shared::traces::OTLP_SETTINGS);

/// The headings of `--help`, each at its first setting; the OTLP exporter's settings belong to
/// the tracing section.
pub const SECTIONS: &[Section] = &[
    Section { title: "Servers and shutdown", first: "GRPC_HOST" },
    Section { title: "gRPC server TLS", first: "GRPC_SERVER_USE_TLS" },
    Section { title: "Logging", first: "LOG_LEVEL" },
    Section { title: "Where limits come from: config files", first: "CONFIG_TYPE" },
    Section {
        title: "Where limits come from: an xDS server (CONFIG_TYPE=GRPC_XDS_SOTW)",
        first: "CONFIG_GRPC_XDS_SERVER_URL",
    },
    Section { title: "Limits and answers", first: "SHADOW_MODE" },
    Section { title: "Counters and caches", first: "BACKEND_TYPE" },
    Section { title: "Redis", first: "REDIS_SOCKET_TYPE" },
    Section { title: "When Redis fails", first: "REDIS_FAILURE_MODE" },
    Section { title: "The per-second Redis", first: "REDIS_PERSECOND" },
    Section { title: "Stats and metrics", first: "USE_PROMETHEUS" },
    Section { title: "Tracing (OpenTelemetry)", first: "TRACING_ENABLED" },
];

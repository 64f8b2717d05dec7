//! The config file as written: serde types with defaults (declared in `super::keys`), unknown
//! keys refused.

mod oidc;
mod rules;

pub use oidc::{RawCookie, RawOidc, RawRedis, RawSession};
pub use rules::{default_accept, RawDenyError, RawPolicy, RawPolicySelector, RawRoutes, RawRule, RawWhen};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::keys::*;

#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub server: RawServer,
    pub log: RawLog,
    pub cache: RawCache,
    /// How often config and key files are checked for changes.
    pub reload_interval: Option<String>,
    pub jwt_providers: Vec<RawProvider>,
    pub api_keys: Option<RawApiKeys>,
    /// Required: a file without it is empty or cut short, not a deny-all policy.
    pub routes: Option<RawRoutes>,
    /// Named policies, each shaped like `routes` (plus `mode`), chosen by the gateway's route.
    pub policies: BTreeMap<String, RawPolicy>,
    /// Where a request's policy name is read.
    pub policy_selector: RawPolicySelector,
    pub identity: RawIdentity,
    pub oidc: Option<RawOidc>,
    pub decision_log: RawDecisionLog,
    pub telemetry: RawTelemetry,
    pub workload_identity: RawWorkloadIdentity,
    pub upstream_credentials: Vec<RawUpstreamCredential>,
    pub client_address: super::client_address::RawClientAddress,
}

/// One `upstream_credentials:` entry: the header to set, and where its value comes from
/// (exactly one of `file`, `dir` + `key`, `oauth2`).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamCredential {
    pub name: String,
    pub header: String,
    /// Put before the value (default: `"Bearer "` for oauth2, nothing for files).
    pub prefix: Option<String>,
    pub file: Option<String>,
    /// A mounted Secret's directory, with `key` the file in it.
    pub dir: Option<String>,
    pub key: Option<String>,
    pub oauth2: Option<RawClientCredentials>,
}

/// `oauth2:` — the client-credentials grant.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawClientCredentials {
    /// The token endpoint, or `issuer` to find it through discovery (exactly one).
    pub token_endpoint: Option<String>,
    pub issuer: Option<String>,
    pub client_id: String,
    pub client_secret_file: Option<String>,
    pub client_secret_env: Option<String>,
    /// `client_secret_basic` (default) or `client_secret_post`.
    #[serde(default = "basic")]
    pub auth_method: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    pub audience: Option<String>,
    pub resource: Option<String>,
    #[serde(default = "sixty_seconds")]
    pub refresh_before: String,
    /// Below the gateways' ext_authz timeout (2 s in the shipped configs), so a hung token
    /// endpoint gets our 503 before the gateway gives up and `failure_mode_allow` decides.
    #[serde(default = "one_second")]
    pub timeout: String,
}

fn basic() -> String {
    OAUTH2_AUTH_METHOD.default.into()
}

fn sixty_seconds() -> String {
    OAUTH2_REFRESH_BEFORE.default.into()
}

fn one_second() -> String {
    OAUTH2_TIMEOUT.default.into()
}

/// `workload_identity:` — where the calling workload's SPIFFE ID comes from.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawWorkloadIdentity {
    /// `peer` (Envoy's view of the mutual TLS peer) or `xfcc` (a trusted
    /// `x-forwarded-client-cert`).
    pub from: String,
    pub trust_domains: Vec<String>,
    /// The identity header with the caller's SPIFFE ID; empty for none.
    pub header: String,
}

impl Default for RawWorkloadIdentity {
    fn default() -> Self {
        RawWorkloadIdentity {
            from: WORKLOAD_FROM.default.into(),
            trust_domains: Vec::new(),
            header: WORKLOAD_HEADER.default.into(),
        }
    }
}

/// `telemetry:` — what the service exports besides logs and metrics.
#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RawTelemetry {
    pub tracing: RawTracing,
}

/// `telemetry.tracing:` — OpenTelemetry spans over OTLP; unset keys fall back to the standard
/// `OTEL_*` variables.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTracing {
    pub enabled: bool,
    /// `grpc` or `http/protobuf` (default: `OTEL_EXPORTER_OTLP_PROTOCOL`, else grpc).
    pub protocol: Option<String>,
    /// The collector (default: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub endpoint: Option<String>,
    /// `service.name` (default: `OTEL_SERVICE_NAME`, else `ext-authz`).
    pub service_name: Option<String>,
    pub service_namespace: Option<String>,
    /// `service.instance.id` (default: a random UUID per process).
    pub service_instance_id: Option<String>,
    /// The share of new traces recorded, 0–1; a caller's sampling decision wins.
    pub sampling_rate: f64,
}

impl Default for RawTracing {
    fn default() -> Self {
        RawTracing {
            enabled: TRACING_ENABLED.default_value(),
            protocol: None,
            endpoint: None,
            service_name: None,
            service_namespace: None,
            service_instance_id: None,
            sampling_rate: TRACING_SAMPLING_RATE.default_value(),
        }
    }
}

/// `decision_log:` — one JSON line per decision (off unless enabled).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDecisionLog {
    pub enabled: bool,
    /// The share of decisions logged, 0–1.
    pub sample_rate: f64,
    /// Log allows too (not only denials, redirects and failures).
    pub allows: bool,
    /// `stdout`, or a file path (relative to this file) appended to.
    pub to: String,
    /// Rotate the file before it grows past this (`100MiB`); unset, logrotate's job.
    pub max_size: Option<String>,
    /// Rotated files kept (`<file>.1` … `<file>.N`) with `max_size`; default 5.
    pub max_files: Option<u32>,
}

impl Default for RawDecisionLog {
    fn default() -> Self {
        RawDecisionLog {
            enabled: DECISION_LOG_ENABLED.default_value(),
            sample_rate: DECISION_LOG_SAMPLE_RATE.default_value(),
            allows: DECISION_LOG_ALLOWS.default_value(),
            to: DECISION_LOG_TO.default.into(),
            max_size: None,
            max_files: None,
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    pub grpc_addr: String,
    pub http_addr: String,
    /// Envoy's HTTP ext_authz mode is served under this path prefix, for any method.
    pub http_check_prefix: String,
    pub shutdown_delay: String,
    pub shutdown_timeout: String,
    /// Close a gRPC connection with no call open for this long (`0s`: never).
    pub grpc_idle_timeout: String,
    /// TLS (and, with a client CA, mutual TLS) on the gRPC port.
    pub grpc_tls: Option<RawTls>,
    /// The same on the HTTP port (HTTP mode, probes, metrics): mutual TLS there also applies to
    /// probes and scrapers.
    pub http_tls: Option<RawTls>,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            grpc_addr: GRPC_ADDR.default.into(),
            http_addr: HTTP_ADDR.default.into(),
            http_check_prefix: HTTP_CHECK_PREFIX.default.into(),
            shutdown_delay: SHUTDOWN_DELAY.default.into(),
            shutdown_timeout: SHUTDOWN_TIMEOUT.default.into(),
            grpc_idle_timeout: GRPC_IDLE_TIMEOUT.default.into(),
            grpc_tls: None,
            http_tls: None,
        }
    }
}

/// A TLS server's files (relative to the config file), re-read when they change.
#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert_file: String,
    pub key_file: String,
    /// Require client certificates signed by this CA (mutual TLS).
    #[serde(default)]
    pub client_ca_file: Option<String>,
    /// With `client_ca_file`: the identities a client certificate may carry — DNS names, IPs,
    /// or SPIFFE ID patterns (`spiffe://td/ns/*/sa/envoy`, a final `/**` for any rest).
    #[serde(default)]
    pub allowed_clients: Vec<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLog {
    pub level: String,
    pub format: String,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog { level: LOG_LEVEL.default.into(), format: LOG_FORMAT.default.into() }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCache {
    /// Verified tokens remembered until they expire; 0 turns the cache off.
    pub max_tokens: usize,
}

impl Default for RawCache {
    fn default() -> Self {
        RawCache { max_tokens: CACHE_MAX_TOKENS.default_value() }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    pub name: String,
    pub issuer: String,
    #[serde(default)]
    pub audiences: Vec<String>,
    pub algorithms: Vec<String>,
    pub keys: RawKeys,
    #[serde(default)]
    pub leeway: Option<String>,
    #[serde(default = "require_exp")]
    pub require_exp: bool,
    #[serde(default)]
    pub from: Vec<RawSource>,
    #[serde(default)]
    pub jwks_refresh: RawRefresh,
}

fn require_exp() -> bool {
    JWT_REQUIRE_EXP.default_value()
}

/// Exactly one key source.
#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawKeys {
    pub jwks_uri: Option<String>,
    /// Find `jwks_uri` through `<issuer>/.well-known/openid-configuration`.
    #[serde(default)]
    pub discovery: bool,
    pub jwks_file: Option<String>,
    pub hmac_secret_file: Option<String>,
    pub hmac_secret_env: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRefresh {
    /// Refresh interval when the JWKS response sets no `Cache-Control: max-age`.
    pub interval: String,
    /// Bounds on a `max-age`.
    pub min_interval: String,
    pub max_interval: String,
    /// A token with an unknown `kid` triggers a refetch at most this often.
    pub unknown_kid_min_interval: String,
    /// The longest a check waits for that refetch; the fetch itself goes on.
    pub unknown_kid_wait: String,
    pub timeout: String,
}

impl Default for RawRefresh {
    fn default() -> Self {
        RawRefresh {
            interval: JWKS_INTERVAL.default.into(),
            min_interval: JWKS_MIN_INTERVAL.default.into(),
            max_interval: JWKS_MAX_INTERVAL.default.into(),
            unknown_kid_min_interval: JWKS_UNKNOWN_KID_MIN_INTERVAL.default.into(),
            unknown_kid_wait: JWKS_UNKNOWN_KID_WAIT.default.into(),
            timeout: JWKS_TIMEOUT.default.into(),
        }
    }
}

/// Where a credential is read: `{header, prefix}`, `{query}` or `{cookie}`.
#[derive(Debug, Deserialize, Serialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    pub header: Option<String>,
    pub prefix: Option<String>,
    pub query: Option<String>,
    pub cookie: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawApiKeys {
    #[serde(default)]
    pub from: Vec<RawSource>,
    /// Pass API keys on to the backend (default: as `identity.forward_credential`).
    pub forward: Option<bool>,
    pub file: Option<String>,
    pub dir: Option<String>,
}

/// `org.id` (nested, or a literal dotted name) or `["https://x.io", "tenant"]` (explicit segments).
/// (`expecting` replaces serde's "data did not match any variant of untagged enum".)
#[derive(Debug, Deserialize, Serialize, Clone)]
#[serde(
    untagged,
    expecting = "expected a claim path: `org.id`, or a list of its segments like [\"https://x.io\", tenant]"
)]
pub enum RawClaimPath {
    Text(String),
    Segments(Vec<String>),
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawIdentity {
    /// Header name → claims (the first present wins), or `scopes`. Replaces the defaults.
    pub headers: Option<BTreeMap<String, RawHeaderSource>>,
    pub array_format: String,
    pub array_separator: String,
    pub payload_header: Option<String>,
    pub forward_credential: bool,
    pub dynamic_metadata: bool,
    /// Claims copied as they are into dynamic metadata (e.g. a per-client rate limit for
    /// Envoy's descriptor `limit` override).
    pub metadata_claims: Vec<RawClaimPath>,
}

impl Default for RawIdentity {
    fn default() -> Self {
        RawIdentity {
            headers: None,
            array_format: IDENTITY_ARRAY_FORMAT.default.into(),
            array_separator: IDENTITY_ARRAY_SEPARATOR.default.into(),
            payload_header: None,
            forward_credential: IDENTITY_FORWARD_CREDENTIAL.default_value(),
            dynamic_metadata: IDENTITY_DYNAMIC_METADATA.default_value(),
            metadata_claims: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize, Serialize, Clone)]
#[serde(
    untagged,
    expecting = "expected `scopes`, a claim path (`org.id`), or a list of claim paths (the first present wins)"
)]
pub enum RawHeaderSource {
    /// `scopes`, or one claim path.
    One(String),
    Many(Vec<RawClaimPath>),
}

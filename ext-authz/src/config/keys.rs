//! Every config key with a default, and the environment variables ext-authz reads, declared
//! once: name, default (as a user writes it), parser and help. The raw (serde) form takes its
//! defaults from here, the sections that apply a default themselves read it from here, and
//! `--help` prints these declarations under the headings of [`SECTIONS`]; a test compares them
//! with the tables of docs/ext-authz.md.
//!
//! A choice key names, at its declaration, each accepted spelling and the value (an enum) it
//! stands for; the section reads the enum through [`Check::choice`](super::check::Check::choice).
//!
//! Keys are named by their path in the file (`server.grpc_addr`; `[]` marks each entry of a
//! list). Durations are Go's syntax (`500ms`, `1m30s`), as everywhere in the file.

use std::time::Duration;

use shared::env::{Documented, Section, Setting};
use shared::telemetry::LogFormat;

use crate::core::principals::PrincipalSource;
use crate::core::routes::Mode;
use crate::core::session::cookies::SameSite;
use crate::oauth::ClientAuthMethod;
use crate::oidc::LogoutGet;

/// `routes.default`: what a request no rule matches gets. `Authenticated` takes its credentials
/// from `routes.default_accept` (see `config::routes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutesDefault {
    Deny,
    Allow,
    Authenticated,
}

/// `routes.rules[].action`: what a matching rule does (see `core::routes::Action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleAction {
    Allow,
    Deny,
}

/// `identity.array_format`. `Join` takes its separator from `identity.array_separator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrayFormatKind {
    Join,
    Json,
}

/// `oidc.session.store`. Each store's own keys are checked in `config::oidc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStore {
    Cookie,
    Redis,
}

pub const GRPC_ADDR: Setting<String> = Setting::text(
    "server.grpc_addr",
    "0.0.0.0:9001",
    "gRPC Check and grpc.health.v1 (service envoy.service.auth.v3.Authorization)",
);
pub const HTTP_ADDR: Setting<String> =
    Setting::text("server.http_addr", "0.0.0.0:8080", "HTTP ext_authz mode, /healthz, /readyz, /metrics");
pub const HTTP_CHECK_PREFIX: Setting<String> = Setting::text(
    "server.http_check_prefix",
    "/authz",
    "HTTP mode: any method, any path under the prefix (Envoy's path_prefix)",
);
pub const SHUTDOWN_DELAY: Setting<Duration> =
    Setting::duration("server.shutdown_delay", "0s", "after SIGTERM, not ready for this long before draining");
pub const SHUTDOWN_TIMEOUT: Setting<Duration> =
    Setting::duration("server.shutdown_timeout", "15s", "longest wait for in-flight checks after SIGTERM");
pub const GRPC_IDLE_TIMEOUT: Setting<Duration> = Setting::duration(
    "server.grpc_idle_timeout",
    "5m",
    "close a gRPC connection with no call open for this long (GOAWAY; 0s: never)",
);
pub const LOG_LEVEL: Setting<String> =
    Setting::text("log.level", "info", "trace, debug, info, warn, error (RUST_LOG, when set, overrides it)");
pub const LOG_FORMAT: Setting<LogFormat> = Setting::choice(
    "log.format",
    "text",
    &[("text", LogFormat::Text), ("json", LogFormat::Json)],
    "text or json (json fields: @timestamp, @message, level)",
);
pub const CACHE_MAX_TOKENS: Setting<usize> =
    Setting::number("cache.max_tokens", "10000", "verified tokens kept until they expire (0 = off)");
pub const RELOAD_INTERVAL: Setting<Duration> =
    Setting::duration("reload_interval", "2s", "how often the config file and API key files are checked for changes");
pub const ROUTES_DEFAULT: Setting<RoutesDefault> = Setting::choice(
    "routes.default",
    "deny",
    &[("deny", RoutesDefault::Deny), ("allow", RoutesDefault::Allow), ("authenticated", RoutesDefault::Authenticated)],
    "unmatched requests: deny, allow, or authenticated (any credential of routes.default_accept)",
);
pub const RULE_ACTION: Setting<RuleAction> = Setting::choice(
    "routes.rules[].action",
    "allow",
    &[("allow", RuleAction::Allow), ("deny", RuleAction::Deny)],
    "allow (the first matching allow rule answers) or deny (judged before every allow rule, and wins)",
);
pub const RULE_MODE: Setting<Mode> = Setting::choice(
    "routes.rules[].mode",
    "enforce",
    &[("enforce", Mode::Enforce), ("shadow", Mode::Shadow)],
    "enforce, or shadow: evaluated, its would-be answer logged and counted, never the answer",
);
pub const POLICY_MODE: Setting<Mode> = Setting::choice(
    "policies.<name>.mode",
    "enforce",
    &[("enforce", Mode::Enforce), ("shadow", Mode::Shadow)],
    "enforce (the policy answers its requests), or shadow (routes answers; the policy's answer is logged)",
);
pub const POLICY_CONTEXT_EXTENSION: Setting<String> = Setting::text(
    "policy_selector.context_extension",
    "policy",
    "the Envoy context_extensions key naming a request's policy (\"\": not read)",
);
pub const POLICY_METADATA_NAMESPACE: Setting<String> = Setting::text(
    "policy_selector.route_metadata.namespace",
    "envoy-gateway",
    "route metadata namespace read when no context extension names a policy (\"\": not read)",
);
pub const POLICY_METADATA_ANNOTATION: Setting<String> = Setting::text(
    "policy_selector.route_metadata.annotation",
    "gatehouse-policy",
    "the route annotation naming a policy there (resources[0].annotations)",
);
pub const IDENTITY_ARRAY_FORMAT: Setting<ArrayFormatKind> = Setting::choice(
    "identity.array_format",
    "join",
    &[("join", ArrayFormatKind::Join), ("json", ArrayFormatKind::Json)],
    "arrays in identity headers: join, or json",
);
pub const IDENTITY_ARRAY_SEPARATOR: Setting<String> =
    Setting::text("identity.array_separator", ",", "with array_format join: the separator");
pub const IDENTITY_PAYLOAD_HEADER: Setting<String> =
    Setting::text("identity.payload_header", "", "a header carrying the whole verified payload, base64url JSON");
pub const IDENTITY_FORWARD_CREDENTIAL: Setting<bool> =
    Setting::boolean("identity.forward_credential", "false", "pass the token or API key on to the backend");
pub const IDENTITY_DYNAMIC_METADATA: Setting<bool> = Setting::boolean(
    "identity.dynamic_metadata",
    "true",
    "send the identity as Envoy dynamic metadata (envoy.filters.http.ext_authz)",
);
pub const WORKLOAD_FROM: Setting<PrincipalSource> = Setting::choice(
    "workload_identity.from",
    "peer",
    &[("peer", PrincipalSource::Peer), ("xfcc", PrincipalSource::Xfcc)],
    "where the caller's SPIFFE ID comes from: peer (the mutual TLS connection) or xfcc (a trusted \
     x-forwarded-client-cert)",
);
pub const WORKLOAD_HEADER: Setting<String> = Setting::text(
    "workload_identity.header",
    "x-client-principal",
    "the caller's SPIFFE ID upstream (always ours; \"\" for none)",
);
pub const JWT_LEEWAY: Setting<Duration> =
    Setting::duration("jwt_providers[].leeway", "60s", "clock skew allowed on exp and nbf");
pub const JWT_REQUIRE_EXP: Setting<bool> =
    Setting::boolean("jwt_providers[].require_exp", "true", "refuse tokens without exp");
pub const JWKS_INTERVAL: Setting<Duration> = Setting::duration(
    "jwt_providers[].jwks_refresh.interval",
    "5m",
    "JWKS refresh when the response sets no Cache-Control: max-age",
);
pub const JWKS_MIN_INTERVAL: Setting<Duration> =
    Setting::duration("jwt_providers[].jwks_refresh.min_interval", "30s", "lower bound on a max-age");
pub const JWKS_MAX_INTERVAL: Setting<Duration> =
    Setting::duration("jwt_providers[].jwks_refresh.max_interval", "24h", "upper bound on a max-age");
pub const JWKS_UNKNOWN_KID_MIN_INTERVAL: Setting<Duration> = Setting::duration(
    "jwt_providers[].jwks_refresh.unknown_kid_min_interval",
    "10s",
    "a token with an unknown kid triggers a re-fetch at most this often",
);
pub const JWKS_UNKNOWN_KID_WAIT: Setting<Duration> = Setting::duration(
    "jwt_providers[].jwks_refresh.unknown_kid_wait",
    "500ms",
    "the longest a check waits for that re-fetch (keep it below Envoy's ext_authz timeout)",
);
/// Above the gateways' 2 s on purpose: fetches run in the background, and a check waits for
/// one at most `unknown_kid_wait` (which `validate` holds below the gateway's timeout).
pub const JWKS_TIMEOUT: Setting<Duration> = Setting::duration(
    "jwt_providers[].jwks_refresh.timeout",
    "5s",
    "timeout of one JWKS fetch (in the background: a check waits at most unknown_kid_wait)",
);
pub const OAUTH2_AUTH_METHOD: Setting<ClientAuthMethod> = Setting::choice(
    "upstream_credentials[].oauth2.auth_method",
    "client_secret_basic",
    &[("client_secret_basic", ClientAuthMethod::Basic), ("client_secret_post", ClientAuthMethod::Post)],
    "client_secret_basic or client_secret_post",
);
pub const OAUTH2_REFRESH_BEFORE: Setting<Duration> = Setting::duration(
    "upstream_credentials[].oauth2.refresh_before",
    "60s",
    "fetch a new token this long before the current one expires",
);
pub const OAUTH2_TIMEOUT: Setting<Duration> = Setting::duration(
    "upstream_credentials[].oauth2.timeout",
    "1s",
    "token endpoint timeout; below the gateway's ext_authz timeout (2s in the shipped configs)",
);
pub const OIDC_NAME: Setting<String> = Setting::text("oidc.name", "oidc", "the provider's name in routes (session)");
pub const OIDC_CALLBACK_PATH: Setting<String> = Setting::text(
    "oidc.callback_path",
    "/oauth2/callback",
    "the redirect URI's path, or an absolute URL (then its origin is allowed too)",
);
pub const OIDC_LOGOUT_PATH: Setting<String> = Setting::text("oidc.logout_path", "/oauth2/logout", "sign-out path");
pub const OIDC_POST_LOGOUT_REDIRECT: Setting<String> =
    Setting::text("oidc.post_logout_redirect", "/", "where a browser goes after signing out (path or URL)");
pub const OIDC_LOGOUT_GET: Setting<LogoutGet> = Setting::choice(
    "oidc.logout_get",
    "confirm",
    &[("confirm", LogoutGet::Confirm), ("refuse", LogoutGet::Refuse), ("allow", LogoutGet::Allow)],
    "a GET of the logout path: confirm (a page posting the logout), refuse (405) or allow",
);
pub const OIDC_CSRF_GUARD: Setting<bool> = Setting::boolean(
    "oidc.csrf_guard",
    "false",
    "refuse state-changing session requests from other origins (Origin, else Sec-Fetch-Site)",
);
pub const OIDC_PASS_CLIENT_AUTHORIZATION: Setting<bool> = Setting::boolean(
    "oidc.pass_client_authorization",
    "false",
    "let a client's own Authorization header reach the backend on session requests",
);
pub const OIDC_PASS_METHOD_OVERRIDE: Setting<bool> = Setting::boolean(
    "oidc.pass_method_override",
    "false",
    "let method overrides (X-HTTP-Method-Override, _method, ...) reach the backend on session requests",
);
pub const OIDC_END_SESSION: Setting<bool> =
    Setting::boolean("oidc.end_session", "true", "sign out at the provider too (its end_session_endpoint)");
pub const OIDC_FORWARD_ACCESS_TOKEN: Setting<bool> =
    Setting::boolean("oidc.forward_access_token", "false", "send the session's access token to the backend");
pub const OIDC_REFRESH_BEFORE: Setting<Duration> =
    Setting::duration("oidc.refresh_before", "60s", "refresh a session's tokens this long before they expire");
pub const OIDC_LOGIN_TIMEOUT: Setting<Duration> =
    Setting::duration("oidc.login_timeout", "10m", "the longest a login may take at the provider");
pub const OIDC_PROVIDER_CHECK_INTERVAL: Setting<Duration> =
    Setting::duration("oidc.provider_check_interval", "10s", "how often an unreachable provider is asked again");
pub const OIDC_TIMEOUT: Setting<Duration> = Setting::duration(
    "oidc.timeout",
    "1s",
    "provider call timeout; below the 2s ext_authz timeout of the shipped gateway configs",
);
pub const OIDC_COOKIE_SAME_SITE: Setting<SameSite> = Setting::choice(
    "oidc.cookie.same_site",
    "lax",
    &[("lax", SameSite::Lax), ("strict", SameSite::Strict), ("none", SameSite::None)],
    "the session cookie's SameSite: lax, strict or none",
);
pub const OIDC_COOKIE_SECURE: Setting<bool> = Setting::boolean("oidc.cookie.secure", "true", "Secure cookies");
pub const OIDC_SESSION_LIFETIME: Setting<Duration> =
    Setting::duration("oidc.session.lifetime", "8h", "a session's longest life (at least 1m)");
pub const OIDC_SESSION_STORE: Setting<SessionStore> = Setting::choice(
    "oidc.session.store",
    "cookie",
    &[("cookie", SessionStore::Cookie), ("redis", SessionStore::Redis)],
    "where sessions are kept: cookie or redis",
);
pub const OIDC_REDIS_PREFIX: Setting<String> =
    Setting::text("oidc.session.redis.prefix", "gatehouse:session:", "prefix of every session key");
pub const OIDC_REDIS_POOL_SIZE: Setting<usize> =
    Setting::number("oidc.session.redis.pool_size", "4", "connections to Redis");
pub const OIDC_REDIS_TIMEOUT: Setting<Duration> =
    Setting::duration("oidc.session.redis.timeout", "300ms", "timeout of one Redis call");
pub const DECISION_LOG_ENABLED: Setting<bool> =
    Setting::boolean("decision_log.enabled", "false", "one JSON line per decision");
pub const DECISION_LOG_SAMPLE_RATE: Setting<f64> =
    Setting::number("decision_log.sample_rate", "1", "the share of decisions logged, 0 to 1");
pub const DECISION_LOG_ALLOWS: Setting<bool> =
    Setting::boolean("decision_log.allows", "true", "log allows too, not only denials, redirects and failures");
pub const DECISION_LOG_TO: Setting<String> =
    Setting::text("decision_log.to", "stdout", "stdout, or a file (relative to the config file) appended to");
pub const DECISION_LOG_MAX_SIZE: Setting<String> = Setting::text(
    "decision_log.max_size",
    "",
    "rotate the file before it grows past this (100MiB); unset: logrotate's job",
);
pub const DECISION_LOG_MAX_FILES: Setting<u32> =
    Setting::number("decision_log.max_files", "5", "with max_size: rotated files kept (<file>.1 ... <file>.N)");
pub const TRACING_ENABLED: Setting<bool> =
    Setting::boolean("telemetry.tracing.enabled", "false", "export OpenTelemetry spans over OTLP");
pub const TRACING_PROTOCOL: Setting<String> = Setting::text(
    "telemetry.tracing.protocol",
    "",
    "grpc or http/protobuf (unset: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, OTEL_EXPORTER_OTLP_PROTOCOL, else grpc)",
);
pub const TRACING_ENDPOINT: Setting<String> = Setting::text(
    "telemetry.tracing.endpoint",
    "",
    "the collector (unset: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_ENDPOINT, below)",
);
pub const TRACING_SERVICE_NAME: Setting<String> =
    Setting::text("telemetry.tracing.service_name", "", "service.name (unset: OTEL_SERVICE_NAME, else ext-authz)");
pub const TRACING_SAMPLING_RATE: Setting<f64> = Setting::number(
    "telemetry.tracing.sampling_rate",
    "1",
    "share of new traces recorded (0 to 1); a caller's sampling decision wins",
);
pub const EXT_AUTHZ_CONFIG: Setting<String> =
    Setting::text("EXT_AUTHZ_CONFIG", "/etc/ext-authz/ext-authz.yaml", "the config file when --config is not given");

/// ext-authz's own declarations, in `--help` order (the OTLP exporter's variables follow, from
/// `shared::traces`).
const OWN: &[&dyn Documented] = &[
    &GRPC_ADDR,
    &HTTP_ADDR,
    &HTTP_CHECK_PREFIX,
    &SHUTDOWN_DELAY,
    &SHUTDOWN_TIMEOUT,
    &GRPC_IDLE_TIMEOUT,
    &LOG_LEVEL,
    &LOG_FORMAT,
    &CACHE_MAX_TOKENS,
    &RELOAD_INTERVAL,
    &ROUTES_DEFAULT,
    &RULE_ACTION,
    &RULE_MODE,
    &POLICY_MODE,
    &POLICY_CONTEXT_EXTENSION,
    &POLICY_METADATA_NAMESPACE,
    &POLICY_METADATA_ANNOTATION,
    &IDENTITY_ARRAY_FORMAT,
    &IDENTITY_ARRAY_SEPARATOR,
    &IDENTITY_PAYLOAD_HEADER,
    &IDENTITY_FORWARD_CREDENTIAL,
    &IDENTITY_DYNAMIC_METADATA,
    &WORKLOAD_FROM,
    &WORKLOAD_HEADER,
    &JWT_LEEWAY,
    &JWT_REQUIRE_EXP,
    &JWKS_INTERVAL,
    &JWKS_MIN_INTERVAL,
    &JWKS_MAX_INTERVAL,
    &JWKS_UNKNOWN_KID_MIN_INTERVAL,
    &JWKS_UNKNOWN_KID_WAIT,
    &JWKS_TIMEOUT,
    &OAUTH2_AUTH_METHOD,
    &OAUTH2_REFRESH_BEFORE,
    &OAUTH2_TIMEOUT,
    &OIDC_NAME,
    &OIDC_CALLBACK_PATH,
    &OIDC_LOGOUT_PATH,
    &OIDC_POST_LOGOUT_REDIRECT,
    &OIDC_LOGOUT_GET,
    &OIDC_CSRF_GUARD,
    &OIDC_PASS_CLIENT_AUTHORIZATION,
    &OIDC_PASS_METHOD_OVERRIDE,
    &OIDC_END_SESSION,
    &OIDC_FORWARD_ACCESS_TOKEN,
    &OIDC_REFRESH_BEFORE,
    &OIDC_LOGIN_TIMEOUT,
    &OIDC_PROVIDER_CHECK_INTERVAL,
    &OIDC_TIMEOUT,
    &OIDC_COOKIE_SAME_SITE,
    &OIDC_COOKIE_SECURE,
    &OIDC_SESSION_LIFETIME,
    &OIDC_SESSION_STORE,
    &OIDC_REDIS_PREFIX,
    &OIDC_REDIS_POOL_SIZE,
    &OIDC_REDIS_TIMEOUT,
    &DECISION_LOG_ENABLED,
    &DECISION_LOG_SAMPLE_RATE,
    &DECISION_LOG_ALLOWS,
    &DECISION_LOG_TO,
    &DECISION_LOG_MAX_SIZE,
    &DECISION_LOG_MAX_FILES,
    &TRACING_ENABLED,
    &TRACING_PROTOCOL,
    &TRACING_ENDPOINT,
    &TRACING_SERVICE_NAME,
    &TRACING_SAMPLING_RATE,
    &EXT_AUTHZ_CONFIG,
];

/// Every declaration, in `--help` order.
pub const ALL: &[&dyn Documented] = &ALL_ARRAY;
const ALL_ARRAY: [&dyn Documented; OWN.len() + shared::traces::OTLP_SETTINGS.len()] =
    shared::env::join(OWN, &shared::traces::OTLP_SETTINGS);

/// The headings of `--help`, each at its first declaration.
pub const SECTIONS: &[Section] = &[
    Section { title: "server", first: "server.grpc_addr" },
    Section { title: "log, cache and reloads", first: "log.level" },
    Section { title: "routes", first: "routes.default" },
    Section { title: "policies and policy_selector", first: "policies.<name>.mode" },
    Section { title: "identity (headers and metadata for the backend)", first: "identity.array_format" },
    Section { title: "workload_identity", first: "workload_identity.from" },
    Section { title: "jwt_providers (each entry)", first: "jwt_providers[].leeway" },
    Section { title: "upstream_credentials (each oauth2 entry)", first: "upstream_credentials[].oauth2.auth_method" },
    Section { title: "oidc (browser logins and sessions)", first: "oidc.name" },
    Section { title: "decision_log", first: "decision_log.enabled" },
    Section { title: "telemetry.tracing", first: "telemetry.tracing.enabled" },
    Section { title: "environment variables (besides EXT_AUTHZ__ overrides)", first: "EXT_AUTHZ_CONFIG" },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_declared_default_parses() {
        for declared in ALL {
            declared.default_parses().unwrap();
        }
    }

    /// The configuration table of docs/ext-authz.md states the declared defaults.
    #[test]
    fn the_documented_defaults_are_the_declared_ones() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/ext-authz.md");
        let text = std::fs::read_to_string(path).unwrap();
        // Keys documented in the table without a scalar default.
        let structural = [
            "jwt_providers[]",
            "api_keys",
            "routes.public",
            "routes.rules[]",
            "policies",
            "routes",
            "identity.headers",
            "workload_identity.trust_domains",
            "upstream_credentials[]",
        ];
        let found = shared::env::documented_defaults(&text, ALL, &structural);
        assert!(found.problems.is_empty(), "docs/ext-authz.md and config::keys differ:\n{}", found.problems.join("\n"));
        assert!(found.checked.len() >= 15, "only {:?} compared", found.checked);
    }

    #[test]
    fn help_groups_the_declarations_by_section() {
        let help = shared::env::help_sections(ALL, SECTIONS);
        assert!(help.starts_with("  server:\n    server.grpc_addr\n"), "{help}");
        assert!(help.contains("\n  oidc (browser logins and sessions):\n    oidc.name\n"), "{help}");
        assert!(help.contains("    EXT_AUTHZ_CONFIG\n"), "{help}");
        assert!(help.contains("    OTEL_EXPORTER_OTLP_ENDPOINT\n"), "{help}");
        assert_eq!(help.matches("\n        default: ").count(), ALL.len());
    }

    /// A choice key shows its spellings, from the declaration the config is read with.
    #[test]
    fn help_lists_the_spellings_of_each_choice() {
        let help = shared::env::help_sections(ALL, SECTIONS);
        for (key, values) in [
            ("log.format", "text, json"),
            ("routes.default", "deny, allow, authenticated"),
            ("routes.rules[].action", "allow, deny"),
            ("routes.rules[].mode", "enforce, shadow"),
            ("identity.array_format", "join, json"),
            ("workload_identity.from", "peer, xfcc"),
            ("upstream_credentials[].oauth2.auth_method", "client_secret_basic, client_secret_post"),
            ("oidc.logout_get", "confirm, refuse, allow"),
            ("oidc.cookie.same_site", "lax, strict, none"),
            ("oidc.session.store", "cookie, redis"),
        ] {
            let entry = help.split(&format!("\n    {key}\n")).nth(1).unwrap_or_else(|| panic!("{key} not in {help}"));
            let lines: Vec<&str> = entry.lines().take(3).collect();
            assert_eq!(lines[1], format!("        values: {values}"), "{key}: {lines:?}");
        }
    }
}

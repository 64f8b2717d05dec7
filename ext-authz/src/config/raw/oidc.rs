//! The `oidc:` section as written, with its defaults.

use serde::{Deserialize, Serialize};

use crate::config::keys::*;

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawOidc {
    #[serde(default = "default_name")]
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    pub client_secret_file: Option<String>,
    pub client_secret_env: Option<String>,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    #[serde(default = "default_callback")]
    pub callback_path: String,
    /// The origins (`scheme://host[:port]`) browsers reach the gateway at. Redirect URIs and
    /// same-origin checks use only these, never a request's `Host` or `X-Forwarded-Proto`.
    #[serde(default)]
    pub origins: Vec<String>,
    #[serde(default = "default_logout")]
    pub logout_path: String,
    #[serde(default = "default_post_logout")]
    pub post_logout_redirect: String,
    /// What a GET of the logout path does: `confirm` (a page whose button posts the logout),
    /// `refuse` (405), or `allow` (logs out; any page can then log a user out with a link).
    #[serde(default = "default_logout_get")]
    pub logout_get: String,
    /// Refuse state-changing requests (not GET, HEAD, OPTIONS) authenticated by a session unless
    /// their `Origin` is one of `origins` or, without one, `Sec-Fetch-Site` says same-origin.
    #[serde(default)]
    pub csrf_guard: bool,
    /// Let a client's own `Authorization` header reach the backend on requests authenticated
    /// by a session (by default it is removed: the session is the identity).
    #[serde(default)]
    pub pass_client_authorization: bool,
    /// Let method overrides (`X-HTTP-Method-Override`, `X-HTTP-Method`, `X-Method-Override`,
    /// and the `_method` query parameter) reach the backend on requests authenticated by a
    /// session. By default they are removed: a GET that a framework reads as a DELETE would
    /// pass the CSRF guard, which judges the method Envoy saw.
    #[serde(default)]
    pub pass_method_override: bool,
    #[serde(default = "end_session")]
    pub end_session: bool,
    pub backchannel_logout_path: Option<String>,
    #[serde(default)]
    pub forward_access_token: bool,
    #[serde(default = "default_refresh_before")]
    pub refresh_before: String,
    #[serde(default = "default_login_timeout")]
    pub login_timeout: String,
    #[serde(default = "default_check_interval")]
    pub provider_check_interval: String,
    #[serde(default = "default_timeout")]
    pub timeout: String,
    #[serde(default = "default_algorithms")]
    pub id_token_algorithms: Vec<String>,
    #[serde(default)]
    pub cookie: RawCookie,
    pub session: RawSession,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCookie {
    /// Default: `__Host-gatehouse_session` when the cookie is Secure without a domain (the
    /// prefix makes browsers refuse a shadowing copy from another path, subdomain or plain
    /// HTTP), else `gatehouse_session`.
    pub name: Option<String>,
    pub domain: Option<String>,
    pub same_site: String,
    pub secure: bool,
}

impl Default for RawCookie {
    fn default() -> Self {
        RawCookie {
            name: None,
            domain: None,
            same_site: OIDC_COOKIE_SAME_SITE.default.into(),
            secure: OIDC_COOKIE_SECURE.default_value(),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSession {
    #[serde(default = "default_lifetime")]
    pub lifetime: String,
    #[serde(default = "default_store")]
    pub store: String,
    /// Sealing keys, newest first: `{file: path}` or `{env: NAME}`, 32 random bytes in base64.
    pub keys: Vec<RawKeyRef>,
    pub redis: Option<RawRedis>,
    /// The cookie store's logouts and back-channel revocations, kept across restarts.
    pub revocations_file: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawKeyRef {
    pub file: Option<String>,
    pub env: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedis {
    /// `host:port`, or a unix socket path.
    pub url: String,
    pub password_env: Option<String>,
    #[serde(default = "default_prefix")]
    pub prefix: String,
    #[serde(default = "default_pool")]
    pub pool_size: usize,
    #[serde(default = "default_redis_timeout")]
    pub timeout: String,
}

fn default_name() -> String {
    OIDC_NAME.default.into()
}
fn default_scopes() -> Vec<String> {
    vec!["openid".into(), "email".into(), "profile".into()]
}
fn default_callback() -> String {
    OIDC_CALLBACK_PATH.default.into()
}
fn default_logout() -> String {
    OIDC_LOGOUT_PATH.default.into()
}
fn default_post_logout() -> String {
    OIDC_POST_LOGOUT_REDIRECT.default.into()
}
fn default_logout_get() -> String {
    OIDC_LOGOUT_GET.default.into()
}
fn end_session() -> bool {
    OIDC_END_SESSION.default_value()
}
fn default_refresh_before() -> String {
    OIDC_REFRESH_BEFORE.default.into()
}
fn default_login_timeout() -> String {
    OIDC_LOGIN_TIMEOUT.default.into()
}
fn default_check_interval() -> String {
    OIDC_PROVIDER_CHECK_INTERVAL.default.into()
}
/// Below the 2 s ext_authz timeout of the shipped gateway configs, with room for the session
/// store's calls (see `OidcSettings::worst_case_check`).
fn default_timeout() -> String {
    OIDC_TIMEOUT.default.into()
}
fn default_algorithms() -> Vec<String> {
    vec!["RS256".into()]
}
fn default_lifetime() -> String {
    OIDC_SESSION_LIFETIME.default.into()
}
fn default_store() -> String {
    OIDC_SESSION_STORE.default.into()
}
fn default_prefix() -> String {
    OIDC_REDIS_PREFIX.default.into()
}
fn default_pool() -> usize {
    OIDC_REDIS_POOL_SIZE.default_value()
}
fn default_redis_timeout() -> String {
    OIDC_REDIS_TIMEOUT.default.into()
}

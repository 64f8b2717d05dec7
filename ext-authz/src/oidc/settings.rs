//! What the login flow is configured with (built from the config file's `oidc:` section).

use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use shared::redis::RedisSettings;

use crate::core::session::cookies::CookieAttributes;
use crate::jwks::RefreshSettings;
use crate::secret::Secret;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSettings {
    /// The whole session, sealed, in the cookie (chunked when long); revocations in memory
    /// and, when given, in a file.
    Cookie { revocations_file: Option<PathBuf> },
    /// A small sealed handle in the cookie, the sealed session in Redis with a TTL.
    Redis { settings: RedisSettings, prefix: String },
}

/// What a GET of the logout path does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutGet {
    Confirm,
    Refuse,
    Allow,
}

/// The gateway timeout the shipped configs give ext_authz, and what `validate` measures a
/// login flow's worst case against.
pub const TYPICAL_GATEWAY_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq)]
pub struct OidcSettings {
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub scopes: Vec<String>,
    /// The path the provider redirects back to, on the gateway host.
    pub callback_path: String,
    /// The full redirect URI when configured as one; else built from the request's origin,
    /// which must be one of `origins`.
    pub callback_url: Option<String>,
    /// Serialized origins (`https://app.example.com`, default ports dropped).
    pub origins: Vec<String>,
    pub logout_get: LogoutGet,
    pub csrf_guard: bool,
    pub pass_client_authorization: bool,
    pub pass_method_override: bool,
    pub logout_path: String,
    pub post_logout_redirect: String,
    pub end_session: bool,
    pub backchannel_logout_path: Option<String>,
    pub forward_access_token: bool,
    pub refresh_before: Duration,
    pub login_timeout: Duration,
    pub provider_check_interval: Duration,
    pub timeout: Duration,
    pub id_token_algorithms: Vec<Algorithm>,
    pub cookie_name: String,
    pub cookie: CookieAttributes,
    pub lifetime: Duration,
    pub keys: Vec<Secret>,
    pub store: StoreSettings,
    pub keys_refresh: RefreshSettings,
}

impl OidcSettings {
    /// The longest one check can take in the login layer, whatever the request presents: one
    /// session store call reads every session value it carries, at most one refresh follows
    /// (the provider's part, one deadline, `timeout`), then at most one more store call (the
    /// refreshed session written, or a refused one deleted).
    pub fn worst_case_check(&self) -> Duration {
        self.timeout + self.store_call_bound() * 2
    }

    /// One session store call's bound: a Redis call's timeout (a retry after a broken
    /// connection runs within what is left of it); the cookie store does no network I/O.
    fn store_call_bound(&self) -> Duration {
        match &self.store {
            StoreSettings::Redis { settings, .. } => settings.timeout,
            StoreSettings::Cookie { .. } => Duration::ZERO,
        }
    }

    /// What `validate` says about the login layer's worst case.
    pub fn worst_case_summary(&self) -> String {
        let (reads, then) = match &self.store {
            StoreSettings::Redis { settings, .. } => {
                (format!("one Redis call of at most {:?} reads them all", settings.timeout), "and one more Redis call")
            }
            StoreSettings::Cookie { .. } => (
                "the cookie store reads them all without I/O".to_string(),
                "and a revocation file write if the provider refuses it",
            ),
        };
        format!(
            "sessions: a check waits at most {:?} in the login layer, whatever cookies it presents ({reads}; then at \
             most one refresh, oidc.timeout {:?}, {then})",
            self.worst_case_check(),
            self.timeout
        )
    }

    /// Advice for `validate` and the start-up log: settings that work but will hurt.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let worst = self.worst_case_check();
        if worst >= TYPICAL_GATEWAY_TIMEOUT {
            out.push(format!(
                "oidc.timeout: a login callback or refresh may take up to {worst:?} (oidc.timeout plus two session \
                 store calls), which does not fit the gateway's ext_authz timeout of {TYPICAL_GATEWAY_TIMEOUT:?} in \
                 the shipped configs: a slow provider would get the gateway's own error instead of our 503. \
                 Lower oidc.timeout or raise the gateway's ext_authz timeout above {worst:?}"
            ));
        }
        if matches!(self.store, StoreSettings::Cookie { revocations_file: None }) {
            out.push(
                "oidc.session.revocations_file: not set, so logouts and back-channel revocations of cookie \
                 sessions are forgotten on restart (and never shared between replicas; use store: redis for that)"
                    .to_string(),
            );
        }
        if self.logout_get == LogoutGet::Allow {
            out.push("oidc.logout_get: allow lets any page sign a user out with a link or an image".to_string());
        }
        out
    }
}

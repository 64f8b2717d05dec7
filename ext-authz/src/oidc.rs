//! Browser logins through Envoy's ext_authz: the authorization code flow with PKCE, sessions in
//! a cookie or in Redis, refresh, logout (local, RP-initiated, back-channel). Every step is an
//! answer to a Check: a redirect (`denied_response` 302 with `Set-Cookie`), or an allow with
//! the identity headers and, after a refresh, the new cookie in `response_headers_to_add`.

mod callback;
mod logout;
mod pending_logins;
pub mod provider;
mod sessions;
mod settings;
pub mod store;

use std::sync::Arc;

use shared::metrics::CounterFamily;
use shared::redis::RedisPool;

use crate::core::decision::{deny, Deny, ErrorCode, Redirect};
use crate::core::request::AuthRequest;
use crate::core::session::cookies::{self, CookieAttributes, Cookies};
use crate::core::session::login::{
    authorization_url, login_cookie_name, request_origin, return_target, AuthorizationRequest, LoginState,
};
use crate::core::session::seal::Sealer;
use crate::outcome::Outcome;
use provider::OidcProvider;
use sessions::Refreshes;
use store::{CookieStore, RedisStore, SessionStore};

pub use callback::{session_store_failed, session_store_unavailable};
pub use logout::BackchannelError;
pub use sessions::SessionLookup;
pub use settings::{LogoutGet, OidcSettings, StoreSettings, TYPICAL_GATEWAY_TIMEOUT};

#[derive(Debug, thiserror::Error)]
pub enum OidcSetupError {
    #[error("oidc.session.redis: {0}")]
    Redis(#[from] shared::redis::RedisSetupError),
    #[error("oidc.session.keys: {0}")]
    Keys(#[from] crate::core::session::seal::KeyError),
    #[error("oidc.session.revocations_file: {0}")]
    Revocations(#[from] store::RevocationFileError),
}

/// The files a start would write, checked for `validate` (nothing else is touched): the cookie
/// store's `revocations_file`, refused as the start would refuse it.
pub fn check_files(settings: &OidcSettings) -> Result<(), OidcSetupError> {
    if let StoreSettings::Cookie { revocations_file: Some(path) } = &settings.store {
        store::check_revocations_file(path)?;
    }
    Ok(())
}

pub struct Oidc {
    provider: OidcProvider,
    store: Box<dyn SessionStore>,
    sealer: Arc<Sealer>,
    refreshes: Refreshes,
}

impl Oidc {
    /// Builds the flow without touching the network; [`Oidc::start`] contacts the provider.
    pub fn new(settings: OidcSettings, fetches: CounterFamily) -> Result<Oidc, OidcSetupError> {
        let keys: Vec<Vec<u8>> = settings.keys.iter().map(|k| k.0.clone()).collect();
        let sealer = Arc::new(Sealer::new(&keys)?);
        let store: Box<dyn SessionStore> = match &settings.store {
            StoreSettings::Cookie { revocations_file } => Box::new(CookieStore::new(
                sealer.clone(),
                &settings.cookie_name,
                settings.lifetime.as_secs(),
                revocations_file.clone(),
            )?),
            StoreSettings::Redis { settings: redis, prefix } => {
                Box::new(RedisStore::new(RedisPool::new(redis)?, sealer.clone(), prefix, &settings.cookie_name))
            }
        };
        let store: Box<dyn SessionStore> = Box::new(store::Traced(store));
        Ok(Oidc { provider: OidcProvider::new(settings, fetches), store, sealer, refreshes: Refreshes::default() })
    }

    pub async fn start(&self) {
        self.provider.start().await;
        tracing::info!(issuer = %self.settings().issuer, store = self.store.kind(), "OIDC logins enabled");
    }

    pub fn settings(&self) -> &OidcSettings {
        self.provider.settings()
    }

    fn attributes(&self) -> &CookieAttributes {
        &self.settings().cookie
    }

    /// The callback and logout paths are ours on every host; `None` for any other request.
    pub async fn handle_own_path(&self, request: &AuthRequest, now: u64) -> Option<Outcome> {
        let settings = self.settings();
        if request.path == settings.callback_path {
            Some(self.callback(request, now).await)
        } else if request.path == settings.logout_path {
            Some(self.logout(request, now).await)
        } else {
            None
        }
    }

    /// The session cookie values of a request: every value presented, in the browser's order
    /// (a shadowing cookie must not hide ours), up to [`cookies::MAX_CANDIDATES`]. The store
    /// looks them all up in one call; forged ones cost an authentication each, no I/O.
    fn presented_sessions(&self, request: &AuthRequest) -> Vec<String> {
        Cookies::parse(request.header("cookie")).candidates(&self.settings().cookie_name)
    }

    /// The configured origin this request came to, if it is one of ours.
    fn origin_of(&self, request: &AuthRequest) -> Option<&str> {
        let origin = request_origin(request)?;
        self.settings().origins.iter().find(|o| **o == origin).map(String::as_str)
    }

    /// Where the provider sends the browser back: the configured URL, or the callback path on
    /// the configured origin the browser used. Never built from an unknown `Host` or
    /// `X-Forwarded-Proto`: a request on another origin gets `None`.
    fn redirect_uri(&self, request: &AuthRequest) -> Option<String> {
        let settings = self.settings();
        if let Some(url) = &settings.callback_url {
            return Some(url.clone());
        }
        self.origin_of(request).map(|origin| format!("{origin}{}", settings.callback_path))
    }

    /// A browser without a usable session: off to the provider, remembering where it was going.
    /// Stale session cookies are cleared on the way so a broken cookie can never cause a loop.
    pub async fn start_login(&self, request: &AuthRequest, now: u64) -> Outcome {
        let present = Cookies::parse(request.header("cookie"));
        let stale: Vec<String> = present
            .chunked_names(&self.settings().cookie_name)
            .iter()
            .map(|name| self.attributes().clear(name))
            .collect();
        let Some(redirect_uri) = self.redirect_uri(request) else {
            return Outcome::Deny(Deny { set_cookies: stale, ..unknown_origin() });
        };
        let metadata = match self.provider.available().await {
            Ok(metadata) => metadata,
            Err(e) => {
                tracing::warn!("cannot start a login: {e}");
                return Outcome::Deny(Deny { set_cookies: stale, ..login_unavailable() });
            }
        };
        let settings = self.settings();
        let login = LoginState::new(return_target(request), now, settings.login_timeout.as_secs());
        let location = authorization_url(&AuthorizationRequest {
            endpoint: &metadata.authorization_endpoint,
            client_id: &settings.client_id,
            redirect_uri: &redirect_uri,
            scopes: &settings.scopes,
            login: &login,
        });
        let name = login_cookie_name(&settings.cookie_name, &login.state).expect("our own state is well formed");
        let sealed = self.sealer.seal(&self.login_purpose(), &serde_json::to_vec(&login).expect("plain struct"));
        let mut set_cookies = vec![self.login_attributes().set(&name, &sealed, settings.login_timeout.as_secs())];
        set_cookies.extend(stale);
        // The new login replaces the oldest ones in flight: a browser keeps only a few.
        set_cookies.extend(self.clear_old_logins(&present, now));
        Outcome::Redirect(Redirect { location, set_cookies, reason: "login" })
    }

    fn login_purpose(&self) -> String {
        format!("gatehouse-login-v1:{}", self.settings().cookie_name)
    }

    /// The login cookie must come back on the provider's cross-site redirect to the callback,
    /// which `SameSite=Strict` would prevent: it is `Lax` unless `None` was asked for.
    fn login_attributes(&self) -> CookieAttributes {
        let mut attributes = self.attributes().clone();
        if attributes.same_site == cookies::SameSite::Strict {
            attributes.same_site = cookies::SameSite::Lax;
        }
        attributes
    }

    /// `Set-Cookie` values storing a session's cookie value, clearing chunks no longer used.
    fn session_cookies(&self, request: &AuthRequest, value: &str, max_age: u64) -> Vec<String> {
        let present = Cookies::parse(request.header("cookie"));
        let names = present.chunked_names(&self.settings().cookie_name);
        cookies::write(self.attributes(), &self.settings().cookie_name, value, max_age, &names)
    }

    /// `Set-Cookie` values clearing every session cookie the request carried.
    fn clear_session_cookies(&self, request: &AuthRequest) -> Vec<String> {
        let present = Cookies::parse(request.header("cookie"));
        present.chunked_names(&self.settings().cookie_name).iter().map(|name| self.attributes().clear(name)).collect()
    }
}

/// A login on a host the configuration does not name: no redirect URI can be built for it.
fn unknown_origin() -> Deny {
    deny(
        400,
        ErrorCode::BadRequest,
        "this host is not configured for sign-in (oidc.origins)",
        None,
        "login_unknown_origin",
    )
}

pub fn login_unavailable() -> Deny {
    deny(
        503,
        ErrorCode::LoginUnavailable,
        "the identity provider cannot be reached; try again shortly",
        None,
        "login_unavailable",
    )
}

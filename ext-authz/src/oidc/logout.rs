//! Ending sessions: the logout path (the session and its cookies go, then RP-initiated logout at
//! the provider's `end_session_endpoint` when it has one), and OIDC Back-Channel Logout (the
//! provider posts a signed logout token naming a `sid` or `sub`).

use super::Oidc;
use crate::core::decision::{Decision, Redirect};
use crate::core::request::AuthRequest;
use crate::core::session::cookies::Cookies;
use crate::core::session::login::{end_session_url, request_scheme};
use crate::core::session::logout::{check_logout_token, LogoutTokenError};

/// How far a logout token's `iat` may be from now.
const LOGOUT_TOKEN_MAX_AGE: u64 = 300;

#[derive(Debug, thiserror::Error)]
pub enum BackchannelError {
    #[error("the request has no logout_token")]
    Missing,
    #[error("the logout token is invalid: {0}")]
    Invalid(String),
    #[error(transparent)]
    Claims(#[from] LogoutTokenError),
    #[error("sessions are temporarily unavailable: {0}")]
    Store(#[from] super::store::StoreError),
}

impl Oidc {
    pub(super) async fn logout(&self, request: &AuthRequest, now: u64) -> Decision {
        let settings = self.settings();
        let cookies = Cookies::parse(request.header("cookie"));
        let mut session = None;
        if let Some(value) = cookies.read_chunked(&settings.cookie_name) {
            match self.store.load(&value, now).await {
                Ok(Some(found)) => {
                    if let Err(e) = self.store.delete(&found, now).await {
                        tracing::error!("logout could not delete the session: {e}");
                    }
                    tracing::info!(subject = %found.subject, "signed out");
                    session = Some(found);
                }
                Ok(None) => {}
                Err(e) => tracing::error!("logout could not read the session: {e}"),
            }
        }
        let set_cookies: Vec<String> =
            cookies.chunked_names(&settings.cookie_name).iter().map(|name| self.attributes().clear(name)).collect();
        let post_logout = self.absolute(request, &settings.post_logout_redirect);
        let end_session = self
            .provider
            .known_metadata()
            .and_then(|m| m.end_session_endpoint.clone())
            .filter(|_| settings.end_session && session.is_some());
        let location = match (end_session, &session) {
            (Some(endpoint), Some(session)) => {
                end_session_url(&endpoint, &settings.client_id, &session.id_token, Some(&post_logout))
            }
            _ => settings.post_logout_redirect.clone(),
        };
        Decision::Redirect(Redirect { location, set_cookies, reason: "logout" })
    }

    /// A path on the gateway host as an absolute URL (the provider needs one).
    fn absolute(&self, request: &AuthRequest, target: &str) -> String {
        if target.starts_with('/') {
            format!("{}://{}{}", request_scheme(request), request.authority, target)
        } else {
            target.to_string()
        }
    }

    /// Handles a back-channel logout request body (`application/x-www-form-urlencoded` with
    /// `logout_token`); returns how many sessions were found and ended.
    pub async fn backchannel_logout(&self, body: &[u8], now: u64) -> Result<u64, BackchannelError> {
        let token = url::form_urlencoded::parse(body)
            .find(|(k, _)| k == "logout_token")
            .map(|(_, v)| v.into_owned())
            .ok_or(BackchannelError::Missing)?;
        let claims =
            self.provider.verify(&token, now, false).await.map_err(|e| BackchannelError::Invalid(e.to_string()))?;
        let revocation = check_logout_token(&claims, now, LOGOUT_TOKEN_MAX_AGE)?;
        let ended = self.store.revoke(&revocation, now).await?;
        tracing::info!(sid = ?revocation.sid, subject = ?revocation.sub, ended, "back-channel logout");
        Ok(ended)
    }
}

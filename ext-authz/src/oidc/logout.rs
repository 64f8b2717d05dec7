//! Ending sessions: the logout path (the session and its cookies go, then RP-initiated logout at
//! the provider's `end_session_endpoint` when it has one), and OIDC Back-Channel Logout (the
//! provider posts a signed logout token naming a `sid` or `sub`).

use super::store::StoreError;
use super::LogoutGet;
use super::Oidc;
use crate::core::decision::{deny, from_our_origin, Deny, ErrorCode, Redirect};
use crate::core::request::AuthRequest;
use crate::core::session::login::{end_session_url, wants_login_redirect};
use crate::core::session::logout::{check_logout_token, LogoutTokenError};
use crate::core::session::model::Session;
use crate::outcome::Outcome;

/// How far a logout token's `iat` may be from now.
const LOGOUT_TOKEN_MAX_AGE: u64 = 300;

#[derive(Debug, thiserror::Error)]
pub enum BackchannelError {
    #[error("the request has no logout_token")]
    Missing,
    #[error("the logout token is invalid: {0}")]
    Invalid(super::provider::ProviderError),
    #[error(transparent)]
    Claims(#[from] LogoutTokenError),
    /// The store failed (`StoreError::is_transient` tells an outage from a refusal).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Oidc {
    pub(super) async fn logout(&self, request: &AuthRequest, now: u64) -> Outcome {
        let settings = self.settings();
        match (request.method.as_str(), settings.logout_get) {
            ("POST", _) | ("GET" | "HEAD", LogoutGet::Allow) => {}
            ("GET" | "HEAD", LogoutGet::Confirm) if wants_login_redirect(request) => {
                return Outcome::Deny(confirmation_page(&settings.logout_path))
            }
            _ => return Outcome::Deny(post_only("sign out with a POST to this path")),
        }
        if request.method == "POST" && !from_our_origin(request, &settings.origins) {
            return Outcome::Deny(deny(
                403,
                ErrorCode::Forbidden,
                "a sign-out must come from this application's own pages",
                None,
                "logout_cross_site",
            ));
        }
        // Every session the browser presents ends (a shadowing cookie must not keep the real
        // one alive), in one store call. A store that cannot end them all durably is said so:
        // the cookies stay, so signing out again works once the store is back.
        let presented = self.presented_sessions(request);
        let ended = match self.store.end_all(&presented, now).await {
            Ok(ended) => ended,
            Err(e) => {
                tracing::error!(transient = e.is_transient(), "logout could not end the sessions: {e}");
                return Outcome::Deny(logout_failed(&e));
            }
        };
        for session in &ended {
            tracing::info!(subject = %session.subject, "signed out");
        }
        let set_cookies = self.clear_session_cookies(request);
        let post_logout = self.absolute(request, &settings.post_logout_redirect);
        let end_session = self
            .provider
            .known_metadata()
            .and_then(|m| m.end_session_endpoint.clone())
            .filter(|_| settings.end_session);
        // A browser that presented a session goes on to the provider even when none was left to
        // end here (a retry after the store ended it but the answer was lost): the provider's
        // session must end too, or the next visit signs the user straight back in.
        let location = match end_session {
            Some(endpoint) if !presented.is_empty() => {
                let hint = id_token_hint(&ended).unwrap_or_default();
                end_session_url(&endpoint, &settings.client_id, hint, Some(&post_logout))
            }
            _ => settings.post_logout_redirect.clone(),
        };
        Outcome::Redirect(Redirect { location, set_cookies, reason: "logout" })
    }

    /// A path on the gateway as an absolute URL (the provider needs one), on the configured
    /// origin the request came to (else the first configured one).
    fn absolute(&self, request: &AuthRequest, target: &str) -> String {
        if !target.starts_with('/') {
            return target.to_string();
        }
        let origin = self.origin_of(request).unwrap_or(&self.settings().origins[0]);
        format!("{origin}{target}")
    }

    /// Handles a back-channel logout request body (`application/x-www-form-urlencoded` with
    /// `logout_token`); returns how many sessions were found and ended.
    pub async fn backchannel_logout(&self, body: &[u8], now: u64) -> Result<u64, BackchannelError> {
        let token = url::form_urlencoded::parse(body)
            .find(|(k, _)| k == "logout_token")
            .map(|(_, v)| v.into_owned())
            .ok_or(BackchannelError::Missing)?;
        let claims = self.provider.verify(&token, now, false).await.map_err(BackchannelError::Invalid)?;
        let revocation = check_logout_token(&claims, now, LOGOUT_TOKEN_MAX_AGE)?;
        let ended = self.store.revoke(&revocation, now).await?;
        tracing::info!(sid = ?revocation.sid, subject = ?revocation.sub, ended, "back-channel logout");
        Ok(ended)
    }
}

/// The ID token to name at the provider's end-session endpoint: the newest session's, when
/// every session ended is the same person's. Sessions of different people (one planted by
/// another site) name none: the provider then asks the user which sign-out they meant, rather
/// than ending someone else's provider session.
fn id_token_hint(ended: &[Session]) -> Option<&str> {
    let first = ended.first()?;
    if ended.iter().any(|s| s.subject != first.subject) {
        return None;
    }
    ended.iter().max_by_key(|s| (s.created_at, s.created_us)).map(|s| s.id_token.as_str())
}

/// The session could not be ended: the user must know, and can try again (the cookies stay).
/// 503 while the store is down; 500 when it refused the call itself (a command not allowed),
/// which a retry shortly will not mend.
fn logout_failed(error: &StoreError) -> Deny {
    if !error.is_transient() {
        return deny(
            500,
            ErrorCode::Internal,
            "you could not be signed out: the session store refused to end the session",
            None,
            "logout_store_error",
        );
    }
    deny(
        503,
        ErrorCode::LoginUnavailable,
        "you could not be signed out: sessions are temporarily unavailable; try again shortly",
        None,
        "logout_store_unavailable",
    )
}

fn post_only(message: &str) -> Deny {
    let mut refused = deny(405, ErrorCode::MethodNotAllowed, message, None, "logout_method");
    refused.headers.push(("allow", "POST".into()));
    refused
}

/// The answer to a browser's GET of the logout path: a page whose button posts the sign-out
/// (a link or an image on another site can then no longer sign anyone out).
fn confirmation_page(logout_path: &str) -> Deny {
    let mut page = post_only("confirm the sign-out with a POST");
    page.reason = "logout_confirm";
    page.with_page(format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Sign out</title></head>\n<body>\n\
         <form method=\"post\" action=\"{}\">\n<p>Sign out of this application?</p>\n\
         <button type=\"submit\">Sign out</button>\n</form>\n</body></html>\n",
        html_escape(logout_path)
    ))
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;")
}

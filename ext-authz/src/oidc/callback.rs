//! The provider's redirect back to us: check `state` against the sealed login cookie, exchange
//! the code with the PKCE verifier, verify the ID token (signature, `iss`, `aud`, `exp`,
//! `nonce`), create the session and send the browser back where it was going.

use subtle::ConstantTimeEq;

use super::provider::ProviderError;
use super::store::StoreError;
use super::{login_unavailable, Oidc};
use crate::core::decision::{deny, Deny, ErrorCode, Redirect};
use crate::core::random::random_token;
use crate::core::request::AuthRequest;
use crate::core::session::cookies::{Cookies, MAX_CANDIDATES};
use crate::core::session::login::{check_id_token, login_cookie_name, LoginState};
use crate::core::session::model::Session;
use crate::core::session::stamp::Stamp;
use crate::outcome::Outcome;

fn failed(status: u16, message: &str, reason: &'static str) -> Deny {
    deny(status, ErrorCode::LoginFailed, message, None, reason)
}

impl Oidc {
    pub(super) async fn callback(&self, request: &AuthRequest, now: u64) -> Outcome {
        // The session counts as begun when the browser came back, before the code exchange: a
        // back-channel logout that arrives while the provider is asked ends it too (its tokens
        // were issued before that logout).
        let begun = Stamp::next(now);
        let Some(state) = request.query_param("state").filter(|s| !s.is_empty()) else {
            return Outcome::Deny(failed(400, "the login callback has no state", "callback_invalid"));
        };
        let settings = self.settings();
        // `state` names a cookie only once it is known to be one of ours in form: anything
        // else from the request never reaches a header.
        let Some(cookie_name) = login_cookie_name(&settings.cookie_name, &state) else {
            return Outcome::Deny(failed(400, "the login callback's state is malformed", "callback_invalid"));
        };
        // From here on, whatever happens, the login's cookie is used up.
        let clear = vec![self.login_attributes().clear(&cookie_name)];
        let with_clear = |mut d: Deny| {
            d.set_cookies.clone_from(&clear);
            Outcome::Deny(d)
        };
        // Every copy the browser sent is tried: a shadowing one must not hide the real one.
        let login = Cookies::parse(request.header("cookie"))
            .values(&cookie_name)
            .take(MAX_CANDIDATES)
            .filter_map(|sealed| self.sealer.open(&self.login_purpose(), sealed).ok())
            .filter_map(|plain| serde_json::from_slice::<LoginState>(&plain).ok())
            .find(|login| bool::from(login.state.as_bytes().ct_eq(state.as_bytes())));
        let Some(login) = login else {
            return with_clear(failed(
                400,
                "no login in progress matches this callback (it expired, or was started in another browser); \
                 open the application again to sign in",
                "callback_unknown_state",
            ));
        };
        if login.expires_at <= now {
            return with_clear(failed(400, "the login took too long; open the application again", "callback_expired"));
        }
        if let Some(error) = request.query_param("error") {
            // Only the provider's error code is echoed, and only if it is a plain token.
            let code: String = error.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(64).collect();
            return with_clear(failed(
                401,
                &format!("the identity provider did not sign you in: {code}"),
                "callback_provider_error",
            ));
        }
        // RFC 9207: a provider that names itself must name the right issuer (mix-up defence).
        if request.query_param("iss").is_some_and(|iss| iss != settings.issuer) {
            return with_clear(failed(400, "the callback comes from another issuer", "callback_wrong_issuer"));
        }
        let Some(code) = request.query_param("code").filter(|c| !c.is_empty()) else {
            return with_clear(failed(400, "the login callback has no code", "callback_invalid"));
        };

        let Some(redirect_uri) = self.redirect_uri(request) else {
            return with_clear(failed(400, "this host is not configured for sign-in", "login_unknown_origin"));
        };
        let exchange = self.provider.exchange_code(&code, &login.verifier, &redirect_uri);
        let exchanged = self.provider.tokens_with_claims(exchange, now).await;
        let (tokens, claims) = match exchanged {
            Ok(exchanged) => exchanged,
            Err(ProviderError::Refused { error, .. }) => {
                tracing::info!(error = %error, "the provider refused an authorization code");
                return with_clear(failed(
                    401,
                    &format!("the sign-in could not be completed ({error}); open the application again"),
                    "callback_code_refused",
                ));
            }
            Err(e) => {
                tracing::warn!("code exchange failed: {e}");
                return with_clear(login_unavailable());
            }
        };
        let Some(claims) = claims else {
            return with_clear(failed(401, "the identity provider sent no ID token", "callback_no_id_token"));
        };
        let claims = match claims {
            Ok(claims) => claims,
            Err(ProviderError::Unavailable(e)) => {
                tracing::warn!("cannot verify an ID token: {e}");
                return with_clear(login_unavailable());
            }
            Err(e) => {
                tracing::warn!("ID token refused: {e}");
                return with_clear(failed(401, "the ID token is invalid", "callback_bad_id_token"));
            }
        };
        if let Err(e) = check_id_token(&claims, Some(&login.nonce), &settings.client_id) {
            tracing::warn!("ID token refused: {e}");
            return with_clear(failed(401, "the ID token is invalid", "callback_bad_id_token"));
        }

        let session = Session::new(random_token(32), claims, tokens, begun, settings.lifetime.as_secs());
        let value = match self.store.save(&session, now).await {
            Ok(value) => value,
            Err(e) => {
                tracing::error!(transient = e.is_transient(), "cannot store a new session: {e}");
                return with_clear(session_store_failed(&e));
            }
        };
        tracing::info!(subject = %session.subject, store = self.store.kind(), "signed in");
        let mut set_cookies = self.session_cookies(request, &value, session.remaining(now));
        set_cookies.extend(clear);
        Outcome::Redirect(Redirect { location: login.return_to, set_cookies, reason: "login_complete" })
    }
}

pub fn session_store_unavailable() -> Deny {
    deny(503, ErrorCode::LoginUnavailable, "sessions are temporarily unavailable", None, "session_store_unavailable")
}

/// The answer when the session store failed this request: 503 "temporarily unavailable" when
/// the store itself is down (retrying later works), else 500 — the store refused this session
/// (a key of the wrong type, a command not allowed): retrying would not help, and saying
/// "unavailable" would send operators looking for an outage. Both deny (fail closed): no
/// session is issued or used.
pub fn session_store_failed(error: &StoreError) -> Deny {
    if error.is_transient() {
        return session_store_unavailable();
    }
    deny(500, ErrorCode::Internal, "the session store refused this session", None, "session_store_error")
}

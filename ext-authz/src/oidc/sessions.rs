//! The session of a request: read from its cookie, checked against the clock, and refreshed
//! with the refresh token when the access token is about to expire.
//!
//! Refreshes are single-flight per session: a page load sends many requests with the same old
//! cookie at once, and providers that rotate refresh tokens treat a second use of the old one as
//! theft and revoke the whole grant. The first request refreshes; the others wait for it and
//! reuse its result for a minute.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use super::provider::ProviderError;
use super::store::StoreError;
use super::Oidc;
use crate::core::request::AuthRequest;
use crate::core::session::model::{Freshness, Session};

/// How long a refresh's result serves other requests that still carry the old cookie.
const REUSE_REFRESH_FOR: u64 = 60;

/// What the session layer found for a request.
#[derive(Debug, Default)]
pub struct SessionLookup {
    pub session: Option<Session>,
    /// `Set-Cookie` values for the response (a refreshed session's new cookie).
    pub set_cookies: Vec<String>,
    /// The session store failed: answer its error (`session_store_failed`: 503 for an outage)
    /// rather than pretend there is no session.
    pub store_failed: Option<StoreError>,
}

/// After a failed attempt (provider unreachable), do not ask again for this long: requests keep
/// the session as it is instead of each waiting for the provider.
const RETRY_REFRESH_AFTER: u64 = 10;

#[derive(Default)]
struct SlotState {
    refreshed: Option<(Session, u64)>,
    failed_at: Option<u64>,
}

type Slot = Arc<tokio::sync::Mutex<SlotState>>;

#[derive(Default)]
pub(super) struct Refreshes {
    slots: Mutex<HashMap<String, (Slot, u64)>>,
}

impl Refreshes {
    fn slot(&self, id: &str, now: u64) -> Slot {
        let mut slots = self.slots.lock();
        slots.retain(|_, (slot, created)| {
            now < created.saturating_add(REUSE_REFRESH_FOR) || Arc::strong_count(slot) > 1
        });
        slots.entry(id.to_string()).or_insert_with(|| (Slot::default(), now)).0.clone()
    }
}

enum Refreshed {
    Session(Session),
    /// The provider refused the refresh token: the session is over.
    Ended,
    /// The provider could not be asked: keep using the session as it is.
    Kept(Session),
}

impl Oidc {
    pub async fn session(&self, request: &AuthRequest, now: u64) -> SessionLookup {
        let settings = self.settings();
        // Every value presented is tried, in order, in one store call: a cookie of the same name
        // shadowing ours (another path, a parent domain, plain HTTP) must not hide a good
        // session, or the browser would loop through the provider without end — and however
        // many such values there are, ended or not, they cannot use up a budget.
        let values = self.presented_sessions(request);
        if values.is_empty() {
            return SessionLookup::default();
        }
        let sessions = match self.store.load_all(&values, now).await {
            Ok(sessions) => sessions,
            Err(e) => {
                tracing::error!(transient = e.is_transient(), "cannot read a session: {e}");
                return SessionLookup { store_failed: Some(e), ..SessionLookup::default() };
            }
        };
        // The first usable one wins; one whose tokens ended gives way to the next. At most one
        // refresh per check (a provider call and a store call): planted sessions due for a
        // refresh cannot chain provider calls past the check's budget. After it, a session
        // due for one is used as it is — its access token has not expired yet.
        let mut refreshed_once = false;
        for session in sessions {
            match session.freshness(now, settings.refresh_before.as_secs()) {
                Freshness::Fresh => return SessionLookup { session: Some(session), ..SessionLookup::default() },
                Freshness::Ended => {}
                Freshness::Refresh if refreshed_once => {
                    return SessionLookup { session: Some(session), ..SessionLookup::default() }
                }
                Freshness::Refresh => {
                    refreshed_once = true;
                    match self.refresh(session, now).await {
                        Refreshed::Kept(session) => {
                            return SessionLookup { session: Some(session), ..SessionLookup::default() }
                        }
                        Refreshed::Ended => {}
                        Refreshed::Session(session) => return self.store_refreshed(request, session, now).await,
                    }
                }
            }
        }
        SessionLookup::default()
    }

    async fn store_refreshed(&self, request: &AuthRequest, session: Session, now: u64) -> SessionLookup {
        match self.store.replace(&session, now).await {
            Ok(Some(value)) => {
                let set_cookies = self.session_cookies(request, &value, session.remaining(now));
                SessionLookup { session: Some(session), set_cookies, store_failed: None }
            }
            Ok(None) => {
                tracing::info!(subject = %session.subject, "the session ended while it was being refreshed");
                SessionLookup::default()
            }
            Err(e) => {
                tracing::error!(transient = e.is_transient(), "cannot store a refreshed session: {e}");
                SessionLookup { store_failed: Some(e), ..SessionLookup::default() }
            }
        }
    }

    async fn refresh(&self, session: Session, now: u64) -> Refreshed {
        let slot = self.refreshes.slot(&session.id, now);
        let mut state = slot.lock().await;
        if let Some((fresh, at)) = state.refreshed.as_ref() {
            if now < at.saturating_add(REUSE_REFRESH_FOR) {
                return Refreshed::Session(fresh.clone());
            }
        }
        if state.failed_at.is_some_and(|at| now < at.saturating_add(RETRY_REFRESH_AFTER)) {
            return Refreshed::Kept(session);
        }
        let Some(refresh_token) = session.refresh_token.clone() else { return Refreshed::Kept(session) };
        let refreshed = self.provider.tokens_with_claims(self.provider.refresh(&refresh_token), now).await;
        match refreshed {
            Ok((tokens, claims)) => {
                let mut fresh = session;
                if let Some(claims) = claims {
                    // A refreshed ID token must be about the same person (OIDC Core §12.2).
                    match claims {
                        Ok(claims) if claims.get("sub").and_then(|s| s.as_str()) == Some(fresh.subject.as_str()) => {
                            fresh.update_claims(&claims);
                        }
                        Ok(_) | Err(ProviderError::IdToken(_)) => {
                            tracing::warn!(subject = %fresh.subject, "refresh returned an unacceptable ID token; session ended");
                            return Refreshed::Ended;
                        }
                        // The tokens came straight from the token endpoint and the old refresh token
                        // may be spent: keep them, with the claims we had.
                        Err(e) => tracing::warn!("cannot verify a refreshed ID token, keeping the old claims: {e}"),
                    }
                }
                fresh.apply(tokens, now);
                tracing::debug!(subject = %fresh.subject, "session refreshed");
                state.refreshed = Some((fresh.clone(), now));
                Refreshed::Session(fresh)
            }
            Err(ProviderError::Refused { error, .. }) => {
                tracing::info!(subject = %session.subject, error = %error, "refresh refused; session ended");
                if let Err(e) = self.store.delete(&session, now).await {
                    tracing::warn!("cannot delete an ended session: {e}");
                }
                Refreshed::Ended
            }
            Err(e) => {
                tracing::warn!(subject = %session.subject, "refresh failed, keeping the session: {e}");
                state.failed_at = Some(now);
                Refreshed::Kept(session)
            }
        }
    }
}

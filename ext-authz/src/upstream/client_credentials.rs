//! An access token from the OAuth2 client-credentials grant (RFC 6749 §4.4), kept for the
//! upstream: fetched at start, renewed ahead of expiry by one background task at a time,
//! fetched by one request at a time when there is none (the others wait for its answer), and
//! used through a provider outage while it is still valid. When to do what is decided by the
//! pure [`crate::core::token_schedule`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use serde::Deserialize;
use shared::clock::Clock;
use shared::metrics::Counter;
use tokio::sync::Mutex;
use tracing::Instrument;

use super::{ClientCredentialsSettings, TokenEndpoint, Unavailable, UpstreamError};
use crate::core::token_schedule::{plan, Lifetime, Plan, MIN_LIFETIME};
use crate::oauth::{ClientAuth, EndpointError, Unreachable};

/// The header value a token makes, and its times. Never printed.
struct Held {
    value: String,
    lifetime: Lifetime,
}

/// A token endpoint's answer; only what we use.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    /// Some providers send it as a string.
    #[serde(default, deserialize_with = "number_or_text")]
    expires_in: Option<u64>,
}

fn number_or_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(n)) => Ok(n.as_u64()),
        Some(serde_json::Value::String(s)) => Ok(s.trim().parse().ok()),
        Some(_) => Ok(None),
    }
}

pub struct TokenSource {
    name: String,
    prefix: String,
    settings: ClientCredentialsSettings,
    client: reqwest::Client,
    clock: Clock,
    held: ArcSwapOption<Held>,
    /// When the last fetch failed (Unix seconds; 0: it did not).
    last_failure: AtomicU64,
    /// One fetch at a time.
    fetching: Arc<Mutex<()>>,
    /// The token endpoint discovery found (forgotten after a failed fetch).
    discovered: ArcSwapOption<String>,
    /// Token requests: [ok, error].
    requests: [Counter; 2],
}

impl TokenSource {
    pub fn new(
        name: &str,
        prefix: &str,
        settings: ClientCredentialsSettings,
        clock: Clock,
        requests: [Counter; 2],
    ) -> TokenSource {
        TokenSource {
            name: name.to_string(),
            prefix: prefix.to_string(),
            client: crate::oauth::http_client(settings.timeout),
            settings,
            clock,
            held: ArcSwapOption::empty(),
            last_failure: AtomicU64::new(0),
            fetching: Arc::new(Mutex::new(())),
            discovered: ArcSwapOption::empty(),
            requests,
        }
    }

    /// The first token, so requests find one waiting.
    pub async fn warm_up(&self) {
        let _one = self.fetching.lock().await;
        if self.held.load().is_none() {
            let _ = self.fetch().await;
        }
    }

    /// The header value to send now.
    pub async fn value(self: &Arc<Self>) -> Result<String, UpstreamError> {
        let held = self.held.load_full();
        match self.plan(held.as_deref()) {
            Plan::Use => Ok(current(held)),
            Plan::UseAndRenew => {
                // Whoever gets the lock renews, in the background; everyone goes on with the
                // current token meanwhile.
                if let Ok(one) = self.fetching.clone().try_lock_owned() {
                    let this = self.clone();
                    tokio::spawn(
                        async move {
                            let _one = one;
                            // A renewal that finished just before the lock was taken leaves
                            // nothing to do.
                            if this.plan(this.held.load().as_deref()) != Plan::Use {
                                let _ = this.fetch().await;
                            }
                        }
                        .in_current_span(),
                    );
                }
                Ok(current(held))
            }
            Plan::Fail => Err(self.unavailable(Unavailable::FailedMomentsAgo)),
            Plan::Fetch => {
                let _one = self.fetching.lock().await;
                // The fetch we waited for may have brought a token, or just failed.
                let held = self.held.load_full();
                match self.plan(held.as_deref()) {
                    Plan::Use | Plan::UseAndRenew => Ok(current(held)),
                    Plan::Fail => Err(self.unavailable(Unavailable::FailedMomentsAgo)),
                    Plan::Fetch => self.fetch().await.map(|held| held.value.clone()),
                }
            }
        }
    }

    fn plan(&self, held: Option<&Held>) -> Plan {
        let failed = self.last_failure.load(Ordering::Relaxed);
        let refresh_before = self.settings.refresh_before.as_secs();
        plan((self.clock)(), held.map(|h| h.lifetime), (failed != 0).then_some(failed), refresh_before)
    }

    fn unavailable(&self, reason: impl Into<Unavailable>) -> UpstreamError {
        UpstreamError::Unavailable { name: self.name.clone(), reason: reason.into() }
    }

    /// Asks the token endpoint (the caller holds `fetching`) and keeps the answer.
    async fn fetch(&self) -> Result<Arc<Held>, UpstreamError> {
        let asked_at = (self.clock)();
        let span = shared::traces::child_span(|| {
            tracing::info_span!(
                "OAuth2 token request",
                otel.kind = "client",
                http.request.method = "POST",
                oauth.grant_type = "client_credentials",
                authz.upstream_credential = %self.name,
            )
        });
        let timeout = self.settings.timeout;
        let answer = tokio::time::timeout(timeout, self.request())
            .instrument(span)
            .await
            .unwrap_or_else(|_| Err(Unreachable::NoAnswer(timeout).into()));
        let checked = answer.and_then(|answer| {
            let token = answer.access_token.trim();
            let fits =
                !token.is_empty() && token.len() <= 16 * 1024 && token.bytes().all(|b| (0x21..0x7f).contains(&b));
            if fits {
                if let Some(short) = answer.expires_in.filter(|e| *e < MIN_LIFETIME) {
                    tracing::warn!(
                        credential = %self.name,
                        "the token endpoint says its token expires in {short}s; it is kept for {MIN_LIFETIME}s, \
                         so that not every check asks for a new one"
                    );
                }
                Ok(Held {
                    value: format!("{}{token}", self.prefix),
                    lifetime: Lifetime::new(asked_at, answer.expires_in),
                })
            } else {
                Err(Unreachable::UnfitToken.into())
            }
        });
        match checked {
            Ok(held) => {
                let held = Arc::new(held);
                self.held.store(Some(held.clone()));
                self.last_failure.store(0, Ordering::Relaxed);
                self.requests[0].inc();
                tracing::debug!(credential = %self.name, expires_at = held.lifetime.expires_at, "upstream token obtained");
                Ok(held)
            }
            Err(e) => {
                self.last_failure.store((self.clock)().max(1), Ordering::Relaxed);
                self.discovered.store(None);
                self.requests[1].inc();
                let has_token = self.held.load().is_some();
                tracing::warn!(credential = %self.name, has_token, "upstream token request failed: {e}");
                Err(self.unavailable(e))
            }
        }
    }

    async fn request(&self) -> Result<TokenAnswer, EndpointError> {
        let endpoint = self.endpoint().await?;
        let scope = self.settings.scopes.join(" ");
        let mut form = vec![("grant_type", "client_credentials")];
        if !scope.is_empty() {
            form.push(("scope", &scope));
        }
        if let Some(audience) = &self.settings.audience {
            form.push(("audience", audience));
        }
        if let Some(resource) = &self.settings.resource {
            form.push(("resource", resource));
        }
        let auth = ClientAuth {
            client_id: &self.settings.client_id,
            secret: &self.settings.client_secret,
            method: self.settings.auth_method,
        };
        crate::oauth::token_request(&self.client, &endpoint, &auth, &form).await
    }

    async fn endpoint(&self) -> Result<Arc<String>, EndpointError> {
        #[derive(Deserialize)]
        struct Discovered {
            token_endpoint: String,
        }
        match &self.settings.token_endpoint {
            TokenEndpoint::Url(url) => Ok(Arc::new(url.clone())),
            TokenEndpoint::Discovery(issuer) => {
                if let Some(found) = self.discovered.load_full() {
                    return Ok(found);
                }
                let found: Discovered = crate::oauth::discover(&self.client, issuer).await?;
                let found = Arc::new(found.token_endpoint);
                self.discovered.store(Some(found.clone()));
                Ok(found)
            }
        }
    }
}

fn current(held: Option<Arc<Held>>) -> String {
    held.map(|h| h.value.clone()).unwrap_or_default()
}

//! Talking to the OpenID Provider: discovery (checked again before a new login when the last
//! contact is older than `provider_check_interval`, so a login never sends a browser to a dead
//! provider), the token endpoint (code exchange with the PKCE verifier, refresh), and ID token
//! and logout token verification with the provider's keys (fetched, refreshed and re-fetched on
//! an unknown `kid` by the same key manager as JWT providers).

use std::sync::Arc;
// tokio's clock, so tests can pause and advance it.
use tokio::time::Instant;

use arc_swap::ArcSwapOption;
use serde::Deserialize;
use serde_json::Value;
use shared::metrics::CounterFamily;
use tokio::sync::{watch, Mutex};

use super::OidcSettings;
use crate::core::jwt::{self, JwtError, JwtPolicy};
use crate::core::session::model::TokenSet;
use crate::jwks::KeyManager;
use crate::jwks::{KeySource, ProviderKeys};
use crate::oauth::{ClientAuth, ClientAuthMethod, EndpointError, Unreachable};

/// What discovery tells us; only what the flow uses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider could not be reached or answered garbage: a 503 for new logins, and a
    /// session keeps its tokens.
    #[error("the identity provider is unavailable: {0}")]
    Unavailable(Unreachable),
    /// The provider refused (e.g. `invalid_grant` for a used code or a revoked refresh token).
    #[error("the identity provider refused: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused { error: String, description: Option<String> },
    #[error("the ID token is invalid: {0}")]
    IdToken(JwtError),
}

impl From<EndpointError> for ProviderError {
    fn from(e: EndpointError) -> ProviderError {
        match e {
            EndpointError::Unavailable(why) => ProviderError::Unavailable(why),
            EndpointError::Refused { error, description } => ProviderError::Refused { error, description },
        }
    }
}

pub struct OidcProvider {
    settings: OidcSettings,
    client: reqwest::Client,
    metadata: ArcSwapOption<Metadata>,
    /// When discovery last answered; a new login checks again once this is older than
    /// `provider_check_interval`.
    last_contact: parking_lot::Mutex<Option<Instant>>,
    checking: Mutex<()>,
    keys: Arc<KeyManager>,
    stop_keys: watch::Sender<bool>,
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        self.stop_keys.send_replace(true);
    }
}

impl OidcProvider {
    pub fn new(settings: OidcSettings, fetches: CounterFamily) -> OidcProvider {
        let keys = Arc::new(KeyManager::new(
            vec![ProviderKeys {
                name: settings.name.clone(),
                source: KeySource::Discovery(settings.issuer.clone()),
                refresh: settings.keys_refresh.clone(),
            }],
            fetches,
        ));
        let client = crate::oauth::http_client(settings.timeout);
        let (stop_keys, _) = watch::channel(false);
        OidcProvider {
            settings,
            client,
            metadata: ArcSwapOption::empty(),
            last_contact: parking_lot::Mutex::new(None),
            checking: Mutex::new(()),
            keys,
            stop_keys,
        }
    }

    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// Discovery and keys at start (failures are logged; logins answer 503 until they work),
    /// then the background key refresh.
    pub async fn start(&self) {
        if let Err(e) = self.discover().await {
            tracing::warn!(issuer = %self.settings.issuer, "OIDC discovery failed, logins wait for the provider: {e}");
        }
        self.keys.load_all().await;
        tokio::spawn(self.keys.clone().run(self.stop_keys.subscribe()));
    }

    /// The metadata if the provider answered recently; else asks again (one request at a time).
    pub async fn available(&self) -> Result<Arc<Metadata>, ProviderError> {
        if let Some(metadata) = self.fresh_metadata() {
            return Ok(metadata);
        }
        let _single = self.checking.lock().await;
        if let Some(metadata) = self.fresh_metadata() {
            return Ok(metadata);
        }
        self.discover().await
    }

    /// The last known metadata, however old (logout still works from it).
    pub fn known_metadata(&self) -> Option<Arc<Metadata>> {
        self.metadata.load_full()
    }

    fn fresh_metadata(&self) -> Option<Arc<Metadata>> {
        let last = *self.last_contact.lock();
        let recent = contact_is_recent(last, Instant::now(), self.settings.provider_check_interval);
        recent.then(|| self.metadata.load_full()).flatten()
    }

    async fn discover(&self) -> Result<Arc<Metadata>, ProviderError> {
        let url = format!("{}/.well-known/openid-configuration", self.settings.issuer.trim_end_matches('/'));
        let span = shared::traces::child_span(|| {
            tracing::info_span!(
                "OIDC discovery",
                otel.kind = "client",
                http.request.method = "GET",
                url.full = %url,
                authz.provider = %self.settings.name,
            )
        });
        shared::traces::in_span(span, self.fetch_metadata()).await
    }

    async fn fetch_metadata(&self) -> Result<Arc<Metadata>, ProviderError> {
        let metadata: Metadata = crate::oauth::discover(&self.client, &self.settings.issuer).await?;
        let metadata = Arc::new(metadata);
        self.metadata.store(Some(metadata.clone()));
        *self.last_contact.lock() = Some(Instant::now());
        Ok(metadata)
    }

    pub async fn exchange_code(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> Result<TokenSet, ProviderError> {
        self.token_request(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", verifier),
            ("redirect_uri", redirect_uri),
        ])
        .await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenSet, ProviderError> {
        self.token_request(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token)]).await
    }

    /// A token endpoint call with `client_secret_basic` (RFC 6749 §2.3.1: both parts
    /// form-encoded before Basic).
    async fn token_request(&self, form: &[(&str, &str)]) -> Result<TokenSet, ProviderError> {
        let metadata = match self.known_metadata() {
            Some(m) => m,
            None => self.discover().await?,
        };
        let grant = form.iter().find(|(name, _)| *name == "grant_type").map_or("", |(_, value)| *value);
        let span = shared::traces::child_span(|| {
            tracing::info_span!(
                "OIDC token request",
                otel.kind = "client",
                http.request.method = "POST",
                url.full = %metadata.token_endpoint,
                oauth.grant_type = grant,
                authz.provider = %self.settings.name,
            )
        });
        shared::traces::in_span(span, self.post_token_request(&metadata, form)).await
    }

    async fn post_token_request(&self, metadata: &Metadata, form: &[(&str, &str)]) -> Result<TokenSet, ProviderError> {
        let auth = ClientAuth {
            client_id: &self.settings.client_id,
            secret: &self.settings.client_secret,
            method: ClientAuthMethod::Basic,
        };
        let tokens = crate::oauth::token_request(&self.client, &metadata.token_endpoint, &auth, form).await?;
        *self.last_contact.lock() = Some(Instant::now());
        Ok(tokens)
    }

    /// Verifies a token signed by the provider for this client: signature with the provider's
    /// keys (re-fetched once for an unknown `kid`), `iss`, `aud` = our client id, `exp`.
    /// The provider's whole part of one request under one deadline (`timeout`), so a slow
    /// provider gives our 503 before the gateway's own timeout: `tokens` (a code exchange or a
    /// refresh), then the verification of the ID token they bring, if any.
    pub async fn tokens_with_claims(
        &self,
        tokens: impl std::future::Future<Output = Result<TokenSet, ProviderError>>,
        now: u64,
    ) -> Result<(TokenSet, Option<Result<Arc<Value>, ProviderError>>), ProviderError> {
        let timeout = self.settings.timeout;
        tokio::time::timeout(timeout, async {
            let tokens = tokens.await?;
            let claims = match tokens.id_token.as_deref() {
                Some(id_token) => Some(self.verify(id_token, now, true).await),
                None => None,
            };
            Ok((tokens, claims))
        })
        .await
        .unwrap_or(Err(ProviderError::Unavailable(Unreachable::NoAnswer(timeout))))
    }

    pub async fn verify(&self, token: &str, now: u64, require_exp: bool) -> Result<Arc<Value>, ProviderError> {
        let policy = JwtPolicy {
            issuer: self.settings.issuer.clone(),
            audiences: vec![self.settings.client_id.clone()],
            algorithms: self.settings.id_token_algorithms.clone(),
            leeway: 60,
            require_exp,
        };
        let peeked = jwt::peek(token).map_err(ProviderError::IdToken)?;
        let mut refetched = false;
        loop {
            let Some(keys) = self.keys.snapshot().into_iter().next().flatten() else {
                if !refetched {
                    refetched = true;
                    self.keys.load_all().await;
                    continue;
                }
                return Err(ProviderError::Unavailable(Unreachable::KeysNotLoaded));
            };
            match jwt::verify(&peeked, &policy, &keys, now) {
                Ok(verified) => return Ok(verified.claims),
                Err(JwtError::UnknownKey(_)) if !refetched => {
                    refetched = true;
                    self.keys.refetch_for_unknown_kid(0).await;
                }
                Err(e) => return Err(ProviderError::IdToken(e)),
            }
        }
    }
}

/// Whether the provider answered within `interval` of `now`, so a new login can use what
/// discovery said then instead of asking again.
fn contact_is_recent(last: Option<Instant>, now: Instant, interval: std::time::Duration) -> bool {
    last.is_some_and(|at| now.saturating_duration_since(at) < interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_is_asked_again_once_the_last_contact_is_older_than_the_interval() {
        let interval = std::time::Duration::from_secs(60);
        let at = Instant::now();
        assert!(!contact_is_recent(None, at, interval));
        assert!(contact_is_recent(Some(at), at + std::time::Duration::from_secs(59), interval));
        assert!(!contact_is_recent(Some(at), at + interval, interval));
    }
}

//! Turning a loaded config into a [`Policy`]: the engine, a key manager with its refresh
//! running, and the login flow when configured.

use std::sync::Arc;

use tokio::sync::watch;

use crate::config::AuthzConfig;
use crate::jwks::KeyManager;
use crate::metrics::Metrics;
use crate::oidc::{Oidc, OidcSetupError};
use crate::service::{Clock, Policy};
use crate::upstream::{Context as UpstreamContext, UpstreamCredentials, UpstreamError};

/// Why a policy cannot be built from a config that loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("the login flow cannot be built: {0}")]
    Oidc(#[from] OidcSetupError),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

/// Builds a policy from a config: the engine, a key manager with its keys loaded (as far as the
/// providers answer) and its refresh tasks running, the login flow when configured, and the
/// upstream credentials.
pub async fn build_policy(
    config: &AuthzConfig,
    metrics: &Metrics,
    clock: &Clock,
    first_load: FirstLoad,
) -> Result<Policy, PolicyError> {
    let oidc = build_oidc(config, metrics, first_load).await?;
    let upstream = start_upstream(config, metrics, clock, first_load).await?;
    let (keys, stop_refresh) = start_keys(config, metrics, first_load).await;
    Ok(Policy { engine: config.engine.clone(), keys, stop_refresh, oidc, upstream, token_rules: 0 })
}

/// The upstream credentials: files read (an unreadable one is an error), first tokens fetched
/// — awaited on reload, in the background at start.
pub async fn start_upstream(
    config: &AuthzConfig,
    metrics: &Metrics,
    clock: &Clock,
    first_load: FirstLoad,
) -> Result<Arc<UpstreamCredentials>, UpstreamError> {
    if config.upstream_credentials.is_empty() {
        return Ok(Arc::new(UpstreamCredentials::none()));
    }
    let context =
        UpstreamContext { clock: clock.clone(), metrics: metrics.clone(), reload_interval: config.reload_interval };
    let wait = first_load == FirstLoad::Wait;
    Ok(Arc::new(UpstreamCredentials::start(config.upstream_credentials.clone(), &context, wait).await?))
}

/// Whether building a policy waits for the providers' first answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstLoad {
    /// At start: the ports open and health answers (not ready) while keys and discovery load,
    /// so a slow or hanging identity provider never keeps the service from starting.
    Background,
    /// On reload: the new policy goes into service with its keys (as far as the providers
    /// answer), so a reload never leaves a window with no keys.
    Wait,
}

/// A key manager with its refresh running until the returned sender says stop; its keys are
/// loaded first or in the background, per `first_load`.
pub async fn start_keys(
    config: &AuthzConfig,
    metrics: &Metrics,
    first_load: FirstLoad,
) -> (Arc<KeyManager>, Arc<watch::Sender<bool>>) {
    let keys = Arc::new(KeyManager::new(config.provider_keys.clone(), metrics.jwks_fetches.clone()));
    let (stop_refresh, stop) = watch::channel(false);
    match first_load {
        FirstLoad::Wait => {
            keys.load_all().await;
            tokio::spawn(keys.clone().run(stop));
        }
        FirstLoad::Background => {
            let keys = keys.clone();
            tokio::spawn(async move {
                keys.load_all().await;
                keys.run(stop).await;
            });
        }
    }
    (keys, Arc::new(stop_refresh))
}

pub async fn build_oidc(
    config: &AuthzConfig,
    metrics: &Metrics,
    first_load: FirstLoad,
) -> Result<Option<Arc<Oidc>>, OidcSetupError> {
    let Some(settings) = &config.oidc else { return Ok(None) };
    let oidc = Arc::new(Oidc::new(settings.clone(), metrics.jwks_fetches.clone())?);
    match first_load {
        FirstLoad::Wait => oidc.start().await,
        FirstLoad::Background => {
            let starting = oidc.clone();
            tokio::spawn(async move { starting.start().await });
        }
    }
    Ok(Some(oidc))
}

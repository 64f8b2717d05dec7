//! The one way a loaded config becomes a [`Policy`]: the engine, a key manager with its refresh
//! running, the login flow when configured, and the upstream credentials. At start everything
//! is new; on a reload the parts whose settings did not change are taken over from the policy
//! in service, with what they hold (keys and their caches, sessions, tokens, file watchers).

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

/// Builds the policy `config` describes. `current` is the policy in service on a reload; from
/// it the new one keeps the key manager when the providers' key sources are unchanged, the
/// login flow (sessions, revocations, provider state) when the `oidc` section is, and the
/// upstream credentials (tokens, file watchers) when `upstream_credentials` are.
///
/// What is new starts loading at once. At start (no `current`) that happens in the background:
/// the ports open and health answers (not ready) while keys and discovery load, so a slow or
/// hanging identity provider never keeps the service from starting. On a reload it is awaited:
/// the new policy goes into service with its keys (as far as the providers answer), so a
/// reload never leaves a window with no keys.
pub async fn build(
    config: &AuthzConfig,
    current: Option<&Policy>,
    metrics: &Metrics,
    clock: &Clock,
) -> Result<Policy, PolicyError> {
    let first_load = if current.is_some() { FirstLoad::Wait } else { FirstLoad::Background };
    // The parts that can fail first, so a refused config has started nothing.
    let oidc = match (current.and_then(|c| c.oidc.as_ref()), &config.oidc) {
        (Some(oidc), Some(settings)) if oidc.settings() == settings => Some(oidc.clone()),
        _ => build_oidc(config, metrics, first_load).await?,
    };
    let upstream = match current {
        Some(current) if current.upstream.settings() == config.upstream_credentials.as_slice() => {
            current.upstream.clone()
        }
        _ => start_upstream(config, metrics, clock, first_load).await?,
    };
    let (keys, stop_refresh) = match current {
        Some(current) if current.keys.same_sources(&config.provider_keys) => {
            (current.keys.clone(), current.stop_refresh.clone())
        }
        _ => start_keys(config, metrics, first_load).await,
    };
    Ok(Policy { engine: config.engine.clone(), keys, stop_refresh, oidc, upstream, token_rules: 0 })
}

/// After `replaced` left service for `serving`: stops its key refresh, unless `serving` took
/// its key manager over.
pub fn retire(replaced: &Policy, serving: &Policy) {
    if !Arc::ptr_eq(&replaced.keys, &serving.keys) {
        replaced.stop_refresh.send_replace(true);
    }
}

/// Whether building waits for the providers' first answers (see [`build`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FirstLoad {
    Background,
    Wait,
}

/// The upstream credentials: files read (an unreadable one is an error), first tokens fetched.
async fn start_upstream(
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

/// A key manager with its refresh running until the returned sender says stop.
async fn start_keys(
    config: &AuthzConfig,
    metrics: &Metrics,
    first_load: FirstLoad,
) -> (Arc<KeyManager>, Arc<watch::Sender<bool>>) {
    let keys = Arc::new(KeyManager::with_reloads(
        config.provider_keys.clone(),
        metrics.jwks_fetches.clone(),
        Arc::new(metrics.clone()),
    ));
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

async fn build_oidc(
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

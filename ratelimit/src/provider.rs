//! Where configs come from, and what happens when one arrives. Two providers feed the limiter:
//! the file tree (polled for changes) and an xDS server (see `xds.rs`). Both go through
//! [`Installer`], the config as a shared [`Reloadable`], so a load behaves the same whatever its
//! source: the reloadable settings are applied, a success swaps the config atomically, a failure
//! keeps the last good one; both are logged and counted by `shared::reload`.

use std::sync::Arc;

use shared::health::Health;
use shared::reload::{self, Reloadable, Watched};
use tokio::sync::{oneshot, watch};

use crate::core::{ConfigError, RateLimitConfig};
use crate::loader::{ConfigTree, LoaderError};
use crate::service::RateLimiter;
use crate::service::ReloadableSettings;

/// The rate limit config as a shared reloadable value (`what="config"`): a load is logged
/// once and counted in `ratelimit_reloads_total` and the drop-in `config_load_{success,error}`.
#[derive(Clone)]
pub struct Installer {
    config: Arc<Reloadable<RateLimitConfig>>,
    /// `MERGE_DOMAIN_CONFIG`, for every build.
    merge_domains: bool,
}

impl Installer {
    /// `track_config_health`: `HEALTHY_WITH_AT_LEAST_ONE_CONFIG_LOADED`. The reloadable
    /// settings are applied with every config (read once at start: the environment does not
    /// change).
    pub fn new(
        limiter: Arc<RateLimiter>,
        reloadable: ReloadableSettings,
        health: Health,
        track_config_health: bool,
    ) -> Installer {
        let merge_domains = reloadable.merge_domains;
        let counter = limiter.metrics().clone();
        let put = move |config: RateLimitConfig| {
            let domains = config.domain_count();
            limiter.install(config, reloadable.clone());
            if track_config_health {
                health.set("config", domains > 0);
            }
        };
        let config = Reloadable::new("config", counter, put)
            .summarized(|config| format!("{} domains, {} limits", config.domain_count(), config.limits().len()));
        Installer { config: Arc::new(config), merge_domains }
    }

    /// Builds a config with `build` (given `MERGE_DOMAIN_CONFIG`) and puts it in service.
    /// Returns the build's error on failure, for callers that report it (xDS NACKs).
    pub fn install<E: std::fmt::Display>(
        &self,
        source: &str,
        build: impl FnOnce(bool) -> Result<RateLimitConfig, E>,
    ) -> Result<(), E> {
        self.config.install(source, build(self.merge_domains))
    }
}

/// Why the files did not load.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error(transparent)]
    Read(#[from] LoaderError),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Config files under `RUNTIME_ROOT`, reloaded whenever the tree changes.
pub struct FileProvider {
    pub tree: ConfigTree,
    pub installer: Installer,
    pub poll_interval: std::time::Duration,
}

impl FileProvider {
    /// Loads once (then signals `first_event`), and again on every change of the tree that
    /// held still, until `stop`.
    pub async fn run(self, first_event: oneshot::Sender<()>, stop: watch::Receiver<bool>) {
        let tree = self.tree.clone();
        let fingerprint = move || tree.fingerprint();
        let initial = reload::blocking(fingerprint.clone()).await.unwrap_or_default();
        let (tree, merge) = (self.tree.clone(), self.installer.merge_domains);
        let load = move || -> Result<_, FilesError> { Ok(RateLimitConfig::load(&tree.read()?, merge)?) };
        let source = self.tree.base().display().to_string();
        let _ = self.installer.config.load_blocking(&source, load.clone()).await;
        let _ = first_event.send(());
        let watched = Watched::new(reload::Pace::every(self.poll_interval), initial, source, fingerprint);
        self.installer.config.watch_blocking(watched, load, stop).await;
    }
}

//! Where configs come from, and what happens when one arrives. Two providers feed the limiter:
//! the file tree (polled for changes) and an xDS server (see `xds.rs`). Both go through
//! [`Installer`], so a load behaves the same whatever its source: the reloadable settings are
//! applied, a success swaps the config atomically, a failure keeps the last good one; both are
//! logged and counted.

use std::sync::Arc;

use shared::health::Health;
use shared::reload;
use tokio::sync::{oneshot, watch};

use crate::core::{ConfigError, RateLimitConfig};
use crate::loader::{ConfigTree, LoaderError};
use crate::service::RateLimiter;
use crate::service::ReloadableSettings;

#[derive(Clone)]
pub struct Installer {
    pub limiter: Arc<RateLimiter>,
    /// Applied with every config (read once at start: the environment does not change).
    pub reloadable: ReloadableSettings,
    pub health: Health,
    /// `HEALTHY_WITH_AT_LEAST_ONE_CONFIG_LOADED`.
    pub track_config_health: bool,
}

impl Installer {
    /// Builds a config with `build` (given `MERGE_DOMAIN_CONFIG`) and puts it in service.
    /// Returns the build's error on failure, for callers that report it (xDS NACKs).
    pub fn install<E: std::fmt::Display>(
        &self,
        source: &str,
        build: impl FnOnce(bool) -> Result<RateLimitConfig, E>,
    ) -> Result<(), E> {
        let metrics = self.limiter.metrics();
        match build(self.reloadable.merge_domains) {
            Ok(config) => {
                let (domains, limits) = (config.domain_count(), config.limits().len());
                self.limiter.install(config, self.reloadable.clone());
                metrics.config_load_success.inc();
                if self.track_config_health {
                    self.health.set("config", domains > 0);
                }
                tracing::info!(source, domains, limits, "rate limit config loaded");
                Ok(())
            }
            Err(error) => {
                metrics.config_load_error.inc();
                let kept = if self.limiter.loaded().is_some() {
                    "keeping the last good config"
                } else {
                    "no config is loaded"
                };
                tracing::error!(source, "error loading new configuration ({kept}): {error}");
                Err(error)
            }
        }
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
    /// One load of every file, read and parsed off the serving threads.
    pub async fn load(&self) {
        let tree = self.tree.clone();
        let installer = self.installer.clone();
        reload::blocking(move || {
            let _ = installer.install("files", |merge| -> Result<_, FilesError> {
                let sources = tree.read()?;
                Ok(RateLimitConfig::load(&sources, merge)?)
            });
        })
        .await;
    }

    /// Loads once (then signals `first_event`), and reloads through the shared reloader on
    /// every change that held still, until `stop`.
    pub async fn run(self, first_event: oneshot::Sender<()>, stop: watch::Receiver<bool>) {
        let tree = self.tree.clone();
        let fingerprint = move || tree.fingerprint();
        let initial = reload::blocking(fingerprint.clone()).await.unwrap_or_default();
        self.load().await;
        let _ = first_event.send(());
        let reload_files = || async {
            tracing::info!("config files changed, reloading");
            self.load().await;
        };
        reload::watch(reload::Pace::every(self.poll_interval), initial, fingerprint, reload_files, stop).await;
    }
}

//! The config file and the API key files, kept in service as shared reloadable values
//! (`shared::reload`): re-read when they change and the change held still, read and parsed off
//! the serving threads; a refused file keeps the last good state, and every outcome is logged
//! once and counted in `ext_authz_reloads_total{what="config"|"api_keys",result}`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use shared::reload::{self, Reloadable, Watched};
use tokio::sync::watch;

use super::policy::{self, PolicyError};
use crate::config::{self, ConfigError};
use crate::key_files::{self, ApiKeysLocation};
use crate::service::{Authorizer, Policy};

/// Why a changed config file was not put in service.
#[derive(Debug, thiserror::Error)]
enum ReloadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Interrupted(#[from] reload::Interrupted),
}

/// A changed config, ready to go into service.
struct Reloaded {
    policy: Policy,
    /// Where the API key files are now (a reload may move them).
    api_keys: Option<ApiKeysLocation>,
}

/// Watches the config file and the API key files until `stop`.
pub async fn watch_files(
    config: config::AuthzConfig,
    env: Arc<HashMap<String, String>>,
    authorizer: Arc<Authorizer>,
    stop: watch::Receiver<bool>,
) {
    // The key files follow the config: a reload may point them elsewhere.
    let keys_at = Arc::new(ArcSwapOption::from(config.api_keys.clone().map(Arc::new)));
    let config_watch = watch_config(&config, env, authorizer.clone(), keys_at.clone(), stop.clone());
    let keys_watch = watch_api_keys(&config, authorizer, keys_at, stop);
    tokio::join!(config_watch, keys_watch);
}

async fn watch_config(
    config: &config::AuthzConfig,
    env: Arc<HashMap<String, String>>,
    authorizer: Arc<Authorizer>,
    keys_at: Arc<ArcSwapOption<ApiKeysLocation>>,
    stop: watch::Receiver<bool>,
) {
    let serving = authorizer.clone();
    let put = move |reloaded: Reloaded| {
        let replaced = serving.replace_policy(reloaded.policy);
        policy::retire(&replaced, &serving.policy());
        keys_at.store(reloaded.api_keys.map(Arc::new));
    };
    let file = config.file.clone();
    let load = || {
        let (file, env, authorizer) = (file.clone(), env.clone(), &authorizer);
        async move {
            let loaded = load_config(file.clone(), env, authorizer).await;
            authorizer.note_reload("config", loaded.as_ref().err().map(|_| refusal("config")));
            loaded
        }
    };
    let watched = Watched::files(config.reload_interval, [config.file.clone()]).since(config.initial_fingerprint);
    Reloadable::new("config", authorizer.metrics.clone(), put).serving().watch(watched, load, stop).await;
}

/// Reads the file (off the serving threads), then builds its policy from the one in service.
async fn load_config(
    file: PathBuf,
    env: Arc<HashMap<String, String>>,
    authorizer: &Authorizer,
) -> Result<Reloaded, ReloadError> {
    let new = reload::blocking(move || config::load(&file, &env)).await??;
    let policy = policy::build(&new, Some(&authorizer.policy()), &authorizer.metrics, &authorizer.clock()).await?;
    Ok(Reloaded { policy, api_keys: new.api_keys })
}

/// A refused change as `/readyz` says it: what, and where to look. Not why: `/readyz` answers
/// anyone who reaches the port, and a problem quotes the file (its paths, its values). The
/// reloader logs the whole error, file and all.
fn refusal(what: &str) -> String {
    format!("a change to the {what} was refused (the log says why; `ext-authz validate` lists every problem)")
}

async fn watch_api_keys(
    config: &config::AuthzConfig,
    authorizer: Arc<Authorizer>,
    keys_at: Arc<ArcSwapOption<ApiKeysLocation>>,
    stop: watch::Receiver<bool>,
) {
    let pace = reload::Pace::every(config.reload_interval);
    let initial = key_files::fingerprint(config.api_keys.as_ref());
    let print = {
        let keys_at = keys_at.clone();
        move || key_files::fingerprint(keys_at.load().as_deref())
    };
    let watched = Watched::new(pace, initial, "the API key files", print);
    let noted = authorizer.clone();
    let load = move || {
        let location = keys_at.load();
        let loaded = key_files::load_any(location.as_deref());
        noted.note_reload("api_keys", loaded.as_ref().err().map(|_| refusal("API key files")));
        loaded
    };
    let metrics = authorizer.metrics.clone();
    let put = move |store| authorizer.replace_api_keys(store);
    Reloadable::new("api_keys", metrics, put)
        .serving()
        .summarized(|store| format!("{} keys", store.len()))
        .watch_blocking(watched, load, stop)
        .await;
}

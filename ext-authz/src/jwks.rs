//! Provider keys over the network and on disk: JWKS documents (directly or through OIDC
//! discovery), refreshed in the background at the pace `Cache-Control: max-age` asks for
//! (within bounds), re-fetched when a token names an unknown key id (at most once per
//! `unknown_kid_min_interval`, so a flood of made-up kids cannot flood the identity provider),
//! and kept when a fetch fails. A key file (`jwks_file`) is a shared reloadable value like every
//! reloadable file: read when a change to it held still, never on an unknown key id (the file
//! could be caught half written), counted in `ext_authz_reloads_total{what="jwks_file"}` as well
//! as in the provider's fetches.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use shared::metrics::CounterFamily;
use shared::reload::{self, Outcome, ReloadCounter, Reloadable, Watched};
use tokio::sync::{watch, Mutex};
// tokio's clock, so tests can pause and advance it.
use tokio::time::Instant;

use crate::core::jwt::KeySet;
use crate::secret::Secret;

/// Where a provider's keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    JwksUri(String),
    /// Through `<issuer>/.well-known/openid-configuration`.
    Discovery(String),
    JwksFile(PathBuf),
    Hmac(Secret),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshSettings {
    pub interval: Duration,
    pub min_interval: Duration,
    pub max_interval: Duration,
    pub unknown_kid_min_interval: Duration,
    /// The longest a check waits for a refetch for an unknown key id (the fetch goes on).
    pub unknown_kid_wait: Duration,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderKeys {
    pub name: String,
    pub source: KeySource,
    pub refresh: RefreshSettings,
}

/// Each error's text carries its whole cause chain on one line: reqwest's own text ("error
/// sending request") says nothing of why — refused, TLS, DNS, timeout are in its sources.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("GET {url}: {}", causes(source))]
    Http { url: String, source: reqwest::Error },
    #[error("GET {url}: {}", causes(source))]
    Body { url: String, source: crate::provider_body::BodyError },
    #[error("GET {url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: no jwks_uri in the discovery document")]
    NoJwksUri { url: String },
    #[error("{url}: {source}")]
    Keys { url: String, source: crate::core::jwt::KeySetError },
    #[error("cannot read {path}: {source}")]
    File { path: String, source: std::io::Error },
}

/// An error and its sources on one line (`error sending request: client error (Connect): tcp
/// connect error: Connection refused (os error 111)`), each text once: some errors repeat
/// their source's text in their own.
pub fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        next = cause.source();
    }
    line
}

/// One provider's keys and fetch bookkeeping.
pub struct ProviderKeyState {
    pub config: ProviderKeys,
    keys: Arc<ArcSwapOption<KeySet>>,
    /// When an unknown key id last caused a fetch (for its rate limit).
    last_kid_refetch: parking_lot::Mutex<Option<Instant>>,
    /// Single flight: concurrent refetches wait for one fetch.
    fetching: Mutex<()>,
    /// The JWKS URI found through discovery.
    discovered: parking_lot::Mutex<Option<String>>,
    /// For a `jwks_file` provider: its file.
    file: Option<KeyFile>,
    /// When to refresh next, as the last successful fetch decided (max-age within bounds).
    next_refresh: parking_lot::Mutex<Option<Duration>>,
    /// Whether the last fetch failed (the log has why): `/readyz` says it.
    failed: AtomicBool,
}

/// The keys of every provider, in the engine's provider order.
pub struct KeyManager {
    providers: Vec<Arc<ProviderKeyState>>,
    client: reqwest::Client,
    fetches: CounterFamily,
}

impl KeyManager {
    /// For providers without key files (the login flow's, through discovery).
    pub fn new(configs: Vec<ProviderKeys>, fetches: CounterFamily) -> KeyManager {
        KeyManager::with_reloads(configs, fetches, Arc::new(|_: &'static str, _: Outcome| {}))
    }

    /// `reloads` counts the key files' reloads (`ext_authz_reloads_total`).
    pub fn with_reloads(
        configs: Vec<ProviderKeys>,
        fetches: CounterFamily,
        reloads: Arc<dyn ReloadCounter>,
    ) -> KeyManager {
        let providers = configs
            .into_iter()
            .map(|config| {
                let keys = Arc::new(ArcSwapOption::new(match &config.source {
                    KeySource::Hmac(secret) => Some(Arc::new(KeySet::from_secret(&secret.0))),
                    _ => None,
                }));
                let file = match &config.source {
                    KeySource::JwksFile(path) => {
                        Some(KeyFile::new(&config.name, path, keys.clone(), &fetches, reloads.clone()))
                    }
                    _ => None,
                };
                Arc::new(ProviderKeyState {
                    config,
                    keys,
                    last_kid_refetch: parking_lot::Mutex::new(None),
                    fetching: Mutex::new(()),
                    discovered: parking_lot::Mutex::new(None),
                    file,
                    next_refresh: parking_lot::Mutex::new(None),
                    failed: AtomicBool::new(false),
                })
            })
            .collect();
        let client = reqwest::Client::builder()
            .user_agent(concat!("gatehouse-ext-authz/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("building the HTTP client");
        KeyManager { providers, client, fetches }
    }

    /// The current key sets, `None` for providers whose keys never loaded.
    pub fn snapshot(&self) -> Vec<Option<Arc<KeySet>>> {
        self.providers.iter().map(|p| p.keys.load_full()).collect()
    }

    /// Ready when every provider has keys.
    pub fn ready(&self) -> bool {
        self.providers.iter().all(|p| p.keys.load().is_some())
    }

    /// Why not ready, on one line: where each provider whose keys never loaded is set, and
    /// whether a fetch failed. `None` when ready. No name, URL or error: `/readyz` says this to
    /// anyone; the log's warning has the provider, its URL and the fetch's cause chain.
    pub fn not_ready(&self) -> Option<String> {
        let waiting: Vec<String> = self
            .providers
            .iter()
            .enumerate()
            .filter(|(_, p)| p.keys.load().is_none())
            .map(|(i, p)| {
                let state = if p.failed.load(Ordering::Relaxed) { "fetch failed" } else { "not fetched yet" };
                format!("jwt_providers[{i}].keys ({state})")
            })
            .collect();
        (!waiting.is_empty()).then(|| format!("JWT keys not loaded yet: {}; the log says why", waiting.join(", ")))
    }

    pub fn same_sources(&self, configs: &[ProviderKeys]) -> bool {
        self.providers.len() == configs.len() && self.providers.iter().zip(configs).all(|(p, c)| &p.config == c)
    }

    /// First load of every provider, concurrently; failures are logged and retried by `run`.
    pub async fn load_all(&self) {
        let loads = self.providers.iter().map(|p| self.fetch(p));
        for (provider, result) in self.providers.iter().zip(futures_util::future::join_all(loads).await) {
            if let Err(e) = result {
                tracing::warn!(provider = %provider.config.name, "JWT keys not loaded yet: {e}");
            }
        }
    }

    /// When provider `index` will be fetched again, as its last successful fetch decided
    /// (`None` before one): for the debug output and tests, which can check the pacing rule
    /// end to end without waiting for it.
    pub fn planned_refresh(&self, index: usize) -> Option<Duration> {
        *self.providers.get(index)?.next_refresh.lock()
    }

    /// How long a check waits for a refetch for an unknown key id of provider `index`.
    pub fn unknown_kid_wait(&self, index: usize) -> Duration {
        self.providers.get(index).map_or(Duration::ZERO, |p| p.config.refresh.unknown_kid_wait)
    }

    /// A token named a key id provider `index` lacks: fetch again unless we fetched very
    /// recently. Returns whether a fetch happened (and so whether checking again makes sense).
    pub async fn refetch_for_unknown_kid(&self, index: usize) -> bool {
        let Some(provider) = self.providers.get(index) else { return false };
        // A key file is read when a change to it held still, by its watcher.
        if matches!(provider.config.source, KeySource::Hmac(_) | KeySource::JwksFile(_)) {
            return false;
        }
        let min = provider.config.refresh.unknown_kid_min_interval;
        let recent = |p: &ProviderKeyState| !refetch_allowed(*p.last_kid_refetch.lock(), Instant::now(), min);
        if recent(provider) {
            return false;
        }
        let _single = provider.fetching.lock().await;
        // Someone else fetched while we waited: their keys are as fresh as ours would be.
        if recent(provider) {
            return true;
        }
        *provider.last_kid_refetch.lock() = Some(Instant::now());
        if let Err(e) = self.fetch_now(provider).await {
            tracing::warn!(provider = %provider.config.name, "refetch for an unknown key id failed: {e}");
        }
        true
    }

    /// Keeps every provider's keys fresh until `stop`.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let tasks: Vec<_> = self
            .providers
            .iter()
            .filter_map(|p| match &p.config.source {
                KeySource::Hmac(_) => None,
                KeySource::JwksFile(_) => {
                    let (provider, stop) = (p.clone(), stop.clone());
                    Some(tokio::spawn(async move {
                        if let Some(file) = &provider.file {
                            file.watch(stop).await;
                        }
                    }))
                }
                _ => Some(tokio::spawn(self.clone().refresh_loop(p.clone(), stop.clone()))),
            })
            .collect();
        let _ = stop.changed().await;
        for task in tasks {
            task.abort();
        }
    }

    async fn refresh_loop(self: Arc<Self>, provider: Arc<ProviderKeyState>, mut stop: watch::Receiver<bool>) {
        let refresh = provider.config.refresh.clone();
        let planned = *provider.next_refresh.lock();
        let mut wait = match (provider.keys.load().is_some(), planned) {
            (true, Some(planned)) => planned,
            (true, None) => refresh.interval,
            (false, _) => refresh.min_interval.min(Duration::from_secs(5)),
        };
        loop {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => return,
            }
            wait = match self.fetch(&provider).await {
                Ok(next) => next,
                Err(e) => {
                    tracing::warn!(provider = %provider.config.name, "JWT key refresh failed, keeping the last good keys: {e}");
                    retry_after_failure(&refresh, provider.keys.load().is_some())
                }
            };
        }
    }

    async fn fetch(&self, provider: &ProviderKeyState) -> Result<Duration, JwksError> {
        let _single = provider.fetching.lock().await;
        self.fetch_now(provider).await
    }

    /// Fetches (caller holds `fetching`) and returns when to refresh next.
    async fn fetch_now(&self, provider: &ProviderKeyState) -> Result<Duration, JwksError> {
        let refresh = &provider.config.refresh;
        let result = match &provider.config.source {
            KeySource::Hmac(_) => return Ok(refresh.max_interval),
            KeySource::JwksFile(_) => {
                // Logged and counted by the file's reloadable value, whatever the outcome.
                if let Some(file) = &provider.file {
                    provider.failed.store(file.load_now().await.is_err(), Ordering::Relaxed);
                }
                return Ok(KEY_FILE_EVERY);
            }
            KeySource::JwksUri(uri) => self.get_jwks(uri, refresh.timeout).await,
            KeySource::Discovery(issuer) => {
                let cached = provider.discovered.lock().clone();
                let uri = match cached {
                    Some(uri) => uri,
                    None => {
                        let uri = self.discover(issuer, refresh.timeout).await?;
                        *provider.discovered.lock() = Some(uri.clone());
                        uri
                    }
                };
                self.get_jwks(&uri, refresh.timeout).await
            }
        };
        let outcome = if result.is_ok() { "ok" } else { "error" };
        self.fetches.with(vec![("provider", provider.config.name.clone()), ("result", outcome.into())]).inc();
        provider.failed.store(result.is_err(), Ordering::Relaxed);
        let (keys, max_age) = result?;
        tracing::info!(provider = %provider.config.name, keys = keys.len(), "JWT keys loaded");
        provider.keys.store(Some(Arc::new(keys)));
        let next = next_refresh(max_age, refresh);
        *provider.next_refresh.lock() = Some(next);
        Ok(next)
    }

    async fn get_jwks(&self, uri: &str, timeout: Duration) -> Result<(KeySet, Option<Duration>), JwksError> {
        let span = shared::traces::child_span(|| {
            tracing::info_span!("JWKS fetch", otel.kind = "client", http.request.method = "GET", url.full = uri)
        });
        shared::traces::in_span(span, self.get_key_set(uri, timeout)).await
    }

    async fn get_key_set(&self, uri: &str, timeout: Duration) -> Result<(KeySet, Option<Duration>), JwksError> {
        let (body, max_age) = self.get(uri, timeout).await?;
        let keys = KeySet::from_jwks(&body).map_err(|source| JwksError::Keys { url: uri.to_string(), source })?;
        Ok((keys, max_age))
    }

    async fn discover(&self, issuer: &str, timeout: Duration) -> Result<String, JwksError> {
        let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
        let span = shared::traces::child_span(
            || tracing::info_span!("OIDC discovery", otel.kind = "client", http.request.method = "GET", url.full = %url),
        );
        shared::traces::in_span(span, self.discover_jwks_uri(url, timeout)).await
    }

    async fn discover_jwks_uri(&self, url: String, timeout: Duration) -> Result<String, JwksError> {
        let (body, _) = self.get(&url, timeout).await?;
        let document: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        document.get("jwks_uri").and_then(|v| v.as_str()).map(str::to_owned).ok_or(JwksError::NoJwksUri { url })
    }

    async fn get(&self, url: &str, timeout: Duration) -> Result<(String, Option<Duration>), JwksError> {
        // The URL is in the error's own text already.
        let http = |source: reqwest::Error| JwksError::Http { url: url.to_string(), source: source.without_url() };
        let request = self.client.get(url).headers(shared::traces::outgoing_headers()).timeout(timeout);
        let response = request.send().await.map_err(http)?;
        if !response.status().is_success() {
            return Err(JwksError::Status { url: url.to_string(), status: response.status().as_u16() });
        }
        let max_age =
            response.headers().get(reqwest::header::CACHE_CONTROL).and_then(|v| v.to_str().ok()).and_then(max_age);
        let body = crate::provider_body::read(response)
            .await
            .map_err(|source| JwksError::Body { url: url.to_string(), source: without_url(source) })?;
        Ok((String::from_utf8_lossy(&body).into_owned(), max_age))
    }
}

fn without_url(error: crate::provider_body::BodyError) -> crate::provider_body::BodyError {
    match error {
        crate::provider_body::BodyError::Http(e) => crate::provider_body::BodyError::Http(e.without_url()),
        other => other,
    }
}

/// How often a key file is looked at.
const KEY_FILE_EVERY: Duration = Duration::from_secs(2);

/// A provider's key file (`what="jwks_file"`): read at the first load, then whenever a change
/// to it held still; a file that does not read or parse (half written, say) keeps the last
/// good keys.
struct KeyFile {
    path: PathBuf,
    /// Names the file and its provider in the log lines.
    source: String,
    keys: Reloadable<KeySet>,
    /// The file's fingerprint taken before the read that put its keys in service (0: none did).
    read_print: AtomicU64,
}

impl KeyFile {
    fn new(
        provider: &str,
        path: &std::path::Path,
        keys: Arc<ArcSwapOption<KeySet>>,
        fetches: &CounterFamily,
        reloads: Arc<dyn ReloadCounter>,
    ) -> KeyFile {
        // A read is a reload and, for the provider's own series, a fetch.
        let fetched = fetches.clone();
        let name = provider.to_string();
        let counter = move |what, outcome: Outcome| {
            reloads.count(what, outcome);
            fetched.with(vec![("provider", name.clone()), ("result", outcome.label().into())]).inc();
        };
        let put = move |loaded: KeySet| keys.store(Some(Arc::new(loaded)));
        KeyFile {
            path: path.to_path_buf(),
            source: format!("{} (provider {provider})", path.display()),
            keys: Reloadable::new("jwks_file", counter, put).summarized(|keys| format!("{} keys", keys.len())),
            read_print: AtomicU64::new(0),
        }
    }

    /// The first load, before the watch starts; why it failed, if it did.
    async fn load_now(&self) -> Result<(), String> {
        let print = reload::fingerprint([self.path.as_path()]);
        let path = self.path.clone();
        self.keys.load_blocking(&self.source, move || read_key_file(&path)).await.map_err(|e| e.to_string())?;
        self.read_print.store(print, Ordering::Relaxed);
        Ok(())
    }

    /// Reloads the file as it changes, until `stop`. Never read yet: the first poll that finds
    /// the file reads it.
    async fn watch(&self, stop: watch::Receiver<bool>) {
        let initial = self.read_print.load(Ordering::Relaxed);
        let path = self.path.clone();
        let print = move || reload::fingerprint([path.as_path()]);
        let watched = Watched::new(reload::Pace::every(KEY_FILE_EVERY), initial, self.source.clone(), print);
        let path = self.path.clone();
        self.keys.watch_blocking(watched, move || read_key_file(&path), stop).await;
    }
}

/// A key file's keys, within the same size bound as a key set from the network (also read by
/// `explain`, which checks tokens against local keys only).
pub fn read_key_file(path: &std::path::Path) -> Result<KeySet, JwksError> {
    let text = read_bounded(path).map_err(|source| JwksError::File { path: path.display().to_string(), source })?;
    KeySet::from_jwks(&text).map_err(|source| JwksError::Keys { url: path.display().to_string(), source })
}

/// A key file's text, refused past the size bound of a key set from the network.
fn read_bounded(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    let limit = crate::provider_body::MAX_BODY_BYTES as u64;
    let mut text = String::new();
    std::fs::File::open(path)?.take(limit + 1).read_to_string(&mut text)?;
    if text.len() as u64 > limit {
        return Err(std::io::Error::other(format!("larger than {limit} bytes")));
    }
    Ok(text)
}

/// `max-age=N` from a Cache-Control value.
fn max_age(cache_control: &str) -> Option<Duration> {
    cache_control.split(',').find_map(|d| {
        let (name, value) = d.trim().split_once('=')?;
        name.eq_ignore_ascii_case("max-age").then(|| value.trim().parse().ok()).flatten().map(Duration::from_secs)
    })
}

/// When to fetch again after a good fetch: the response's `max-age` within
/// `[min_interval, max_interval]`, or `interval` when it sent none.
pub(crate) fn next_refresh(max_age: Option<Duration>, refresh: &RefreshSettings) -> Duration {
    max_age.map_or(refresh.interval, |age| age.clamp(refresh.min_interval, refresh.max_interval))
}

/// Whether an unknown key id may cause a fetch now: not within `min` of the last one, so a
/// flood of made-up key ids cannot flood the identity provider.
pub(crate) fn refetch_allowed(last: Option<Instant>, now: Instant, min: Duration) -> bool {
    last.is_none_or(|last| now.saturating_duration_since(last) >= min)
}

/// When to try again after a failed fetch. A provider whose keys never loaded keeps the service
/// not ready, so it is retried at most 5 s apart (an identity provider that starts after us — a
/// JVM in a compose file — must not leave us waiting out `min_interval` past every health
/// check's patience); one with keys already serves from them and backs off to `min_interval`.
pub(crate) fn retry_after_failure(refresh: &RefreshSettings, loaded: bool) -> Duration {
    if loaded {
        refresh.min_interval
    } else {
        refresh.min_interval.min(Duration::from_secs(5))
    }
}

#[cfg(test)]
mod tests;

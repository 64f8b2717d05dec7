//! Upstream credentials: the second layer of two-layer auth. Once ext-authz has authorized a
//! request on a rule that names an `upstream_credential`, it sets that credential's header on
//! the upstream request (overwriting whatever the client sent), so callers never see or hold
//! the provider's key or token.
//!
//! Sources: a file (a mounted Secret's key), re-read when it changes; or an OAuth2
//! client-credentials grant, its token cached, renewed ahead of expiry by one request at a
//! time, and kept through a provider outage while it is still valid. When no credential can be
//! had the request is refused with 503 (never sent upstream without it).

mod client_credentials;
mod secret_file;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use shared::clock::Clock;
use shared::metrics::CounterFamily;
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::oauth::ClientAuthMethod;
use crate::secret::Secret;
use client_credentials::TokenSource;

/// One `upstream_credentials:` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct CredentialSettings {
    pub name: String,
    /// Lower-case.
    pub header: String,
    /// Put before the secret or token (e.g. `Bearer `).
    pub prefix: String,
    pub source: Source,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// The credential is the file's content (surrounding whitespace removed).
    File(PathBuf),
    ClientCredentials(ClientCredentialsSettings),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClientCredentialsSettings {
    pub token_endpoint: TokenEndpoint,
    pub client_id: String,
    pub client_secret: Secret,
    pub auth_method: ClientAuthMethod,
    pub scopes: Vec<String>,
    /// `audience` (Auth0, Okta and others).
    pub audience: Option<String>,
    /// `resource` (RFC 8707 resource indicators).
    pub resource: Option<String>,
    /// Renew this long before the token expires.
    pub refresh_before: Duration,
    /// The longest one token request (with discovery) may take.
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenEndpoint {
    Url(String),
    /// Found through the issuer's discovery document.
    Discovery(String),
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream_credentials[{index}] ({name}): {}: {problem}", path.display())]
    Start { index: usize, name: String, path: PathBuf, problem: secret_file::SecretFileError },
    #[error("upstream credential {name:?} is unavailable: {reason}")]
    Unavailable { name: String, reason: Unavailable },
}

/// Why a credential has no value to give now.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    /// The last attempt failed within the back-off: not asked again yet.
    #[error("the token endpoint failed moments ago")]
    FailedMomentsAgo,
    #[error("not configured")]
    NotConfigured,
    #[error(transparent)]
    Endpoint(#[from] crate::oauth::EndpointError),
}

/// Reads every credential file as a start would (for `validate`): the first problem, naming
/// its entry and file.
pub fn check_files(settings: &[CredentialSettings]) -> Result<(), UpstreamError> {
    for (index, credential) in settings.iter().enumerate() {
        if let Source::File(path) = &credential.source {
            secret_file::read(path).map_err(|problem| file_problem(index, credential, path, problem))?;
        }
    }
    Ok(())
}

fn file_problem(
    index: usize,
    credential: &CredentialSettings,
    path: &std::path::Path,
    problem: secret_file::SecretFileError,
) -> UpstreamError {
    UpstreamError::Start { index, name: credential.name.clone(), path: path.to_path_buf(), problem }
}

/// Where a credential's current header value comes from.
enum Slot {
    File(Arc<ArcSwap<String>>),
    Token(Arc<TokenSource>),
}

/// What the credentials need from the service around them.
pub struct Context {
    pub clock: Clock,
    pub metrics: Metrics,
    /// How often credential files are checked for changes.
    pub reload_interval: Duration,
}

/// The credentials of one config generation, with their file watchers and token renewals.
pub struct UpstreamCredentials {
    settings: Vec<CredentialSettings>,
    slots: Vec<Slot>,
    /// Stops the file watchers when this generation is dropped.
    stop: watch::Sender<bool>,
}

impl Drop for UpstreamCredentials {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

impl UpstreamCredentials {
    /// Reads every credential file (a missing or unfit one is an error naming it) and starts
    /// watching them; fetches the first token of every grant — awaited when `wait` (a reload
    /// installs a policy with its tokens), else in the background (a slow provider must not
    /// hold up the start). A grant that fails here is not an error: its routes answer 503
    /// until the provider answers.
    pub async fn start(
        settings: Vec<CredentialSettings>,
        context: &Context,
        wait: bool,
    ) -> Result<UpstreamCredentials, UpstreamError> {
        let (stop, _) = watch::channel(false);
        let requests = context.metrics.upstream_token_requests.clone();
        let mut slots = Vec::with_capacity(settings.len());
        let mut first_tokens = Vec::new();
        for (index, credential) in settings.iter().enumerate() {
            let slot = match &credential.source {
                Source::File(path) => {
                    let value =
                        secret_file::read(path).map_err(|problem| file_problem(index, credential, path, problem))?;
                    let current = Arc::new(ArcSwap::from_pointee(format!("{}{value}", credential.prefix)));
                    tokio::spawn(secret_file::watch(
                        credential.clone(),
                        path.clone(),
                        current.clone(),
                        context.reload_interval,
                        context.metrics.clone(),
                        stop.subscribe(),
                    ));
                    Slot::File(current)
                }
                Source::ClientCredentials(grant) => {
                    let source = Arc::new(TokenSource::new(
                        &credential.name,
                        &credential.prefix,
                        grant.clone(),
                        context.clock.clone(),
                        requests_for(&requests, &credential.name),
                    ));
                    first_tokens.push(source.clone());
                    Slot::Token(source)
                }
            };
            slots.push(slot);
        }
        let warm_ups = first_tokens.into_iter().map(|source| async move { source.warm_up().await });
        if wait {
            // All at once: a reload waits for the slowest provider, not for their sum.
            futures_util::future::join_all(warm_ups).await;
        } else {
            for warm_up in warm_ups {
                tokio::spawn(warm_up);
            }
        }
        Ok(UpstreamCredentials { settings, slots, stop })
    }

    /// No credentials (a config without `upstream_credentials`).
    pub fn none() -> UpstreamCredentials {
        UpstreamCredentials { settings: Vec::new(), slots: Vec::new(), stop: watch::channel(false).0 }
    }

    /// Stops the file watchers (at shutdown; dropping does it too).
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    pub fn settings(&self) -> &[CredentialSettings] {
        &self.settings
    }

    /// The header to set for credential `index`: its name and current value.
    pub async fn header(&self, index: usize) -> Result<(&str, String), UpstreamError> {
        let (Some(settings), Some(slot)) = (self.settings.get(index), self.slots.get(index)) else {
            return Err(UpstreamError::Unavailable { name: format!("#{index}"), reason: Unavailable::NotConfigured });
        };
        let value = match slot {
            Slot::File(current) => current.load().as_ref().clone(),
            Slot::Token(source) => source.value().await?,
        };
        Ok((&settings.header, value))
    }
}

fn requests_for(family: &CounterFamily, name: &str) -> [shared::metrics::Counter; 2] {
    ["ok", "error"].map(|result| family.with(vec![("credential", name.to_string()), ("result", result.into())]))
}

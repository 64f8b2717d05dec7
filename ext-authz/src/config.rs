//! The ext-authz config: a YAML file with environment overrides (`EXT_AUTHZ__SECTION__KEY`,
//! through the `config` crate), checked completely at load. Every problem is reported, each
//! naming the file, the key and the problem, e.g.
//! `authz.yaml: routes.rules[2].path: path "orders" must start with '/'`.
//!
//! One module per section builds that section's part from the raw (serde) form, recording its
//! problems in a shared `Check` and carrying on; `build` puts the parts together. The
//! types the parts are made of belong to the components that use them (`jwks`, `key_files`,
//! `oidc`, `core`): only this module and `app` know the whole config.

mod check;
mod client_address;
mod credentials;
mod decision_log;
mod identity;
pub mod keys;
mod oidc;
mod policies;
mod raw;
mod routes;
mod serde_text;
mod server;
mod telemetry;
mod upstream;
mod waits;
mod workload;

pub use check::{Problem, SecretFrom, SecretNeed};
pub use server::ServerSettings;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use shared::bounded_yaml::YamlLimits;
use shared::traces::TraceSettings;

use crate::core::cel;
use crate::core::decision::{Engine, SessionPolicy};
use crate::core::identity_part::IdentityAnswer;
use crate::decision_log::DecisionLogSettings;
use crate::jwks::ProviderKeys;
use crate::key_files::ApiKeysLocation;
use crate::oidc::OidcSettings;
use check::{Check, Checked};
use raw::RawConfig;
use routes::Available;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read or is not a YAML document of the expected shape.
    #[error("{file}: {problem}")]
    Load { file: String, problem: String },
    /// The problems found, one per line: every one, up to a hundred, then how
    /// many more there were.
    #[error("{}", invalid_text(file, problems, *more))]
    Invalid { file: String, problems: Vec<Problem>, more: usize },
}

fn invalid_text(file: &str, problems: &[Problem], more: usize) -> String {
    let line = |p: &Problem| match &p.env {
        Some(variable) => format!("{variable}: {}", p.problem),
        None => format!("{file}: {}: {}", p.key, p.problem),
    };
    let mut lines: Vec<String> = problems.iter().map(line).collect();
    if more > 0 {
        lines.push(format!("{file}: … and {more} more problems"));
    }
    lines.join("\n")
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuthzConfig {
    pub file: PathBuf,
    /// The reloader's fingerprint of `file`, taken just before it was read: a change made while
    /// it was being read is seen as a change.
    pub initial_fingerprint: u64,
    pub engine: Engine,
    /// Parallel to `engine.providers`.
    pub provider_keys: Vec<ProviderKeys>,
    pub api_keys: Option<ApiKeysLocation>,
    pub server: ServerSettings,
    pub log_level: String,
    pub log_json: bool,
    pub cache_size: usize,
    pub reload_interval: Duration,
    /// Browser logins and sessions, when configured.
    pub oidc: Option<OidcSettings>,
    /// One JSON line per decision, when enabled (read at start; a change needs a restart).
    pub decision_log: Option<DecisionLogSettings>,
    /// Span export, when enabled (read at start; a change needs a restart).
    pub tracing: Option<TraceSettings>,
    /// Credentials set on the upstream request by the rules that name them.
    pub upstream_credentials: Vec<crate::upstream::CredentialSettings>,
}

impl AuthzConfig {
    /// Settings that load but will hurt in production, for `validate` and the start-up log.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = self.oidc.as_ref().map(OidcSettings::warnings).unwrap_or_default();
        warnings.extend(waits::past_the_gateway(self));
        warnings
    }
}

/// Loads and checks a config file; `env` supplies the `EXT_AUTHZ__…` overrides and the
/// variables named by `hmac_secret_env`.
pub fn load(path: &Path, env: &HashMap<String, String>) -> Result<AuthzConfig, ConfigError> {
    let base = path.parent().unwrap_or(Path::new("."));
    // Its CEL conditions are compiled on one large-stack thread for the whole load.
    cel::on_compiler_thread(|| load_with(path, env, Check::new(base, env))).map(|(config, _)| config)
}

/// A config checked as [`load`] does, but with no secret read: each is listed instead, and a
/// placeholder stands in for its value. For `validate --no-secrets` only; never to start with.
pub fn load_without_secrets(
    path: &Path,
    env: &HashMap<String, String>,
) -> Result<(AuthzConfig, Vec<SecretNeed>), ConfigError> {
    let base = path.parent().unwrap_or(Path::new("."));
    cel::on_compiler_thread(|| load_with(path, env, Check::without_secrets(base, env)))
}

fn load_with(
    path: &Path,
    env: &HashMap<String, String>,
    check: Check<'_>,
) -> Result<(AuthzConfig, Vec<SecretNeed>), ConfigError> {
    let file = path.display().to_string();
    // Taken just before the file is read: a change made while it is read is seen as a change.
    let initial_fingerprint = shared::reload::fingerprint([path]);
    let overrides = overrides(env);
    let raw = read_raw(path, &overrides).map_err(|e| e.blaming(&overrides))?;
    let built = build(raw, &check, path);
    let (problems, more, needs) = check.into_problems();
    match built {
        Ok(config) if problems.is_empty() => Ok((AuthzConfig { initial_fingerprint, ..config }, needs)),
        _ => Err(ConfigError::Invalid { file, problems, more }.blaming(&overrides)),
    }
}

/// The `EXT_AUTHZ__…` variables, each with the key it overrides (`server.grpc_addr`).
fn overrides(env: &HashMap<String, String>) -> Vec<(String, String, String)> {
    let mut found: Vec<(String, String, String)> = env
        .iter()
        .filter_map(|(name, value)| {
            let path = name.strip_prefix("EXT_AUTHZ__")?;
            Some((name.clone(), path.to_ascii_lowercase().replace("__", "."), value.clone()))
        })
        .collect();
    found.sort();
    found
}

impl ConfigError {
    /// A problem at a key the environment overrides is the variable's, not the file's: it is
    /// named by the variable, so that nobody searches the file for a value it does not hold.
    fn blaming(self, overrides: &[(String, String, String)]) -> ConfigError {
        let ConfigError::Invalid { file, mut problems, more } = self else { return self };
        for problem in &mut problems {
            let at = problem.key.replace('[', ".").replace(']', "");
            // A key serde does not know is the variable's when the variable is what makes it:
            // EXT_AUTHZ__LOGG__LEVEL is refused at `logg`, above the path it sets.
            let unknown = problem.problem.starts_with("unknown field");
            let own = overrides.iter().find(|(_, path, _)| {
                at == *path || at.starts_with(&format!("{path}.")) || (unknown && path.starts_with(&format!("{at}.")))
            });
            if let Some((name, path, _)) = own {
                problem.env = Some(format!("{name} (the environment variable that overrides {path} of {file})"));
            } else if let Some((name, path, _)) =
                overrides.iter().find(|(_, path, _)| path.starts_with(&format!("{at}.")))
            {
                // A section the variable adds to (or creates): the file and the variable both.
                problem.problem.push_str(&format!(" (the environment sets {path}: {name})"));
            }
        }
        ConfigError::Invalid { file, problems, more }
    }
}

/// The file as written, with the environment's overrides, in its raw (serde) form.
fn read_raw(path: &Path, overrides: &[(String, String, String)]) -> Result<RawConfig, ConfigError> {
    let file = path.display().to_string();
    let load_error = |problem: String| ConfigError::Load { file: file.clone(), problem };
    let overrides: HashMap<String, String> =
        overrides.iter().map(|(name, _, value)| (name.clone(), value.clone())).collect();
    // Read once, within bounds (no alias bomb or deep nesting reaches the `config` crate's
    // tree builder), and refuse a file with nothing in it: an empty or truncated config would
    // otherwise load as "no routes, deny everything".
    let text = shared::bounded_yaml::read_text(path, YamlLimits::FILES).map_err(|e| load_error(e.to_string()))?;
    if text.lines().all(|line| line.trim().is_empty() || line.trim_start().starts_with('#')) {
        return Err(load_error("the file is empty".into()));
    }
    // A file cut short inside its last rule is often valid YAML that loads with that rule
    // loosened: only a file that says where it ends is taken (shared::file_end).
    shared::file_end::require_end(&text).map_err(|e| load_error(e.to_string()))?;
    shared::bounded_yaml::check(&text, YamlLimits::FILES).map_err(|e| load_error(e.to_string()))?;
    let built = config::Config::builder()
        .add_source(config::File::from_str(&text, config::FileFormat::Yaml))
        .add_source(
            config::Environment::with_prefix("EXT_AUTHZ")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(overrides)),
        )
        .build()
        .map_err(|e| load_error(serde_text::plain(&e.to_string())))?;
    let value: serde_json::Value = built.try_deserialize().map_err(|e| load_error(e.to_string()))?;
    // The schema (types, unknown keys) is checked by serde, which stops at the first problem;
    // everything after it is checked section by section and reported in full.
    serde_path_to_error::deserialize(value).map_err(|e| {
        let key = e.path().to_string();
        let problem = serde_text::plain(&e.into_inner().to_string());
        ConfigError::Invalid { file, problems: vec![Problem { key, problem, env: None }], more: 0 }
    })
}

/// Builds every section (each reports its own problems), then puts them together.
fn build(raw: RawConfig, c: &Check<'_>, path: &Path) -> Checked<AuthzConfig> {
    let server = server::server(&raw.server, c);
    let log = server::log(&raw.log, c);
    let available = Available {
        providers: raw.jwt_providers.iter().map(|p| p.name.as_str()).collect(),
        api_keys: raw.api_keys.is_some(),
        sessions: raw.oidc.is_some(),
        trust_domains: &raw.workload_identity.trust_domains,
        upstream_credentials: raw.upstream_credentials.iter().map(|u| u.name.as_str()).collect(),
    };
    let routes = routes::routes(raw.routes.as_ref(), &available, c);
    let policies = policies::policies(&raw.policies, &raw.policy_selector, &available, c);
    drop(available);
    let forward_api_keys = raw.api_keys.as_ref().and_then(|a| a.forward);
    let providers = credentials::providers(raw.jwt_providers, c);
    let api_keys = credentials::api_keys(raw.api_keys, c);
    let oidc = raw.oidc.map(|o| oidc::build(o, c)).transpose();
    let identity = identity::identity(&raw.identity, c);
    let reload_interval =
        c.duration("reload_interval", raw.reload_interval.as_deref().unwrap_or(keys::RELOAD_INTERVAL.default));
    let decision_log = decision_log::decision_log(&raw.decision_log, c);
    let tracing = telemetry::tracing(&raw.telemetry.tracing, c);
    let workload = workload::workload_identity(&raw.workload_identity, c);
    let upstream_credentials = upstream::upstream_credentials(raw.upstream_credentials, c);
    let client_address = client_address::client_address(&raw.client_address, c);

    let (server, (log_level, log_json), routes, policies) = (server?, log?, routes?, policies?);
    let ((providers, provider_keys), api_keys, oidc, identity) = (providers?, api_keys?, oidc?, identity?);
    let (decision_log, tracing, workload, upstream_credentials) =
        (decision_log?, tracing?, workload?, upstream_credentials?);
    let (api_key_sources, api_keys) = match api_keys {
        Some((sources, location)) => (sources, Some(location)),
        None => (Vec::new(), None),
    };
    let engine = Engine {
        routes,
        policies,
        client_address: client_address?,
        providers,
        api_key_sources,
        identity: Arc::new(IdentityAnswer {
            headers: identity,
            dynamic_metadata: raw.identity.dynamic_metadata,
            metadata_claims: raw.identity.metadata_claims.iter().map(identity::claim_path).collect(),
        }),
        workload,
        forward_credential: raw.identity.forward_credential,
        forward_api_keys: forward_api_keys.unwrap_or(raw.identity.forward_credential),
        sessions: oidc.as_ref().map(|o: &OidcSettings| SessionPolicy {
            provider: o.name.clone(),
            cookie_name: o.cookie_name.clone(),
            forward_access_token: o.forward_access_token,
            pass_client_authorization: o.pass_client_authorization,
            pass_method_override: o.pass_method_override,
            csrf_origins: o.csrf_guard.then(|| o.origins.clone()),
        }),
    };
    Ok(AuthzConfig {
        file: path.to_path_buf(),
        initial_fingerprint: 0,
        engine,
        provider_keys,
        api_keys,
        server,
        log_level,
        log_json,
        cache_size: raw.cache.max_tokens,
        reload_interval: reload_interval?,
        oidc,
        decision_log,
        tracing,
        upstream_credentials,
    })
}

#[cfg(test)]
mod tests;

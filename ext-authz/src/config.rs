//! The ext-authz config: a YAML file with environment overrides (`EXT_AUTHZ__SECTION__KEY`,
//! through the `config` crate), checked completely at load. Every error names the file, the
//! key and the problem, e.g. `authz.yaml: routes.rules[2].path: path "orders" must start with '/'`.

mod oidc;
mod raw;

pub use oidc::{LogoutGet, OidcSettings, StoreSettings, TYPICAL_GATEWAY_TIMEOUT};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonwebtoken::Algorithm;
use shared::bounded_yaml::YamlLimits;
use shared::env::parse_go_duration;

use crate::core::claims::ClaimPath;
use crate::core::decision::{CredentialSource, Engine, Provider, SessionPolicy};
use crate::core::identity::{ArrayFormat, HeaderSource, IdentityHeaders};
use crate::core::jwt::{family_of, JwtPolicy, KeyFamily};
use crate::core::routes::{ClaimRule, Condition, Credential, DefaultPolicy, PathMatch, Requirements, RouteTable, Rule};
use raw::{RawClaimPath, RawConfig, RawHeaderSource, RawProvider, RawSource};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {problem}")]
    Load { file: String, problem: String },
    #[error("{file}: {key}: {problem}")]
    Invalid { file: String, key: String, problem: String },
}

/// A secret that never shows in logs or debug output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeysLocation {
    pub file: Option<PathBuf>,
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub http_check_prefix: String,
    pub shutdown_delay: Duration,
    pub shutdown_timeout: Duration,
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
}

impl AuthzConfig {
    /// Settings that load but will hurt in production, for `validate` and the start-up log.
    pub fn warnings(&self) -> Vec<String> {
        self.oidc.as_ref().map(OidcSettings::warnings).unwrap_or_default()
    }
}

/// Collects the first error with its key path.
struct Check<'a> {
    file: &'a str,
    base: &'a Path,
    env: &'a HashMap<String, String>,
}

impl Check<'_> {
    fn fail<T>(&self, key: impl Into<String>, problem: impl Into<String>) -> Result<T, ConfigError> {
        Err(ConfigError::Invalid { file: self.file.to_string(), key: key.into(), problem: problem.into() })
    }

    fn duration(&self, key: &str, text: &str) -> Result<Duration, ConfigError> {
        parse_go_duration(text).or_else(|e| self.fail(key, e))
    }

    fn addr(&self, key: &str, text: &str) -> Result<SocketAddr, ConfigError> {
        text.parse().or_else(|_| self.fail(key, format!("{text:?} is not an ip:port address")))
    }

    /// Relative paths are relative to the config file.
    fn path(&self, text: &str) -> PathBuf {
        let path = Path::new(text);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base.join(path)
        }
    }
}

/// Loads and checks a config file; `env` supplies the `EXT_AUTHZ__…` overrides and the
/// variables named by `hmac_secret_env`.
pub fn load(path: &Path, env: &HashMap<String, String>) -> Result<AuthzConfig, ConfigError> {
    let file = path.display().to_string();
    let load_error = |problem: String| ConfigError::Load { file: file.clone(), problem };
    let overrides: HashMap<String, String> =
        env.iter().filter(|(k, _)| k.starts_with("EXT_AUTHZ__")).map(|(k, v)| (k.clone(), v.clone())).collect();
    // Read once, within bounds (no alias bomb or deep nesting reaches the `config` crate's
    // tree builder), and refuse a file with nothing in it: an empty or truncated config would
    // otherwise load as "no routes, deny everything".
    let initial_fingerprint = shared::reload::fingerprint([path]);
    let text = shared::bounded_yaml::read_file(path, YamlLimits::FILES).map_err(|e| load_error(e.to_string()))?;
    if text.lines().all(|line| line.trim().is_empty() || line.trim_start().starts_with('#')) {
        return Err(load_error("the file is empty".into()));
    }
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
        .map_err(|e| load_error(e.to_string()))?;
    let value: serde_json::Value = built.try_deserialize().map_err(|e| load_error(e.to_string()))?;
    let raw: RawConfig = serde_path_to_error::deserialize(value).map_err(|e| {
        let key = e.path().to_string();
        ConfigError::Invalid { file: file.clone(), key, problem: e.into_inner().to_string() }
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let config = build(raw, &Check { file: &file, base, env }, path)?;
    Ok(AuthzConfig { initial_fingerprint, ..config })
}

fn build(raw: RawConfig, c: &Check<'_>, path: &Path) -> Result<AuthzConfig, ConfigError> {
    let server = ServerSettings {
        grpc_addr: c.addr("server.grpc_addr", &raw.server.grpc_addr)?,
        http_addr: c.addr("server.http_addr", &raw.server.http_addr)?,
        http_check_prefix: match raw.server.http_check_prefix.trim_end_matches('/') {
            p if p.starts_with('/') || p.is_empty() => p.to_string(),
            p => return c.fail("server.http_check_prefix", format!("{p:?} must start with '/'")),
        },
        shutdown_delay: c.duration("server.shutdown_delay", &raw.server.shutdown_delay)?,
        shutdown_timeout: c.duration("server.shutdown_timeout", &raw.server.shutdown_timeout)?,
    };
    if shared::telemetry::level_directive(&raw.log.level).is_none() {
        return c.fail("log.level", format!("{:?} is not trace, debug, info, warn or error", raw.log.level));
    }
    let log_json = match raw.log.format.as_str() {
        "text" => false,
        "json" => true,
        other => return c.fail("log.format", format!("{other:?} is not text or json")),
    };

    let mut providers = Vec::new();
    let mut provider_keys = Vec::new();
    for (i, p) in raw.jwt_providers.into_iter().enumerate() {
        let key = format!("jwt_providers[{i}]");
        if providers.iter().any(|existing: &Provider| existing.name == p.name) {
            return c.fail(format!("{key}.name"), format!("two providers are named {:?}", p.name));
        }
        let (provider, keys) = provider(p, &key, c)?;
        providers.push(provider);
        provider_keys.push(keys);
    }

    let forward_api_keys = raw.api_keys.as_ref().and_then(|a| a.forward);
    let api_keys = match raw.api_keys {
        None => None,
        Some(a) => {
            if a.file.is_some() == a.dir.is_some() {
                return c.fail("api_keys", "set exactly one of `file` and `dir`");
            }
            Some((
                sources(&a.from, "api_keys.from", c, None)?,
                ApiKeysLocation { file: a.file.map(|f| c.path(&f)), dir: a.dir.map(|d| c.path(&d)) },
            ))
        }
    };
    let api_key_sources = api_keys.as_ref().map(|(s, _)| s.clone()).unwrap_or_default();
    let oidc = match raw.oidc {
        Some(o) => Some(oidc::build(o, c)?),
        None => None,
    };

    let accept = |list: &[String], key: &str| -> Result<Vec<Credential>, ConfigError> {
        let mut credentials = Vec::new();
        for (j, item) in list.iter().enumerate() {
            let here = format!("{key}[{j}]");
            let credential = match item.as_str() {
                "api_key" if api_keys.is_none() => {
                    return c.fail(here, "api_key is accepted but no api_keys are configured")
                }
                "api_key" => Credential::ApiKey,
                "session" if oidc.is_none() => return c.fail(here, "session is accepted but oidc is not configured"),
                "session" => Credential::Session,
                "jwt" if providers.is_empty() => {
                    return c.fail(here, "jwt is accepted but no jwt_providers are configured")
                }
                "jwt" => Credential::Jwt(None),
                other => match other.strip_prefix("jwt:") {
                    Some(name) => match providers.iter().position(|p| p.name == name) {
                        Some(index) => Credential::Jwt(Some(vec![index])),
                        None => return c.fail(here, format!("no JWT provider is named {name:?}")),
                    },
                    None => return c.fail(here, format!("{other:?} is not jwt, jwt:<provider>, api_key or session")),
                },
            };
            credentials.push(credential);
        }
        if credentials.is_empty() {
            return c.fail(key, "accept at least one credential");
        }
        Ok(credentials)
    };

    let Some(routes) = &raw.routes else {
        return c.fail("routes", "missing: a config must say which requests it lets through (is the file cut short?)");
    };
    let mut rules = Vec::new();
    for (i, r) in routes.rules.iter().enumerate() {
        let key = format!("routes.rules[{i}]");
        let path = PathMatch::parse(&r.path).or_else(|e| c.fail(format!("{key}.path"), e))?;
        let mut methods = Vec::new();
        for m in &r.methods {
            if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()) {
                return c.fail(format!("{key}.methods"), format!("{m:?} is not an HTTP method"));
            }
            methods.push(m.to_ascii_uppercase());
        }
        let mut claims = Vec::new();
        for (j, rule) in r.claims.iter().enumerate() {
            let here = format!("{key}.claims[{j}]");
            let condition = match (&rule.equals, &rule.one_of, &rule.contains) {
                (Some(v), None, None) => Condition::Equals(v.clone()),
                (None, Some(v), None) => Condition::OneOf(v.clone()),
                (None, None, Some(v)) => Condition::Contains(v.clone()),
                _ => return c.fail(here, "set exactly one of equals, one_of and contains"),
            };
            claims.push(ClaimRule { claim: claim_path(&rule.claim), condition });
        }
        rules.push(Rule {
            name: r.name.clone().unwrap_or_else(|| format!("rule-{i}")),
            host: r.host.as_ref().map(|h| h.to_ascii_lowercase()),
            methods,
            path,
            requires: Requirements {
                credentials: accept(&r.accept, &format!("{key}.accept"))?,
                scopes: r.scopes.clone(),
                claims,
            },
        });
    }
    let public = routes
        .public
        .iter()
        .enumerate()
        .map(|(i, p)| PathMatch::parse(p).or_else(|e| c.fail(format!("routes.public[{i}]"), e)))
        .collect::<Result<_, _>>()?;
    let default = match routes.default.as_str() {
        "deny" => DefaultPolicy::Deny,
        "allow" => DefaultPolicy::Allow,
        "authenticated" => DefaultPolicy::Authenticated(Requirements {
            credentials: accept(&routes.default_accept, "routes.default_accept")?,
            scopes: vec![],
            claims: vec![],
        }),
        other => return c.fail("routes.default", format!("{other:?} is not deny, allow or authenticated")),
    };

    let identity = identity(&raw.identity, c)?;
    let engine = Engine {
        routes: RouteTable { public, rules, default },
        providers,
        api_key_sources,
        identity,
        forward_credential: raw.identity.forward_credential,
        forward_api_keys: forward_api_keys.unwrap_or(raw.identity.forward_credential),
        dynamic_metadata: raw.identity.dynamic_metadata,
        sessions: oidc.as_ref().map(|o| SessionPolicy {
            provider: o.name.clone(),
            cookie_name: o.cookie_name.clone(),
            forward_access_token: o.forward_access_token,
            pass_client_authorization: o.pass_client_authorization,
            csrf_origins: o.csrf_guard.then(|| o.origins.clone()),
        }),
    };
    Ok(AuthzConfig {
        file: path.to_path_buf(),
        initial_fingerprint: 0,
        engine,
        provider_keys,
        api_keys: api_keys.map(|(_, location)| location),
        server,
        log_level: raw.log.level,
        log_json,
        cache_size: raw.cache.max_tokens,
        reload_interval: c.duration("reload_interval", raw.reload_interval.as_deref().unwrap_or("2s"))?,
        oidc,
    })
}

fn provider(p: RawProvider, key: &str, c: &Check<'_>) -> Result<(Provider, ProviderKeys), ConfigError> {
    if p.name.is_empty() {
        return c.fail(format!("{key}.name"), "must not be empty");
    }
    if p.issuer.is_empty() {
        return c.fail(format!("{key}.issuer"), "must not be empty");
    }
    let mut algorithms = Vec::new();
    for (j, name) in p.algorithms.iter().enumerate() {
        let Some(alg) = algorithm(name) else {
            return c.fail(
                format!("{key}.algorithms[{j}]"),
                format!("{name:?} is not a supported algorithm (never `none`)"),
            );
        };
        algorithms.push(alg);
    }
    if algorithms.is_empty() {
        return c.fail(format!("{key}.algorithms"), "list at least one algorithm");
    }
    let k = &p.keys;
    let chosen = [
        k.jwks_uri.is_some(),
        k.discovery,
        k.jwks_file.is_some(),
        k.hmac_secret_file.is_some(),
        k.hmac_secret_env.is_some(),
    ];
    if chosen.iter().filter(|&&x| x).count() != 1 {
        return c.fail(
            format!("{key}.keys"),
            "set exactly one of jwks_uri, discovery, jwks_file, hmac_secret_file and hmac_secret_env",
        );
    }
    let source = if let Some(uri) = &k.jwks_uri {
        KeySource::JwksUri(uri.clone())
    } else if k.discovery {
        KeySource::Discovery(p.issuer.clone())
    } else if let Some(file) = &k.jwks_file {
        KeySource::JwksFile(c.path(file))
    } else if let Some(file) = &k.hmac_secret_file {
        let secret = std::fs::read(c.path(file))
            .or_else(|e| c.fail(format!("{key}.keys.hmac_secret_file"), format!("cannot read {file}: {e}")))?;
        KeySource::Hmac(Secret(trim_newline(secret)))
    } else {
        let name = k.hmac_secret_env.as_deref().unwrap_or_default();
        match c.env.get(name) {
            Some(value) if !value.is_empty() => KeySource::Hmac(Secret(value.as_bytes().to_vec())),
            _ => {
                return c
                    .fail(format!("{key}.keys.hmac_secret_env"), format!("the environment variable {name} is not set"))
            }
        }
    };
    // An HMAC secret verifies only HS*, public keys only the others: one provider never mixes
    // them, which rules out algorithm confusion by configuration.
    let hmac = matches!(source, KeySource::Hmac(_));
    if let Some(bad) = algorithms.iter().find(|a| (family_of(**a) == KeyFamily::Hmac) != hmac) {
        let problem =
            if hmac { "an HMAC secret verifies only HS256/384/512" } else { "public keys cannot verify HS* tokens" };
        return c.fail(format!("{key}.algorithms"), format!("{bad:?}: {problem}"));
    }
    if let KeySource::Hmac(Secret(secret)) = &source {
        if secret.len() < 32 {
            return c.fail(format!("{key}.keys"), "an HMAC secret needs at least 32 bytes");
        }
    }
    let leeway = match &p.leeway {
        Some(text) => c.duration(&format!("{key}.leeway"), text)?,
        None => Duration::from_secs(60),
    };
    let default_from =
        [RawSource { header: Some("authorization".into()), prefix: Some("Bearer ".into()), query: None, cookie: None }];
    let from = if p.from.is_empty() { &default_from[..] } else { &p.from[..] };
    let r = &p.jwks_refresh;
    let refresh = RefreshSettings {
        interval: c.duration(&format!("{key}.jwks_refresh.interval"), &r.interval)?,
        min_interval: c.duration(&format!("{key}.jwks_refresh.min_interval"), &r.min_interval)?,
        max_interval: c.duration(&format!("{key}.jwks_refresh.max_interval"), &r.max_interval)?,
        unknown_kid_min_interval: c
            .duration(&format!("{key}.jwks_refresh.unknown_kid_min_interval"), &r.unknown_kid_min_interval)?,
        unknown_kid_wait: c.duration(&format!("{key}.jwks_refresh.unknown_kid_wait"), &r.unknown_kid_wait)?,
        timeout: c.duration(&format!("{key}.jwks_refresh.timeout"), &r.timeout)?,
    };
    let provider = Provider {
        name: p.name.clone(),
        policy: JwtPolicy {
            issuer: p.issuer,
            audiences: p.audiences,
            algorithms,
            leeway: leeway.as_secs(),
            require_exp: p.require_exp,
        },
        sources: sources(from, &format!("{key}.from"), c, Some("Bearer "))?,
    };
    Ok((provider, ProviderKeys { name: p.name, source, refresh }))
}

fn algorithm(name: &str) -> Option<Algorithm> {
    Some(match name {
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

fn trim_newline(mut secret: Vec<u8>) -> Vec<u8> {
    while secret.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        secret.pop();
    }
    secret
}

fn sources(
    raw: &[RawSource],
    key: &str,
    c: &Check<'_>,
    header_default_prefix: Option<&str>,
) -> Result<Vec<CredentialSource>, ConfigError> {
    let mut out = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        let here = format!("{key}[{i}]");
        let source = match (&s.header, &s.query, &s.cookie) {
            (Some(header), None, None) => {
                let name = header.to_ascii_lowercase();
                let prefix = s.prefix.clone().unwrap_or_else(|| match (name.as_str(), header_default_prefix) {
                    ("authorization", Some(p)) => p.to_string(),
                    _ => String::new(),
                });
                CredentialSource::Header { name, prefix }
            }
            (None, Some(query), None) if s.prefix.is_none() => CredentialSource::Query(query.clone()),
            (None, None, Some(cookie)) if s.prefix.is_none() => CredentialSource::Cookie(cookie.clone()),
            _ => return c.fail(here, "set exactly one of header (with an optional prefix), query and cookie"),
        };
        out.push(source);
    }
    if out.is_empty() && header_default_prefix.is_none() {
        out.push(CredentialSource::Header { name: "x-api-key".into(), prefix: String::new() });
    }
    Ok(out)
}

fn claim_path(raw: &RawClaimPath) -> ClaimPath {
    match raw {
        RawClaimPath::Text(text) => ClaimPath::parse(text),
        RawClaimPath::Segments(segments) => ClaimPath::from_segments(segments.clone()),
    }
}

fn identity(raw: &raw::RawIdentity, c: &Check<'_>) -> Result<IdentityHeaders, ConfigError> {
    let rules = match &raw.headers {
        None => IdentityHeaders::defaults(),
        Some(map) => {
            let mut rules = Vec::new();
            for (header, source) in map {
                let key = format!("identity.headers.{header}");
                if header.is_empty() || !header.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                    return c.fail(key, "not a valid header name");
                }
                let source = match source {
                    RawHeaderSource::One(s) if s == "scopes" => HeaderSource::Scopes,
                    RawHeaderSource::One(s) => HeaderSource::Claims(vec![ClaimPath::parse(s)]),
                    RawHeaderSource::Many(list) if !list.is_empty() => {
                        HeaderSource::Claims(list.iter().map(claim_path).collect())
                    }
                    RawHeaderSource::Many(_) => return c.fail(key, "list at least one claim"),
                };
                rules.push((header.to_ascii_lowercase(), source));
            }
            rules
        }
    };
    let arrays = match raw.array_format.as_str() {
        "join" => ArrayFormat::Join(raw.array_separator.clone()),
        "json" => ArrayFormat::Json,
        other => return c.fail("identity.array_format", format!("{other:?} is not join or json")),
    };
    Ok(IdentityHeaders { rules, arrays, payload_header: raw.payload_header.as_ref().map(|h| h.to_ascii_lowercase()) })
}

#[cfg(test)]
mod tests;

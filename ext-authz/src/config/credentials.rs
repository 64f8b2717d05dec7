//! The `jwt_providers:` and `api_keys:` sections, and where credentials are read from.

use jsonwebtoken::Algorithm;

use super::check::{each, Check, Checked};
use super::raw::{RawApiKeys, RawProvider, RawSource};
use crate::core::decision::{CredentialSource, Provider};
use crate::core::jwt::{family_of, JwtPolicy, KeyFamily};
use crate::jwks::{KeySource, ProviderKeys, RefreshSettings};
use crate::key_files::ApiKeysLocation;
use crate::secret::Secret;

/// `jwt_providers:`: each provider's verification policy and key source, in order.
pub fn providers(raw: Vec<RawProvider>, c: &Check<'_>) -> Checked<(Vec<Provider>, Vec<ProviderKeys>)> {
    let mut names: Vec<String> = Vec::new();
    let built = each(raw, |i, p| {
        let key = format!("jwt_providers[{i}]");
        if names.contains(&p.name) {
            return c.fail(format!("{key}.name"), format!("two providers are named {:?}", p.name));
        }
        names.push(p.name.clone());
        provider(p, &key, c)
    })?;
    Ok(built.into_iter().unzip())
}

/// `api_keys:`: where the keys are and where requests carry them.
pub fn api_keys(raw: Option<RawApiKeys>, c: &Check<'_>) -> Checked<Option<(Vec<CredentialSource>, ApiKeysLocation)>> {
    let Some(a) = raw else { return Ok(None) };
    let location = if a.file.is_some() == a.dir.is_some() {
        c.fail("api_keys", "set exactly one of `file` and `dir`")
    } else {
        Ok(ApiKeysLocation { file: a.file.map(|f| c.path(&f)), dir: a.dir.map(|d| c.path(&d)) })
    };
    let sources = sources(&a.from, "api_keys.from", c, None);
    Ok(Some((sources?, location?)))
}

fn provider(p: RawProvider, key: &str, c: &Check<'_>) -> Checked<(Provider, ProviderKeys)> {
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
        let secret = c.secret(&format!("{key}.keys.hmac_secret_file"), Some(file), None)?;
        KeySource::Hmac(Secret(secret))
    } else {
        let name = k.hmac_secret_env.as_deref().unwrap_or_default();
        KeySource::Hmac(Secret(c.secret(&format!("{key}.keys.hmac_secret_env"), None, Some(name))?))
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
        None => super::keys::JWT_LEEWAY.default_value(),
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

pub fn algorithm(name: &str) -> Option<Algorithm> {
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

pub fn sources(
    raw: &[RawSource],
    key: &str,
    c: &Check<'_>,
    header_default_prefix: Option<&str>,
) -> Checked<Vec<CredentialSource>> {
    let mut out = each(raw, |i, s| {
        let here = format!("{key}[{i}]");
        Ok(match (&s.header, &s.query, &s.cookie) {
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
        })
    })?;
    if out.is_empty() && header_default_prefix.is_none() {
        out.push(CredentialSource::Header { name: "x-api-key".into(), prefix: String::new() });
    }
    Ok(out)
}

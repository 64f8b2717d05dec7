//! The longest a check can wait, against the gateway's ext_authz timeout.
//!
//! Why: past the gateway's timeout the gateway gives up on our answer, and with
//! `failure_mode_allow` the request goes on unchecked — it must never be our slowness that
//! decides. A check waits for at most one credential's slow step (a key set refetch for a JWT
//! with an unknown key, or the login provider and the session store for a session: only the
//! first credential present is used) and then for the rule's upstream token. Each setting is
//! warned about alone, and every rule whose sum does not fit.

use std::time::Duration;

use super::AuthzConfig;
use crate::core::routes::{Credential, Rule};
use crate::oidc::TYPICAL_GATEWAY_TIMEOUT as GATEWAY;
use crate::upstream::Source;

/// Warnings for every wait, alone or summed per rule, that reaches the gateway's timeout.
pub fn past_the_gateway(config: &AuthzConfig) -> Vec<String> {
    let mut out = Vec::new();
    let mut past = |key: String, what: &str, wait: Duration| {
        if wait >= GATEWAY {
            out.push(format!(
                "{key}: {what} may take up to {wait:?}, which does not fit the gateway's ext_authz timeout of \
                 {GATEWAY:?} in the shipped configs: the gateway would give up first (and with failure_mode_allow \
                 let the request through unchecked). Lower it below {GATEWAY:?}"
            ));
        }
    };
    for (i, provider) in config.provider_keys.iter().enumerate() {
        let key = format!("jwt_providers[{i}].jwks_refresh.unknown_kid_wait");
        past(key, "a check waiting for a key set refetch", provider.refresh.unknown_kid_wait);
    }
    for i in 0..config.upstream_credentials.len() {
        let key = format!("upstream_credentials[{i}].oauth2.timeout");
        past(key, "a check waiting for a token", token_wait(config, Some(i)));
    }
    let named = config.engine.policies.named.iter().map(|(name, policy)| (format!("policies.{name}"), &policy.table));
    for (at, table) in std::iter::once(("routes".to_string(), &config.engine.routes)).chain(named) {
        for (i, rule) in table.rules.iter().enumerate() {
            let (credential, token) = (credential_wait(config, rule), token_wait(config, rule.upstream));
            // Each part alone is warned about above; here only sums that the parts alone do not reach.
            if credential < GATEWAY && token < GATEWAY && !token.is_zero() {
                let what =
                    format!("a check of rule {:?} (its credential's slowest step, then its upstream token)", rule.name);
                past(format!("{at}.rules[{i}]"), &what, credential + token);
            }
        }
    }
    out
}

/// The slowest step of the slowest credential the rule accepts.
fn credential_wait(config: &AuthzConfig, rule: &Rule) -> Duration {
    let kid_wait = |providers: &mut dyn Iterator<Item = usize>| {
        providers.filter_map(|p| config.provider_keys.get(p)).map(|p| p.refresh.unknown_kid_wait).max()
    };
    let one = |credential: &Credential| match credential {
        Credential::Jwt(None) => kid_wait(&mut (0..config.provider_keys.len())),
        Credential::Jwt(Some(providers)) => kid_wait(&mut providers.iter().copied()),
        Credential::Session => config.oidc.as_ref().map(|o| o.worst_case_check()),
        Credential::ApiKey => None,
    };
    rule.requires.credentials.iter().filter_map(one).max().unwrap_or_default()
}

/// The longest wait for the upstream credential `index` (none for a file).
fn token_wait(config: &AuthzConfig, index: Option<usize>) -> Duration {
    match index.and_then(|i| config.upstream_credentials.get(i)).map(|u| &u.source) {
        Some(Source::ClientCredentials(oauth2)) => oauth2.timeout,
        _ => Duration::ZERO,
    }
}

//! The `upstream_credentials:` section: credentials ext-authz sets on the upstream request of
//! rules that name them — from a file (a mounted Secret) or an OAuth2 client-credentials grant.

use std::collections::HashSet;

use super::check::{each, Check, Checked};
use super::identity::check_header_name;
use super::keys;
use super::raw::{RawClientCredentials, RawUpstreamCredential};
use crate::secret::Secret;
use crate::upstream::{ClientCredentialsSettings, CredentialSettings, Source, TokenEndpoint};

/// Headers a credential may not be put in: Envoy owns them, or they frame the request.
const RESERVED: &[&str] = &["host", "content-length", "transfer-encoding", "connection", "te", "upgrade"];

pub fn upstream_credentials(raw: Vec<RawUpstreamCredential>, c: &Check<'_>) -> Checked<Vec<CredentialSettings>> {
    let mut names = HashSet::new();
    each(raw.into_iter().enumerate(), |_, (i, credential)| {
        let key = format!("upstream_credentials[{i}]");
        if credential.name.is_empty() {
            return c.fail(format!("{key}.name"), "must not be empty");
        }
        if !names.insert(credential.name.clone()) {
            return c.fail(format!("{key}.name"), format!("{:?} is used by an earlier entry", credential.name));
        }
        build(credential, &key, c)
    })
}

fn build(raw: RawUpstreamCredential, key: &str, c: &Check<'_>) -> Checked<CredentialSettings> {
    let header = check_header_name(&raw.header, &format!("{key}.header"), c).and_then(|()| {
        let lower = raw.header.to_ascii_lowercase();
        if RESERVED.contains(&lower.as_str()) {
            return c.fail(format!("{key}.header"), format!("{:?} cannot carry a credential", raw.header));
        }
        Ok(lower)
    });
    let source = match (&raw.file, &raw.dir, raw.oauth2) {
        (Some(file), None, None) if raw.key.is_none() => Ok(Source::File(c.path(file))),
        (None, Some(dir), None) => match &raw.key {
            Some(name) if !name.is_empty() && !name.contains('/') && !name.starts_with('.') => {
                Ok(Source::File(c.path(dir).join(name)))
            }
            _ => c.fail(format!("{key}.key"), "name the Secret's key (a file name in dir) to read"),
        },
        (None, None, Some(grant)) if raw.key.is_none() => {
            client_credentials(grant, &format!("{key}.oauth2"), c).map(Source::ClientCredentials)
        }
        _ => c.fail(key, "set exactly one of file, dir (with key) and oauth2"),
    };
    let prefix = match (&raw.prefix, &source) {
        (Some(prefix), _) if !prefix.bytes().all(|b| (0x20..0x7f).contains(&b)) => {
            return c.fail(format!("{key}.prefix"), "may hold only visible ASCII and spaces");
        }
        (Some(prefix), _) => prefix.clone(),
        (None, Ok(Source::ClientCredentials(_))) => "Bearer ".into(),
        (None, _) => String::new(),
    };
    Ok(CredentialSettings { name: raw.name, header: header?, prefix, source: source? })
}

fn client_credentials(raw: RawClientCredentials, key: &str, c: &Check<'_>) -> Checked<ClientCredentialsSettings> {
    let url = |field: &str, value: &str| -> Checked<String> {
        match url::Url::parse(value) {
            Ok(url) if matches!(url.scheme(), "https" | "http") && url.host().is_some() => Ok(value.to_string()),
            _ => c.fail(format!("{key}.{field}"), format!("{value:?} is not an http(s) URL")),
        }
    };
    let token_endpoint = match (&raw.token_endpoint, &raw.issuer) {
        (Some(endpoint), None) => url("token_endpoint", endpoint).map(TokenEndpoint::Url),
        (None, Some(issuer)) => url("issuer", issuer).map(TokenEndpoint::Discovery),
        _ => c.fail(key, "set exactly one of token_endpoint and issuer (found through discovery)"),
    };
    let client_id = if raw.client_id.is_empty() {
        c.fail(format!("{key}.client_id"), "must not be empty")
    } else {
        Ok(raw.client_id)
    };
    let client_secret = c
        .secret(&format!("{key}.client_secret"), raw.client_secret_file.as_deref(), raw.client_secret_env.as_deref())
        .map(Secret);
    let auth_method = c.choice(&format!("{key}.auth_method"), &keys::OAUTH2_AUTH_METHOD, &raw.auth_method);
    let scopes = each(&raw.scopes, |j, scope| {
        if scope.is_empty() || scope.contains(char::is_whitespace) {
            return c.fail(format!("{key}.scopes[{j}]"), format!("{scope:?} is not one scope"));
        }
        Ok(scope.clone())
    });
    let resource = match &raw.resource {
        Some(resource) if url::Url::parse(resource).is_err() => {
            c.fail(format!("{key}.resource"), format!("{resource:?} is not an absolute URI (RFC 8707)"))
        }
        other => Ok(other.clone()),
    };
    let refresh_before = c.duration(&format!("{key}.refresh_before"), &raw.refresh_before);
    let timeout = c.duration(&format!("{key}.timeout"), &raw.timeout).and_then(|timeout| {
        if timeout.is_zero() {
            return c.fail(format!("{key}.timeout"), "must be more than 0");
        }
        Ok(timeout)
    });
    Ok(ClientCredentialsSettings {
        token_endpoint: token_endpoint?,
        client_id: client_id?,
        client_secret: client_secret?,
        auth_method: auth_method?,
        scopes: scopes?,
        audience: raw.audience,
        resource: resource?,
        refresh_before: refresh_before?,
        timeout: timeout?,
    })
}

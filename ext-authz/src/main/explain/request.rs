//! The command line's request as Envoy would describe it to ext-authz (as `grpc.rs` builds it
//! from a `CheckRequest`): method, authority and target apart, headers with lower-case names
//! and the pseudo-headers Envoy includes, the peer's address and SPIFFE ID, and the route's
//! `context_extensions` and metadata. A `--token` or `--api-key` goes where the config reads
//! it from.

use std::borrow::Cow;
use std::collections::HashMap;

use ext_authz::core::decision::{CredentialSource, Engine};
use ext_authz::core::jwt;
use ext_authz::core::request::AuthRequest;

use super::options::Options;

/// The credentials of the command line, read (from stdin when `-`).
pub struct Credentials {
    pub token: Option<String>,
    pub api_key: Option<String>,
}

/// The request, and where each given credential was put (for the reader: "header
/// authorization (Bearer)"), never the credential itself.
pub struct Built {
    pub request: AuthRequest,
    pub placed: Vec<String>,
    /// `X-Forwarded-For` as Envoy passes it to ext-authz.
    pub xff: Option<String>,
}

pub fn build(options: &Options, credentials: &Credentials, engine: &Engine) -> Built {
    let (scheme, authority, target) = split_url(&options.url);
    let mut headers: Vec<(String, String)> = options.headers.clone();
    let authority = authority
        .map(str::to_owned)
        .or_else(|| headers.iter().find(|(name, _)| name == "host" || name == ":authority").map(|(_, v)| v.clone()))
        .unwrap_or_default();
    let mut target = target.into_owned();
    let mut placed = Vec::new();
    let mut cookies = options.cookies.clone();
    let mut put = |source: &CredentialSource, value: &str, what: &str| -> String {
        match source {
            CredentialSource::Header { name, prefix } => {
                headers.push((name.clone(), format!("{prefix}{value}")));
                match prefix.trim() {
                    "" => format!("{what} in header {name}"),
                    prefix => format!("{what} in header {name} ({prefix})"),
                }
            }
            CredentialSource::Query(name) => {
                let encoded = percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC);
                target.push(if target.contains('?') { '&' } else { '?' });
                target.push_str(&format!("{name}={encoded}"));
                format!("{what} in query parameter {name}")
            }
            CredentialSource::Cookie(name) => {
                cookies.push(format!("{name}={value}"));
                format!("{what} in cookie {name}")
            }
        }
    };
    if let Some(token) = &credentials.token {
        match token_source(engine, token) {
            Some(source) => placed.push(put(source, token, "the token")),
            None => placed.push("the token nowhere: the config has no JWT provider".into()),
        }
    }
    if let Some(key) = &credentials.api_key {
        match engine.api_key_sources.first() {
            Some(source) => placed.push(put(source, key, "the API key")),
            None => placed.push("the API key nowhere: the config reads no API keys (api_keys.from)".into()),
        }
    }
    if !cookies.is_empty() {
        headers.push(("cookie".into(), cookies.join("; ")));
    }
    // `--xff` is the header as it reaches Envoy; Envoy with `use_remote_address: true`
    // (`client_address.envoy_appends`) appends its peer before ext-authz sees it.
    let appended = options.peer.filter(|_| engine.client_address.envoy_appends).map(|peer| peer.to_string());
    let xff = match (&options.xff, appended) {
        (Some(sent), Some(peer)) => Some(format!("{sent},{peer}")),
        (sent, peer) => sent.clone().or(peer),
    };
    if let Some(xff) = &xff {
        headers.retain(|(name, _)| name != "x-forwarded-for");
        headers.push(("x-forwarded-for".into(), xff.clone()));
    }
    // Envoy's header map holds the pseudo-headers too (a condition may read them).
    let path = target.clone();
    let mut map: HashMap<String, String> = HashMap::new();
    for (name, value) in headers.into_iter().chain([
        (":authority".to_string(), authority.clone()),
        (":method".to_string(), options.method.clone()),
        (":path".to_string(), path),
        (":scheme".to_string(), scheme.to_string()),
    ]) {
        if name.starts_with(':') && map.contains_key(&name) {
            continue;
        }
        // Envoy joins a repeated header's values with `,`.
        map.entry(name).and_modify(|v| *v = format!("{v},{value}")).or_insert(value);
    }
    map.remove("host");
    let mut request = AuthRequest::new(options.method.clone(), authority, &target, map);
    request.peer_address = options.peer;
    request.peer_spiffe_id = options.principal.clone();
    request.context_extensions = options.context.iter().cloned().collect();
    // Read as the gRPC adapter reads Envoy's: the policy annotation only, where the config's
    // selector reads it.
    if let (Some(metadata), Some(key)) = (&options.route_metadata, &engine.policies.selector.route_metadata) {
        request.route_annotation = ext_authz::core::routes::RouteAnnotation::from_json(metadata, key);
    }
    Built { request, placed, xff }
}

/// Where a token goes: the first place its issuer's provider reads, else the first provider's
/// (a token of no configured issuer is refused wherever it is).
fn token_source<'e>(engine: &'e Engine, token: &str) -> Option<&'e CredentialSource> {
    let issuer = jwt::peek(token).ok().and_then(|peeked| peeked.issuer);
    let ours = engine.providers.iter().find(|p| Some(&p.policy.issuer) == issuer.as_ref());
    ours.or(engine.providers.first()).and_then(|p| p.sources.first())
}

/// `(scheme, authority, target)` of `scheme://authority/target` or of a bare target; the
/// fragment is cut (a browser never sends it). The target stays as written: the decision's own
/// normalization is what is explained.
fn split_url(url: &str) -> (&str, Option<&str>, Cow<'_, str>) {
    let url = url.split_once('#').map_or(url, |(before, _)| before);
    let Some((scheme, rest)) = url.split_once("://") else { return ("http", None, url.into()) };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, target) = rest.split_at(end);
    // `?q` alone is sent as `/?q`.
    let target = if target.starts_with('/') { target.into() } else { format!("/{target}").into() };
    (scheme, Some(authority), target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_as_a_client_sends_them() {
        let split = |url| {
            let (scheme, authority, target) = split_url(url);
            (scheme, authority, target.into_owned())
        };
        assert_eq!(
            split("https://api.example.com:8443/a/../b?x=1#f"),
            ("https", Some("api.example.com:8443"), "/a/../b?x=1".into())
        );
        assert_eq!(split("http://api.example.com"), ("http", Some("api.example.com"), "/".into()));
        assert_eq!(split("http://api.example.com?x=1"), ("http", Some("api.example.com"), "/?x=1".into()));
        assert_eq!(split("/orders/7?x=1"), ("http", None, "/orders/7?x=1".into()));
    }
}

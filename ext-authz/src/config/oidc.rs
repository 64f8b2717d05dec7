//! The `oidc:` section: browser logins through the authorization code flow with PKCE, and the
//! sessions they create.

use std::path::PathBuf;
use std::time::Duration;

use shared::redis::{RedisSettings, SocketType, Topology};

use super::check::{Check, Checked};
use super::credentials::algorithm;
use super::keys::{self, SessionStore};
use super::raw::{RawCookie, RawOidc, RawRedis, RawSession};
use crate::core::session::cookies::{CookieAttributes, SameSite};
use crate::core::session::seal;
use crate::jwks::RefreshSettings;
use crate::oidc::{OidcSettings, StoreSettings};
use crate::secret::Secret;

fn path_key(c: &Check<'_>, key: &str, value: &str) -> Checked<String> {
    if !value.starts_with('/') || value.contains(['?', '#']) {
        return c.fail(key, format!("{value:?} must be a path starting with '/' (no query)"));
    }
    Ok(value.to_string())
}

pub fn build(raw: RawOidc, c: &Check<'_>) -> Checked<OidcSettings> {
    // The cookie and the session are checked whatever the provider part below finds.
    let cookie = cookie(&raw.cookie, c);
    let session = session(&raw.session, c);
    if raw.name.is_empty() {
        return c.fail("oidc.name", "must not be empty");
    }
    if !raw.issuer.starts_with("https://") && !raw.issuer.starts_with("http://") {
        return c.fail("oidc.issuer", format!("{:?} is not an http(s) URL", raw.issuer));
    }
    if raw.client_id.is_empty() {
        return c.fail("oidc.client_id", "must not be empty");
    }
    let client_secret =
        Secret(c.secret("oidc.client_secret", raw.client_secret_file.as_deref(), raw.client_secret_env.as_deref())?);
    let mut scopes = raw.scopes.clone();
    if !scopes.iter().any(|s| s == "openid") {
        scopes.insert(0, "openid".into());
    }
    let (callback_path, callback_url) = match url::Url::parse(&raw.callback_path) {
        Ok(url) if url.scheme() == "https" || url.scheme() == "http" => {
            (url.path().to_string(), Some(raw.callback_path))
        }
        _ => (path_key(c, "oidc.callback_path", &raw.callback_path)?, None),
    };
    let mut origins = Vec::new();
    if let Some(url) = &callback_url {
        origins.push(url::Url::parse(url).expect("parsed above").origin().ascii_serialization());
    }
    for (i, text) in raw.origins.iter().enumerate() {
        let origin = parse_origin(text).or_else(|why| c.fail(format!("oidc.origins[{i}]"), why))?;
        if !origins.contains(&origin) {
            origins.push(origin);
        }
    }
    if origins.is_empty() {
        return c.fail(
            "oidc.origins",
            "list the origins browsers reach the gateway at (e.g. [https://app.example.com]), or give \
             callback_path as an absolute URL: redirect URIs are never built from a request's Host header",
        );
    }
    let logout_get = c.choice("oidc.logout_get", &keys::OIDC_LOGOUT_GET, &raw.logout_get)?;
    let logout_path = path_key(c, "oidc.logout_path", &raw.logout_path)?;
    if logout_path == callback_path {
        return c.fail("oidc.logout_path", "must differ from callback_path");
    }
    if !raw.post_logout_redirect.starts_with('/') && url::Url::parse(&raw.post_logout_redirect).is_err() {
        return c.fail("oidc.post_logout_redirect", "must be a path on the gateway host or an absolute URL");
    }
    let backchannel_logout_path = match &raw.backchannel_logout_path {
        Some(p) => Some(path_key(c, "oidc.backchannel_logout_path", p)?),
        None => None,
    };
    let timeout = c.duration("oidc.timeout", &raw.timeout)?;
    let mut id_token_algorithms = Vec::new();
    for (i, name) in raw.id_token_algorithms.iter().enumerate() {
        let key = format!("oidc.id_token_algorithms[{i}]");
        let Some(alg) = algorithm(name) else {
            return c.fail(key, format!("{name:?} is not a supported algorithm"));
        };
        if crate::core::jwt::family_of(alg) == crate::core::jwt::KeyFamily::Hmac {
            return c.fail(key, "ID tokens are verified with the provider's public keys, not HS*");
        }
        id_token_algorithms.push(alg);
    }
    if id_token_algorithms.is_empty() {
        return c.fail("oidc.id_token_algorithms", "list at least one algorithm");
    }

    let durations = (
        c.duration("oidc.refresh_before", &raw.refresh_before),
        c.duration("oidc.login_timeout", &raw.login_timeout),
        c.duration("oidc.provider_check_interval", &raw.provider_check_interval),
    );
    let ((cookie_name, cookie), (lifetime, keys, store)) = (cookie?, session?);
    Ok(OidcSettings {
        name: raw.name,
        issuer: raw.issuer,
        client_id: raw.client_id,
        client_secret,
        scopes,
        callback_path,
        callback_url,
        origins,
        logout_get,
        csrf_guard: raw.csrf_guard,
        pass_client_authorization: raw.pass_client_authorization,
        pass_method_override: raw.pass_method_override,
        logout_path,
        post_logout_redirect: raw.post_logout_redirect,
        end_session: raw.end_session,
        backchannel_logout_path,
        forward_access_token: raw.forward_access_token,
        refresh_before: durations.0?,
        login_timeout: durations.1?,
        provider_check_interval: durations.2?,
        timeout,
        id_token_algorithms,
        cookie_name,
        cookie,
        lifetime,
        keys: keys.into_iter().map(Secret).collect(),
        store,
        // The provider's keys refresh as a JWT provider's do by default.
        keys_refresh: RefreshSettings {
            interval: keys::JWKS_INTERVAL.default_value(),
            min_interval: keys::JWKS_MIN_INTERVAL.default_value(),
            max_interval: keys::JWKS_MAX_INTERVAL.default_value(),
            unknown_kid_min_interval: keys::JWKS_UNKNOWN_KID_MIN_INTERVAL.default_value(),
            // The callback waits for the provider's own answer anyway (its timeout applies).
            unknown_kid_wait: timeout,
            timeout,
        },
    })
}

/// `oidc.cookie`: the session cookie's name and attributes.
fn cookie(raw: &RawCookie, c: &Check<'_>) -> Checked<(String, CookieAttributes)> {
    let cookie_name = match &raw.name {
        Some(name) => name.clone(),
        None if raw.secure && raw.domain.is_none() => "__Host-gatehouse_session".to_string(),
        None => "gatehouse_session".to_string(),
    };
    if cookie_name.is_empty()
        || !cookie_name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    {
        return c.fail("oidc.cookie.name", format!("{cookie_name:?} is not a valid cookie name"));
    }
    let same_site = c.choice("oidc.cookie.same_site", &keys::OIDC_COOKIE_SAME_SITE, &raw.same_site)?;
    if same_site == SameSite::None && !raw.secure {
        return c.fail("oidc.cookie.same_site", "browsers refuse SameSite=None without Secure");
    }
    if cookie_name.starts_with("__Host-") && (!raw.secure || raw.domain.is_some()) {
        return c.fail("oidc.cookie.name", "a __Host- cookie must be Secure and have no domain");
    }
    if let Some(domain) = &raw.domain {
        let label_ok = |l: &str| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !domain.trim_start_matches('.').split('.').all(label_ok) {
            return c.fail("oidc.cookie.domain", format!("{domain:?} is not a domain name"));
        }
    }
    Ok((cookie_name, CookieAttributes { domain: raw.domain.clone(), secure: raw.secure, same_site }))
}

/// `oidc.session`: lifetime, sealing keys and where sessions are kept.
fn session(raw: &RawSession, c: &Check<'_>) -> Checked<(Duration, Vec<Vec<u8>>, StoreSettings)> {
    let session = raw;
    let lifetime = c.duration("oidc.session.lifetime", &session.lifetime)?;
    if lifetime < Duration::from_secs(60) {
        return c.fail("oidc.session.lifetime", "must be at least 1m");
    }
    let mut keys = Vec::new();
    for (i, k) in session.keys.iter().enumerate() {
        let key = format!("oidc.session.keys[{i}]");
        let text = c.secret(&key, k.file.as_deref(), k.env.as_deref())?;
        let bytes = seal::parse_key(&String::from_utf8_lossy(&text)).or_else(|e| c.fail(&key, e.to_string()))?;
        keys.push(bytes);
    }
    if let Err(e) = seal::Sealer::new(&keys) {
        return c.fail("oidc.session.keys", e.to_string());
    }
    let kind = c.choice("oidc.session.store", &keys::OIDC_SESSION_STORE, &session.store)?;
    let store = match (kind, &session.redis) {
        (SessionStore::Cookie, None) => {
            StoreSettings::Cookie { revocations_file: session.revocations_file.as_deref().map(|f| c.path(f)) }
        }
        (SessionStore::Cookie, Some(_)) => return c.fail("oidc.session.redis", "set only with store: redis"),
        (SessionStore::Redis, _) if session.revocations_file.is_some() => {
            return c.fail("oidc.session.revocations_file", "only the cookie store needs one (Redis keeps its own)")
        }
        (SessionStore::Redis, None) => return c.fail("oidc.session.redis", "store: redis needs redis.url"),
        (SessionStore::Redis, Some(r)) => {
            StoreSettings::Redis { settings: redis_settings(r, c)?, prefix: r.prefix.clone() }
        }
    };
    Ok((lifetime, keys, store))
}

/// `scheme://host[:port]` with nothing after it, serialized the way browsers send `Origin`.
fn parse_origin(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    if url.scheme() != "https" && url.scheme() != "http" {
        return Err(format!("{text:?} is not an http(s) origin"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(format!("{text:?} must be only scheme://host[:port], without a path"));
    }
    Ok(url.origin().ascii_serialization())
}

fn redis_settings(r: &RawRedis, c: &Check<'_>) -> Checked<RedisSettings> {
    if r.url.is_empty() {
        return c.fail("oidc.session.redis.url", "must not be empty");
    }
    let socket_type = if r.url.starts_with('/') { SocketType::Unix } else { SocketType::Tcp };
    if socket_type == SocketType::Tcp && shared::serve::split_host_port(&r.url).is_none() {
        return c.fail("oidc.session.redis.url", format!("{:?} is not host:port or a socket path", r.url));
    }
    let auth = match &r.password_env {
        Some(name) => Some(
            String::from_utf8(c.secret("oidc.session.redis.password_env", None, Some(name))?)
                .or_else(|_| c.fail("oidc.session.redis.password_env", "not UTF-8"))?,
        ),
        None => None,
    };
    if r.pool_size == 0 {
        return c.fail("oidc.session.redis.pool_size", "must be at least 1");
    }
    Ok(RedisSettings {
        socket_type,
        topology: Topology::Single,
        url: r.url.clone(),
        auth,
        sentinel_auth: None,
        tls: false,
        tls_client_cert: None::<PathBuf>,
        tls_client_key: None,
        tls_ca_cert: None,
        tls_skip_hostname_verification: false,
        pool_size: r.pool_size,
        timeout: c.duration("oidc.session.redis.timeout", &r.timeout)?,
        max_pipeline_commands: shared::redis::MAX_PIPELINE_COMMANDS,
    })
}

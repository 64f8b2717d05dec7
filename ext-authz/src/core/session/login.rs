//! The browser side of the authorization code flow with PKCE: the state a login carries through
//! the provider (in a short-lived sealed cookie), the authorization and end-session URLs, where a
//! browser may be sent back to, and which requests are browsers at all.

use base64::Engine as _;
use ring::digest::{digest, SHA256};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::core::random::random_token;
use crate::core::request::AuthRequest;

/// What the callback needs to finish a login, sealed into the login cookie.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginState {
    pub state: String,
    pub nonce: String,
    pub verifier: String,
    /// Where to go once signed in: a same-host relative URL.
    pub return_to: String,
    pub expires_at: u64,
}

impl LoginState {
    pub fn new(return_to: String, now: u64, ttl: u64) -> LoginState {
        LoginState {
            state: random_token(24),
            nonce: random_token(24),
            // 32 random bytes → 43 characters, the RFC 7636 minimum length.
            verifier: random_token(32),
            return_to,
            expires_at: now.saturating_add(ttl),
        }
    }

    /// The S256 code challenge for the verifier.
    pub fn challenge(&self) -> String {
        pkce_challenge(&self.verifier)
    }
}

pub fn pkce_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes()))
}

/// The login cookie's name: one per login in flight, so two tabs signing in at once do not
/// overwrite each other's state. `None` when `state` cannot be one of ours: the callback's
/// `state` comes from the request, and only a plain base64url value may name a cookie.
pub fn login_cookie_name(session_cookie: &str, state: &str) -> Option<String> {
    is_state(state).then(|| format!("{session_cookie}_login_{}", &state[..12]))
}

/// What [`LoginState::new`] makes a `state`: base64url, 16 to 128 characters (ours are 32).
pub fn is_state(text: &str) -> bool {
    (16..=128).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub struct AuthorizationRequest<'a> {
    pub endpoint: &'a str,
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub scopes: &'a [String],
    pub login: &'a LoginState,
}

pub fn authorization_url(request: &AuthorizationRequest<'_>) -> String {
    let scope = request.scopes.join(" ");
    let challenge = request.login.challenge();
    append_query(
        request.endpoint,
        &[
            ("response_type", "code"),
            ("client_id", request.client_id),
            ("redirect_uri", request.redirect_uri),
            ("scope", &scope),
            ("state", &request.login.state),
            ("nonce", &request.login.nonce),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    )
}

/// The provider's `end_session_endpoint` with the RP-initiated logout parameters.
pub fn end_session_url(endpoint: &str, client_id: &str, id_token_hint: &str, post_logout: Option<&str>) -> String {
    let mut params = vec![("client_id", client_id)];
    if !id_token_hint.is_empty() {
        params.push(("id_token_hint", id_token_hint));
    }
    if let Some(uri) = post_logout {
        params.push(("post_logout_redirect_uri", uri));
    }
    append_query(endpoint, &params)
}

fn append_query(base: &str, params: &[(&str, &str)]) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}{query}")
}

/// The URL to come back to after the login: the request's own path and query, in the strict
/// alphabet a `Location` header may carry.
pub fn return_target(request: &AuthRequest) -> String {
    let target =
        if request.query.is_empty() { request.path.clone() } else { format!("{}?{}", request.path, request.query) };
    match safe_return_to(&target) {
        Some(target) => location_encode(target),
        None => "/".to_string(),
    }
}

/// Only same-host relative URLs: a path starting with one `/`, not `//host` or `/\host` (which
/// browsers treat as another host), and no control characters that could split headers.
pub fn safe_return_to(target: &str) -> Option<&str> {
    let bytes = target.as_bytes();
    let ok = bytes.first() == Some(&b'/')
        && !matches!(bytes.get(1), Some(b'/') | Some(b'\\'))
        && !bytes.iter().any(|b| b.is_ascii_control() || *b == b' ');
    ok.then_some(target)
}

/// Percent-encodes every byte outside RFC 3986's URI characters (and a `%` that does not start
/// an escape), so the result is plain visible ASCII whatever the request carried.
pub fn location_encode(target: &str) -> String {
    let bytes = target.as_bytes();
    let mut out = String::with_capacity(target.len());
    for (i, &b) in bytes.iter().enumerate() {
        let escape_start = b == b'%'
            && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?".contains(&b) || escape_start {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether `text` is fit for a `Location` header we send: RFC 3986 characters only.
pub fn is_location_safe(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?#%[]".contains(&b))
}

/// Whether a request without a session gets a login redirect or the 401 JSON error (also what
/// tells a browser's visit to the logout path from an API call). Only a top-level navigation is
/// sent to the provider: every redirect sets a login cookie, and the images, scripts, styles and
/// `fetch()` calls of a page — which cannot follow a login anyway — would each add one until the
/// browser's headers outgrow the proxy's limit.
/// - A method other than GET/HEAD (a redirect would lose the body) or `X-Requested-With`: no.
/// - With Fetch Metadata (every current browser sends it, over HTTPS and on loopback): only a
///   navigation to a document. Frames (`Sec-Fetch-Dest: iframe`, `frame`, `embed`, `object`)
///   are not: providers refuse to be framed, so a login there only fails, a cookie each time.
/// - Without (old browsers, scripts): an `Accept` that prefers HTML ([`accept_prefers_html`]);
///   none, or `*/*` alone, is an API client.
pub fn wants_login_redirect(request: &AuthRequest) -> bool {
    if request.method != "GET" && request.method != "HEAD" {
        return false;
    }
    if request.header("x-requested-with").is_some() {
        return false;
    }
    let mode = request.header("sec-fetch-mode").map(str::trim);
    let dest = request.header("sec-fetch-dest").map(str::trim);
    if mode.is_some() || dest.is_some() {
        return mode.is_none_or(|m| m.eq_ignore_ascii_case("navigate"))
            && dest.is_none_or(|d| d.eq_ignore_ascii_case("document"));
    }
    accept_prefers_html(request.header("accept").unwrap_or(""))
}

/// Whether an `Accept` header lists `text/html` with the highest quality of the media ranges
/// it lists (a tie counts: `application/json, text/html` is a browser's form of asking). A
/// wildcard is listed like any other range but is no preference for HTML by itself; a range
/// with an invalid `q` is ignored.
pub fn accept_prefers_html(accept: &str) -> bool {
    let mut html = None;
    let mut best = 0;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim();
        let q = parts
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .map_or(Some(1000), |(_, v)| qvalue(v.trim()));
        let Some(q) = q else { continue };
        if media.eq_ignore_ascii_case("text/html") {
            html = html.max(Some(q));
        }
        best = best.max(q);
    }
    html.is_some_and(|q| q > 0 && q == best)
}

/// An RFC 9110 `qvalue` in thousandths: `0`, `0.8`, `1`, `1.000`; `None` for anything else.
fn qvalue(text: &str) -> Option<u16> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{fraction:0<3}").parse::<u16>().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The scheme the browser used: Envoy's `x-forwarded-proto` (it sets it from the connection),
/// else `:scheme`.
pub fn request_scheme(request: &AuthRequest) -> &str {
    request
        .header("x-forwarded-proto")
        .or_else(|| request.header(":scheme"))
        .map(|s| s.split(',').next().unwrap_or(s).trim())
        .filter(|s| *s == "http" || *s == "https")
        .unwrap_or("https")
}

/// The request's origin as a browser would serialize it (`https://app.example.com`, default
/// port dropped, host lower-case), from the scheme the browser used and the authority; `None`
/// when the authority is not a plain host. Only ever compared with configured origins: what the
/// request says is never echoed.
pub fn request_origin(request: &AuthRequest) -> Option<String> {
    let authority = request.authority.as_str();
    if authority.is_empty() || authority.bytes().any(|b| b"/?#@\\".contains(&b) || !b.is_ascii_graphic()) {
        return None;
    }
    let url = url::Url::parse(&format!("{}://{authority}/", request_scheme(request))).ok()?;
    Some(url.origin().ascii_serialization())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenError {
    #[error("the ID token's nonce does not match the login")]
    Nonce,
    #[error("the ID token has no subject")]
    NoSubject,
    #[error("the ID token names several audiences but its azp is not this client")]
    AuthorizedParty,
}

/// The checks on a verified ID token that signature, `iss`, `aud` and `exp` do not cover.
pub fn check_id_token(claims: &Value, expected_nonce: Option<&str>, client_id: &str) -> Result<(), IdTokenError> {
    if claims.get("sub").and_then(Value::as_str).is_none_or(str::is_empty) {
        return Err(IdTokenError::NoSubject);
    }
    if let Some(nonce) = expected_nonce {
        let got = claims.get("nonce").and_then(Value::as_str).unwrap_or("");
        if !bool::from(subtle::ConstantTimeEq::ct_eq(got.as_bytes(), nonce.as_bytes())) {
            return Err(IdTokenError::Nonce);
        }
    }
    if let Some(Value::Array(audiences)) = claims.get("aud") {
        if audiences.len() > 1 && claims.get("azp").and_then(Value::as_str) != Some(client_id) {
            return Err(IdTokenError::AuthorizedParty);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;

    fn request(method: &str, target: &str, headers: &[(&str, &str)]) -> AuthRequest {
        let headers: HashMap<String, String> = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        AuthRequest::new(method, "app.example.com", target, headers)
    }

    #[test]
    fn pkce_matches_rfc_7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let login = LoginState::new("/".into(), 0, 600);
        assert_eq!(login.verifier.len(), 43);
        assert_ne!(login.state, login.nonce);
    }

    #[test]
    fn the_authorization_url_carries_state_nonce_and_s256() {
        let login = LoginState::new("/x".into(), 0, 600);
        let scopes = vec!["openid".to_string(), "email".to_string()];
        let url = authorization_url(&AuthorizationRequest {
            endpoint: "https://op.example/auth?tenant=a",
            client_id: "app",
            redirect_uri: "https://app.example.com/oauth2/callback",
            scopes: &scopes,
            login: &login,
        });
        assert!(url.starts_with("https://op.example/auth?tenant=a&response_type=code&client_id=app&"));
        assert!(url.contains("redirect_uri=https%3A%2F%2Fapp.example.com%2Foauth2%2Fcallback"));
        assert!(url.contains("scope=openid+email"));
        assert!(url.contains(&format!("state={}", login.state)));
        assert!(url.contains(&format!("nonce={}", login.nonce)));
        assert!(url.contains(&format!("code_challenge={}&code_challenge_method=S256", login.challenge())));
    }

    #[test]
    fn only_same_host_relative_targets_are_followed() {
        assert_eq!(safe_return_to("/orders?id=1"), Some("/orders?id=1"));
        for bad in
            ["//evil.example/", "/\\evil.example", "https://evil.example/", "", "orders", "/a\r\nSet-Cookie: x", "/a b"]
        {
            assert_eq!(safe_return_to(bad), None, "{bad:?}");
        }
        assert_eq!(return_target(&request("GET", "/app?tab=2", &[])), "/app?tab=2");
        // Slashes are merged before anything sees the path: a path on this host, not a host.
        assert_eq!(return_target(&request("GET", "//evil.example/x", &[])), "/evil.example/x");
    }

    /// What Chrome and Firefox send for each kind of request (Accept, Sec-Fetch-Mode, -Dest).
    const NAVIGATION: &[(&str, &str)] = &[
        ("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"),
        ("sec-fetch-mode", "navigate"),
        ("sec-fetch-dest", "document"),
        ("sec-fetch-site", "none"),
    ];
    const SUB_RESOURCES: &[&[(&str, &str)]] = &[
        &[
            ("accept", "image/avif,image/webp,image/apng,*/*;q=0.8"),
            ("sec-fetch-mode", "no-cors"),
            ("sec-fetch-dest", "image"),
        ],
        &[("accept", "*/*"), ("sec-fetch-mode", "no-cors"), ("sec-fetch-dest", "script")],
        &[("accept", "text/css,*/*;q=0.1"), ("sec-fetch-mode", "no-cors"), ("sec-fetch-dest", "style")],
        &[("accept", "*/*"), ("sec-fetch-mode", "cors"), ("sec-fetch-dest", "empty")],
        &[("accept", "text/html,*/*;q=0.8"), ("sec-fetch-mode", "cors"), ("sec-fetch-dest", "empty")],
        &[("accept", "text/html,*/*;q=0.8"), ("sec-fetch-mode", "navigate"), ("sec-fetch-dest", "iframe")],
        &[("accept", "text/html,*/*;q=0.8"), ("sec-fetch-mode", "navigate"), ("sec-fetch-dest", "frame")],
        &[("accept", "text/html,*/*;q=0.8"), ("sec-fetch-mode", "navigate"), ("sec-fetch-dest", "embed")],
        &[("accept", "text/html"), ("sec-fetch-mode", "same-origin"), ("sec-fetch-dest", "worker")],
    ];

    #[test]
    fn only_navigations_to_a_document_are_redirected() {
        assert!(wants_login_redirect(&request("GET", "/", NAVIGATION)));
        assert!(wants_login_redirect(&request("HEAD", "/", NAVIGATION)));
        assert!(wants_login_redirect(&request("GET", "/", &[("sec-fetch-mode", "navigate")])));
        assert!(wants_login_redirect(&request("GET", "/", &[("sec-fetch-dest", "Document")])));
        for headers in SUB_RESOURCES {
            assert!(!wants_login_redirect(&request("GET", "/", headers)), "{headers:?}");
        }
        // Fetch Metadata decides over Accept when present.
        assert!(!wants_login_redirect(&request("GET", "/", &[("accept", "text/html"), ("sec-fetch-mode", "no-cors")])));
        for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
            assert!(!wants_login_redirect(&request(method, "/", NAVIGATION)), "{method}");
        }
        let xhr = [NAVIGATION, &[("x-requested-with", "XMLHttpRequest")]].concat();
        assert!(!wants_login_redirect(&request("GET", "/", &xhr)));
    }

    #[test]
    fn without_fetch_metadata_an_accept_preferring_html_is_a_browser() {
        let redirected = |accept: &str| wants_login_redirect(&request("GET", "/", &[("accept", accept)]));
        for browser in [
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            "text/html",
            "TEXT/HTML ; charset=utf-8",
            "application/json, text/html",
            "text/html;q=0.5, */*;q=0.1",
            "text/html;level=1;q=1.000",
        ] {
            assert!(redirected(browser), "{browser:?}");
        }
        for api in [
            "",
            "*/*",
            "application/json",
            "text/*",
            "text/html;q=0.9, application/json",
            "text/html;q=0.5, */*",
            "text/html;q=0",
            "text/html;q=2, application/json;q=0.5",
            "image/webp,*/*;q=0.8",
        ] {
            assert!(!redirected(api), "{api:?}");
        }
        assert!(!wants_login_redirect(&request("GET", "/", &[])), "no Accept is not a browser");
    }

    #[test]
    fn id_token_checks() {
        let claims = json!({"sub": "alice", "nonce": "n1", "aud": ["app", "other"], "azp": "app"});
        assert_eq!(check_id_token(&claims, Some("n1"), "app"), Ok(()));
        assert_eq!(check_id_token(&claims, Some("n2"), "app"), Err(IdTokenError::Nonce));
        assert_eq!(check_id_token(&claims, Some("n1"), "other"), Err(IdTokenError::AuthorizedParty));
        assert_eq!(check_id_token(&json!({"nonce": "n1"}), Some("n1"), "app"), Err(IdTokenError::NoSubject));
        assert_eq!(check_id_token(&json!({"sub": "a"}), Some("n1"), "app"), Err(IdTokenError::Nonce));
    }

    #[test]
    fn end_session_url_has_the_hint_and_the_return() {
        let url = end_session_url("https://op/logout", "app", "h.i.nt", Some("https://app/"));
        assert_eq!(
            url,
            "https://op/logout?client_id=app&id_token_hint=h.i.nt&post_logout_redirect_uri=https%3A%2F%2Fapp%2F"
        );
    }
}

#[cfg(test)]
mod request_values_tests {
    use std::collections::HashMap;

    use super::*;

    fn request(authority: &str, headers: &[(&str, &str)]) -> AuthRequest {
        let headers: HashMap<String, String> = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        AuthRequest::new("GET", authority, "/", headers)
    }

    #[test]
    fn state_must_look_like_ours_to_name_a_cookie() {
        let ours = LoginState::new("/".into(), 0, 60).state;
        assert_eq!(login_cookie_name("s", &ours), Some(format!("s_login_{}", &ours[..12])));
        for bad in ["short", "abcdefghijkl;Domain=evil.example", "abcdefghijklmnop\r\nX: y", "ééééééééééééééééé", ""]
        {
            assert_eq!(login_cookie_name("s", bad), None, "{bad:?}");
        }
        assert_eq!(login_cookie_name("s", &"a".repeat(129)), None);
    }

    #[test]
    fn return_targets_are_encoded_to_the_uri_alphabet() {
        assert_eq!(location_encode("/a b/é?q=<x>&r=%41%zz"), "/a%20b/%C3%A9?q=%3Cx%3E&r=%41%25zz");
        assert!(is_location_safe(&location_encode("/\u{7f}\"{}|^`")));
    }

    #[test]
    fn the_request_origin_is_normalised_or_nothing() {
        let https = [("x-forwarded-proto", "https")];
        assert_eq!(request_origin(&request("App.Example.com:443", &https)).as_deref(), Some("https://app.example.com"));
        assert_eq!(
            request_origin(&request("127.0.0.1:8080", &[(":scheme", "http")])).as_deref(),
            Some("http://127.0.0.1:8080")
        );
        for bad in ["evil.example/x", "a@b", "", "a b", "x\r\ny"] {
            assert_eq!(request_origin(&request(bad, &https)), None, "{bad:?}");
        }
    }
}

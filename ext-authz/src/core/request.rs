//! The request being checked, as both Envoy modes describe it: method, host, path and query
//! apart, headers with lower-case names. Cookies and query parameters are parsed on demand.

use std::borrow::Cow;
use std::collections::HashMap;

use super::path::{normalize, PathError};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthRequest {
    pub method: String,
    /// `:authority` / `Host`, without a port.
    pub host: String,
    /// `:authority` / `Host` as sent, with its port (for URLs back to this host).
    pub authority: String,
    /// The path without the query string, normalized (see [`super::path`]); as sent when it
    /// was refused.
    pub path: String,
    /// Why the path could not be normalized; such a request is refused before routing.
    pub path_error: Option<PathError>,
    /// The raw query string (no `?`).
    pub query: String,
    /// Lower-case names; Envoy joins repeated headers with `,`.
    pub headers: HashMap<String, String>,
    /// The SPIFFE ID of the mutual TLS peer Envoy terminated (its `source.principal` or peer
    /// certificate); set by the gRPC adapter from Envoy's own attributes, never from a header.
    pub peer_spiffe_id: Option<shared::spiffe::SpiffeId>,
    /// The downstream address Envoy gives (`attributes.source.address`; gRPC mode only).
    pub peer_address: Option<std::net::IpAddr>,
    /// Envoy's `context_extensions` for this route (gRPC mode only).
    pub context_extensions: HashMap<String, String>,
    /// The policy name in Envoy's route metadata (`route_metadata_context`), read at the
    /// config's `policy_selector.route_metadata` (gRPC mode only; Envoy Gateway's
    /// `includeRouteMetadata` fills it). Only the policy selector reads route metadata, so only
    /// that value is taken from it.
    pub route_annotation: super::route_annotation::RouteAnnotation,
}

impl AuthRequest {
    /// Builds a request from Envoy's view: `target` is the request target with its query.
    /// A request without an `x-request-id` (HTTP mode when Envoy is not told to pass it, or a
    /// caller that sends none) gets a random one, so every error body and log line names it.
    /// `method` and `authority` are taken as they are when owned (a decoded request's fields),
    /// copied when borrowed.
    pub fn new(
        method: impl Into<String>,
        authority: impl Into<String>,
        target: &str,
        mut headers: HashMap<String, String>,
    ) -> AuthRequest {
        if headers.get("x-request-id").is_none_or(|id| id.is_empty()) {
            headers.insert("x-request-id".into(), super::random::random_token(12));
        }
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, query),
            None => (target, ""),
        };
        let (path, path_error) = match normalize(path) {
            Ok(normalized) => (normalized, None),
            Err(e) => (path.to_string(), Some(e)),
        };
        let mut method = method.into();
        method.make_ascii_uppercase();
        let authority = authority.into();
        AuthRequest {
            method,
            host: strip_port(&authority).to_ascii_lowercase(),
            authority,
            path,
            path_error,
            query: query.to_string(),
            headers,
            peer_spiffe_id: None,
            peer_address: None,
            context_extensions: HashMap::new(),
            route_annotation: super::route_annotation::RouteAnnotation::Absent,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// `x-request-id`, for error bodies and logs.
    pub fn request_id(&self) -> &str {
        self.header("x-request-id").unwrap_or("")
    }

    /// A cookie's value. Envoy merges several `cookie` headers with `,`, so both `;` and `,`
    /// separate cookies here.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.header("cookie")?.split([';', ',']).find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v)
        })
    }

    /// A query parameter's value, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k) == name).then(|| percent_decode(v).into_owned())
        })
    }
}

fn strip_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority.split_once(']').map_or(authority, |(host, _)| &host[1..]);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// Decodes `%XX` escapes and `+` (as a space, per form encoding); bad escapes stay as written,
/// and bytes that are not UTF-8 become U+FFFD.
/// Borrows `text` when there is nothing to decode: a query's every key is decoded to be
/// compared, on each check that looks for a parameter.
pub fn percent_decode(text: &str) -> Cow<'_, str> {
    match text.contains('+') {
        true => Cow::Owned(String::from_utf8_lossy(&percent_decode_bytes(text, true)).into_owned()),
        false => percent_encoding::percent_decode_str(text).decode_utf8_lossy(),
    }
}

/// `%XX` escapes decoded byte-wise, and `+` as a space when `plus_is_space` (form encoding);
/// bad escapes (`%` not followed by two hex digits) stay as written.
pub fn percent_decode_bytes(text: &str, plus_is_space: bool) -> Vec<u8> {
    // `+` first: a `%2B` decodes to a `+` that stays one.
    if plus_is_space && text.contains('+') {
        percent_encoding::percent_decode_str(&text.replace('+', " ")).collect()
    } else {
        percent_encoding::percent_decode_str(text).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(target: &str, headers: &[(&str, &str)]) -> AuthRequest {
        let headers = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        AuthRequest::new("get", "API.example.com:8443", target, headers)
    }

    #[test]
    fn splits_target_and_normalises() {
        let r = request("/a/b?x=1&token=a%2Bb+c", &[]);
        assert_eq!((r.method.as_str(), r.host.as_str(), r.path.as_str()), ("GET", "api.example.com", "/a/b"));
        assert_eq!(r.query_param("token").as_deref(), Some("a+b c"));
        assert_eq!(r.query_param("missing"), None);
        assert_eq!(strip_port("[::1]:80"), "::1");
        let dotted = request("/public/%2e%2e/api/me?x=1", &[]);
        assert_eq!((dotted.path.as_str(), dotted.path_error), ("/api/me", None));
        let refused = request("/public/..%2fapi/me", &[]);
        assert_eq!(refused.path_error, Some(PathError::EncodedSeparator));
        // A `;` is judged in the path only: the query is cut off at the first `?`, as every
        // backend does, before the path is normalized.
        let in_query = request("/public/x?a=;/../api/me", &[]);
        assert_eq!((in_query.path.as_str(), in_query.path_error), ("/public/x", None));
        let in_path = request("/public/..;/api/me?a=1", &[]);
        assert_eq!((in_path.path_error, in_path.query.as_str()), (Some(PathError::Parameter), "a=1"));
    }

    #[test]
    fn cookies_from_merged_headers() {
        let r = request("/", &[("cookie", "a=1; session=xyz,b=2")]);
        assert_eq!(r.cookie("session"), Some("xyz"));
        assert_eq!(r.cookie("b"), Some("2"));
        assert_eq!(r.cookie("c"), None);
    }

    #[test]
    fn a_request_without_an_id_gets_one() {
        let given = request("/", &[("x-request-id", "abc")]);
        assert_eq!(given.request_id(), "abc");
        let (a, b) = (request("/", &[]), request("/", &[("x-request-id", "")]));
        assert_eq!((a.request_id().len(), b.request_id().len()), (16, 16));
        assert_ne!(a.request_id(), b.request_id());
    }

    #[test]
    fn bad_escapes_stay() {
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        // Found by the login flow fuzz target: a `%` before a multi-byte character panicked.
        assert_eq!(percent_decode("%\u{11987}x%41"), "%\u{11987}xA");
    }

    #[test]
    fn escapes_of_either_case_decode_byte_wise() {
        assert_eq!(percent_decode("a%2fb%2Fc%41"), "a/b/cA");
        assert_eq!(percent_decode("%C3%A9"), "\u{e9}", "two escapes, one character");
        assert_eq!(percent_decode("%4"), "%4", "one digit is not an escape");
        assert_eq!(percent_decode("%%41"), "%A");
        assert_eq!(percent_decode_bytes("%FF%00", false), [0xff, 0], "bytes as they are");
        assert_eq!(percent_decode("%FF"), "\u{fffd}", "not UTF-8: replaced");
    }

    #[test]
    fn plus_is_a_space_only_in_form_encoding() {
        assert_eq!(percent_decode("a+b%2Bc"), "a b+c");
        assert_eq!(percent_decode_bytes("a+b%2Bc", true), b"a b+c");
        assert_eq!(percent_decode_bytes("a+b%2Bc", false), b"a+b+c");
    }
}

//! Who is calling besides the user: the calling workload's identity (its SPIFFE ID, from the
//! mutual TLS connection Envoy terminated) and the request principal (`<iss>/<sub>` of the
//! user's token, as Istio's `requestPrincipals` writes it).
//!
//! The workload's identity comes from exactly one place, chosen in config:
//! - `peer` (default): Envoy's own attributes — `source.principal` (the peer certificate's
//!   first URI SAN) or, with `include_peer_certificate`, the certificate itself. Nothing a
//!   client sends can change them.
//! - `xfcc`: the last element of `x-forwarded-client-cert`, for when mutual TLS ends at a proxy
//!   in front of Envoy. Only safe when that proxy replaces the header (Envoy's `SANITIZE_SET`)
//!   or appends to one only trusted hops sent, so it is never the default; the header is then
//!   removed before the request goes upstream.

use shared::spiffe::SpiffeId;

use super::request::AuthRequest;
use super::xfcc;

/// The header a trusting `xfcc` source reads (and removes).
pub const XFCC: &str = "x-forwarded-client-cert";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalSource {
    Peer,
    Xfcc,
}

/// The `workload_identity:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadIdentity {
    pub source: PrincipalSource,
    /// When not empty, identities of other trust domains are not taken as anyone's.
    pub trust_domains: Vec<String>,
    /// The identity header carrying the caller's SPIFFE ID upstream (owned: removed when there
    /// is none, so a client cannot supply it).
    pub header: Option<String>,
}

impl Default for WorkloadIdentity {
    fn default() -> Self {
        WorkloadIdentity { source: PrincipalSource::Peer, trust_domains: Vec::new(), header: None }
    }
}

impl WorkloadIdentity {
    /// The calling workload's SPIFFE ID, when its source names exactly one of a trusted domain.
    pub fn principal(&self, request: &AuthRequest) -> Option<SpiffeId> {
        let id = match self.source {
            PrincipalSource::Peer => request.peer_spiffe_id.clone()?,
            PrincipalSource::Xfcc => {
                // The SPIFFE specification allows one URI SAN per workload certificate; an
                // element naming two is ambiguous (or a forged value spliced into the
                // proxy's element), and names nobody.
                let uris = xfcc::last_element_uris(request.header(XFCC)?);
                let mut ids = uris.iter().filter_map(|uri| SpiffeId::parse(uri).ok());
                let first = ids.next()?;
                if ids.any(|other| other != first) {
                    return None;
                }
                first
            }
        };
        let trusted = self.trust_domains.is_empty() || self.trust_domains.iter().any(|t| t == id.trust_domain());
        trusted.then_some(id)
    }
}

/// A request principal pattern, Istio's way: `*` (any), `prefix*`, `*suffix` or an exact value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextPattern {
    Any,
    Exact(String),
    Prefix(String),
    Suffix(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextPatternError {
    #[error("empty")]
    Empty,
    #[error("'*' may only start or end a pattern (exact, prefix*, *suffix or *)")]
    StarInside,
}

impl TextPattern {
    pub fn parse(text: &str) -> Result<TextPattern, TextPatternError> {
        if text.is_empty() {
            return Err(TextPatternError::Empty);
        }
        if text == "*" {
            return Ok(TextPattern::Any);
        }
        let (pattern, inner) = if let Some(rest) = text.strip_suffix('*') {
            (TextPattern::Prefix(rest.to_string()), rest)
        } else if let Some(rest) = text.strip_prefix('*') {
            (TextPattern::Suffix(rest.to_string()), rest)
        } else {
            (TextPattern::Exact(text.to_string()), text)
        };
        if inner.contains('*') {
            return Err(TextPatternError::StarInside);
        }
        Ok(pattern)
    }

    pub fn matches(&self, text: &str) -> bool {
        match self {
            TextPattern::Any => true,
            TextPattern::Exact(exact) => text == exact,
            TextPattern::Prefix(prefix) => text.starts_with(prefix.as_str()),
            TextPattern::Suffix(suffix) => text.ends_with(suffix.as_str()),
        }
    }
}

/// `<iss>/<sub>` of a token's claims; `None` unless both are strings.
pub fn request_principal(claims: &serde_json::Value) -> Option<String> {
    let text = |name: &str| claims.get(name).and_then(serde_json::Value::as_str);
    Some(format!("{}/{}", text("iss")?, text("sub")?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(peer: Option<&str>, xfcc: Option<&str>) -> AuthRequest {
        let headers = xfcc.map(|v| (XFCC.to_string(), v.to_string())).into_iter().collect();
        let mut request = AuthRequest::new("GET", "api", "/", headers);
        request.peer_spiffe_id = peer.map(|p| SpiffeId::parse(p).unwrap());
        request
    }

    #[test]
    fn the_peer_source_ignores_xfcc() {
        let peer = WorkloadIdentity::default();
        let forged = request(None, Some("URI=spiffe://td/ns/shop/sa/admin"));
        assert_eq!(peer.principal(&forged), None, "a client-sent header names nobody");
        let real = request(Some("spiffe://td/ns/shop/sa/web"), Some("URI=spiffe://td/ns/shop/sa/admin"));
        assert_eq!(peer.principal(&real).unwrap().to_string(), "spiffe://td/ns/shop/sa/web");
    }

    #[test]
    fn a_trusted_xfcc_gives_its_last_element_if_it_names_one_workload() {
        let xfcc = WorkloadIdentity { source: PrincipalSource::Xfcc, ..WorkloadIdentity::default() };
        let id = |header: &str| xfcc.principal(&request(None, Some(header))).map(|id| id.to_string());
        assert_eq!(id("By=spiffe://td/gw;URI=spiffe://td/ns/a/sa/b").as_deref(), Some("spiffe://td/ns/a/sa/b"));
        assert_eq!(id("URI=spiffe://td/admin,By=x;URI=spiffe://td/web").as_deref(), Some("spiffe://td/web"));
        assert_eq!(id("URI=spiffe://td/admin;URI=spiffe://td/web"), None, "two identities: ambiguous");
        assert_eq!(id("URI=spiffe://td/web;URI=spiffe://td/web").as_deref(), Some("spiffe://td/web"));
        assert_eq!(id("URI=https://not-spiffe.example"), None);
        assert_eq!(xfcc.principal(&request(Some("spiffe://td/peer"), None)), None, "xfcc only");
    }

    proptest::proptest! {
        /// Whatever a client puts in front of the element a trusted proxy appends, the
        /// principal is that element's workload or nobody — never one the client wrote.
        #[test]
        fn a_client_prefix_never_names_the_workload(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just("\""), proptest::strategy::Just("\\"), proptest::strategy::Just(","),
                    proptest::strategy::Just(";"), proptest::strategy::Just("="),
                    proptest::strategy::Just("URI=spiffe://td/admin"), proptest::strategy::Just("Subject=\"CN=a"),
                    proptest::strategy::Just("x"),
                ],
                0..16,
            )
        ) {
            let prefix = parts.concat();
            let xfcc = WorkloadIdentity { source: PrincipalSource::Xfcc, ..WorkloadIdentity::default() };
            // A subject with an escaped quote (a certificate may have one) shifts the quoting
            // of a prefix that ends inside quotes: the element's own URI ends up beside the
            // client's, and only the one-identity rule keeps the client's from counting.
            let header = format!(r#"{prefix},By=spiffe://td/gw;Hash=ab12;Subject="CN=we\"b,O=shop";URI=spiffe://td/web"#);
            let principal = xfcc.principal(&request(None, Some(&header))).map(|id| id.to_string());
            proptest::prop_assert!(principal.is_none() || principal.as_deref() == Some("spiffe://td/web"), "{header}");
        }
    }

    #[test]
    fn other_trust_domains_are_nobody() {
        let policy = WorkloadIdentity { trust_domains: vec!["shop.example".into()], ..WorkloadIdentity::default() };
        assert!(policy.principal(&request(Some("spiffe://shop.example/ns/a/sa/b"), None)).is_some());
        assert_eq!(policy.principal(&request(Some("spiffe://evil.example/ns/a/sa/b"), None)), None);
    }

    #[test]
    fn istio_style_patterns() {
        let p = |text: &str| TextPattern::parse(text).unwrap();
        assert!(p("*").matches("https://idp/x"));
        assert!(p("https://idp.example/*").matches("https://idp.example/user-1"));
        assert!(!p("https://idp.example/*").matches("https://idp.example.evil/user-1"));
        assert!(p("*/user-1").matches("https://any/user-1") && !p("*/user-1").matches("https://any/user-10"));
        assert!(p("https://idp/u").matches("https://idp/u") && !p("https://idp/u").matches("https://idp/u2"));
        assert_eq!(TextPattern::parse("a*b"), Err(TextPatternError::StarInside));
        assert_eq!(TextPattern::parse("**"), Err(TextPatternError::StarInside));
        assert_eq!(TextPattern::parse(""), Err(TextPatternError::Empty));
        assert_eq!(request_principal(&json!({"iss": "https://idp", "sub": "u1"})).as_deref(), Some("https://idp/u1"));
        assert_eq!(request_principal(&json!({"sub": "u1"})), None);
    }
}

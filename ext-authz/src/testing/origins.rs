//! The one table of cases for the origin rule that the CSRF guard and the logout check share
//! (`core::decision::from_our_origin`): each test runs both checks over these same cases, so
//! the two cannot drift apart again.

/// What a case's `Origin` header holds.
#[derive(Debug, Clone, Copy)]
pub enum OriginHeader {
    /// The origin the request came to, as a browser serializes it.
    Own,
    /// Another origin of the same configuration (a sibling application).
    Sibling,
    Literal(&'static str),
}

#[derive(Debug, Clone, Copy)]
pub struct OriginCase {
    pub origin: Option<OriginHeader>,
    pub fetch_site: Option<&'static str>,
    /// Whether the request proves it comes from a page of its own origin.
    pub allowed: bool,
    pub why: &'static str,
}

const fn case(
    origin: Option<OriginHeader>,
    fetch_site: Option<&'static str>,
    allowed: bool,
    why: &'static str,
) -> OriginCase {
    OriginCase { origin, fetch_site, allowed, why }
}

use OriginHeader::{Literal, Own, Sibling};

pub const ORIGIN_CASES: &[OriginCase] = &[
    case(Some(Own), None, true, "a page of this origin"),
    case(Some(Own), Some("same-origin"), true, "a page of this origin, both headers"),
    case(None, Some("same-origin"), true, "no Origin, the browser says same-origin"),
    case(Some(Sibling), None, false, "another configured origin is another application"),
    case(Some(Sibling), Some("same-site"), false, "a sibling subdomain"),
    case(Some(Literal("https://evil.example")), None, false, "another site"),
    case(Some(Literal("null")), None, false, "an opaque origin (sandboxed frame, data: URL)"),
    case(Some(Literal("")), None, false, "an empty Origin"),
    case(Some(Own), Some("cross-site"), false, "the browser says cross-site, whatever Origin says"),
    case(Some(Own), Some("none"), false, "the browser says no page made it"),
    case(Some(Literal("https://evil.example")), Some("same-origin"), false, "Origin names another site"),
    case(None, Some("none"), false, "a typed URL or bookmark: no page asked for a state change"),
    case(None, Some("same-site"), false, "a sibling subdomain, no Origin"),
    case(None, Some("cross-site"), false, "another site, no Origin"),
    case(None, None, false, "no proof of origin at all"),
];

impl OriginCase {
    /// The case's headers for a request to `own`, with `sibling` configured beside it.
    pub fn headers(&self, own: &str, sibling: &str) -> Vec<(&'static str, String)> {
        let mut headers = Vec::new();
        match self.origin {
            Some(Own) => headers.push(("origin", own.to_string())),
            Some(Sibling) => headers.push(("origin", sibling.to_string())),
            Some(Literal(text)) => headers.push(("origin", text.to_string())),
            None => {}
        }
        if let Some(site) = self.fetch_site {
            headers.push(("sec-fetch-site", site.to_string()));
        }
        headers
    }
}

//! What a request riding on a session cookie must prove, or must not carry: the one origin rule
//! of the CSRF guard and the logout path, and the method overrides frameworks honour.

use crate::core::request::AuthRequest;
use crate::core::session::login::request_origin;

/// The headers frameworks read as "treat this request as another method" (Express's
/// method-override, Symfony, Rails via Rack, ASP.NET, Google APIs). The `_method` query
/// parameter is the other spelling; a `_method` form field in a body is out of our reach.
pub const METHOD_OVERRIDE_HEADERS: [&str; 3] = ["x-http-method-override", "x-http-method", "x-method-override"];
pub const METHOD_OVERRIDE_QUERY: &str = "_method";

/// Whether a request proves it comes from its own origin, and that origin is one of `origins`:
/// the one origin rule of the CSRF guard and the logout check. The origin the request came to
/// (scheme and authority, as [`request_origin`] serializes them) must be configured, and the
/// browser must say the request was made by a page of that same origin: its `Origin` equals it,
/// or, without an `Origin`, `Sec-Fetch-Site: same-origin` — and a `Sec-Fetch-Site` it sends
/// must say `same-origin` in either case. Anything else proves nothing: another
/// configured origin (a sibling application), `Origin: null`, `Sec-Fetch-Site: none` (a typed
/// URL or a bookmark: no page asked for it, and a state change must not ride on one), `same-site`,
/// or neither header (browsers since 2020 send one or the other on a POST).
pub fn from_our_origin(request: &AuthRequest, origins: &[String]) -> bool {
    let Some(own) = request_origin(request).filter(|own| origins.iter().any(|o| o == own)) else {
        return false;
    };
    let fetch_site = request.header("sec-fetch-site").map(str::trim);
    if fetch_site.is_some_and(|site| site != "same-origin") {
        return false;
    }
    match request.header("origin") {
        Some(origin) => origin.trim().eq_ignore_ascii_case(&own),
        None => fetch_site.is_some(),
    }
}

//! Request paths normalized before any route sees them.
//!
//! Why: plain Envoy forwards paths as the client wrote them unless its connection manager is
//! told to normalize, while most backends resolve `.` and `..` segments, decode escapes and
//! merge slashes. A path that matched a public rule as written (`/public/../api/me`) would
//! then reach a protected resource. So routes only ever see the normalized form — the one the
//! backend will act on — and what cannot be normalized safely is refused:
//!
//! 1. percent-escapes of unreserved characters (`A–Z a–z 0–9 - . _ ~`) are decoded and every
//!    other escape's hex digits upper-cased (RFC 3986 §6.2.2);
//! 2. runs of slashes become one (as Envoy's `merge_slashes`);
//! 3. `.` and `..` segments are removed (RFC 3986 §5.2.4);
//! 4. a path that still holds an encoded `/` or `\` (`%2F`, `%5C`), a backslash, a control
//!    character, or a `..` right after an empty segment (`/a//../b`: `/a/b` by RFC 3986, `/b`
//!    once slashes are merged first) is refused: backends disagree on what those mean;
//! 5. so is a path that holds a `;`, as written or encoded (`%3B`, `%3b`). Tomcat and Jetty 9
//!    cut a path parameter (`;` up to the next `/`) off every segment *before* resolving dot
//!    segments, so `/public/..;/orders/1` is `/orders/1` to them; Spring strips `;jsessionid=`
//!    and matrix parameters; nginx, Express and Go keep `..;` as a plain name. Envoy forwards
//!    the `;` (its `normalize_path` has no notion of path parameters, beyond resolving a
//!    literal `..;x` as `..`) and we cannot rewrite the path the backend gets, so no one
//!    normalized form is what every backend acts on. Refusing is what the strictest of them
//!    do (Spring Security's `StrictHttpFirewall`; Jetty 10+ for `..;`), and it covers the
//!    rest: a parameter that only some servers strip can no longer move a path between rules.

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path does not start with '/'")]
    NotAbsolute,
    #[error("the path holds an encoded '/' or '\\'")]
    EncodedSeparator,
    #[error("the path holds a backslash or a control character")]
    BadCharacter,
    #[error("the path holds a malformed percent-escape")]
    BadEscape,
    #[error("the path holds '..' after an empty segment, which servers resolve differently")]
    Ambiguous,
    #[error("the path holds a ';' (a path parameter), which servers resolve differently")]
    Parameter,
}

/// The normalized form of `raw` (a path without its query).
pub fn normalize(raw: &str) -> Result<String, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    // Before anything is resolved: `..;` must never become a plain name or a `..` here.
    if raw.contains(';') {
        return Err(PathError::Parameter);
    }
    if is_already_normal(raw) {
        // The common case on every check: nothing to decode, merge or resolve.
        return Ok(raw.to_string());
    }
    let decoded = decode_unreserved(raw)?;
    let mut segments: Vec<&str> = Vec::new();
    let mut after_empty = false;
    for segment in decoded.split('/').skip(1) {
        match segment {
            // `/a//../b` is `/a/b` to RFC 3986 (and Envoy's normalize_path) but `/b` to a
            // server that merges slashes first: no answer is safe, so none is given.
            ".." if after_empty => return Err(PathError::Ambiguous),
            ".." => {
                segments.pop();
            }
            "" | "." => {}
            other => segments.push(other),
        }
        after_empty = segment.is_empty();
    }
    // A trailing slash (or a trailing dot segment, which stands for a directory) is kept.
    let last = decoded.rsplit('/').next().unwrap_or("");
    let trailing = matches!(last, "" | "." | "..") && !segments.is_empty();
    let mut path = String::with_capacity(decoded.len());
    for segment in &segments {
        path.push('/');
        path.push_str(segment);
    }
    if trailing || path.is_empty() {
        path.push('/');
    }
    Ok(path)
}

/// No escape, backslash or control character, no empty segment and no dot segment.
fn is_already_normal(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    !bytes.iter().any(|&b| b == b'%' || b == b'\\' || b.is_ascii_control())
        && !raw.contains("//")
        && !raw.split('/').any(|segment| segment == "." || segment == "..")
}

fn decode_unreserved(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(PathError::BadEscape)?;
            let value = std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .filter(|_| hex.iter().all(u8::is_ascii_hexdigit))
                .ok_or(PathError::BadEscape)?;
            match value {
                b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                // Decoded once by the backend, `%3B` is a `;` in a name; decoded by a filter
                // before another strips parameters (Spring's firewall refuses it for this), it
                // is a parameter: refused like the one written plainly.
                b';' => return Err(PathError::Parameter),
                v if v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~') => out.push(v as char),
                v if v.is_ascii_control() => return Err(PathError::BadCharacter),
                v => {
                    out.push('%');
                    out.push_str(&format!("{v:02X}"));
                }
            }
            i += 3;
            continue;
        }
        if b == b'\\' || b.is_ascii_control() {
            return Err(PathError::BadCharacter);
        }
        // Copy the whole UTF-8 character (non-ASCII bytes never start an escape).
        let len = raw[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&raw[i..i + len]);
        i += len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_and_slashes_resolve_as_a_backend_would() {
        for (raw, want) in [
            ("/public/../api/me", "/api/me"),
            ("/public/%2e%2e/api/me", "/api/me"),
            ("/public/%2E%2E/api/me", "/api/me"),
            ("/public/./x", "/public/x"),
            ("//api///me", "/api/me"),
            ("/a/b/..", "/a/"),
            ("/a/.", "/a/"),
            ("/..", "/"),
            ("/../../etc", "/etc"),
            ("/", "/"),
            ("/orders/", "/orders/"),
            ("/%7Euser/%61b", "/~user/ab"),
            ("/a%20b/%c3%a9", "/a%20b/%C3%A9"),
            ("/caf\u{e9}", "/caf\u{e9}"),
        ] {
            assert_eq!(normalize(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn what_cannot_be_normalized_safely_is_refused() {
        for (raw, err) in [
            ("/public/..%2fapi/me", PathError::EncodedSeparator),
            ("/public/%2F..%2Fapi", PathError::EncodedSeparator),
            ("/a%5c..%5cb", PathError::EncodedSeparator),
            ("/a\\..\\b", PathError::BadCharacter),
            ("/a%00b", PathError::BadCharacter),
            ("/a\tb", PathError::BadCharacter),
            ("/a%2", PathError::BadEscape),
            ("/a%zz", PathError::BadEscape),
            ("/a%+1", PathError::BadEscape),
            ("/public//../api/me", PathError::Ambiguous),
            ("/public/.//../api", PathError::Ambiguous),
            ("api/me", PathError::NotAbsolute),
            ("", PathError::NotAbsolute),
        ] {
            assert_eq!(normalize(raw), Err(err), "{raw}");
        }
    }

    /// `;` however written and wherever it sits: Tomcat and Jetty 9 would cut it off with
    /// what follows up to the next `/`, then resolve dot segments (the left column's first
    /// rows are `/orders/1` to them); other servers keep it as part of a name.
    #[test]
    fn path_parameters_are_refused_however_written() {
        for raw in [
            "/public/..;/orders/1",
            "/public/.;/orders/1",
            "/public/..;x=y/orders/1",
            "/public/%2e%2e;/orders/1",
            "/public/%2E%2e;/orders/1",
            "/public/.%2E;jsessionid=1/orders/1",
            "/public/%2e;/orders/1",
            "/public/..%3b/orders/1",
            "/public/..%3B/orders/1",
            "/public/%2e%2E%3b/orders/1",
            "/orders/1;jsessionid=ABC123",
            "/orders;v=2/1",
            // A segment that is only a parameter: empty once stripped, so `..` after it would
            // resolve differently again (see `Ambiguous`).
            "/public/;x/../orders/1",
            "/public/;/orders/1",
            // Trailing: `/public/x;` is `/public/x` to Tomcat, a name with a `;` to nginx.
            "/public/x;",
            "/;",
            // Inside what a `{param}` template would capture.
            "/orders/1;x/items",
            "/orders/1%3Bx/items",
            // Already normal in every other respect (the fast path must not let it through).
            "/public/a;b",
        ] {
            assert_eq!(normalize(raw), Err(PathError::Parameter), "{raw}");
        }
    }

    #[test]
    fn what_only_looks_like_a_parameter_is_kept() {
        for (raw, want) in [
            // Encoded twice: a backend that decodes once sees the three characters `%3B`.
            ("/a%253Bb", "/a%253Bb"),
            ("/a%253b/..", "/"),
            // Other sub-delimiters carry no meaning in any backend listed in the docs.
            ("/a,b/c=d/e!f", "/a,b/c=d/e!f"),
        ] {
            assert_eq!(normalize(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn normalizing_twice_changes_nothing() {
        for raw in ["/public/../api/me", "/a%20b/%c3%a9", "//x/./y/../z/", "/%7e", "/a/./b/"] {
            let once = normalize(raw).unwrap();
            assert_eq!(normalize(&once).unwrap(), once, "{raw}");
        }
    }
}

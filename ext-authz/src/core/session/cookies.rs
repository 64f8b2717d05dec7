//! Reading cookies from a request and writing `Set-Cookie` headers, including values split into
//! chunks: browsers drop a cookie larger than 4096 bytes (name, value and attributes together),
//! which with a token-carrying session means a silent redirect loop. A value longer than
//! [`CHUNK_SIZE`] is stored as `name_0`, `name_1`, …; every write also clears the chunks (or the
//! unchunked cookie) the request carried that the new value no longer uses.
//!
//! A request may carry the same name more than once: a cookie set for a longer path, for a
//! parent domain or over plain HTTP shadows ours, and browsers send it first. Nothing here picks
//! "the" value of a name: [`Cookies::candidates`] lists every value presented (bounded), and the
//! session layer tries each, so a shadowing cookie can never hide a good session and loop the
//! browser through the provider.
//!
//! Everything taken from a request that could end up in a response header is checked against
//! the RFC 6265 alphabets first ([`is_token`], [`is_cookie_value`]).

/// Value bytes per cookie, leaving room for the name and attributes under the 4096-byte limit.
pub const CHUNK_SIZE: usize = 3800;
/// The most chunks a value may have (about 60 KB, far beyond any session); a higher index is
/// not one of ours, and is neither read nor echoed back in a clearing `Set-Cookie`.
pub const MAX_CHUNKS: usize = 16;
/// The most values of one name that are considered: more than any browser keeps for one site
/// (Chrome 180 cookies, Firefox 150) and more than fit in Envoy's default 60 KiB of request
/// headers at the size of the smallest value we seal, so every value a real browser can send is
/// looked at. A forged value costs one failed authentication and no I/O; values beyond are
/// ignored.
pub const MAX_CANDIDATES: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    Lax,
    Strict,
    None,
}

impl SameSite {
    fn as_str(self) -> &'static str {
        match self {
            SameSite::Lax => "Lax",
            SameSite::Strict => "Strict",
            SameSite::None => "None",
        }
    }
}

/// An RFC 7230 token (what RFC 6265 allows as a cookie name).
pub fn is_token(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// RFC 6265 `cookie-octet`s: visible ASCII without `"`, `,`, `;` and `\`.
pub fn is_cookie_value(text: &str) -> bool {
    text.bytes().all(|b| matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E))
}

/// The attributes every cookie we set carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieAttributes {
    pub domain: Option<String>,
    pub secure: bool,
    pub same_site: SameSite,
}

impl CookieAttributes {
    /// `HttpOnly` always: no script ever needs to read a session. Names and values are ours
    /// (checked names, base64url values); a caller passing anything else is a bug.
    pub fn set(&self, name: &str, value: &str, max_age: u64) -> String {
        debug_assert!(is_token(name) && is_cookie_value(value), "{name:?}={value:?}");
        let mut out =
            format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite={}", self.same_site.as_str());
        if self.secure {
            out.push_str("; Secure");
        }
        if let Some(domain) = &self.domain {
            out.push_str("; Domain=");
            out.push_str(domain);
        }
        out
    }

    pub fn clear(&self, name: &str) -> String {
        self.set(name, "", 0)
    }
}

#[derive(Debug, Clone, Copy)]
struct Pair<'a> {
    name: &'a str,
    value: &'a str,
    /// As it came, to pass other applications' cookies on untouched.
    raw: &'a str,
}

/// The cookies of a request, in order. Envoy may merge repeated `cookie` headers with `,`, so a
/// `,` separates pairs too — but only when every piece between commas is itself a `name=value`
/// pair, so another application's `a=x,y` reaches its backend as it was sent.
#[derive(Debug, Default)]
pub struct Cookies<'a> {
    pairs: Vec<Pair<'a>>,
}

impl<'a> Cookies<'a> {
    pub fn parse(header: Option<&'a str>) -> Cookies<'a> {
        let mut pairs = Vec::new();
        for segment in header.unwrap_or("").split(';') {
            let pieces_are_pairs = segment.contains(',')
                && segment.split(',').all(|piece| piece.split_once('=').is_some_and(|(n, _)| is_token(n.trim())));
            if pieces_are_pairs {
                pairs.extend(segment.split(',').filter_map(pair));
            } else {
                pairs.extend(pair(segment));
            }
        }
        Cookies { pairs }
    }

    /// The first value of `name` (for credentials read from a cookie).
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.values(name).next()
    }

    /// Every value of `name`, in the order the browser sent them.
    pub fn values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a str> + 's {
        self.pairs.iter().filter(move |p| p.name == name).map(|p| p.value)
    }

    pub fn names(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.pairs.iter().map(|p| p.name)
    }

    /// The values that may hold what [`write()`] stored under `name`, most likely first: every
    /// non-empty plain value, then the chunks joined taking each chunk's first copy, then its
    /// last copy (a shadowing set of chunks comes first or last, never interleaved). Distinct,
    /// and at most [`MAX_CANDIDATES`].
    pub fn candidates(&self, name: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut add = |value: String| {
            if !value.is_empty() && out.len() < MAX_CANDIDATES && seen.insert(value.clone()) {
                out.push(value);
            }
        };
        for value in self.values(name).take(MAX_CANDIDATES) {
            add(value.to_string());
        }
        // Chunks are rare (a session over 3800 bytes): look for them only when there are some.
        let chunked = self.pairs.iter().any(|p| is_chunk_of(p.name, name));
        for pick_last in [false, true].into_iter().filter(|_| chunked) {
            let mut joined = String::new();
            for index in 0..MAX_CHUNKS {
                let chunk_name = chunk_name(name, index);
                let part = if pick_last { self.values(&chunk_name).last() } else { self.values(&chunk_name).next() };
                match part {
                    Some(part) if !part.is_empty() => joined.push_str(part),
                    _ => break,
                }
            }
            add(joined);
        }
        out
    }

    /// The first candidate (see [`Cookies::candidates`]).
    pub fn read_chunked(&self, name: &str) -> Option<String> {
        self.candidates(name).into_iter().next()
    }

    /// The distinct names of every cookie that belongs to the (possibly chunked) value `name`.
    pub fn chunked_names(&self, name: &str) -> Vec<&'a str> {
        let mut names: Vec<&'a str> = Vec::new();
        for candidate in self.names().filter(|n| *n == name || is_chunk_of(n, name)) {
            if !names.contains(&candidate) {
                names.push(candidate);
            }
        }
        names
    }

    /// The `cookie` header without the cookies `drop` says to drop; `None` when nothing is left.
    pub fn header_without(&self, drop: impl Fn(&str) -> bool) -> Option<String> {
        let kept: Vec<&str> = self.pairs.iter().filter(|p| !drop(p.name)).map(|p| p.raw).collect();
        (!kept.is_empty()).then(|| kept.join("; "))
    }
}

fn pair(text: &str) -> Option<Pair<'_>> {
    let raw = text.trim();
    let (name, value) = raw.split_once('=')?;
    Some(Pair { name: name.trim(), value: value.trim(), raw })
}

pub fn chunk_name(name: &str, index: usize) -> String {
    format!("{name}_{index}")
}

/// `name_N` with `N` a chunk index we could have written (no leading zeros, below
/// [`MAX_CHUNKS`]).
pub fn is_chunk_of(candidate: &str, name: &str) -> bool {
    candidate
        .strip_prefix(name)
        .and_then(|rest| rest.strip_prefix('_'))
        .filter(|index| !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()))
        .filter(|index| *index == "0" || !index.starts_with('0'))
        .and_then(|index| index.parse::<usize>().ok())
        .is_some_and(|index| index < MAX_CHUNKS)
}

/// `Set-Cookie` headers storing `value` under `name`, chunked when long, and clearing whatever
/// cookies of that name the request carried and the new value does not overwrite.
pub fn write(attributes: &CookieAttributes, name: &str, value: &str, max_age: u64, present: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut written = Vec::new();
    if value.len() <= CHUNK_SIZE {
        out.push(attributes.set(name, value, max_age));
        written.push(name.to_string());
    } else {
        // base64url is ASCII, so byte offsets are character boundaries.
        for (index, start) in (0..value.len()).step_by(CHUNK_SIZE).enumerate() {
            let chunk = &value[start..(start + CHUNK_SIZE).min(value.len())];
            let chunk_name = chunk_name(name, index);
            out.push(attributes.set(&chunk_name, chunk, max_age));
            written.push(chunk_name);
        }
    }
    for stale in present.iter().filter(|p| !written.iter().any(|w| w == *p)) {
        out.push(attributes.clear(stale));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attributes() -> CookieAttributes {
        CookieAttributes { domain: None, secure: true, same_site: SameSite::Lax }
    }

    #[test]
    fn set_cookie_carries_the_security_attributes() {
        let a = CookieAttributes { domain: Some("example.com".into()), ..attributes() };
        assert_eq!(a.set("s", "v", 60), "s=v; Path=/; Max-Age=60; HttpOnly; SameSite=Lax; Secure; Domain=example.com");
        let local = CookieAttributes { secure: false, same_site: SameSite::Strict, domain: None };
        assert_eq!(local.clear("s"), "s=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict");
    }

    #[test]
    fn short_values_are_one_cookie_and_replace_old_chunks() {
        let headers = write(&attributes(), "s", "abc", 60, &["s_0", "s_1"]);
        assert_eq!(headers.len(), 3);
        assert!(headers[0].starts_with("s=abc;"));
        assert!(headers[1].starts_with("s_0=; ") && headers[1].contains("Max-Age=0"));
        assert!(headers[2].starts_with("s_1=; "));
    }

    #[test]
    fn long_values_are_chunked_under_the_browser_limit_and_read_back() {
        let value: String = (0..9000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        let headers = write(&attributes(), "s", &value, 60, &["s", "s_0", "s_1", "s_2", "s_3"]);
        // 3 chunks, the plain cookie and the unused fourth chunk cleared.
        assert_eq!(headers.len(), 5);
        assert!(headers.iter().all(|h| h.len() < 4096), "{:?}", headers.iter().map(String::len).collect::<Vec<_>>());
        assert!(headers.iter().any(|h| h.starts_with("s=;")));
        assert!(headers.iter().any(|h| h.starts_with("s_3=;")));
        let jar: String = headers
            .iter()
            .filter(|h| !h.contains("Max-Age=0"))
            .map(|h| h.split(';').next().unwrap())
            .collect::<Vec<_>>()
            .join("; ");
        let cookies = Cookies::parse(Some(&jar));
        assert_eq!(cookies.read_chunked("s").as_deref(), Some(value.as_str()));
    }

    #[test]
    fn parsing_tolerates_envoys_comma_merging_and_chunk_names_are_exact() {
        let cookies = Cookies::parse(Some("a=1; s_0=x, s_1=y; s_login_ab=z;bad; s_x=1"));
        assert_eq!(cookies.get("a"), Some("1"));
        assert_eq!(cookies.read_chunked("s").as_deref(), Some("xy"));
        assert_eq!(cookies.chunked_names("s"), vec!["s_0", "s_1"]);
        assert_eq!(
            cookies.header_without(|n| n == "s" || is_chunk_of(n, "s")).as_deref(),
            Some("a=1; s_login_ab=z; s_x=1")
        );
        assert_eq!(Cookies::parse(None).read_chunked("s"), None);
    }
}

#[cfg(test)]
mod shadowing_tests {
    use super::*;

    #[test]
    fn every_presented_value_is_a_candidate_in_order_and_bounded() {
        // A shadowing cookie (longer path) comes first; ours follows.
        let cookies = Cookies::parse(Some("s=shadow; a=1; s=ours"));
        assert_eq!(cookies.candidates("s"), ["shadow", "ours"]);
        assert_eq!(cookies.chunked_names("s"), ["s"], "one clearing Set-Cookie per name");
        // Two sets of chunks: joined from the first copies and from the last.
        let cookies = Cookies::parse(Some("s_0=X1; s_1=X2; s_0=a; s_1=b"));
        assert_eq!(cookies.candidates("s"), ["X1X2", "ab"]);
        let many: Vec<String> = (0..MAX_CANDIDATES * 2).map(|i| format!("s=v{i}")).collect();
        assert_eq!(Cookies::parse(Some(&many.join("; "))).candidates("s").len(), MAX_CANDIDATES);
        assert!(Cookies::parse(Some("s=; s_0=")).candidates("s").is_empty());
    }

    #[test]
    fn only_chunk_indexes_we_could_write_are_ours() {
        assert!(is_chunk_of("s_0", "s") && is_chunk_of("s_15", "s"));
        for not_ours in ["s_16", "s_007", "s_", "s_1x", "s_99999999999999999999999", "sx_1"] {
            assert!(!is_chunk_of(not_ours, "s"), "{not_ours}");
        }
        let flood: Vec<String> = (0..1000).map(|i| format!("s_{i}=x")).collect();
        assert_eq!(Cookies::parse(Some(&flood.join("; "))).chunked_names("s").len(), MAX_CHUNKS);
    }

    #[test]
    fn other_applications_cookies_pass_as_sent() {
        let cookies = Cookies::parse(Some("prefs=a,b,c; s=1; list=\"x,y\""));
        assert_eq!(cookies.get("prefs"), Some("a,b,c"));
        assert_eq!(cookies.header_without(|n| n == "s").as_deref(), Some("prefs=a,b,c; list=\"x,y\""));
        // Envoy's comma-merged headers still split into their pairs.
        assert_eq!(Cookies::parse(Some("a=1,s=2")).get("s"), Some("2"));
    }

    #[test]
    fn alphabets() {
        assert!(is_token("__Host-gatehouse_session") && !is_token("a b") && !is_token("a;b") && !is_token(""));
        assert!(is_cookie_value("abc-_09") && is_cookie_value(""));
        assert!(
            !is_cookie_value("a;b") && !is_cookie_value("a b") && !is_cookie_value("é") && !is_cookie_value("a\r\n")
        );
    }
}

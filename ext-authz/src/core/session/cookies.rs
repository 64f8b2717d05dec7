//! Reading cookies from a request and writing `Set-Cookie` headers, including values split into
//! chunks: browsers drop a cookie larger than 4096 bytes (name, value and attributes together),
//! which with a token-carrying session means a silent redirect loop. A value longer than
//! [`CHUNK_SIZE`] is stored as `name_0`, `name_1`, …; every write also clears the chunks (or the
//! unchunked cookie) the request carried that the new value no longer uses.

/// Value bytes per cookie, leaving room for the name and attributes under the 4096-byte limit.
pub const CHUNK_SIZE: usize = 3800;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    Lax,
    Strict,
    None,
}

impl SameSite {
    pub fn parse(text: &str) -> Option<SameSite> {
        match text.to_ascii_lowercase().as_str() {
            "lax" => Some(SameSite::Lax),
            "strict" => Some(SameSite::Strict),
            "none" => Some(SameSite::None),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            SameSite::Lax => "Lax",
            SameSite::Strict => "Strict",
            SameSite::None => "None",
        }
    }
}

/// The attributes every cookie we set carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieAttributes {
    pub domain: Option<String>,
    pub secure: bool,
    pub same_site: SameSite,
}

impl CookieAttributes {
    /// `HttpOnly` always: no script ever needs to read a session.
    pub fn set(&self, name: &str, value: &str, max_age: u64) -> String {
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

/// The cookies of a request, in order. Envoy merges repeated `cookie` headers with `,`, so both
/// `;` and `,` separate pairs (our values are base64url and never contain either).
#[derive(Debug, Default)]
pub struct Cookies<'a> {
    pairs: Vec<(&'a str, &'a str)>,
}

impl<'a> Cookies<'a> {
    pub fn parse(header: Option<&'a str>) -> Cookies<'a> {
        let pairs = header
            .unwrap_or("")
            .split([';', ','])
            .filter_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                Some((name.trim(), value.trim()))
            })
            .collect();
        Cookies { pairs }
    }

    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    pub fn names(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.pairs.iter().map(|(n, _)| *n)
    }

    /// A value written by [`write`]: the plain cookie, or its chunks joined in order.
    pub fn read_chunked(&self, name: &str) -> Option<String> {
        if let Some(value) = self.get(name).filter(|v| !v.is_empty()) {
            return Some(value.to_string());
        }
        let mut joined = String::new();
        for index in 0.. {
            match self.get(&chunk_name(name, index)) {
                Some(part) if !part.is_empty() => joined.push_str(part),
                _ => break,
            }
        }
        (!joined.is_empty()).then_some(joined)
    }

    /// The names of every cookie that belongs to the (possibly chunked) value `name`.
    pub fn chunked_names(&self, name: &str) -> Vec<&'a str> {
        self.names().filter(|n| *n == name || is_chunk_of(n, name)).collect()
    }

    /// The `cookie` header without the cookies `drop` says to drop; `None` when nothing is left.
    pub fn header_without(&self, drop: impl Fn(&str) -> bool) -> Option<String> {
        let kept: Vec<String> = self.pairs.iter().filter(|(n, _)| !drop(n)).map(|(n, v)| format!("{n}={v}")).collect();
        (!kept.is_empty()).then(|| kept.join("; "))
    }
}

pub fn chunk_name(name: &str, index: usize) -> String {
    format!("{name}_{index}")
}

pub fn is_chunk_of(candidate: &str, name: &str) -> bool {
    candidate
        .strip_prefix(name)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|index| !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()))
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

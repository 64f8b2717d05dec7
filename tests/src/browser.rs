//! A scripted browser: follows redirects across hosts, keeps cookies like a browser does on
//! loopback (RFC 6265: a cookie is its name *and* path, cookies are not port-specific, and the
//! `Cookie` header lists longer paths first, then older cookies first — which is how a cookie
//! set for `/app` shadows one set for `/`), and fills in HTML forms. Enough to sign in at the
//! test OpenID Provider through Envoy without a real browser.
//!
//! Its requests carry what a browser sends with them: a navigation (`visit`, `request`, a form
//! submission) Chrome's `Accept` and `Sec-Fetch-Mode: navigate`, `Sec-Fetch-Dest: document`; a
//! page's images, scripts, styles and `fetch()` calls ([`Browser::load`]) theirs. Navigations
//! carry no `Sec-Fetch-Site` (a browser's depends on where the navigation came from): tests of
//! the same-origin checks send it themselves.

use std::collections::BTreeMap;

use parking_lot::Mutex;
use reqwest::header::{HeaderMap, COOKIE, LOCATION, SET_COOKIE};

/// Chrome's `Accept` for a navigation.
pub const NAVIGATION_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,\
                                     image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7";

/// What a page loads besides itself, each with the headers Chrome sends for it on a
/// same-origin page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubResource {
    Image,
    Script,
    Style,
    /// `fetch()` from the page's script.
    Fetch,
}

impl SubResource {
    pub const ALL: [SubResource; 4] = [SubResource::Image, SubResource::Script, SubResource::Style, SubResource::Fetch];

    pub fn headers(self) -> [(&'static str, &'static str); 4] {
        let (accept, mode, dest) = match self {
            SubResource::Image => {
                ("image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8", "no-cors", "image")
            }
            SubResource::Script => ("*/*", "no-cors", "script"),
            SubResource::Style => ("text/css,*/*;q=0.1", "no-cors", "style"),
            SubResource::Fetch => ("*/*", "cors", "empty"),
        };
        [("accept", accept), ("sec-fetch-mode", mode), ("sec-fetch-dest", dest), ("sec-fetch-site", "same-origin")]
    }
}

/// One response, with the URL it answered.
#[derive(Debug, Clone)]
pub struct Page {
    pub url: String,
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
    /// Every `Set-Cookie` of this response, as sent.
    pub set_cookies: Vec<String>,
}

impl Page {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}) at {}: {}", self.url, self.body))
    }

    pub fn location(&self) -> Option<&str> {
        self.headers.get(LOCATION).and_then(|v| v.to_str().ok())
    }
}

/// The cookie jar: (name, path) → (creation order, value).
type Jar = BTreeMap<(String, String), (u64, String)>;

pub struct Browser {
    client: reqwest::Client,
    jar: Mutex<Jar>,
    created: std::sync::atomic::AtomicU64,
    /// Sent with every request but [`Browser::load`]'s, unless the caller gives its own value.
    headers: Vec<(String, String)>,
    /// Every hop of the last `visit`/`submit`, for assertions on the redirect chain.
    pub hops: Mutex<Vec<Page>>,
}

/// A browser navigating: Chrome's headers for a top-level navigation.
impl Default for Browser {
    fn default() -> Self {
        Browser::with_headers(&[
            ("accept", NAVIGATION_ACCEPT),
            ("sec-fetch-mode", "navigate"),
            ("sec-fetch-dest", "document"),
            ("upgrade-insecure-requests", "1"),
        ])
    }
}

impl Browser {
    /// A client that is no browser (a script, an API client): only this `Accept`, no Fetch
    /// Metadata; with the same cookie handling.
    pub fn new(accept: &str) -> Browser {
        Browser::with_headers(&[("accept", accept)])
    }

    fn with_headers(headers: &[(&str, &str)]) -> Browser {
        let client =
            reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("an HTTP client");
        Browser {
            client,
            jar: Mutex::default(),
            created: Default::default(),
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            hops: Mutex::default(),
        }
    }

    /// The value of the cookie `name` with `Path=/`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.jar.lock().get(&(name.to_string(), "/".to_string())).map(|(_, v)| v.clone())
    }

    pub fn cookie_names(&self) -> Vec<String> {
        self.jar.lock().keys().map(|(name, _)| name.clone()).collect()
    }

    /// Sets `name` for `Path=/`, as if the server had.
    pub fn set_cookie(&self, name: &str, value: &str) {
        self.plant(name, value, "/");
    }

    /// A cookie for `path`, as another application (or a sibling subdomain) would set it.
    pub fn plant(&self, name: &str, value: &str, path: &str) {
        let order = self.created.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.jar.lock().insert((name.to_string(), path.to_string()), (order, value.to_string()));
    }

    pub fn remove_cookie(&self, name: &str) {
        self.jar.lock().retain(|(n, _), _| n != name);
    }

    /// A copy of this browser's cookies in a fresh browser (a stolen or replayed cookie jar).
    pub fn clone_jar(&self) -> Browser {
        let other = Browser { headers: self.headers.clone(), ..Browser::with_headers(&[]) };
        *other.jar.lock() = self.jar.lock().clone();
        other
            .created
            .store(self.created.load(std::sync::atomic::Ordering::Relaxed), std::sync::atomic::Ordering::Relaxed);
        other
    }

    /// The `Cookie` header for `url`: the cookies whose path matches, longest path first, then
    /// the oldest first (RFC 6265 §5.4).
    pub fn cookie_header(&self, url: &str) -> String {
        let path = url::Url::parse(url).map(|u| u.path().to_string()).unwrap_or_else(|_| "/".into());
        let jar = self.jar.lock();
        // (path, creation order, name=value) of every cookie this URL gets.
        let mut matching: Vec<(&str, u64, String)> = jar
            .iter()
            .filter(|((_, cookie_path), _)| path_matches(&path, cookie_path))
            .map(|((name, cookie_path), (order, value))| (cookie_path.as_str(), *order, format!("{name}={value}")))
            .collect();
        matching.sort_by(|(pa, ca, _), (pb, cb, _)| pb.len().cmp(&pa.len()).then(ca.cmp(cb)));
        matching.into_iter().map(|(_, _, pair)| pair).collect::<Vec<_>>().join("; ")
    }

    fn store(&self, url: &str, set_cookie: &str) {
        let mut parts = set_cookie.split(';');
        let Some((name, value)) = parts.next().and_then(|p| p.trim().split_once('=')) else { return };
        let attributes: Vec<String> = parts.map(|a| a.trim().to_string()).collect();
        let gone = attributes.iter().any(|a| a.eq_ignore_ascii_case("max-age=0") || a.contains("1970"));
        let path = attributes
            .iter()
            .find_map(|a| a.split_once('=').filter(|(k, _)| k.eq_ignore_ascii_case("path")).map(|(_, v)| v.to_string()))
            .filter(|p| p.starts_with('/'))
            .unwrap_or_else(|| default_path(url));
        let key = (name.trim().to_string(), path);
        let mut jar = self.jar.lock();
        if gone || value.is_empty() {
            jar.remove(&key);
        } else {
            // A replaced cookie keeps its creation time (RFC 6265 §5.3 step 11.3).
            let order = jar
                .get(&key)
                .map(|(order, _)| *order)
                .unwrap_or_else(|| self.created.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
            jar.insert(key, (order, value.to_string()));
        }
    }

    /// One request, no redirect following.
    pub async fn request(&self, method: &str, url: &str, form: Option<&[(String, String)]>) -> Page {
        self.request_with(method, url, form, &[]).await
    }

    /// One request with extra headers (`Origin`, `Sec-Fetch-Site`, …; one named like a
    /// default replaces it), no redirect following.
    pub async fn request_with(
        &self,
        method: &str,
        url: &str,
        form: Option<&[(String, String)]>,
        headers: &[(&str, &str)],
    ) -> Page {
        let mut all: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .filter(|(k, _)| !headers.iter().any(|(h, _)| h.eq_ignore_ascii_case(k)))
            .collect();
        all.extend_from_slice(headers);
        self.send(method, url, form, &all).await
    }

    /// A page's sub-resource `kind` at `url`, with the headers a browser sends for it and this
    /// browser's cookies; no redirect following (a browser would follow one, but the page
    /// could not use a login page anyway).
    pub async fn load(&self, url: &str, kind: SubResource) -> Page {
        self.send("GET", url, None, &kind.headers()).await
    }

    async fn send(&self, method: &str, url: &str, form: Option<&[(String, String)]>, headers: &[(&str, &str)]) -> Page {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut request = self.client.request(method, url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let cookies = self.cookie_header(url);
        if !cookies.is_empty() {
            request = request.header(COOKIE, cookies);
        }
        if let Some(form) = form {
            request = request.form(form);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let set_cookies: Vec<String> =
            headers.get_all(SET_COOKIE).iter().filter_map(|v| v.to_str().ok()).map(str::to_owned).collect();
        for cookie in &set_cookies {
            self.store(url, cookie);
        }
        let body = response.text().await.unwrap_or_default();
        Page { url: url.to_string(), status, headers, body, set_cookies }
    }

    /// GET `url` and follow redirects to the final page.
    pub async fn visit(&self, url: &str) -> Page {
        self.hops.lock().clear();
        self.follow("GET", url, None).await
    }

    async fn follow(&self, method: &str, url: &str, form: Option<&[(String, String)]>) -> Page {
        let mut page = self.request(method, url, form).await;
        for _ in 0..20 {
            self.hops.lock().push(page.clone());
            let Some(location) = page.location().filter(|_| (300..400).contains(&page.status)) else {
                return page;
            };
            let next = url::Url::parse(&page.url).and_then(|base| base.join(location)).expect("a redirect URL");
            page = self.request("GET", next.as_str(), None).await;
        }
        panic!("too many redirects, last {}", page.url);
    }

    /// Submits the page's first form with its hidden fields plus `fields`, following redirects.
    pub async fn submit(&self, page: &Page, fields: &[(&str, &str)]) -> Page {
        let (target, values) = form_request(page, fields);
        self.hops.lock().clear();
        self.follow("POST", &target, Some(&values)).await
    }

    /// Submits the page's first form without following the answer's redirect.
    pub async fn submit_once(&self, page: &Page, fields: &[(&str, &str)]) -> Page {
        let (target, values) = form_request(page, fields);
        self.request("POST", &target, Some(&values)).await
    }

    /// From a page behind a login: through the provider's login form as `login`, back through
    /// the callback, to wherever the gateway sends the browser.
    pub async fn sign_in(&self, url: &str, login: &str) -> Page {
        let form = self.visit(url).await;
        assert_eq!(form.status, 200, "expected the provider's login form at {}: {}", form.url, form.body);
        assert!(form.body.contains("name=\"login\""), "not a login form at {}: {}", form.url, form.body);
        self.submit(&form, &[("login", login), ("password", "any")]).await
    }
}

/// RFC 6265 §5.1.4: the directory of the request path, for a cookie set without `Path`.
fn default_path(url: &str) -> String {
    let path = url::Url::parse(url).map(|u| u.path().to_string()).unwrap_or_default();
    match path.rfind('/') {
        Some(0) | None => "/".into(),
        Some(i) => path[..i].to_string(),
    }
}

/// RFC 6265 §5.1.4: `/app` matches `/app`, `/app/x`, not `/apple`.
fn path_matches(request_path: &str, cookie_path: &str) -> bool {
    request_path == cookie_path
        || (request_path.starts_with(cookie_path)
            && (cookie_path.ends_with('/') || request_path.as_bytes().get(cookie_path.len()) == Some(&b'/')))
}

/// Where the page's first form posts, and what.
fn form_request(page: &Page, fields: &[(&str, &str)]) -> (String, Vec<(String, String)>) {
    let (action, mut values) = first_form(&page.body).unwrap_or_else(|| panic!("no form at {}", page.url));
    for (name, value) in fields {
        values.retain(|(n, _)| n != name);
        values.push((name.to_string(), value.to_string()));
    }
    let target = url::Url::parse(&page.url).and_then(|base| base.join(&action)).expect("a form action");
    (target.to_string(), values)
}

/// The first `<form>`'s action and its `<input>` names and values (what the provider's pages
/// need; not a general HTML parser).
fn first_form(html: &str) -> Option<(String, Vec<(String, String)>)> {
    let start = html.find("<form")?;
    let end = html[start..].find("</form>").map_or(html.len(), |e| start + e);
    let form = &html[start..end];
    let tag_end = form.find('>')?;
    let action = attribute(&form[..tag_end], "action").unwrap_or_default();
    let mut inputs = Vec::new();
    let mut rest = &form[tag_end..];
    while let Some(i) = rest.find("<input") {
        let tag = &rest[i..];
        let close = tag.find('>').unwrap_or(tag.len());
        if let Some(name) = attribute(&tag[..close], "name") {
            inputs.push((name, attribute(&tag[..close], "value").unwrap_or_default()));
        }
        rest = &tag[close..];
    }
    Some((action.replace("&amp;", "&"), inputs))
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let len = tag[start..].find('"')?;
    Some(tag[start..start + len].to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_forms() {
        let html = r#"<form autocomplete="off" action="/interaction/abc" method="post">
            <input type="hidden" name="prompt" value="login"/><input required type="text" name="login" placeholder="x">
            </form><form action="/other"></form>"#;
        let (action, inputs) = super::first_form(html).unwrap();
        assert_eq!(action, "/interaction/abc");
        assert_eq!(inputs, vec![("prompt".into(), "login".into()), ("login".into(), String::new())]);
    }
}

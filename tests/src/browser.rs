//! A scripted browser: follows redirects across hosts, keeps cookies like a browser does on
//! loopback (RFC 6265: a cookie is its name *and* path, cookies are not port-specific, and the
//! `Cookie` header lists longer paths first, then older cookies first — which is how a cookie
//! set for `/app` shadows one set for `/`), and fills in HTML forms. Enough to sign in at the
//! test OpenID Provider through Envoy without a real browser.

use std::collections::BTreeMap;
use std::sync::Mutex;

use reqwest::header::{HeaderMap, ACCEPT, COOKIE, LOCATION, SET_COOKIE};

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
    accept: String,
    /// Every hop of the last `visit`/`submit`, for assertions on the redirect chain.
    pub hops: Mutex<Vec<Page>>,
}

impl Default for Browser {
    fn default() -> Self {
        Browser::new("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
    }
}

impl Browser {
    pub fn new(accept: &str) -> Browser {
        let client =
            reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("an HTTP client");
        Browser {
            client,
            jar: Mutex::default(),
            created: Default::default(),
            accept: accept.to_string(),
            hops: Mutex::default(),
        }
    }

    /// The value of the cookie `name` with `Path=/`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.jar.lock().unwrap().get(&(name.to_string(), "/".to_string())).map(|(_, v)| v.clone())
    }

    pub fn cookie_names(&self) -> Vec<String> {
        self.jar.lock().unwrap().keys().map(|(name, _)| name.clone()).collect()
    }

    /// Sets `name` for `Path=/`, as if the server had.
    pub fn set_cookie(&self, name: &str, value: &str) {
        self.plant(name, value, "/");
    }

    /// A cookie for `path`, as another application (or a sibling subdomain) would set it.
    pub fn plant(&self, name: &str, value: &str, path: &str) {
        let order = self.created.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.jar.lock().unwrap().insert((name.to_string(), path.to_string()), (order, value.to_string()));
    }

    pub fn remove_cookie(&self, name: &str) {
        self.jar.lock().unwrap().retain(|(n, _), _| n != name);
    }

    /// A copy of this browser's cookies in a fresh browser (a stolen or replayed cookie jar).
    pub fn clone_jar(&self) -> Browser {
        let other = Browser::new(&self.accept);
        *other.jar.lock().unwrap() = self.jar.lock().unwrap().clone();
        other
            .created
            .store(self.created.load(std::sync::atomic::Ordering::Relaxed), std::sync::atomic::Ordering::Relaxed);
        other
    }

    /// The `Cookie` header for `url`: the cookies whose path matches, longest path first, then
    /// the oldest first (RFC 6265 §5.4).
    fn cookie_header(&self, url: &str) -> String {
        let path = url::Url::parse(url).map(|u| u.path().to_string()).unwrap_or_else(|_| "/".into());
        let jar = self.jar.lock().unwrap();
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
        let mut jar = self.jar.lock().unwrap();
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

    /// One request with extra headers (`Origin`, `Sec-Fetch-Site`, …), no redirect following.
    pub async fn request_with(
        &self,
        method: &str,
        url: &str,
        form: Option<&[(String, String)]>,
        headers: &[(&str, &str)],
    ) -> Page {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut request = self.client.request(method, url).header(ACCEPT, &self.accept);
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
        self.hops.lock().unwrap().clear();
        self.follow("GET", url, None).await
    }

    async fn follow(&self, method: &str, url: &str, form: Option<&[(String, String)]>) -> Page {
        let mut page = self.request(method, url, form).await;
        for _ in 0..20 {
            self.hops.lock().unwrap().push(page.clone());
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
        self.hops.lock().unwrap().clear();
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

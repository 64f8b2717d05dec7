//! Which requests start a login, and how many logins a browser carries, through a real Envoy
//! against a real OpenID Provider: a page whose session ended loads hundreds of images,
//! scripts, styles and `fetch()` calls, and only its navigation is sent to sign in (each login
//! redirect sets a login cookie; one per sub-resource used to lock the browser out with 431s);
//! navigations that never finish their login leave at most a few login cookies behind.

use e2e::browser::{Browser, Page, SubResource};
use e2e::stack::LoginOptions;
use e2e::{Stack, StackOptions};
use ext_authz::core::session::pending_logins::MAX_PENDING_LOGINS;
use serde_json::json;

const SESSION: &str = "gatehouse_session";

async fn login_stack(envoy_config: Option<&'static str>) -> Stack {
    let login = Some(LoginOptions::default());
    Stack::start(StackOptions { login, memory_backend: true, envoy_config, ..StackOptions::default() }).await
}

fn login_cookies(browser: &Browser) -> usize {
    browser.cookie_names().iter().filter(|name| name.starts_with(&format!("{SESSION}_login_"))).count()
}

/// The absolute URL a redirect points to.
fn location(page: &Page) -> String {
    let location = page.location().unwrap_or_else(|| panic!("no redirect at {}: {}", page.url, page.body));
    url::Url::parse(&page.url).unwrap().join(location).unwrap().to_string()
}

/// From a login redirect to wherever the browser lands: through the provider's form when it
/// asks (no provider session yet), straight back when it does not.
async fn finish_login(browser: &Browser, redirect: &str, user: &str) -> Page {
    let page = browser.visit(redirect).await;
    if page.body.contains("name=\"login\"") {
        return browser.submit(&page, &[("login", user), ("password", "any")]).await;
    }
    page
}

/// A request that must get the 401 JSON error and nothing of a login.
fn assert_refused_without_login(page: &Page, what: &str) {
    assert_eq!(page.status, 401, "{what}: {}", page.body);
    assert!(page.location().is_none(), "{what}: {:?}", page.location());
    assert!(page.headers.contains_key("www-authenticate"), "{what}: {:?}", page.headers);
    assert_eq!(page.json()["error"]["code"], "UNAUTHORIZED", "{what}");
    let login_cookie = format!("{SESSION}_login_");
    assert!(!page.set_cookies.iter().any(|c| c.starts_with(&login_cookie)), "{what}: {:?}", page.set_cookies);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_300_sub_resources_after_expiry_starts_one_login_and_signs_in() {
    let stack = login_stack(None).await;
    let browser = Browser::default();
    let page_url = stack.url("/app/gallery");
    assert_eq!(browser.sign_in(&page_url, "alice").await.status, 200);

    // The session's lifetime (1 h) passes on ext-authz's clock; the browser still sends it.
    stack.clock.advance(3601);
    assert!(browser.cookie(SESSION).is_some());
    let navigation = browser.request("GET", &page_url, None).await;
    assert_eq!(navigation.status, 302, "the navigation is sent to sign in: {}", navigation.body);
    let redirect = location(&navigation);
    assert_eq!(login_cookies(&browser), 1);
    let header = browser.cookie_header(&page_url);
    assert!(header.len() < 2048, "{} bytes: {header}", header.len());

    // The page's sub-resources, as the browser sends them: none is a login.
    for i in 0..300 {
        let kind = SubResource::ALL[i % SubResource::ALL.len()];
        let loaded = browser.load(&stack.url(&format!("/app/assets/{i}")), kind).await;
        assert_refused_without_login(&loaded, &format!("{kind:?} #{i}"));
    }
    // Nor is a frame: providers refuse to be framed.
    let frame = browser.request_with("GET", &stack.url("/app/widget"), None, &[("sec-fetch-dest", "iframe")]).await;
    assert_refused_without_login(&frame, "iframe");
    assert_eq!(browser.cookie_header(&page_url), header, "the cookie header did not grow");
    assert_eq!(login_cookies(&browser), 1);

    // The navigation's login goes through (the provider still knows alice), and the page's
    // resources load again.
    let landed = finish_login(&browser, &redirect, "alice").await;
    assert_eq!((landed.status, landed.url.as_str()), (200, page_url.as_str()), "{}", landed.body);
    assert_eq!(landed.json()["headers"]["x-user-id"], json!(["alice"]));
    assert_eq!(login_cookies(&browser), 0, "the login cookie is used up");
    let image = browser.load(&stack.url("/app/assets/0"), SubResource::Image).await;
    assert_eq!(image.status, 200, "{}", image.body);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_logins_leave_at_most_the_cap_and_the_last_one_signs_in() {
    let stack = login_stack(None).await;
    let browser = Browser::default();
    let mut redirects = Vec::new();
    for tab in 0..20 {
        let page = browser.request("GET", &stack.url(&format!("/app/tab/{tab}")), None).await;
        assert_eq!(page.status, 302, "tab {tab}: {}", page.body);
        redirects.push(location(&page));
        assert!(login_cookies(&browser) <= MAX_PENDING_LOGINS, "tab {tab}: {:?}", browser.cookie_names());
    }
    assert_eq!(login_cookies(&browser), MAX_PENDING_LOGINS);
    let header = browser.cookie_header(&stack.url("/app/x"));
    assert!(header.len() < 2048, "{} bytes: {header}", header.len());

    // The newest login signs in through the provider's form.
    let landed = finish_login(&browser, &redirects[19], "alice").await;
    assert_eq!((landed.status, landed.url.clone()), (200, stack.url("/app/tab/19")), "{}", landed.body);
    assert_eq!(landed.json()["headers"]["x-user-id"], json!(["alice"]));
    // The others kept still complete; one that was replaced says to start again.
    let kept = finish_login(&browser, &redirects[20 - MAX_PENDING_LOGINS], "alice").await;
    assert_eq!(kept.status, 200, "{}: {}", kept.url, kept.body);
    let replaced = finish_login(&browser, &redirects[0], "alice").await;
    assert_eq!((replaced.status, replaced.json()["error"]["code"].as_str()), (400, Some("LOGIN_FAILED")));
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoys_http_mode_passes_what_tells_a_navigation_apart() {
    let stack = login_stack(Some("envoy-http-authz.yaml")).await;
    let browser = Browser::default();
    for kind in SubResource::ALL {
        let loaded = browser.load(&stack.url("/app/assets/x"), kind).await;
        assert_refused_without_login(&loaded, &format!("{kind:?}"));
    }
    // A frame sends an HTML Accept: only Sec-Fetch-Dest, allowed through, tells it apart.
    let frame = browser.request_with("GET", &stack.url("/app/widget"), None, &[("sec-fetch-dest", "iframe")]).await;
    assert_refused_without_login(&frame, "iframe");
    assert_eq!(login_cookies(&browser), 0);
    let navigation = browser.request("GET", &stack.url("/app/x"), None).await;
    assert_eq!(navigation.status, 302, "{}", navigation.body);
    assert_eq!(login_cookies(&browser), 1);
    stack.shutdown().await;
}

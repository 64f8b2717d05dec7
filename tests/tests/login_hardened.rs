//! Browser logins under attack and outage, through a real Envoy against a real OpenID Provider:
//! shadowing cookies, forged hosts, cross-site logouts and writes, a client's own
//! `Authorization`, a hung provider and a hung session store.

use std::time::Duration;

use e2e::browser::Browser;
use e2e::stack::{LoginOptions, SIGNED_OUT_PATH};
use e2e::{Stack, StackOptions};
use serde_json::json;

const SESSION: &str = "gatehouse_session";

async fn login_stack(login: LoginOptions) -> Stack {
    let memory_backend = !login.redis_sessions;
    Stack::start(StackOptions { login: Some(login), memory_backend, ..StackOptions::default() }).await
}

/// The hops of the browser's last `visit`/`submit`.
fn hop_count(browser: &Browser) -> usize {
    browser.hops.lock().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadowing_session_cookies_cannot_loop_the_browser() {
    let stack = login_stack(LoginOptions::default()).await;

    // Before signing in, a cookie of the same name for a longer path (another application on
    // this host, a sibling subdomain's leftover): the browser sends it first, every time.
    let browser = Browser::default();
    browser.plant(SESSION, "left-over-by-another-app", "/app");
    let page = browser.sign_in(&stack.url("/app/x"), "alice").await;
    assert_eq!(page.status, 200, "{}: {}", page.url, page.body);
    assert_eq!(page.json()["headers"]["x-user-id"], json!(["alice"]));
    assert!(hop_count(&browser) <= 4, "the callback lands at the backend: {} hops", hop_count(&browser));

    // Later visits: the shadow still comes first, the session is still found.
    // (The e2e limits allow a user 4 requests an hour.)
    for path in ["/app/x", "/app/orders/1"] {
        let again = browser.visit(&stack.url(path)).await;
        assert_eq!((again.status, hop_count(&browser)), (200, 1), "{path}: {}", again.body);
        assert_eq!(again.json()["headers"]["x-user-id"], json!(["alice"]));
    }

    // Several shadows, one sealed with another deployment's key, one set of stray chunks.
    let foreign = ext_authz::core::session::seal::Sealer::new(&[vec![9u8; 32]]).unwrap();
    browser.plant(SESSION, &foreign.seal(&format!("gatehouse-session-v1:{SESSION}"), b"{}"), "/app/x");
    browser.plant(&format!("{SESSION}_0"), "stray-chunk", "/app");
    let shadowed = browser.visit(&stack.url("/app/x/deeper")).await;
    assert_eq!((shadowed.status, hop_count(&browser)), (200, 1), "{}", shadowed.body);

    // A browser whose only session cookies are broken signs in once, and stays signed in.
    let broken = Browser::default();
    broken.plant(SESSION, "garbage", "/app");
    broken.set_cookie(SESSION, "garbage-too");
    assert_eq!(broken.sign_in(&stack.url("/app/x"), "bob").await.status, 200);
    assert_eq!(broken.visit(&stack.url("/app/x")).await.status, 200);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_uris_never_come_from_a_forged_host() {
    let stack = login_stack(LoginOptions::default()).await;
    // Envoy passes the Host on; ours is not among the configured origins: no login starts, and
    // nothing of the Host reaches a header.
    let forged = stack.get("/app/x", &[("accept", "text/html")]).await;
    assert_eq!(forged.status, 400, "{}", forged.body);
    assert_eq!(forged.json()["error"]["code"], "BAD_REQUEST");
    assert!(forged.header("location").is_none());
    // The callback on a forged host is refused the same way.
    let callback = stack.get("/oauth2/callback?state=aaaaaaaaaaaaaaaaaaaaaaaa&code=x", &[]).await;
    assert_eq!(callback.status, 400, "{}", callback.body);
    // A state that would write a header: refused before it names any cookie.
    let browser = Browser::default();
    let hostile = browser
        .request(
            "GET",
            &stack.url("/oauth2/callback?state=abcdefghijkl%3BDomain%3Devil.example%0D%0AX:%20y&code=x"),
            None,
        )
        .await;
    assert_eq!(hostile.status, 400, "{}", hostile.body);
    assert!(hostile.set_cookies.is_empty(), "{:?}", hostile.set_cookies);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_is_a_same_origin_post() {
    let stack = login_stack(LoginOptions::default()).await;
    let browser = Browser::default();
    assert_eq!(browser.sign_in(&stack.url("/app/x"), "alice").await.status, 200);
    let logout = stack.url("/oauth2/logout");
    let origin = stack.url("");

    // A GET (a link, an <img> on any site) only shows a confirmation whose button posts.
    let get = browser.request("GET", &logout, None).await;
    assert_eq!(get.status, 405, "{}", get.body);
    assert_eq!(get.headers.get("allow").unwrap(), "POST");
    assert!(get.body.contains("<form method=\"post\" action=\"/oauth2/logout\">"), "{}", get.body);
    assert_eq!(get.headers.get("x-frame-options").unwrap(), "DENY", "no other site frames the button");
    assert_eq!(get.headers.get("content-security-policy").unwrap(), "frame-ancestors 'none'");
    assert!(get.set_cookies.is_empty());
    // Cross-site posts, and posts that prove nothing, are refused.
    for headers in [vec![("origin", "http://evil.example")], vec![("sec-fetch-site", "cross-site")], vec![]] {
        let refused = browser.request_with("POST", &logout, None, &headers).await;
        assert_eq!(refused.status, 403, "{headers:?}: {}", refused.body);
    }
    assert_eq!(browser.visit(&stack.url("/app/x")).await.status, 200, "still signed in");

    // The confirmation's own post: signed out, at the provider too.
    let done = browser.request_with("POST", &logout, Some(&[]), &[("origin", &origin)]).await;
    assert_eq!(done.status, 302, "{}", done.body);
    let issuer = stack.provider.as_ref().unwrap().issuer();
    assert!(done.location().unwrap().starts_with(&format!("{issuer}/session/end?")), "{:?}", done.location());
    assert!(done.location().unwrap().contains(&urlencoding(&stack.url(SIGNED_OUT_PATH))));
    assert!(browser.cookie(SESSION).is_none());
    stack.shutdown().await;
}

fn urlencoding(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_writes_need_our_origin_and_a_clients_authorization_stays_behind() {
    let stack = login_stack(LoginOptions::default()).await;
    let browser = Browser::default();
    assert_eq!(browser.sign_in(&stack.url("/app/x"), "alice").await.status, 200);
    let origin = stack.url("");

    let cross =
        browser.request_with("POST", &stack.url("/app/orders"), Some(&[]), &[("origin", "http://evil.example")]).await;
    assert_eq!((cross.status, cross.json()["error"]["code"].as_str()), (403, Some("FORBIDDEN")), "{}", cross.body);
    let same = browser.request_with("POST", &stack.url("/app/orders"), Some(&[]), &[("origin", &origin)]).await;
    assert_eq!(same.status, 200, "{}", same.body);
    assert_eq!(same.json()["method"], "POST");

    let smuggled =
        browser.request_with("GET", &stack.url("/app/x"), None, &[("authorization", "Bearer made-up")]).await;
    assert_eq!(smuggled.status, 200, "{}", smuggled.body);
    assert!(smuggled.json()["headers"].get("authorization").is_none(), "{}", smuggled.json()["headers"]);

    // A GET a framework would read as a DELETE (past the CSRF guard, which judges GETs
    // harmless) reaches the backend as a plain GET.
    let overridden = browser
        .request_with("GET", &stack.url("/app/x?_method=DELETE&tab=2"), None, &[("x-http-method-override", "DELETE")])
        .await;
    assert_eq!(overridden.status, 200, "{}", overridden.body);
    assert_eq!(overridden.json()["path"], "/app/x?tab=2");
    assert!(overridden.json()["headers"].get("x-http-method-override").is_none(), "{}", overridden.body);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_provider_gets_our_503_through_envoy() {
    let mut stack = login_stack(LoginOptions::default()).await;
    let browser = Browser::default();
    // Up to the provider's redirect back, with the provider alive.
    let form = browser.visit(&stack.url("/app/x")).await;
    let mut page = browser.submit_once(&form, &[("login", "alice"), ("password", "pw")]).await;
    let callback = loop {
        let location = page.location().expect("a redirect").to_string();
        let next = url::Url::parse(&page.url).unwrap().join(&location).unwrap().to_string();
        if next.contains("/oauth2/callback") {
            break next;
        }
        page = browser.request("GET", &next, None).await;
    };

    let provider = stack.provider.as_mut().unwrap();
    provider.freeze();
    // The code exchange hangs: our 503 comes after oidc.timeout (1 s), before Envoy's 2 s
    // ext_authz timeout would have answered with Envoy's own error (so the status is the proof).
    let stuck = browser.request("GET", &callback, None).await;
    assert_eq!(stuck.status, 503, "{}", stuck.body);
    assert_eq!(stuck.json()["error"]["code"], "LOGIN_UNAVAILABLE");
    // A new login once the last contact is older than provider_check_interval (1 s): the
    // discovery check hangs, and the answer is the same 503. Until then a login still starts
    // from what the provider last said (a 302): poll, with a deadline.
    let newcomer = shared::testing::eventually_some("a login no longer started", Duration::from_secs(10), async || {
        Some(Browser::default().request("GET", &stack.url("/app/y"), None).await).filter(|page| page.status != 302)
    })
    .await;
    assert_eq!(newcomer.status, 503, "{}", newcomer.body);
    assert_eq!(newcomer.json()["error"]["code"], "LOGIN_UNAVAILABLE");

    stack.provider.as_ref().unwrap().thaw();
    assert_eq!(Browser::default().sign_in(&stack.url("/app/y"), "bob").await.status, 200);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_the_store_cannot_record_is_an_error_and_works_once_it_is_back() {
    let stack = login_stack(LoginOptions { redis_sessions: true, ..LoginOptions::default() }).await;
    let browser = Browser::default();
    assert_eq!(browser.sign_in(&stack.url("/app/x"), "alice").await.status, 200);
    let stolen = browser.clone_jar();
    let origin = stack.url("");

    let redis = stack.redis.as_ref().unwrap();
    redis.freeze();
    let failed = browser.request_with("POST", &stack.url("/oauth2/logout"), Some(&[]), &[("origin", &origin)]).await;
    assert_eq!(failed.status, 503, "the user is told: {}", failed.body);
    assert_eq!(failed.json()["error"]["code"], "LOGIN_UNAVAILABLE");
    assert!(failed.set_cookies.is_empty(), "the cookie stays so that trying again works");
    redis.thaw();

    let done = browser.request_with("POST", &stack.url("/oauth2/logout"), Some(&[]), &[("origin", &origin)]).await;
    assert_eq!(done.status, 302, "{}", done.body);
    let replay = stolen.request("GET", &stack.url("/app/x"), None).await;
    assert_eq!(replay.status, 302, "the old cookie is no session any more: {}", replay.body);
    stack.shutdown().await;
}

//! Browser logins through a real Envoy against a real OpenID Provider (panva's oidc-provider):
//! authorization code + PKCE, sessions in the cookie or in Redis, refresh, logout, back-channel
//! logout, and the bad cases — all seen from the browser's and the backend's side.

use e2e::browser::Browser;
use e2e::stack::{LoginOptions, SIGNED_OUT_PATH};
use e2e::{Stack, StackOptions};
use serde_json::json;

const SESSION: &str = "gatehouse_session";

async fn login_stack(login: LoginOptions) -> Stack {
    let memory_backend = !login.redis_sessions;
    Stack::start(StackOptions { login: Some(login), memory_backend, ..StackOptions::default() }).await
}

/// The query parameter `name` of a URL.
fn param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url).ok()?.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_login_ends_at_the_backend_with_the_users_identity() {
    let stack = login_stack(LoginOptions::default()).await;
    let browser = Browser::default();

    // An API call without a session gets the JSON error, not a redirect.
    let api = Browser::new("application/json").visit(&stack.url("/app/profile")).await;
    assert_eq!(api.status, 401, "{}", api.body);
    assert_eq!(api.json()["error"]["code"], "UNAUTHORIZED");

    let page = browser.sign_in(&stack.url("/app/profile?tab=2"), "alice").await;
    assert_eq!(page.status, 200, "{}: {}", page.url, page.body);
    assert_eq!(page.url, stack.url("/app/profile?tab=2"), "back where the browser was going");
    let seen = page.json();
    assert_eq!(seen["path"], "/app/profile?tab=2");
    assert_eq!(seen["headers"]["x-user-id"], json!(["alice"]));
    assert_eq!(seen["headers"]["x-user-email"], json!(["alice@example.com"]));
    let upstream_cookies = seen["headers"]["cookie"].to_string();
    assert!(
        !upstream_cookies.contains(SESSION),
        "session cookies stay between browser and gateway: {upstream_cookies}"
    );
    assert!(seen["headers"].get("authorization").is_none(), "no access token unless asked for");

    // The redirect chain: the login redirect, and the callback that sets the session.
    let hops = browser.hops.lock().clone();
    let callback = hops.iter().find(|h| h.url.contains("/oauth2/callback")).expect("the callback hop");
    assert_eq!(callback.status, 302);
    assert_eq!(callback.location(), Some("/app/profile?tab=2"));
    let session_cookie = callback.set_cookies.iter().find(|c| c.starts_with(&format!("{SESSION}="))).expect("session");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="] {
        assert!(session_cookie.contains(attribute), "{attribute} in {session_cookie}");
    }
    assert!(
        callback.set_cookies.iter().any(|c| c.starts_with(&format!("{SESSION}_login_")) && c.contains("Max-Age=0")),
        "the login state cookie is used up: {:?}",
        callback.set_cookies
    );

    // Later requests: identity from the session; the route's claim rules apply to it.
    let again = browser.visit(&stack.url("/app/orders")).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["headers"]["x-user-id"], json!(["alice"]));
    let admin = browser.visit(&stack.url("/app/admin/users")).await;
    assert_eq!((admin.status, admin.json()["error"]["code"].as_str()), (403, Some("FORBIDDEN")));
    let boss = Browser::default();
    assert_eq!(boss.sign_in(&stack.url("/app/admin/users"), "admin").await.status, 200);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_redirect_carries_state_nonce_and_pkce() {
    let stack = login_stack(LoginOptions::default()).await;
    let browser = Browser::default();
    let first = browser.request("GET", &stack.url("/app/x"), None).await;
    assert_eq!(first.status, 302, "{}", first.body);
    let location = first.location().unwrap().to_string();
    let issuer = stack.provider.as_ref().unwrap().issuer();
    assert!(location.starts_with(&format!("{issuer}/auth?")), "{location}");
    assert_eq!(param(&location, "response_type").as_deref(), Some("code"));
    assert_eq!(param(&location, "code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(param(&location, "code_challenge").map(|c| c.len()), Some(43));
    assert_eq!(param(&location, "redirect_uri"), Some(stack.url("/oauth2/callback")));
    let state = param(&location, "state").unwrap();
    assert!(state.len() >= 32 && param(&location, "nonce").is_some_and(|n| n.len() >= 32));
    let login_cookie = &first.set_cookies[0];
    assert!(login_cookie.starts_with(&format!("{SESSION}_login_{}=", &state[..12])), "{login_cookie}");
    assert!(login_cookie.contains("HttpOnly") && login_cookie.contains("Max-Age=600"));
    assert_eq!(first.headers.get("cache-control").unwrap(), "no-store");
    stack.shutdown().await;
}

/// Drives a login up to (not including) the callback; returns the callback URL.
async fn until_callback(browser: &Browser, stack: &Stack, login: &str) -> String {
    let form = browser.visit(&stack.url("/app/x")).await;
    // Submit without following into the gateway: follow only the provider's own redirects.
    let mut page = browser.submit_once(&form, &[("login", login), ("password", "pw")]).await;
    while let Some(location) = page.location().map(str::to_owned) {
        let next = url::Url::parse(&page.url).unwrap().join(&location).unwrap().to_string();
        if next.contains("/oauth2/callback") {
            return next;
        }
        page = browser.request("GET", &next, None).await;
    }
    panic!("no callback redirect, ended at {} {}", page.url, page.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_state_code_reuse_and_forged_cookies_are_refused_without_loops() {
    let stack = login_stack(LoginOptions::default()).await;

    // A callback with a state no login of this browser started.
    let browser = Browser::default();
    let callback = until_callback(&browser, &stack, "mallory").await;
    let state = param(&callback, "state").unwrap();
    let wrong = callback.replace(&state, &format!("{}{}", &state[..12], "x".repeat(state.len() - 12)));
    let refused = browser.clone_jar().request("GET", &wrong, None).await;
    assert_eq!((refused.status, refused.json()["error"]["code"].as_str()), (400, Some("LOGIN_FAILED")));
    let unknown = Browser::default().request("GET", &callback, None).await;
    assert_eq!(unknown.status, 400, "a callback without its login cookie: {}", unknown.body);

    // The real callback works once; the same code again (with the same login cookie) does not.
    let replayer = browser.clone_jar();
    let done = browser.request("GET", &callback, None).await;
    assert_eq!(done.status, 302, "{}", done.body);
    let reused = replayer.request("GET", &callback, None).await;
    assert_eq!((reused.status, reused.json()["error"]["code"].as_str()), (401, Some("LOGIN_FAILED")));
    assert!(reused.body.contains("invalid_grant"), "{}", reused.body);

    // A tampered session cookie is a fresh login that clears it — never an error page.
    let value = browser.cookie(SESSION).expect("a session cookie");
    let mut bytes = value.into_bytes();
    let middle = bytes.len() / 2;
    bytes[middle] = if bytes[middle] == b'A' { b'B' } else { b'A' };
    browser.set_cookie(SESSION, &String::from_utf8(bytes).unwrap());
    let tampered = browser.request("GET", &stack.url("/app/x"), None).await;
    assert_eq!(tampered.status, 302, "{}", tampered.body);
    assert!(tampered.set_cookies.iter().any(|c| c.starts_with(&format!("{SESSION}=;")) && c.contains("Max-Age=0")));

    // A cookie sealed with someone else's key, and plain garbage: the same.
    let foreign = ext_authz::core::session::seal::Sealer::new(&[vec![7u8; 32]]).unwrap();
    let forged = foreign.seal(&format!("gatehouse-session-v1:{SESSION}"), br#"{"id":"x"}"#);
    for value in [forged.as_str(), "garbage", ""] {
        let b = Browser::default();
        b.set_cookie(SESSION, value);
        let r = b.request("GET", &stack.url("/app/x"), None).await;
        assert_eq!(r.status, 302, "{value:?}: {}", r.body);
    }
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_down_keeps_sessions_and_new_logins_get_a_clear_503() {
    // Every new login checks the provider first (no interval to wait out).
    let mut stack = login_stack(LoginOptions { provider_check_interval: "0s", ..LoginOptions::default() }).await;
    let browser = Browser::default();
    assert_eq!(browser.sign_in(&stack.url("/app/x"), "alice").await.status, 200);

    stack.provider.as_mut().unwrap().stop();
    let existing = browser.visit(&stack.url("/app/y")).await;
    assert_eq!(existing.status, 200, "an existing session needs no provider: {}", existing.body);
    let newcomer = Browser::default().visit(&stack.url("/app/y")).await;
    assert_eq!(newcomer.status, 503, "{}", newcomer.body);
    assert_eq!(newcomer.json()["error"]["code"], "LOGIN_UNAVAILABLE");

    stack.provider.as_mut().unwrap().resume();
    assert_eq!(Browser::default().sign_in(&stack.url("/app/y"), "bob").await.status, 200);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_clears_the_session_and_ends_it_at_the_provider() {
    let stack = login_stack(LoginOptions::default()).await;
    let browser = Browser::default();
    assert_eq!(browser.sign_in(&stack.url("/app/x"), "alice").await.status, 200);
    let stolen = browser.clone_jar();

    let origin = stack.url("");
    let logout = browser.request_with("POST", &stack.url("/oauth2/logout"), Some(&[]), &[("origin", &origin)]).await;
    assert_eq!(logout.status, 302);
    let location = logout.location().unwrap().to_string();
    let issuer = stack.provider.as_ref().unwrap().issuer();
    assert!(location.starts_with(&format!("{issuer}/session/end?")), "RP-initiated logout: {location}");
    assert_eq!(param(&location, "post_logout_redirect_uri"), Some(stack.url(SIGNED_OUT_PATH)));
    assert!(param(&location, "id_token_hint").is_some_and(|t| t.split('.').count() == 3));
    assert!(logout.set_cookies.iter().any(|c| c.starts_with(&format!("{SESSION}=;")) && c.contains("Max-Age=0")));
    assert!(browser.cookie(SESSION).is_none());

    // The provider's confirmation form, then back to the gateway's signed-out page.
    let confirm = browser.visit(&location).await;
    let signed_out = browser.submit(&confirm, &[]).await;
    assert_eq!(signed_out.url, stack.url(SIGNED_OUT_PATH), "{}", signed_out.body);
    assert_eq!(signed_out.status, 200);

    // The old cookie, replayed, no longer works (logged out sessions are remembered).
    let replay = stolen.request("GET", &stack.url("/app/x"), None).await;
    assert_eq!(replay.status, 302, "{}", replay.body);
    // And the provider session is gone too: a new login asks for the password again.
    let again = browser.visit(&stack.url("/app/x")).await;
    assert!(again.body.contains("name=\"login\""), "the provider asks again: {}", again.url);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_before_expiry_reaches_the_browser_through_envoy() {
    let login = LoginOptions {
        access_token_ttl: 6,
        refresh_before: "3s",
        forward_access_token: true,
        ..LoginOptions::default()
    };
    let stack = login_stack(login).await;
    let browser = Browser::default();
    let first = browser.sign_in(&stack.url("/app/x"), "alice").await;
    assert_eq!(first.status, 200, "{}", first.body);
    let bearer = |page: &e2e::browser::Page| page.json()["headers"]["authorization"][0].as_str().unwrap().to_string();
    let token1 = bearer(&first);
    assert!(token1.starts_with("Bearer "));
    let cookie1 = browser.cookie(SESSION).unwrap();

    // Into the refresh window (6 s lifetime, refresh 3 s before expiry), on ext-authz's clock.
    stack.clock.advance(3);
    let refreshed = browser.request("GET", &stack.url("/app/x"), None).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    let token2 = bearer(&refreshed);
    assert_ne!(token1, token2, "the backend sees the new access token");
    assert!(
        refreshed.set_cookies.iter().any(|c| c.starts_with(&format!("{SESSION}="))),
        "the new session cookie reaches the browser (response_headers_to_add): {:?}",
        refreshed.set_cookies
    );
    assert_ne!(browser.cookie(SESSION).unwrap(), cookie1);
    let next = browser.request("GET", &stack.url("/app/x"), None).await;
    assert_eq!(bearer(&next), token2);
    assert!(next.set_cookies.is_empty(), "no refresh while fresh: {:?}", next.set_cookies);
    stack.shutdown().await;
}

fn redis_cli(stack: &Stack, args: &[&str]) -> String {
    let port = stack.redis.as_ref().expect("a Redis").port.to_string();
    let out = std::process::Command::new("redis-cli").args(["-p", &port, "--raw"]).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sessions_are_small_cookies_and_back_channel_logout_revokes_them() {
    let stack = login_stack(LoginOptions { redis_sessions: true, ..LoginOptions::default() }).await;
    let first = Browser::default();
    let second = Browser::default();
    assert_eq!(first.sign_in(&stack.url("/app/x"), "alice").await.status, 200);
    assert_eq!(second.sign_in(&stack.url("/app/x"), "alice").await.status, 200);
    let cookie = first.cookie(SESSION).unwrap();
    assert!(cookie.len() < 200, "an opaque handle, not the session: {} bytes", cookie.len());

    let keys = redis_cli(&stack, &["KEYS", "gatehouse:session:*"]);
    let sessions: Vec<&str> = keys.lines().filter(|k| k.starts_with("gatehouse:session:s:")).collect();
    assert_eq!(sessions.len(), 2, "{keys}");
    assert!(keys.lines().any(|k| k == "gatehouse:session:sub:alice"), "{keys}");
    assert_eq!(keys.lines().filter(|k| k.starts_with("gatehouse:session:sid:")).count(), 2, "{keys}");
    let ttl: u64 = redis_cli(&stack, &["TTL", sessions[0]]).trim().parse().unwrap();
    assert!((3500..=3600).contains(&ttl), "TTL = the session's remaining lifetime: {ttl}");
    let stored = redis_cli(&stack, &["GET", sessions[0]]);
    assert!(!stored.contains("alice") && !stored.contains("eyJ"), "sealed at rest: {stored}");

    // The first browser signs out at the provider itself (not through the gateway): the
    // provider tells ext-authz over the back channel, and only that session ends.
    let issuer = stack.provider.as_ref().unwrap().issuer();
    let confirm = first.visit(&format!("{issuer}/session/end")).await;
    first.submit(&confirm, &[]).await;
    let first_ended = async || first.request("GET", &stack.url("/app/x"), None).await.status == 302;
    let within = std::time::Duration::from_secs(5);
    shared::testing::eventually("the back-channel logout ended the first browser's session", within, first_ended).await;
    assert_eq!(second.visit(&stack.url("/app/x")).await.status, 200, "another provider session is untouched");
    let keys = redis_cli(&stack, &["KEYS", "gatehouse:session:s:*"]);
    assert_eq!(keys.lines().count(), 1, "{keys}");

    // A forged logout token is refused with the spec's error.
    let http_port = stack.ext_authz.as_ref().unwrap().http_addr.port();
    let url = format!("http://127.0.0.1:{http_port}/oidc/backchannel-logout");
    let forged =
        stack.token(json!({"sub": "alice", "events": {"http://schemas.openid.net/event/backchannel-logout": {}}}));
    let response = reqwest::Client::new().post(&url).form(&[("logout_token", forged.as_str())]).send().await.unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    assert_eq!(second.visit(&stack.url("/app/x")).await.status, 200, "nothing revoked by a forged token");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_login_and_refresh_work_with_envoys_http_mode() {
    let login = LoginOptions {
        access_token_ttl: 6,
        refresh_before: "3s",
        forward_access_token: true,
        ..LoginOptions::default()
    };
    let options = StackOptions {
        login: Some(login),
        memory_backend: true,
        envoy_config: Some("envoy-http-authz.yaml"),
        ..StackOptions::default()
    };
    let stack = Stack::start(options).await;
    let api = Browser::new("application/json").visit(&stack.url("/app/x")).await;
    assert_eq!(api.status, 401, "{}", api.body);

    let browser = Browser::default();
    let page = browser.sign_in(&stack.url("/app/x?mode=http"), "alice").await;
    assert_eq!((page.status, page.url.clone()), (200, stack.url("/app/x?mode=http")), "{}", page.body);
    let seen = page.json();
    assert_eq!(seen["headers"]["x-user-id"], json!(["alice"]));
    assert!(!seen["headers"]["cookie"].to_string().contains(SESSION), "{}", seen["headers"]);
    let token1 = seen["headers"]["authorization"][0].as_str().unwrap().to_string();

    stack.clock.advance(3);
    let refreshed = browser.request("GET", &stack.url("/app/x"), None).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    assert_ne!(refreshed.json()["headers"]["authorization"][0].as_str().unwrap(), token1);
    assert!(refreshed.set_cookies.iter().any(|c| c.starts_with(&format!("{SESSION}="))), "{:?}", refreshed.set_cookies);

    // A method override never reaches the backend, although HTTP mode does not pass it to
    // ext-authz (ext-authz removes the names whether it saw them or not).
    let overridden =
        browser.request_with("GET", &stack.url("/app/x"), None, &[("x-http-method-override", "DELETE")]).await;
    assert_eq!(overridden.status, 200, "{}", overridden.body);
    assert!(overridden.json()["headers"].get("x-http-method-override").is_none(), "{}", overridden.body);

    // Logout's same-origin proof reaches ext-authz through HTTP mode's header allow-list.
    let logout = stack.url("/oauth2/logout");
    let confirm = browser.request("GET", &logout, None).await;
    assert_eq!(confirm.status, 405, "{}", confirm.body);
    assert!(confirm.body.contains("<form method=\"post\""), "{}", confirm.body);
    assert_eq!(confirm.headers.get("x-frame-options").unwrap(), "DENY", "HTTP mode too");
    assert_eq!(confirm.headers.get("content-security-policy").unwrap(), "frame-ancestors 'none'");
    let cross = browser.request_with("POST", &logout, Some(&[]), &[("origin", "http://evil.example")]).await;
    assert_eq!(cross.status, 403, "{}", cross.body);
    let origin = stack.url("");
    let done = browser.request_with("POST", &logout, Some(&[]), &[("origin", &origin)]).await;
    assert_eq!(done.status, 302, "{}", done.body);
    assert!(browser.cookie(SESSION).is_none());
    stack.shutdown().await;
}

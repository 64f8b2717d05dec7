//! Shadowing with authentic cookies, through a real Envoy against a real OpenID Provider: an
//! attacker's own signed-out sessions planted at longer paths (any cookie name without
//! `__Host-` can be) neither hide the victim's session nor loop the victim's browser, and a
//! sign-out ends every session the browser presents, live ones of several people included.
//! Both session stores.

use e2e::browser::Browser;
use e2e::stack::LoginOptions;
use e2e::{Stack, StackOptions};
use serde_json::json;

const SESSION: &str = "gatehouse_session";
/// Deep enough for every planted path to match; the e2e routes accept sessions under /app.
const DEEP: &str = "/app/a/b/c/d/e/f";

async fn login_stack(redis_sessions: bool) -> Stack {
    let login = LoginOptions { redis_sessions, ..LoginOptions::default() };
    Stack::start(StackOptions { login: Some(login), memory_backend: !redis_sessions, ..StackOptions::default() }).await
}

/// `count` sessions of `who`, each from its own sign-in; signed out again when `sign_out`.
async fn sessions_of(stack: &Stack, who: &str, count: usize, sign_out: bool) -> Vec<String> {
    let origin = stack.url("");
    let mut values = Vec::new();
    for _ in 0..count {
        let browser = Browser::default();
        // The landing page may be over the user's limit (4 an hour in the e2e config): the
        // session exists either way.
        browser.sign_in(&stack.url("/app/x"), who).await;
        values.push(browser.cookie(SESSION).expect("a session cookie"));
        if sign_out {
            let out =
                browser.request_with("POST", &stack.url("/oauth2/logout"), Some(&[]), &[("origin", &origin)]).await;
            assert_eq!(out.status, 302, "{}", out.body);
        }
    }
    values
}

/// A same-origin sign-out whose `cookie` header presents every one of `values`.
async fn sign_out_presenting(stack: &Stack, values: &[String]) -> e2e::browser::Page {
    let cookie: Vec<String> = values.iter().map(|v| format!("{SESSION}={v}")).collect();
    let (origin, cookie) = (stack.url(""), cookie.join("; "));
    let headers = [("origin", origin.as_str()), ("cookie", cookie.as_str())];
    Browser::default().request_with("POST", &stack.url("/oauth2/logout"), Some(&[]), &headers).await
}

/// Planted at ever longer paths: the browser sends them all, before its own `Path=/` cookie.
fn plant_all(browser: &Browser, values: &[String]) {
    let mut path = String::from("/app");
    for (value, segment) in values.iter().zip(["a", "b", "c", "d", "e", "f"].iter().cycle()) {
        browser.plant(SESSION, value, &path);
        path = format!("{path}/{segment}");
    }
}

async fn signed_out_sessions_planted_at_longer_paths_cannot_loop_the_victim(redis_sessions: bool) {
    let stack = login_stack(redis_sessions).await;
    let ended = sessions_of(&stack, "mallory", 6, true).await;

    let victim = Browser::default();
    plant_all(&victim, &ended);
    let landed = victim.sign_in(&stack.url(DEEP), "alice").await;
    assert_eq!(landed.status, 200, "{}: {}", landed.url, landed.body);
    assert_eq!(landed.json()["headers"]["x-user-id"], json!(["alice"]));
    let again = victim.visit(&stack.url(DEEP)).await;
    assert_eq!((again.status, victim.hops.lock().len()), (200, 1), "no lap through the provider");
    assert!(victim.cookie(SESSION).is_some(), "the victim's own cookie is never cleared");

    // Four live sessions of the attacker and the victim's own, all presented to the sign-out
    // (planted for the logout path, or for a parent domain): it ends all five, and names
    // nobody's ID token at the provider, since they are not one person's.
    let mut presented = sessions_of(&stack, "mallory", 4, false).await;
    presented.extend(sessions_of(&stack, "bob", 1, false).await);
    let out = sign_out_presenting(&stack, &presented).await;
    assert_eq!(out.status, 302, "{}", out.body);
    let location = out.location().unwrap_or_default().to_string();
    assert!(!location.contains("id_token_hint"), "no hint when the sessions are different people's: {location}");
    assert_eq!(out.set_cookies.len(), 1, "one clearing Set-Cookie per name: {:?}", out.set_cookies);
    for value in &presented {
        let replay = Browser::new("application/json");
        replay.set_cookie(SESSION, value);
        let page = replay.request("GET", &stack.url("/app/x"), None).await;
        assert_eq!(page.status, 401, "every presented session ended: {}", page.body);
    }

    // One person's sessions: their ID token is the hint.
    let own = sessions_of(&stack, "carol", 2, false).await;
    let out = sign_out_presenting(&stack, &own).await;
    assert!(out.location().unwrap_or_default().contains("id_token_hint="), "{:?}", out.location());
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_sessions_planted_by_an_attacker_cannot_loop_the_victim() {
    signed_out_sessions_planted_at_longer_paths_cannot_loop_the_victim(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sessions_planted_by_an_attacker_cannot_loop_the_victim() {
    signed_out_sessions_planted_at_longer_paths_cannot_loop_the_victim(true).await;
}

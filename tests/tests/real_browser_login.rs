//! One login in a real browser: headless Chromium (WebDriver) opens a page behind the gateway,
//! lands on the provider's login form, signs in, and ends on the demo backend's answer with the
//! user's identity — cookies, redirects and SameSite handled by a real browser engine — and
//! signs out through the confirmation page.

use e2e::stack::LoginOptions;
use e2e::webdriver::Chromium;
use e2e::{Stack, StackOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_chromium_signs_in_through_envoy() {
    let options =
        StackOptions { login: Some(LoginOptions::default()), memory_backend: true, ..StackOptions::default() };
    let stack = Stack::start(options).await;
    let browser = Chromium::start().await;

    browser.goto(&stack.url("/app/welcome?from=chromium")).await;
    let issuer = stack.provider.as_ref().unwrap().issuer();
    browser.wait_for_url(&issuer).await;
    browser.type_into("input[name=login]", "carol").await;
    browser.type_into("input[name=password]", "correct horse").await;
    browser.click("button[type=submit]").await;

    let landed = browser.wait_for_url(&stack.url("/app/welcome")).await;
    assert_eq!(landed, stack.url("/app/welcome?from=chromium"));
    let page = browser.text().await;
    let seen: serde_json::Value = serde_json::from_str(&page).unwrap_or_else(|e| panic!("{e}: {page}"));
    assert_eq!(seen["headers"]["x-user-id"], serde_json::json!(["carol"]));
    assert_eq!(seen["headers"]["x-user-email"], serde_json::json!(["carol@example.com"]));

    // The session holds: a second page needs no login.
    browser.goto(&stack.url("/app/second")).await;
    let seen: serde_json::Value = serde_json::from_str(&browser.text().await).unwrap();
    assert_eq!(seen["path"], "/app/second");
    assert_eq!(seen["headers"]["x-user-id"], serde_json::json!(["carol"]));

    // Signing out as a user does: the logout address shows a confirmation whose button posts
    // (Chromium sends its Origin, which the same-origin check accepts), through the provider's
    // sign-out (the test provider confirms it by itself) to the signed-out page. Both sessions
    // are over: the next page asks for the password again.
    browser.goto(&stack.url("/oauth2/logout")).await;
    assert!(browser.text().await.contains("Sign out of this application?"));
    browser.click("button[type=submit]").await;
    browser.wait_for_url(&stack.url(e2e::stack::SIGNED_OUT_PATH)).await;
    browser.goto(&stack.url("/app/second")).await;
    browser.wait_for_url(&issuer).await;
    browser.find("input[name=login]").await;
    browser.quit().await;
    stack.shutdown().await;
}

//! The browser login flows — login start, callback, refresh, logout, back-channel logout —
//! driven with arbitrary query strings, cookie headers and bodies against a real OpenID
//! Provider. Whatever comes in: no panic, and every header we would send (`Location`,
//! `Set-Cookie`) is in its strict alphabet, names only our cookies, and points only to this
//! application or the provider. And whatever else a browser carries, a valid session is found:
//! no cookie can send a signed-in browser back to the provider.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use ext_authz::core::decision::is_header_value;
use ext_authz::core::request::AuthRequest;
use ext_authz::core::session::cookies::is_token;
use ext_authz::core::session::model::{Session, TokenSet};
use ext_authz::core::session::seal::{parse_key, Sealer};
use ext_authz::core::session::stamp::Stamp;
use ext_authz::oidc::store::{CookieStore, SessionStore};
use ext_authz::outcome::Outcome;
use proptest::prelude::*;
use serde_json::json;
use shared::testing::{OidcClient, OidcProvider};

use super::input;

const COOKIE: &str = "gatehouse_session";
const ORIGIN: &str = "http://app.test";
/// Another application of the same configuration.
const SIBLING: &str = "http://admin.app.test";
const SESSION_KEY: &str = "Zmxvd3MtZnV6ei1zZXNzaW9uLWtleS0zMi1ieXRlcyE=";

struct World {
    runtime: tokio::runtime::Runtime,
    running: ext_authz::app::Running,
    provider: OidcProvider,
    /// `name=value` of a login cookie from a real login start, and its `state`.
    login_cookie: String,
    state: String,
    /// `name=value` of a session whose access token is due for a refresh.
    refresh_due: String,
    _dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let provider = OidcProvider::start(OidcClient {
            client_id: "fuzz".into(),
            client_secret: "fuzz-secret".into(),
            redirect_uris: vec![format!("{ORIGIN}/oauth2/callback")],
            ..OidcClient::default()
        });
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            "server: {{grpc_addr: \"127.0.0.1:0\", http_addr: \"127.0.0.1:0\"}}\n\
             routes:\n  default: deny\n  rules:\n    - {{path: /app/*, accept: [session]}}\n\
             oidc:\n  issuer: {}\n  client_id: fuzz\n  client_secret_env: SECRET\n  origins: [\"{ORIGIN}\", \"{SIBLING}\"]\n\
             \x20 csrf_guard: true\n  backchannel_logout_path: /oidc/backchannel-logout\n\
             \x20 cookie: {{secure: false}}\n\
             \x20 session: {{keys: [{{env: KEY}}], revocations_file: revocations.jsonl}}\n...\n",
            provider.issuer()
        );
        std::fs::write(dir.path().join("ext-authz.yaml"), config).unwrap();
        let env = HashMap::from([
            ("SECRET".to_string(), "fuzz-secret".to_string()),
            ("KEY".to_string(), SESSION_KEY.to_string()),
        ]);
        let loaded = ext_authz::config::load(&dir.path().join("ext-authz.yaml"), &env).unwrap();
        let running = runtime.block_on(async {
            let running =
                ext_authz::app::start(loaded, Arc::new(env), ext_authz::service::system_clock()).await.unwrap();
            // Discovery and keys are loaded in the background: wait for a login to start.
            let starts = async || {
                let outcome = running.authorizer.check(&browser_get("/app/x", ""), "grpc", None).await;
                matches!(outcome, Outcome::Redirect(_))
            };
            shared::testing::eventually("the provider available", std::time::Duration::from_secs(5), starts).await;
            running
        });
        let start = runtime.block_on(running.authorizer.check(&browser_get("/app/x", ""), "grpc", None));
        let Outcome::Redirect(start) = start else { panic!("{start:?}") };
        let login_cookie = start.set_cookies[0].split(';').next().unwrap().to_string();
        let state = url::Url::parse(&start.location)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned())
            .unwrap();
        World {
            refresh_due: format!("{COOKIE}={}", runtime.block_on(refresh_due_session())),
            runtime,
            running,
            provider,
            login_cookie,
            state,
            _dir: dir,
        }
    })
}

/// A session whose access token expires within the refresh window (its refresh token is not
/// the provider's, so the refresh is refused).
async fn refresh_due_session() -> String {
    let sealer = Arc::new(Sealer::new(&[parse_key(SESSION_KEY).unwrap()]).unwrap());
    let store = CookieStore::new(sealer, COOKIE, 3600, None).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let tokens = TokenSet {
        id_token: Some("h.p.s".into()),
        access_token: Some("at".into()),
        refresh_token: Some("not-the-providers".into()),
        expires_in: Some(10),
        scope: Some("openid".into()),
    };
    let session =
        Session::new("fuzz-session".into(), Arc::new(json!({"sub": "fuzzer"})), tokens, Stamp::next(now), 3600);
    store.save(&session, now).await.unwrap()
}

/// A fresh session, not due for anything: what a signed-in browser carries.
fn fresh_session() -> String {
    static VALUE: OnceLock<String> = OnceLock::new();
    VALUE
        .get_or_init(|| {
            let sealer = Arc::new(Sealer::new(&[parse_key(SESSION_KEY).unwrap()]).unwrap());
            let store = CookieStore::new(sealer, COOKIE, 3600, None).unwrap();
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
            let session = Session::new(
                "fresh".into(),
                Arc::new(json!({"sub": "fresh"})),
                TokenSet::default(),
                Stamp::next(now),
                3600,
            );
            futures_util::FutureExt::now_or_never(store.save(&session, now)).unwrap().unwrap()
        })
        .clone()
}

/// Authentic sessions an attacker could plant, none usable: half signed out (through this
/// instance's logout), half whose access token ended with no refresh token to renew it.
fn planted_sessions() -> &'static [String] {
    static VALUES: OnceLock<Vec<String>> = OnceLock::new();
    VALUES.get_or_init(|| {
        let w = world();
        let sealer = Arc::new(Sealer::new(&[parse_key(SESSION_KEY).unwrap()]).unwrap());
        let store = CookieStore::new(sealer, COOKIE, 3600, None).unwrap();
        let now = w.running.authorizer.now();
        let mut signed_out = Vec::new();
        let mut spent = Vec::new();
        for i in 0..150 {
            let claims = Arc::new(json!({"sub": format!("mallory-{i}")}));
            let session =
                Session::new(format!("planted-{i}"), claims.clone(), TokenSet::default(), Stamp::next(now), 3600);
            signed_out.push(futures_util::FutureExt::now_or_never(store.save(&session, now)).unwrap().unwrap());
            let tokens = TokenSet { access_token: Some("at".into()), expires_in: Some(0), ..TokenSet::default() };
            let session = Session::new(format!("spent-{i}"), claims, tokens, Stamp::next(now), 3600);
            spent.push(futures_util::FutureExt::now_or_never(store.save(&session, now)).unwrap().unwrap());
        }
        let cookie: Vec<String> = signed_out.iter().map(|v| format!("{COOKIE}={v}")).collect();
        let out = w.runtime.block_on(w.running.authorizer.check(
            &request("POST", "/oauth2/logout", &cookie.join("; "), &[("origin", ORIGIN)]),
            "grpc",
            None,
        ));
        assert!(matches!(out, Outcome::Redirect(_)), "{out:?}");
        signed_out.into_iter().chain(spent).collect()
    })
}

fn request(method: &str, target: &str, cookie: &str, extra: &[(&str, &str)]) -> AuthRequest {
    let mut headers: HashMap<String, String> = extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    headers.insert("x-forwarded-proto".into(), "http".into());
    headers.insert("accept".into(), "text/html".into());
    if !cookie.is_empty() {
        headers.insert("cookie".into(), cookie.to_string());
    }
    AuthRequest::new(method, "app.test", target, headers)
}

fn browser_get(target: &str, cookie: &str) -> AuthRequest {
    request("GET", target, cookie, &[])
}

/// Every header value a decision would send is fit, names our cookies only, and sends the
/// browser only here or to the provider.
fn check_headers(decision: &Outcome) -> Result<(), TestCaseError> {
    let set_cookies = match decision {
        Outcome::Allow(allow) => {
            for (name, value) in &allow.headers {
                prop_assert!(is_header_value(value), "{}: {:?}", name, value);
            }
            &allow.set_cookies
        }
        Outcome::Deny(deny) => {
            prop_assert!([400, 401, 403, 405, 503].contains(&deny.status), "{:?}", deny);
            &deny.set_cookies
        }
        Outcome::Redirect(redirect) => {
            let location = &redirect.location;
            prop_assert!(is_header_value(location), "{:?}", location);
            let local = location.starts_with('/') && !location.starts_with("//") && !location.starts_with("/\\");
            prop_assert!(local || location.starts_with(&world().provider.issuer()), "{:?}", location);
            &redirect.set_cookies
        }
        other => return Err(TestCaseError::fail(format!("unexpected {other:?}"))),
    };
    for cookie in set_cookies {
        prop_assert!(is_header_value(cookie), "{:?}", cookie);
        let name = cookie.split('=').next().unwrap_or_default();
        prop_assert!(is_token(name) && name.starts_with(COOKIE), "{:?}", cookie);
    }
    Ok(())
}

const QUERY_TOKENS: &[&str] =
    &["&", "=", "state=", "code=", "error=", "iss=", "%0d%0a", "%3B", "%00", "+", "%", "%C3%A9", ";Domain=x", "\r\n"];
const COOKIE_TOKENS: &[&str] = &[
    "; ",
    ",",
    "=",
    COOKIE,
    "gatehouse_session_0=",
    "gatehouse_session_1=",
    "gatehouse_session_login_",
    "\"",
    "\r\n",
    "gatehouse_session_99999999999999999999=",
];

fn query(w: &World) -> impl Strategy<Value = String> {
    input::text(
        vec![
            format!("state={}&code=abc", w.state),
            format!("state={}&error=access_denied", w.state),
            format!("state={}&code=x&iss=http%3A%2F%2Fevil", w.state),
            "state=abcdefghijklmnop&code=z".into(),
        ],
        QUERY_TOKENS,
    )
}

fn cookies(w: &World) -> impl Strategy<Value = String> {
    input::text(
        vec![
            w.login_cookie.clone(),
            format!("a=1; {}; {COOKIE}=x", w.login_cookie),
            w.refresh_due.clone(),
            format!("{COOKIE}=junk; {}", w.refresh_due),
            format!("{COOKIE}_0=a; {COOKIE}_1=b; {COOKIE}=c"),
        ],
        COOKIE_TOKENS,
    )
}

/// The logout check over the table the CSRF guard's unit test runs (`core::decision::tests`).
#[test]
fn the_logout_check_runs_the_csrf_guards_origin_table() {
    let w = world();
    for case in ext_authz::testing::origins::ORIGIN_CASES {
        let headers = case.headers(ORIGIN, SIBLING);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let decision = w.runtime.block_on(w.running.authorizer.check(
            &request("POST", "/oauth2/logout", "", &headers),
            "grpc",
            None,
        ));
        let refused = matches!(&decision, Outcome::Deny(d) if d.status == 403 && d.reason == "logout_cross_site");
        assert_eq!(refused, !case.allowed, "{}: {decision:?}", case.why);
    }
}

proptest! {
    #[test]
    fn login_callbacks(query in query(world()), cookie in cookies(world())) {
        let w = world();
        let decision = w.runtime.block_on(w.running.authorizer.check(&browser_get(&format!("/oauth2/callback?{query}"), &cookie), "grpc", None));
        check_headers(&decision)?;
    }

    #[test]
    fn login_starts_and_refreshes(path in input::text(vec!["/app/x?y=1".into(), "/app/%C3%A9?a=<b>".into()], &["/", "?", "%", "%0a", "é", "\\", "//"]),
                                  cookie in cookies(world())) {
        let w = world();
        let target = if path.starts_with('/') { path } else { format!("/{path}") };
        let decision = w.runtime.block_on(w.running.authorizer.check(&browser_get(&target, &cookie), "grpc", None));
        check_headers(&decision)?;
    }

    #[test]
    fn logouts(method in prop::sample::select(vec!["GET", "POST", "HEAD", "DELETE"]),
               origin in prop::option::of(input::text(vec![ORIGIN.into(), "http://evil.example".into()], &["/", ":", "null"])),
               cookie in cookies(world())) {
        let w = world();
        let mut extra = Vec::new();
        if let Some(origin) = &origin {
            extra.push(("origin", origin.as_str()));
        }
        let decision = w.runtime.block_on(w.running.authorizer.check(&request(method, "/oauth2/logout", &cookie, &extra), "grpc", None));
        check_headers(&decision)?;
        if method == "POST" && origin.as_deref() != Some(ORIGIN) {
            prop_assert!(matches!(&decision, Outcome::Deny(d) if d.status == 403), "{:?}", decision);
        }
    }

    #[test]
    fn backchannel_logouts(body in input::bytes(vec![
        b"logout_token=eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln".to_vec(),
        b"logout_token=&logout_token=a.b.c".to_vec(),
    ])) {
        let w = world();
        let oidc = w.running.authorizer.policy().oidc.clone().unwrap();
        // A forged token never verifies; whatever the body, an error, not a panic.
        prop_assert!(w.runtime.block_on(oidc.backchannel_logout(&body, w.running.authorizer.now())).is_err());
    }

    /// However many authentic but unusable sessions are planted before, among or after ours
    /// (at any paths, so in any order), the signed-in browser's session is found and its
    /// cookie is left alone: its sign-in lands.
    #[test]
    fn planted_sessions_never_hide_ours(
        picks in prop::collection::vec(any::<prop::sample::Index>(), 0..300),
        at in any::<prop::sample::Index>(),
    ) {
        let w = world();
        let planted = planted_sessions();
        let mut pairs: Vec<String> = picks.iter().map(|i| format!("{COOKIE}={}", i.get(planted))).collect();
        let index = at.index(pairs.len() + 1);
        pairs.insert(index, format!("{COOKIE}={}", fresh_session()));
        let decision = w.runtime.block_on(w.running.authorizer.check(&browser_get("/app/x", &pairs.join("; ")), "grpc", None));
        prop_assert!(matches!(&decision, Outcome::Allow(allow) if allow.set_cookies.is_empty()), "{:?}", decision);
    }

    /// The no-loop rule: a browser holding a valid session is never sent to sign in, whatever
    /// same-named cookies (or anything else) it sends along.
    #[test]
    fn a_valid_session_is_found_whatever_else_is_sent(
        junk in prop::collection::vec(input::text(vec![format!("{COOKIE}=x"), format!("{COOKIE}_0=y"), "a=b".into()], COOKIE_TOKENS), 0..40),
        at in any::<prop::sample::Index>(),
    ) {
        let w = world();
        let mut pairs: Vec<String> = junk.into_iter().map(|j| j.replace([';', ','], "")).collect();
        let ours = format!("{COOKIE}={}", fresh_session());
        let index = at.index(pairs.len() + 1);
        pairs.insert(index, ours);
        let decision = w.runtime.block_on(w.running.authorizer.check(&browser_get("/app/x", &pairs.join("; ")), "grpc", None));
        prop_assert!(matches!(decision, Outcome::Allow(_)), "{:?}", decision);
    }
}

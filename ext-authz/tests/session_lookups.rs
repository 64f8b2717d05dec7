//! What a request presenting many session cookies costs, and what a sign-out that cannot be
//! written does: every value is looked up in one store call (planted or ended values cannot use
//! up a budget, and a slow store costs one timeout, not one per value), a logout ends every
//! session it presents, and a revocation the file cannot take is reported on every try until it
//! is written — by the next try or by the store's own timer — and then survives a restart.

use std::sync::Arc;
use std::time::Duration;

use ext_authz::core::session::model::{Session, TokenSet};
use ext_authz::core::session::seal::{random_token, Sealer};
use ext_authz::core::session::stamp::Stamp;
use ext_authz::oidc::store::{CookieStore, RedisStore, SessionStore, REVOCATION_BACKLOG, REVOCATION_RETRY_EVERY};
use serde_json::json;
use shared::redis::{RedisPool, RedisSettings};
use shared::testing::RedisServer;

const NOW: u64 = 1_800_000_000;
const LIFETIME: u64 = 3600;
const COOKIE: &str = "gh_session";

fn sealer() -> Arc<Sealer> {
    Arc::new(Sealer::new(&[vec![7; 32]]).unwrap())
}

fn session_of(sub: &str) -> Session {
    let tokens = TokenSet { id_token: Some(format!("id-token-of-{sub}")), ..TokenSet::default() };
    Session::new(random_token(32), Arc::new(json!({"sub": sub})), tokens, Stamp::next(NOW), LIFETIME)
}

/// `count` sessions of an attacker, ended by a logout, then the victim's live one: every value
/// authentic, all presented by one request, the victim's last (a `Path=/` cookie comes after
/// those planted at longer paths).
async fn planted_then_ours(store: &dyn SessionStore, count: usize) -> (Vec<String>, Session) {
    let mut values = Vec::new();
    for _ in 0..count {
        values.push(store.save(&session_of("mallory"), NOW).await.unwrap());
    }
    let ended = store.end_all(&values, NOW).await.unwrap();
    assert_eq!(ended.len(), count, "{}: one logout ends every session it presents", store.kind());
    values.push("forged-value".into());
    let victim = session_of("victim");
    values.push(store.save(&victim, NOW).await.unwrap());
    (values, victim)
}

async fn ended_sessions_never_hide_a_live_one(store: &dyn SessionStore) {
    let (values, victim) = planted_then_ours(store, 200).await;
    let found = store.load_all(&values, NOW + 1).await.unwrap();
    assert_eq!(found.iter().map(|s| &s.id).collect::<Vec<_>>(), [&victim.id], "{}", store.kind());
    // A refresh replaces a live session…
    let refreshed = store.replace(&victim, NOW + 1).await.unwrap().expect("the session is live");
    assert_eq!(store.load(&refreshed, NOW + 1).await.unwrap().map(|s| s.id), Some(victim.id.clone()));
    // A logout presenting them all ends the live one (and may report the ended ones again:
    // asking twice is harmless); nothing usable is left.
    let ended = store.end_all(&values, NOW + 2).await.unwrap();
    assert!(ended.iter().any(|s| s.id == victim.id), "{}", store.kind());
    store.end_all(&values, NOW + 3).await.unwrap();
    assert!(store.load_all(&values, NOW + 4).await.unwrap().is_empty(), "{}", store.kind());
    // …but one in flight when the logout came does not bring it back.
    assert_eq!(store.replace(&victim, NOW + 5).await.unwrap(), None, "{}", store.kind());
    assert!(store.load(&refreshed, NOW + 5).await.unwrap().is_none(), "{}", store.kind());
}

#[tokio::test]
async fn cookie_store_looks_at_every_value() {
    ended_sessions_never_hide_a_live_one(&CookieStore::new(sealer(), COOKIE, LIFETIME, None).unwrap()).await;
}

fn redis_store(url: String, timeout: Duration) -> RedisStore {
    let settings = RedisSettings::single_tcp(url, 1, timeout);
    RedisStore::new(RedisPool::new(&settings).unwrap(), sealer(), "test:lookups:", COOKIE)
}

#[tokio::test]
async fn redis_store_looks_at_every_value() {
    let redis = RedisServer::start();
    ended_sessions_never_hide_a_live_one(&redis_store(redis.url(), Duration::from_secs(2))).await;
}

/// Forty authentic values and a Redis that stopped answering: the lookup fails after what one
/// value costs (one timeout), not forty. Time is paused for the slow calls only, so the
/// comparison is exact and the test takes no real time.
#[tokio::test]
async fn a_hung_redis_costs_one_timeout_whatever_a_request_presents() {
    let redis = RedisServer::start();
    let timeout = Duration::from_millis(300);
    let store = redis_store(redis.url(), timeout);
    let mut values = Vec::new();
    for _ in 0..40 {
        values.push(store.save(&session_of("someone"), NOW).await.unwrap());
    }
    redis.freeze();
    tokio::time::pause();
    let timed = |values: &[String]| {
        let values = values.to_vec();
        let store = &store;
        async move {
            let started = tokio::time::Instant::now();
            assert!(store.load_all(&values, NOW).await.is_err(), "an outage is an error, not 'no session'");
            let load = started.elapsed();
            let started = tokio::time::Instant::now();
            assert!(store.end_all(&values, NOW).await.is_err());
            (load, started.elapsed())
        }
    };
    let one = timed(&values[..1]).await;
    let forty = timed(&values).await;
    tokio::time::resume();
    redis.thaw();
    assert_eq!(one, forty, "forty values cost what one does");
    assert!(forty.0 < timeout * 2 && forty.1 < timeout * 2, "one timeout per call, no retry after it: {forty:?}");
}

/// The revocation file's path made unusable: a directory stands where the file was. (Tests run
/// as root, for whom a read-only file is writable; a directory is not, for anyone.)
struct BrokenFile {
    path: std::path::PathBuf,
    aside: std::path::PathBuf,
}

impl BrokenFile {
    fn break_it(path: &std::path::Path) -> BrokenFile {
        let aside = path.with_extension("aside");
        std::fs::rename(path, &aside).unwrap();
        std::fs::create_dir(path).unwrap();
        BrokenFile { path: path.to_path_buf(), aside }
    }

    fn mend(self) {
        std::fs::remove_dir(&self.path).unwrap();
        std::fs::rename(&self.aside, &self.path).unwrap();
    }
}

#[tokio::test]
async fn a_sign_out_the_file_cannot_take_is_reported_until_it_is_written_and_then_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("revocations.jsonl");
    let store = CookieStore::new(sealer(), COOKIE, LIFETIME, Some(file.clone())).unwrap();
    let alice = session_of("alice");
    let value = store.save(&alice, NOW).await.unwrap();

    let broken = BrokenFile::break_it(&file);
    assert!(store.end_all(std::slice::from_ref(&value), NOW).await.is_err(), "the first try is told");
    // The session is refused at once by this instance…
    assert!(store.load(&value, NOW).await.unwrap().is_none());
    // …but the sign-out is not durable, and trying again says so again.
    assert!(store.end_all(std::slice::from_ref(&value), NOW + 1).await.is_err(), "the retry is told too");
    broken.mend();

    let ended = store.end_all(std::slice::from_ref(&value), NOW + 2).await.unwrap();
    assert_eq!(ended.iter().map(|s| &s.id).collect::<Vec<_>>(), [&alice.id], "reported as ended once written");
    drop(store);

    let restarted = CookieStore::new(sealer(), COOKIE, LIFETIME, Some(file)).unwrap();
    assert!(restarted.load(&value, NOW + 4).await.unwrap().is_none(), "signed out for good");
}

#[tokio::test]
async fn a_revocation_that_could_not_be_written_is_written_by_the_timer() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("revocations.jsonl");
    let store = CookieStore::new(sealer(), COOKIE, LIFETIME, Some(file.clone())).unwrap();
    let bob = session_of("bob");
    let value = store.save(&bob, NOW).await.unwrap();

    let broken = BrokenFile::break_it(&file);
    assert!(store.end_all(std::slice::from_ref(&value), NOW).await.is_err());
    broken.mend();
    // Nobody signs out again: the store's own retry writes it within a few periods.
    shared::testing::eventually("written by the timer", REVOCATION_RETRY_EVERY * 4, async || {
        std::fs::read_to_string(&file).unwrap().contains(&bob.id)
    })
    .await;
    // The user, told the sign-out failed, tries again: it succeeds and still names the session
    // (so the logout goes on to the provider's end-session endpoint).
    let again = store.end_all(std::slice::from_ref(&value), NOW + 1).await.unwrap();
    assert_eq!(again.iter().map(|s| &s.id).collect::<Vec<_>>(), [&bob.id]);
    drop(store);
    let restarted = CookieStore::new(sealer(), COOKIE, LIFETIME, Some(file)).unwrap();
    assert!(restarted.load(&value, NOW + 1).await.unwrap().is_none(), "signed out for good");
}

/// Two tabs sign out at once while the file cannot take it: neither is told it worked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sign_outs_are_both_told_when_the_file_cannot_take_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("revocations.jsonl");
    let store = Arc::new(CookieStore::new(sealer(), COOKIE, LIFETIME, Some(file.clone())).unwrap());
    let value = store.save(&session_of("carol"), NOW).await.unwrap();
    let broken = BrokenFile::break_it(&file);
    for _ in 0..50 {
        let tabs: Vec<_> = (0..2)
            .map(|_| {
                let (store, value) = (store.clone(), value.clone());
                tokio::spawn(async move { store.end_all(&[value], NOW).await.is_err() })
            })
            .collect();
        for tab in tabs {
            assert!(tab.await.unwrap(), "a sign-out answered as done while nothing was written");
        }
    }
    broken.mend();
}

/// More sign-outs than the backlog lists while the file is unusable: past the bound the store
/// keeps no list (memory stays bounded) and writes the whole live set once it can, so none of
/// them is lost across a restart.
#[tokio::test]
async fn sign_outs_beyond_the_backlog_bound_are_all_written_once_the_file_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("revocations.jsonl");
    let store = CookieStore::new(sealer(), COOKIE, LIFETIME, Some(file.clone())).unwrap();
    let mut values = Vec::new();
    for i in 0..REVOCATION_BACKLOG + 50 {
        values.push(store.save(&session_of(&format!("user-{i}")), NOW).await.unwrap());
    }
    let broken = BrokenFile::break_it(&file);
    for value in &values {
        assert!(store.end_all(std::slice::from_ref(value), NOW).await.is_err(), "told, every time");
    }
    broken.mend();
    assert_eq!(store.end_all(std::slice::from_ref(&values[0]), NOW + 1).await.unwrap().len(), 1);
    drop(store);
    let restarted = CookieStore::new(sealer(), COOKIE, LIFETIME, Some(file)).unwrap();
    assert!(restarted.load_all(&values, NOW + 2).await.unwrap().is_empty(), "every sign-out survived");
}

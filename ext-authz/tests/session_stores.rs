//! One behaviour suite for both session stores: the cookie store (the sealed session is the
//! cookie) and the Redis store (a sealed handle in the cookie, the sealed session in a real
//! redis-server).

use std::sync::Arc;
use std::time::Duration;

use ext_authz::core::session::cookies::{self, CookieAttributes, Cookies, SameSite};
use ext_authz::core::session::logout::Revocation;
use ext_authz::core::session::model::{Session, TokenSet};
use ext_authz::core::session::revoked::PER_SUBJECT;
use ext_authz::core::session::seal::{random_token, Sealer};
use ext_authz::core::session::stamp::Stamp;
use ext_authz::oidc::store::{CookieStore, RedisStore, SessionStore};
use serde_json::json;
use shared::redis::{RedisPool, RedisSettings};
use shared::testing::RedisServer;

const NOW: u64 = 1_800_000_000;
const LIFETIME: u64 = 3600;
const COOKIE: &str = "gh_session";

fn sealer(byte: u8) -> Arc<Sealer> {
    Arc::new(Sealer::new(&[vec![byte; 32]]).unwrap())
}

fn session(sub: &str, sid: &str, extra_claims: usize) -> Session {
    signed_in_at(sub, sid, extra_claims, NOW)
}

/// A session as a sign-in at `now` (the injected clock's second) creates it.
fn signed_in_at(sub: &str, sid: &str, extra_claims: usize, now: u64) -> Session {
    let padding: String = "x".repeat(extra_claims);
    let claims = Arc::new(json!({"sub": sub, "sid": sid, "email": format!("{sub}@example.com"), "padding": padding}));
    let tokens = TokenSet {
        id_token: Some("header.payload.signature".into()),
        access_token: Some(random_token(32)),
        refresh_token: Some(random_token(32)),
        expires_in: Some(300),
        scope: Some("openid email".into()),
    };
    Session::new(random_token(32), claims, tokens, Stamp::next(now), LIFETIME)
}

fn redis_backed(redis: &RedisServer, sealer: Arc<Sealer>) -> RedisStore {
    let settings = RedisSettings::single_tcp(redis.url(), 2, Duration::from_secs(2));
    RedisStore::new(RedisPool::new(&settings).unwrap(), sealer, "test:session:", COOKIE)
}

/// The behaviours every store must have. `other` is the same kind of store under a foreign key.
async fn suite(store: &dyn SessionStore, other: &dyn SessionStore) {
    // Round trip.
    let alice = session("alice", "op-1", 0);
    let value = store.save(&alice, NOW).await.unwrap();
    assert_eq!(store.load(&value, NOW).await.unwrap().as_ref(), Some(&alice), "{}", store.kind());

    // Saving the same session again (a refresh) keeps one session with the new tokens.
    let mut refreshed = alice.clone();
    refreshed.access_token = Some("new-access".into());
    let value = store.save(&refreshed, NOW + 10).await.unwrap();
    assert_eq!(store.load(&value, NOW + 10).await.unwrap().unwrap().access_token.as_deref(), Some("new-access"));

    // Forged, truncated, foreign and empty values are no session (not an error).
    let mut forged = value.clone().into_bytes();
    let middle = forged.len() / 2;
    forged[middle] = if forged[middle] == b'a' { b'b' } else { b'a' };
    let forged = String::from_utf8(forged).unwrap();
    let foreign = other.save(&alice, NOW).await.unwrap();
    for bad in [forged.as_str(), &value[..value.len() - 4], foreign.as_str(), "", "not-a-session"] {
        assert_eq!(store.load(bad, NOW).await.unwrap(), None, "{}: {bad:?}", store.kind());
    }

    // Expired at the session's absolute end.
    assert_eq!(store.load(&value, alice.expires_at).await.unwrap(), None);

    // Logout: the value stops working, also when replayed.
    store.delete(&alice, NOW + 20).await.unwrap();
    assert_eq!(store.load(&value, NOW + 21).await.unwrap(), None, "{}: logged out", store.kind());

    // Back-channel logout by provider session: only that session ends.
    let (one, two) = (session("bob", "op-2", 0), session("bob", "op-3", 0));
    let (v1, v2) = (store.save(&one, NOW).await.unwrap(), store.save(&two, NOW).await.unwrap());
    store.revoke(&Revocation { sid: Some("op-2".into()), sub: Some("bob".into()) }, NOW + 30).await.unwrap();
    assert_eq!(store.load(&v1, NOW + 31).await.unwrap(), None, "{}: sid revoked", store.kind());
    assert!(store.load(&v2, NOW + 31).await.unwrap().is_some(), "{}: other sid kept", store.kind());

    // By subject: every session of that user made before the logout.
    let carol = session("carol", "op-4", 0);
    let v3 = store.save(&carol, NOW).await.unwrap();
    store.revoke(&Revocation { sid: None, sub: Some("bob".into()) }, NOW + 40).await.unwrap();
    assert_eq!(store.load(&v2, NOW + 41).await.unwrap(), None, "{}: sub revoked", store.kind());
    assert!(store.load(&v3, NOW + 41).await.unwrap().is_some(), "{}: other users kept", store.kind());

    // A `sub` logout, and the user signs in again in the same second: the new session is
    // valid, the one made earlier in that second stays ended.
    let early = store.save(&signed_in_at("bob", "op-7", 0, NOW + 50), NOW + 50).await.unwrap();
    store.revoke(&Revocation { sid: None, sub: Some("bob".into()) }, NOW + 50).await.unwrap();
    let again = store.save(&signed_in_at("bob", "op-8", 0, NOW + 50), NOW + 50).await.unwrap();
    assert_eq!(store.load(&early, NOW + 50).await.unwrap(), None, "{}: made before the logout", store.kind());
    assert!(store.load(&again, NOW + 50).await.unwrap().is_some(), "{}: signed in again at once", store.kind());

    // A large session survives the trip through chunked cookies under the browser's limit.
    let big = session("dave", "op-5", 6000);
    let value = store.save(&big, NOW).await.unwrap();
    let attributes = CookieAttributes { domain: None, secure: true, same_site: SameSite::Lax };
    let headers = cookies::write(&attributes, COOKIE, &value, LIFETIME, &[]);
    assert!(headers.iter().all(|h| h.len() <= 4096), "{}: every Set-Cookie under 4 KiB", store.kind());
    let jar: Vec<&str> = headers.iter().map(|h| h.split(';').next().unwrap()).collect();
    let jar = jar.join("; ");
    let read = Cookies::parse(Some(&jar)).read_chunked(COOKIE).unwrap();
    assert_eq!(store.load(&read, NOW).await.unwrap().as_ref(), Some(&big));
}

#[tokio::test]
async fn cookie_store() {
    let store = CookieStore::new(sealer(1), COOKIE, LIFETIME, None).unwrap();
    let other = CookieStore::new(sealer(2), COOKIE, LIFETIME, None).unwrap();
    suite(&store, &other).await;
    // The whole session is in the cookie: a large one needs several chunks.
    let value = store.save(&session("erin", "op-6", 6000), NOW).await.unwrap();
    assert!(value.len() > cookies::CHUNK_SIZE);
}

#[tokio::test]
async fn redis_store() {
    let redis = RedisServer::start();
    let store = redis_backed(&redis, sealer(1));
    let other = redis_backed(&redis, sealer(2));
    suite(&store, &other).await;
    // Only a handle in the cookie, however large the session.
    let value = store.save(&session("erin", "op-6", 6000), NOW).await.unwrap();
    assert!(value.len() < 200, "{} bytes", value.len());
}

#[tokio::test]
async fn redis_store_outage_is_an_error_not_a_missing_session() {
    let mut redis = RedisServer::start();
    let store = redis_backed(&redis, sealer(1));
    let value = store.save(&session("frank", "op-7", 0), NOW).await.unwrap();
    redis.stop();
    assert!(store.load(&value, NOW).await.is_err());
}

#[tokio::test]
async fn cookie_store_revocations_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("revocations.jsonl");
    let open = || CookieStore::new(sealer(1), COOKIE, LIFETIME, Some(file.clone())).unwrap();
    let (alice, bob, carol, dave) = (
        session("alice", "op-1", 0),
        session("bob", "op-2", 0),
        session("carol", "op-3", 0),
        session("dave", "op-4", 0),
    );
    let first = open();
    let mut values = Vec::new();
    for s in [&alice, &bob, &carol, &dave] {
        values.push(first.save(s, NOW).await.unwrap());
    }
    first.delete(&alice, NOW + 1).await.unwrap();
    first.revoke(&Revocation { sid: Some("op-2".into()), sub: None }, NOW + 2).await.unwrap();
    first.revoke(&Revocation { sid: None, sub: Some("carol".into()) }, NOW + 3).await.unwrap();
    drop(first);

    // A restart, and a crash that left half a line behind: what was confirmed still holds.
    let mut text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    text.push_str("{\"kind\":\"session\",\"id\":\"cut-sh");
    std::fs::write(&file, text).unwrap();
    let second = open();
    for (value, who) in values.iter().zip(["alice", "bob", "carol"]) {
        assert_eq!(second.load(value, NOW + 10).await.unwrap(), None, "{who} stays signed out");
    }
    assert!(second.load(&values[3], NOW + 10).await.unwrap().is_some(), "dave was never signed out");
    assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 3, "rewritten without the cut line");

    // Files that are not a revocation log are refused by name.
    let huge = dir.path().join("huge.jsonl");
    std::fs::File::create(&huge).unwrap().set_len(ext_authz::oidc::store::MAX_LOG_BYTES + 1).unwrap();
    let error = CookieStore::new(sealer(1), COOKIE, LIFETIME, Some(huge.clone())).err().unwrap().to_string();
    assert!(error.starts_with(&format!("{}: ", huge.display())) && error.contains("more than"), "{error}");
    let error = CookieStore::new(sealer(1), COOKIE, LIFETIME, Some(dir.path().to_path_buf())).err().unwrap();
    assert!(error.to_string().ends_with("not a regular file"), "{error}");
}

#[tokio::test]
async fn cookie_store_at_its_cap_never_brings_a_session_back_even_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("revocations.jsonl");
    let store = CookieStore::with_cap(sealer(1), COOKIE, LIFETIME, Some(file.clone()), 20).unwrap();
    let mut sessions = Vec::new();
    for i in 0..200u64 {
        let mut s = session(&format!("user{i}"), &format!("op-{i}"), 0);
        s.created_at = NOW + i;
        let value = store.save(&s, NOW + i).await.unwrap();
        store.delete(&s, NOW + i).await.unwrap();
        sessions.push(value);
    }
    let fresh = session("newcomer", "op-new", 0);
    let mut fresh = fresh;
    fresh.created_at = NOW + 500;
    let fresh_value = store.save(&fresh, NOW + 500).await.unwrap();
    drop(store);
    let restarted = CookieStore::with_cap(sealer(1), COOKIE, LIFETIME, Some(file.clone()), 20).unwrap();
    for (i, value) in sessions.iter().enumerate() {
        assert_eq!(restarted.load(value, NOW + 600).await.unwrap(), None, "session {i} came back");
    }
    assert!(restarted.load(&fresh_value, NOW + 600).await.unwrap().is_some());
}

#[tokio::test]
async fn cookie_store_a_sign_in_right_after_a_sub_logout_stays_valid_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("revocations.jsonl");
    let open = || CookieStore::new(sealer(1), COOKIE, LIFETIME, Some(file.clone())).unwrap();
    let store = open();
    // All in the injected clock's one second: a sign-in, a back-channel logout naming only
    // `sub`, and the same user signing in again.
    let early = store.save(&signed_in_at("alice", "op-1", 0, NOW), NOW).await.unwrap();
    store.revoke(&Revocation { sid: None, sub: Some("alice".into()) }, NOW).await.unwrap();
    let again = store.save(&signed_in_at("alice", "op-2", 0, NOW), NOW).await.unwrap();
    assert_eq!(store.load(&early, NOW).await.unwrap(), None);
    assert!(store.load(&again, NOW).await.unwrap().is_some());
    drop(store);
    let restarted = open();
    assert_eq!(restarted.load(&early, NOW).await.unwrap(), None, "ended for good");
    assert!(restarted.load(&again, NOW).await.unwrap().is_some(), "the file keeps the logout's stamp");
}

#[tokio::test]
async fn cookie_store_reads_what_the_previous_version_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("revocations.jsonl");
    // Sessions the previous version sealed, and its revocation file: seconds only, logouts
    // without their subject.
    let old = |sub: &str, sid: &str, created_at: u64| {
        let mut session = signed_in_at(sub, sid, 0, created_at);
        session.created_us = None;
        session
    };
    let (alice, bob, carol, dave) =
        (old("alice", "op-1", NOW), old("bob", "op-2", NOW), old("carol", "op-3", NOW), old("dave", "op-4", NOW));
    let erin = old("erin", "op-5", NOW - 100);
    let until = NOW + LIFETIME;
    let lines = [
        format!(r#"{{"kind":"session","id":"{}","created_at":{NOW},"until":{until}}}"#, alice.id),
        format!(r#"{{"kind":"provider_session","sid":"op-2","before":{},"until":{until}}}"#, NOW + 2),
        format!(r#"{{"kind":"subject","sub":"carol","before":{},"until":{until}}}"#, NOW + 3),
        format!(r#"{{"kind":"watermark","before":{}}}"#, NOW - 100),
    ];
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    for start in ["first start", "after the rewrite"] {
        let store = CookieStore::new(sealer(1), COOKIE, LIFETIME, Some(file.clone())).unwrap();
        for (session, ended) in [(&alice, true), (&bob, true), (&carol, true), (&erin, true), (&dave, false)] {
            let value = store.save(session, NOW).await.unwrap();
            let loaded = store.load(&value, NOW + 10).await.unwrap();
            assert_eq!(loaded.is_none(), ended, "{start}: {}", session.subject);
        }
        // Signing in again after the previous version's logout works.
        let value = store.save(&signed_in_at("carol", "op-6", 0, NOW + 4), NOW + 4).await.unwrap();
        assert!(store.load(&value, NOW + 10).await.unwrap().is_some(), "{start}");
    }
}

#[tokio::test]
async fn cookie_store_one_user_signing_in_and_out_cannot_fill_the_revocations() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("revocations.jsonl");
    let open = || CookieStore::new(sealer(1), COOKIE, LIFETIME, Some(file.clone())).unwrap();
    let store = open();
    let alice = session("alice", "op-a", 0);
    let alice_value = store.save(&alice, NOW).await.unwrap();
    store.delete(&alice, NOW).await.unwrap();
    let bob = store.save(&session("bob", "op-b", 0), NOW).await.unwrap();
    // 15 sign-ins and sign-outs a second.
    let mut mallory = Vec::new();
    for i in 0..200u64 {
        let now = NOW + i / 15;
        let s = signed_in_at("mallory", &format!("op-m{i}"), 0, now);
        mallory.push(store.save(&s, now).await.unwrap());
        store.delete(&s, now).await.unwrap();
    }
    drop(store);
    let restarted = open();
    let lines = std::fs::read_to_string(&file).unwrap().lines().count();
    assert!(lines <= PER_SUBJECT + 2, "{lines} lines: mallory's folded, and alice's logout");
    let later = NOW + 20;
    for (i, value) in mallory.iter().enumerate() {
        assert_eq!(restarted.load(value, later).await.unwrap(), None, "mallory's session {i} came back");
    }
    assert_eq!(restarted.load(&alice_value, later).await.unwrap(), None);
    assert!(restarted.load(&bob, later).await.unwrap().is_some(), "nobody else's session ends");
    let again = restarted.save(&signed_in_at("mallory", "op-m", 0, later), later).await.unwrap();
    assert!(restarted.load(&again, later).await.unwrap().is_some(), "mallory can sign in again");
}

#[tokio::test]
async fn redis_store_reconnects_after_a_restart_without_failing_a_request() {
    let mut redis = RedisServer::start();
    let store = redis_backed(&redis, sealer(1));
    let alice = session("alice", "op-1", 0);
    // Every pooled connection is used once, so each holds a connection the restart kills.
    for _ in 0..4 {
        store.save(&alice, NOW).await.unwrap();
    }
    redis.stop();
    redis.resume();
    // Redis came back empty (no persistence here): no session, and no error on any connection.
    let value = store.save(&alice, NOW).await.unwrap();
    for attempt in 0..4 {
        assert!(store.load(&value, NOW).await.unwrap().is_some(), "attempt {attempt}");
    }
}

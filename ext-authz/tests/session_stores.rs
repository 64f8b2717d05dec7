//! One behaviour suite for both session stores: the cookie store (the sealed session is the
//! cookie) and the Redis store (a sealed handle in the cookie, the sealed session in a real
//! redis-server).

use std::sync::Arc;
use std::time::Duration;

use ext_authz::core::session::cookies::{self, CookieAttributes, Cookies, SameSite};
use ext_authz::core::session::logout::Revocation;
use ext_authz::core::session::model::{Session, TokenSet};
use ext_authz::core::session::seal::{random_token, Sealer};
use ext_authz::oidc::store::{CookieStore, RedisStore, SessionStore};
use serde_json::json;
use shared::redis::{RedisPool, RedisSettings, SocketType, Topology};
use shared::testing::RedisServer;

const NOW: u64 = 1_800_000_000;
const LIFETIME: u64 = 3600;
const COOKIE: &str = "gh_session";

fn sealer(byte: u8) -> Arc<Sealer> {
    Arc::new(Sealer::new(&[vec![byte; 32]]).unwrap())
}

fn session(sub: &str, sid: &str, extra_claims: usize) -> Session {
    let padding: String = "x".repeat(extra_claims);
    let claims = Arc::new(json!({"sub": sub, "sid": sid, "email": format!("{sub}@example.com"), "padding": padding}));
    let tokens = TokenSet {
        id_token: Some("header.payload.signature".into()),
        access_token: Some(random_token(32)),
        refresh_token: Some(random_token(32)),
        expires_in: Some(300),
        scope: Some("openid email".into()),
    };
    Session::new(random_token(32), claims, tokens, NOW, LIFETIME)
}

fn redis_backed(redis: &RedisServer, sealer: Arc<Sealer>) -> RedisStore {
    let settings = RedisSettings {
        socket_type: SocketType::Tcp,
        topology: Topology::Single,
        url: redis.url(),
        auth: None,
        sentinel_auth: None,
        tls: false,
        tls_client_cert: None,
        tls_client_key: None,
        tls_ca_cert: None,
        tls_skip_hostname_verification: false,
        pool_size: 2,
        timeout: Duration::from_secs(2),
    };
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
    let store = CookieStore::new(sealer(1), COOKIE, LIFETIME);
    let other = CookieStore::new(sealer(2), COOKIE, LIFETIME);
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

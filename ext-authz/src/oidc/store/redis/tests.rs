//! Against a real Redis: a key holding something else than the store put there is a reply about
//! that key — never "sessions are unavailable" — and each path fails closed; a stopped Redis is
//! still an outage.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use shared::redis::{RedisPool, RedisSettings};
use shared::testing::RedisServer;

use super::*;
use crate::core::random::random_token;
use crate::core::session::model::TokenSet;
use crate::core::session::stamp::Stamp;

const NOW: u64 = 1_800_000_000;
const PREFIX: &str = "test:errors:";

fn store(redis: &RedisServer) -> RedisStore {
    let settings = RedisSettings::single_tcp(redis.url(), 1, Duration::from_secs(2));
    let sealer = Arc::new(Sealer::new(&[vec![7; 32]]).unwrap());
    RedisStore::new(RedisPool::new(&settings).unwrap(), sealer, PREFIX, "gh_session")
}

fn session(sub: &str) -> Session {
    let claims = Arc::new(json!({"sub": sub, "sid": format!("op-{sub}")}));
    let tokens = TokenSet {
        id_token: Some("header.payload.signature".into()),
        access_token: Some(random_token(32)),
        refresh_token: None,
        expires_in: Some(300),
        scope: None,
    };
    Session::new(random_token(32), claims, tokens, Stamp::next(NOW), 3600)
}

/// Replaces `key` with a list.
async fn plant_list(store: &RedisStore, key: &str) {
    let mut pipeline = redis::pipe();
    pipeline.cmd("DEL").arg(key).ignore();
    pipeline.cmd("RPUSH").arg(key).arg("planted").ignore();
    store.pool.query::<()>(&pipeline).await.unwrap();
}

#[tokio::test]
async fn a_session_key_of_the_wrong_type_is_no_session_not_an_outage() {
    let redis = RedisServer::start();
    let store = store(&redis);
    let (planted, alice) = (session("mallory"), session("alice"));
    let planted_value = store.save(&planted, NOW).await.unwrap();
    let alice_value = store.save(&alice, NOW).await.unwrap();
    plant_list(&store, &store.session_key(&planted.id)).await;

    // Read as no session (the browser signs in again), and the other value still works.
    assert_eq!(store.load(&planted_value, NOW).await.unwrap(), None);
    let both = [planted_value.clone(), alice_value.clone()];
    assert_eq!(store.load_all(&both, NOW).await.unwrap(), std::slice::from_ref(&alice));
    // A sign-out presenting both ends the live one.
    assert_eq!(store.end_all(&both, NOW).await.unwrap(), [alice]);
    assert_eq!(store.load(&alice_value, NOW).await.unwrap(), None);
    // Signing in again writes over whatever the key held.
    store.save(&planted, NOW).await.unwrap();
    assert_eq!(store.load(&planted_value, NOW).await.unwrap(), Some(planted));
}

#[tokio::test]
async fn an_index_of_the_wrong_type_refuses_a_sign_in_but_not_a_sign_out() {
    let redis = RedisServer::start();
    let store = store(&redis);
    let bob = session("bob");
    let value = store.save(&bob, NOW).await.unwrap();
    plant_list(&store, &store.sub_key("bob")).await;

    // A sign-out ends the session; the broken index keeps nothing alive.
    assert_eq!(store.end_all(std::slice::from_ref(&value), NOW).await.unwrap(), std::slice::from_ref(&bob));
    assert_eq!(store.load(&value, NOW).await.unwrap(), None);
    store.delete(&bob, NOW).await.unwrap();

    // A new session of bob's cannot be indexed, so a back-channel logout could not reach it:
    // refused (fails closed), as this session's error — not the store being down.
    let error = store.save(&session("bob"), NOW).await.unwrap_err();
    assert!(!error.is_transient(), "{error}");
    let answer = crate::oidc::session_store_failed(&error);
    assert_eq!((answer.status, answer.reason), (500, "session_store_error"));
    // So is a back-channel logout by that subject.
    let revocation = Revocation { sid: None, sub: Some("bob".into()) };
    let error = store.revoke(&revocation, NOW).await.unwrap_err();
    assert!(!error.is_transient(), "{error}");
}

#[tokio::test]
async fn a_stopped_redis_is_still_an_outage() {
    let mut redis = RedisServer::start();
    let store = store(&redis);
    let carol = session("carol");
    let value = store.save(&carol, NOW).await.unwrap();
    redis.stop();
    let error = store.load(&value, NOW).await.unwrap_err();
    assert!(error.is_transient(), "{error}");
    let answer = crate::oidc::session_store_failed(&error);
    assert_eq!((answer.status, answer.reason), (503, "session_store_unavailable"));
    assert!(store.save(&session("carol"), NOW).await.unwrap_err().is_transient());
    assert!(store.end_all(std::slice::from_ref(&value), NOW).await.unwrap_err().is_transient());
}

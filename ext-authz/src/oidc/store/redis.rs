//! The server-side store: the cookie holds a sealed random handle, Redis holds the sealed
//! session under `<prefix>s:<id>` with a TTL of its remaining lifetime, and two index sets
//! (`<prefix>sid:<sid>`, `<prefix>sub:<subject>`) let a back-channel logout find every session it
//! names. Sessions are sealed at rest too: a Redis dump holds no usable tokens.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use redis::Value;
use shared::redis::{RedisCallError, RedisPool};

use super::{SessionStore, StoreError};
use crate::core::session::logout::Revocation;
use crate::core::session::model::Session;
use crate::core::session::seal::Sealer;

pub struct RedisStore {
    pool: RedisPool,
    sealer: Arc<Sealer>,
    prefix: String,
    handle_purpose: String,
}

impl RedisStore {
    pub fn new(pool: RedisPool, sealer: Arc<Sealer>, prefix: &str, cookie_name: &str) -> RedisStore {
        RedisStore {
            pool,
            sealer,
            prefix: prefix.to_string(),
            handle_purpose: format!("gatehouse-session-handle-v1:{cookie_name}"),
        }
    }

    fn session_key(&self, id: &str) -> String {
        format!("{}s:{id}", self.prefix)
    }

    fn sid_key(&self, sid: &str) -> String {
        format!("{}sid:{sid}", self.prefix)
    }

    fn sub_key(&self, sub: &str) -> String {
        format!("{}sub:{sub}", self.prefix)
    }

    /// A stored value is bound to its id, so values cannot be swapped between keys.
    fn value_purpose(id: &str) -> String {
        format!("gatehouse-session-redis-v1:{id}")
    }

    /// Ends `sessions`: their values, then their places in the indexes, in one call. A value
    /// that could not be deleted fails the call. An index refusing its `SREM` (it holds
    /// something else than a set: planted, or another program's key) is logged and passed
    /// over: the session's value is gone, so nothing can use it, and an index entry naming a
    /// gone session ends nothing and keeps nothing alive. A failure of Redis itself (transient)
    /// fails the call either way: the user is told and can sign out again.
    async fn end(&self, sessions: &[Session]) -> Result<(), StoreError> {
        let mut pipeline = redis::pipe();
        // Each reply in its place (an error reply as a `ServerError`), so they can be told apart.
        pipeline.ignore_errors();
        for session in sessions {
            pipeline.cmd("DEL").arg(self.session_key(&session.id));
        }
        for session in sessions {
            pipeline.cmd("SREM").arg(self.sub_key(&session.subject)).arg(&session.id);
            if let Some(sid) = &session.sid {
                pipeline.cmd("SREM").arg(self.sid_key(sid)).arg(&session.id);
            }
        }
        let replies: Vec<Value> = self.pool.query_idempotent(&pipeline).await?;
        let (values, indexes) = replies.split_at(sessions.len().min(replies.len()));
        for reply in values {
            shared::redis::reply::<Value>(reply.clone()).map_err(RedisCallError::from)?;
        }
        for reply in indexes {
            if let Err(e) = shared::redis::reply::<Value>(reply.clone()).map_err(RedisCallError::from) {
                if e.is_transient() {
                    return Err(e.into());
                }
                tracing::warn!("a session index is not a set, left as it is (its session is ended): {e}");
            }
        }
        Ok(())
    }

    async fn ids_in(&self, set: &str) -> Result<Vec<String>, StoreError> {
        let mut pipeline = redis::pipe();
        pipeline.cmd("SMEMBERS").arg(set);
        let (ids,): (Vec<String>,) = self.pool.query_idempotent(&pipeline).await?;
        Ok(ids)
    }
}

impl SessionStore for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn save<'a>(&'a self, session: &'a Session, now: u64) -> BoxFuture<'a, Result<String, StoreError>> {
        async move {
            let ttl = session.remaining(now).max(1);
            let value = self.sealer.seal(&Self::value_purpose(&session.id), &serde_json::to_vec(session)?);
            let mut pipeline = redis::pipe();
            pipeline.cmd("SET").arg(self.session_key(&session.id)).arg(value).arg("EX").arg(ttl).ignore();
            let mut indexes = vec![self.sub_key(&session.subject)];
            if let Some(sid) = &session.sid {
                indexes.push(self.sid_key(sid));
            }
            for index in &indexes {
                pipeline.cmd("SADD").arg(index).arg(&session.id).ignore();
                // An index lives as long as its longest session: set a TTL on a new set, and
                // only ever lengthen it.
                pipeline.cmd("EXPIRE").arg(index).arg(ttl).arg("NX").ignore();
                pipeline.cmd("EXPIRE").arg(index).arg(ttl).arg("GT").ignore();
            }
            self.pool.query_idempotent::<()>(&pipeline).await?;
            Ok(self.sealer.seal(&self.handle_purpose, session.id.as_bytes()))
        }
        .boxed()
    }

    fn replace<'a>(&'a self, session: &'a Session, now: u64) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        async move {
            // `XX`: only over the value that is there. A logout or a back-channel revocation
            // that deleted it while the refresh was in flight stays in force.
            let ttl = session.remaining(now).max(1);
            let value = self.sealer.seal(&Self::value_purpose(&session.id), &serde_json::to_vec(session)?);
            let mut pipeline = redis::pipe();
            pipeline.cmd("SET").arg(self.session_key(&session.id)).arg(value).arg("EX").arg(ttl).arg("XX");
            let (replaced,): (Option<String>,) = self.pool.query_idempotent(&pipeline).await?;
            Ok(replaced.map(|_| self.sealer.seal(&self.handle_purpose, session.id.as_bytes())))
        }
        .boxed()
    }

    fn load_all<'a>(&'a self, cookies: &'a [String], now: u64) -> BoxFuture<'a, Result<Vec<Session>, StoreError>> {
        async move {
            // Forged handles are refused here, without a Redis round trip; the others are read
            // in one pipeline (one round trip, one timeout), however many there are.
            // Up to `MAX_CANDIDATES` values: distinct ids kept in order through a set, not a scan.
            let mut seen = std::collections::HashSet::new();
            let ids: Vec<String> = cookies
                .iter()
                .filter_map(|cookie| self.sealer.open(&self.handle_purpose, cookie).ok())
                .map(|id| String::from_utf8_lossy(&id).into_owned())
                .filter(|id| seen.insert(id.clone()))
                .collect();
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let mut pipeline = redis::pipe();
            // Each reply in its place: one value's refusal is that value's, not the others'.
            pipeline.ignore_errors();
            for id in &ids {
                pipeline.cmd("GET").arg(self.session_key(id));
            }
            let replies: Vec<Value> = self.pool.query_idempotent(&pipeline).await?;
            let mut sessions = Vec::new();
            for (id, reply) in ids.iter().zip(replies) {
                let Some(value) = stored_value(reply)? else { continue };
                let Ok(plain) = self.sealer.open(&Self::value_purpose(id), &value) else { continue };
                if let Some(session) =
                    serde_json::from_slice::<Session>(&plain).ok().filter(|s| s.id == *id && s.expires_at > now)
                {
                    sessions.push(session);
                }
            }
            Ok(sessions)
        }
        .boxed()
    }

    fn end_all<'a>(&'a self, cookies: &'a [String], now: u64) -> BoxFuture<'a, Result<Vec<Session>, StoreError>> {
        async move {
            let sessions = self.load_all(cookies, now).await?;
            if !sessions.is_empty() {
                self.end(&sessions).await?;
            }
            Ok(sessions)
        }
        .boxed()
    }

    fn delete<'a>(&'a self, session: &'a Session, _now: u64) -> BoxFuture<'a, Result<(), StoreError>> {
        async move { self.end(std::slice::from_ref(session)).await }.boxed()
    }

    fn revoke<'a>(&'a self, revocation: &'a Revocation, _now: u64) -> BoxFuture<'a, Result<u64, StoreError>> {
        async move {
            // With both, `sid` is the narrower: that one provider session of that user.
            let index = match (&revocation.sid, &revocation.sub) {
                (Some(sid), _) => self.sid_key(sid),
                (None, Some(sub)) => self.sub_key(sub),
                (None, None) => return Ok(0),
            };
            let ids = self.ids_in(&index).await?;
            let mut pipeline = redis::pipe();
            for id in &ids {
                pipeline.cmd("DEL").arg(self.session_key(id));
            }
            pipeline.cmd("DEL").arg(&index).ignore();
            let deleted: Vec<u64> = self.pool.query_idempotent(&pipeline).await?;
            Ok(deleted.iter().sum())
        }
        .boxed()
    }
}

/// A session key's stored value: `None` when there is none — or when the key holds something
/// else than a session's string (a list planted at it, another program's key). That is a
/// reply about this key alone, not the store being down: the value names no session (fails
/// closed: the browser signs in again, and the new session's `SET` replaces whatever the key
/// held), and the request is not answered "sessions are unavailable". A failure of Redis itself
/// is the call's error.
fn stored_value(reply: Value) -> Result<Option<String>, StoreError> {
    match shared::redis::reply::<Option<String>>(reply).map_err(RedisCallError::from) {
        Ok(value) => Ok(value),
        Err(e) if e.is_transient() => Err(e.into()),
        Err(e) => {
            tracing::warn!("a session key holds something else than a session, read as no session: {e}");
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests;

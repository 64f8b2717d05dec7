//! Where sessions live. The cookie only ever carries a sealed value; what that value is depends
//! on the store:
//! - [`CookieStore`]: the whole session, sealed (stateless; chunked by the cookie layer when
//!   long). Logout and back-channel revocations are remembered by this instance until the
//!   sessions they name would have expired: in memory, and in `revocations_file` when set (so
//!   they survive a restart; replicas do not share them — that is the Redis store's job).
//! - [`RedisStore`]: a sealed random handle; the sealed session sits in Redis with a TTL, indexed
//!   by provider session (`sid`) and subject so back-channel logout reaches every replica.
//!
//! Both pass the same behaviour suite (`tests/session_stores.rs`).

mod cookie;
mod pending_revocations;
mod redis;
mod revocation_log;
mod traced;

use futures_util::future::BoxFuture;

pub use cookie::{CookieStore, MAX_REVOCATIONS};
pub use pending_revocations::{MAX_BACKLOG as REVOCATION_BACKLOG, RETRY_EVERY as REVOCATION_RETRY_EVERY};
pub use redis::RedisStore;
pub use revocation_log::{check_writable as check_revocations_file, RevocationFileError, MAX_LOG_BYTES};
pub use traced::Traced;

use crate::core::session::logout::Revocation;
use crate::core::session::model::Session;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("session store: {0}")]
    Redis(#[from] shared::redis::RedisCallError),
    #[error("session store: cannot encode the session: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("session store: cannot record the revocation: {0}")]
    Revocations(std::io::Error),
}

impl StoreError {
    /// Whether the store itself failed (Redis unreachable, slow, loading or read-only — see
    /// `shared::redis::error` — or the revocation file not writable), so retrying later may
    /// work and the answer is "unavailable"; `false` when the store refused this call (a key
    /// holding something else, a command not allowed) or this session cannot be stored at all.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Redis(e) => e.is_transient(),
            StoreError::Revocations(_) => true,
            StoreError::Encode(_) => false,
        }
    }
}

pub trait SessionStore: Send + Sync {
    /// `cookie` or `redis`, for logs and metrics.
    fn kind(&self) -> &'static str;

    /// Stores (or replaces, for the same id) a session; returns the cookie value that finds it.
    fn save<'a>(&'a self, session: &'a Session, now: u64) -> BoxFuture<'a, Result<String, StoreError>>;

    /// Stores a refreshed session in place of the one it refreshes; `None` when that one ended
    /// meanwhile (a logout, a revocation): a refresh in flight must not bring it back.
    fn replace<'a>(&'a self, session: &'a Session, now: u64) -> BoxFuture<'a, Result<Option<String>, StoreError>>;

    /// The live sessions the cookie values name, in the order given (forged, foreign, expired,
    /// logged-out and revoked values are left out, never an error: the browser simply signs in
    /// again). One store call however many values a request presents, so a check costs what one
    /// lookup costs and planted values cannot use up a budget.
    fn load_all<'a>(&'a self, cookies: &'a [String], now: u64) -> BoxFuture<'a, Result<Vec<Session>, StoreError>>;

    /// The live session one cookie value names ([`SessionStore::load_all`] of one value).
    fn load<'a>(&'a self, cookie: &'a str, now: u64) -> BoxFuture<'a, Result<Option<Session>, StoreError>> {
        Box::pin(async move {
            let cookies = [cookie.to_string()];
            Ok(self.load_all(&cookies, now).await?.into_iter().next())
        })
    }

    /// Ends every session the cookie values name (a logout): their values stop working, also if
    /// replayed. Returns the sessions ended, including any whose end an earlier call recorded
    /// but could not make durable (this call finishes the job). An error means at least one
    /// end is not durable yet: the user must be told, and may try again.
    fn end_all<'a>(&'a self, cookies: &'a [String], now: u64) -> BoxFuture<'a, Result<Vec<Session>, StoreError>>;

    /// Ends one session (logout): its cookie value stops working, also if replayed.
    fn delete<'a>(&'a self, session: &'a Session, now: u64) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Ends the sessions a back-channel logout names; returns how many were found (the cookie
    /// store cannot know and says 0).
    fn revoke<'a>(&'a self, revocation: &'a Revocation, now: u64) -> BoxFuture<'a, Result<u64, StoreError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_failures_are_transient_and_encoding_failures_are_not() {
        let timeout = shared::redis::RedisCallError::Timeout(std::time::Duration::from_millis(300));
        assert!(StoreError::Redis(timeout).is_transient());
        assert!(StoreError::Revocations(std::io::Error::other("disk full")).is_transient());
        let encode = serde_json::from_str::<u8>("x").unwrap_err();
        assert!(!StoreError::Encode(encode).is_transient());
    }

    #[test]
    fn a_reply_about_one_key_is_not_transient() {
        let value =
            ::redis::parse_redis_value(b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
        let error = shared::redis::reply::<String>(value.unwrap()).unwrap_err();
        assert!(!StoreError::Redis(error.into()).is_transient());
    }
}

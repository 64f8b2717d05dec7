//! The stateless store: the sealed session is the cookie value. Logouts and back-channel
//! revocations are remembered in memory (bounded, see [`Revoked`]) and, with a revocation file,
//! on disk before they are confirmed, so a restart does not bring ended sessions back.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use super::revocation_log::{RevocationFileError, RevocationLog};
use super::{SessionStore, StoreError};
use crate::core::session::logout::Revocation;
use crate::core::session::model::Session;
use crate::core::session::revoked::{Entry, Revoked};
use crate::core::session::seal::Sealer;
use crate::core::session::stamp::Stamp;

/// Revocations remembered at most; beyond, the oldest fold into a watermark (nothing is
/// un-revoked).
pub const MAX_REVOCATIONS: usize = 100_000;

pub struct CookieStore {
    sealer: Arc<Sealer>,
    purpose: String,
    /// Session lifetime in seconds: how long a revocation must be remembered.
    lifetime: u64,
    revoked: Arc<Mutex<Revoked>>,
    log: Option<Arc<RevocationLog>>,
}

impl CookieStore {
    /// With `revocations_file`, reads what was revoked before and rewrites the file compactly.
    pub fn new(
        sealer: Arc<Sealer>,
        cookie_name: &str,
        lifetime: u64,
        revocations_file: Option<PathBuf>,
    ) -> Result<CookieStore, RevocationFileError> {
        Self::with_cap(sealer, cookie_name, lifetime, revocations_file, MAX_REVOCATIONS)
    }

    pub fn with_cap(
        sealer: Arc<Sealer>,
        cookie_name: &str,
        lifetime: u64,
        revocations_file: Option<PathBuf>,
        cap: usize,
    ) -> Result<CookieStore, RevocationFileError> {
        let mut revoked = Revoked::new(cap);
        // Expiry of what the file holds is judged by the system clock at start.
        let now = (shared::clock::system_clock())();
        let log = match revocations_file {
            Some(path) => {
                let (log, entries) = RevocationLog::open(&path)?;
                let count = entries.len();
                for entry in entries {
                    revoked.insert(entry, now);
                }
                log.rewrite(|| revoked.snapshot(now))
                    .map_err(|source| RevocationFileError::Io { path: path.clone(), source })?;
                tracing::info!(file = %path.display(), read = count, live = revoked.len(), "session revocations loaded");
                Some(Arc::new(log))
            }
            None => None,
        };
        Ok(CookieStore {
            sealer,
            purpose: format!("gatehouse-session-v1:{cookie_name}"),
            lifetime,
            revoked: Arc::new(Mutex::new(revoked)),
            log,
        })
    }

    fn open(&self, cookie: &str, now: u64) -> Option<Session> {
        let plain = self.sealer.open(&self.purpose, cookie).ok()?;
        let session: Session = serde_json::from_slice(&plain).ok()?;
        if session.expires_at <= now || self.revoked.lock().expect("lock").covers(&session) {
            return None;
        }
        Some(session)
    }

    /// Takes effect in memory at once; then, with a log, is on disk before this returns. A
    /// failed write is an error the caller reports (the revocation still holds until restart).
    async fn record(&self, entry: Entry, now: u64) -> Result<(), StoreError> {
        let mut written = vec![entry.clone()];
        written.extend(self.revoked.lock().expect("lock").insert(entry, now));
        let Some(log) = self.log.clone() else { return Ok(()) };
        let revoked = self.revoked.clone();
        tokio::task::spawn_blocking(move || {
            log.append(&written)?;
            let live = revoked.lock().expect("lock").len();
            if log.wants_rewrite(live) {
                log.rewrite(|| revoked.lock().expect("lock").snapshot(now))?;
            }
            Ok::<_, std::io::Error>(())
        })
        .await
        .map_err(|e| StoreError::Revocations(std::io::Error::other(e)))?
        .map_err(StoreError::Revocations)
    }
}

impl SessionStore for CookieStore {
    fn kind(&self) -> &'static str {
        "cookie"
    }

    fn save<'a>(&'a self, session: &'a Session, _now: u64) -> BoxFuture<'a, Result<String, StoreError>> {
        async move { Ok(self.sealer.seal(&self.purpose, &serde_json::to_vec(session)?)) }.boxed()
    }

    fn authentic(&self, cookie: &str) -> bool {
        self.sealer.open(&self.purpose, cookie).is_ok()
    }

    fn load<'a>(&'a self, cookie: &'a str, now: u64) -> BoxFuture<'a, Result<Option<Session>, StoreError>> {
        async move { Ok(self.open(cookie, now)) }.boxed()
    }

    fn delete<'a>(&'a self, session: &'a Session, now: u64) -> BoxFuture<'a, Result<(), StoreError>> {
        self.record(Entry::logout(session), now).boxed()
    }

    fn revoke<'a>(&'a self, revocation: &'a Revocation, now: u64) -> BoxFuture<'a, Result<u64, StoreError>> {
        async move {
            // Every session made before now ends by its lifetime at the latest; remember that long.
            let until = now.saturating_add(self.lifetime);
            // Stamped after every session this process created before it, and before every one
            // it creates after: a sign-in right after the logout is not caught by it.
            let at = Stamp::next(now);
            let entry = match (&revocation.sid, &revocation.sub) {
                (Some(sid), _) => Entry::provider_session(sid, at, until),
                (None, Some(sub)) => Entry::subject(sub, at, until),
                (None, None) => return Ok(0),
            };
            self.record(entry, now).await?;
            Ok(0)
        }
        .boxed()
    }
}

//! The stateless store: the sealed session is the cookie value. Logouts and back-channel
//! revocations are remembered in memory (bounded, see [`Revoked`]) and, with a revocation file,
//! on disk before they are confirmed, so a restart does not bring ended sessions back.

use std::path::PathBuf;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use parking_lot::Mutex;

use super::pending_revocations::PendingRevocations;
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
    /// With a revocation file: what is in effect but not on disk yet.
    pending: Option<Arc<PendingRevocations>>,
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
        let mut set = Revoked::new(cap);
        // Expiry of what the file holds is judged by the system clock at start.
        let now = (shared::clock::system_clock())();
        let log = match revocations_file {
            Some(path) => {
                let (log, entries) = RevocationLog::open(&path)?;
                let count = entries.len();
                for entry in entries {
                    set.insert(entry, now);
                }
                let snapshot = set.snapshot(now);
                log.rewrite(|| snapshot).map_err(|source| RevocationFileError::Io { path: path.clone(), source })?;
                tracing::info!(file = %path.display(), read = count, live = set.len(), "session revocations loaded");
                Some(Arc::new(log))
            }
            None => None,
        };
        let revoked = Arc::new(Mutex::new(set));
        let pending = log.map(|log| PendingRevocations::new(log, revoked.clone()));
        Ok(CookieStore { sealer, purpose: format!("gatehouse-session-v1:{cookie_name}"), lifetime, revoked, pending })
    }

    /// The unexpired session a value seals, revoked or not.
    fn open(&self, cookie: &str, now: u64) -> Option<Session> {
        let plain = self.sealer.open(&self.purpose, cookie).ok()?;
        let session: Session = serde_json::from_slice(&plain).ok()?;
        (session.expires_at > now).then_some(session)
    }

    fn is_revoked(&self, session: &Session) -> bool {
        self.revoked.lock().covers(session)
    }

    /// Takes effect in memory at once; then, with a log, is on disk before this returns. A
    /// failed write is an error the caller reports; the revocation still holds in memory, and
    /// is written at the next chance (see [`PendingRevocations`]).
    async fn record(&self, entries: Vec<Entry>, now: u64) -> Result<(), StoreError> {
        {
            let mut revoked = self.revoked.lock();
            let mut written = Vec::new();
            for entry in entries {
                let raised = revoked.insert(entry.clone(), now);
                written.push(entry);
                written.extend(raised);
            }
            // Queued before the set's lock is let go: a concurrent sign-out that sees these in
            // effect also sees them not yet written.
            if let Some(pending) = &self.pending {
                pending.queue(written);
            }
        }
        match &self.pending {
            Some(pending) => pending.write(now).await.map_err(StoreError::Revocations),
            None => Ok(()),
        }
    }
}

impl SessionStore for CookieStore {
    fn kind(&self) -> &'static str {
        "cookie"
    }

    fn save<'a>(&'a self, session: &'a Session, _now: u64) -> BoxFuture<'a, Result<String, StoreError>> {
        async move { Ok(self.sealer.seal(&self.purpose, &serde_json::to_vec(session)?)) }.boxed()
    }

    fn replace<'a>(&'a self, session: &'a Session, now: u64) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        async move {
            if self.is_revoked(session) {
                return Ok(None);
            }
            self.save(session, now).await.map(Some)
        }
        .boxed()
    }

    fn load_all<'a>(&'a self, cookies: &'a [String], now: u64) -> BoxFuture<'a, Result<Vec<Session>, StoreError>> {
        // Opened first, then checked under one lock of the revocation set for all of them.
        let opened: Vec<Session> = cookies.iter().filter_map(|c| self.open(c, now)).collect();
        let revoked = self.revoked.lock();
        let sessions = opened.into_iter().filter(|s| !revoked.covers(s)).collect();
        drop(revoked);
        async move { Ok(sessions) }.boxed()
    }

    fn end_all<'a>(&'a self, cookies: &'a [String], now: u64) -> BoxFuture<'a, Result<Vec<Session>, StoreError>> {
        async move {
            // Every session presented counts as ended, also one ended before: a sign-out asked
            // again (after a 503, once the file took it) still ends the provider's session.
            let mut ended: Vec<Session> = Vec::new();
            let mut entries = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for session in cookies.iter().filter_map(|c| self.open(c, now)) {
                if !seen.insert(session.id.clone()) {
                    continue;
                }
                if !self.is_revoked(&session) {
                    entries.push(Entry::logout(&session));
                }
                ended.push(session);
            }
            // Anything in effect but not yet on disk (this logout's, or an earlier one's) is
            // written before the logout is confirmed.
            let unwritten = self.pending.as_ref().is_some_and(|p| !p.is_empty());
            if !entries.is_empty() || unwritten {
                self.record(entries, now).await?;
            }
            Ok(ended)
        }
        .boxed()
    }

    fn delete<'a>(&'a self, session: &'a Session, now: u64) -> BoxFuture<'a, Result<(), StoreError>> {
        self.record(vec![Entry::logout(session)], now).boxed()
    }

    fn revoke<'a>(&'a self, revocation: &'a Revocation, now: u64) -> BoxFuture<'a, Result<u64, StoreError>> {
        async move {
            // Every session made before now ends by its lifetime at the latest; remember that long.
            let until = now.saturating_add(self.lifetime);
            // Stamped after every session this process created before it, and before every one
            // it creates after: a sign-in right after the logout is not caught by it.
            let at = Stamp::next(now);
            let entry = match (&revocation.sid, &revocation.sub) {
                (Some(sid), sub) => Entry::provider_session(sid, sub.as_deref(), at, until),
                (None, Some(sub)) => Entry::subject(sub, at, until),
                (None, None) => return Ok(0),
            };
            self.record(vec![entry], now).await?;
            Ok(0)
        }
        .boxed()
    }
}

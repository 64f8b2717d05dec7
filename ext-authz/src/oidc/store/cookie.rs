//! The stateless store: the sealed session is the cookie value.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use super::{SessionStore, StoreError};
use crate::core::session::logout::Revocation;
use crate::core::session::model::Session;
use crate::core::session::seal::Sealer;

/// Entries beyond this are dropped oldest-expiry first, so a flood of logouts cannot grow
/// memory without bound.
const MAX_REVOCATIONS: usize = 100_000;

pub struct CookieStore {
    sealer: Arc<Sealer>,
    purpose: String,
    /// Session lifetime in seconds: how long a revocation must be remembered.
    lifetime: u64,
    revoked: Mutex<Revoked>,
}

/// Revocations remembered until the sessions they name would have expired anyway.
#[derive(Default)]
struct Revoked {
    /// Session id or `sid` → until when.
    names: HashMap<String, u64>,
    /// Subject → (sessions created at or before this second are revoked, until when).
    subjects: HashMap<String, (u64, u64)>,
}

impl Revoked {
    /// Drops what has expired, then, past `cap` (so that room is left for one more), the
    /// revocations that expire first, from either map.
    fn prune(&mut self, now: u64, cap: usize) {
        self.names.retain(|_, until| *until > now);
        self.subjects.retain(|_, (_, until)| *until > now);
        while self.names.len() + self.subjects.len() >= cap.max(1) {
            let name = self.names.iter().min_by_key(|(_, until)| **until).map(|(k, until)| (k.clone(), *until));
            let subject =
                self.subjects.iter().min_by_key(|(_, (_, until))| *until).map(|(k, (_, until))| (k.clone(), *until));
            match (name, subject) {
                (Some((name, a)), Some((_, b))) if a <= b => self.names.remove(&name).map(drop),
                (_, Some((subject, _))) => self.subjects.remove(&subject).map(drop),
                (Some((name, _)), None) => self.names.remove(&name).map(drop),
                (None, None) => break,
            };
        }
    }

    fn covers(&self, session: &Session) -> bool {
        self.names.contains_key(&format!("id:{}", session.id))
            || session.sid.as_ref().is_some_and(|sid| self.names.contains_key(&format!("sid:{sid}")))
            || self.subjects.get(&session.subject).is_some_and(|(before, _)| session.created_at <= *before)
    }
}

impl CookieStore {
    pub fn new(sealer: Arc<Sealer>, cookie_name: &str, lifetime: u64) -> CookieStore {
        CookieStore {
            sealer,
            purpose: format!("gatehouse-session-v1:{cookie_name}"),
            lifetime,
            revoked: Mutex::default(),
        }
    }

    fn open(&self, cookie: &str, now: u64) -> Option<Session> {
        let plain = self.sealer.open(&self.purpose, cookie).ok()?;
        let session: Session = serde_json::from_slice(&plain).ok()?;
        if session.expires_at <= now || self.revoked.lock().expect("lock").covers(&session) {
            return None;
        }
        Some(session)
    }
}

impl SessionStore for CookieStore {
    fn kind(&self) -> &'static str {
        "cookie"
    }

    fn save<'a>(&'a self, session: &'a Session, _now: u64) -> BoxFuture<'a, Result<String, StoreError>> {
        async move { Ok(self.sealer.seal(&self.purpose, &serde_json::to_vec(session)?)) }.boxed()
    }

    fn load<'a>(&'a self, cookie: &'a str, now: u64) -> BoxFuture<'a, Result<Option<Session>, StoreError>> {
        async move { Ok(self.open(cookie, now)) }.boxed()
    }

    fn delete<'a>(&'a self, session: &'a Session, now: u64) -> BoxFuture<'a, Result<(), StoreError>> {
        async move {
            let mut revoked = self.revoked.lock().expect("lock");
            revoked.prune(now, MAX_REVOCATIONS);
            revoked.names.insert(format!("id:{}", session.id), session.expires_at);
            Ok(())
        }
        .boxed()
    }

    fn revoke<'a>(&'a self, revocation: &'a Revocation, now: u64) -> BoxFuture<'a, Result<u64, StoreError>> {
        async move {
            // Every session made before now ends by its lifetime at the latest; remember that long.
            let until = now.saturating_add(self.lifetime);
            let mut revoked = self.revoked.lock().expect("lock");
            revoked.prune(now, MAX_REVOCATIONS);
            match (&revocation.sid, &revocation.sub) {
                (Some(sid), _) => {
                    revoked.names.insert(format!("sid:{sid}"), until);
                }
                (None, Some(sub)) => {
                    revoked.subjects.insert(sub.clone(), (now, until));
                }
                (None, None) => {}
            }
            Ok(0)
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocations_stay_within_their_cap_in_both_maps() {
        let mut revoked = Revoked::default();
        for i in 0..50u64 {
            revoked.prune(0, 10);
            if i % 2 == 0 {
                revoked.subjects.insert(format!("sub{i}"), (0, 100 + i));
            } else {
                revoked.names.insert(format!("sid:{i}"), 100 + i);
            }
            assert!(revoked.names.len() + revoked.subjects.len() <= 10, "after {i}");
        }
        // The latest-expiring ones are kept.
        assert!(revoked.subjects.contains_key("sub48") && revoked.names.contains_key("sid:49"));
        assert!(!revoked.subjects.contains_key("sub0"));
    }
}

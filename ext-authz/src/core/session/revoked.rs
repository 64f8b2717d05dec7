//! The revocations a stateless (cookie) session store remembers: ended sessions, provider
//! sessions and subjects, each until the sessions it names would have expired anyway.
//!
//! The set has a bound, and reaching it never un-revokes anything: the revocations covering the
//! oldest sessions are folded into a *watermark* ("every session created at or before this
//! second is revoked"). Under a flood of logouts the price is that the oldest sessions end early
//! — the safe direction.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::model::Session;

/// One revocation, as remembered and as written to the revocation log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    /// One session (a logout).
    Session { id: String, created_at: u64, until: u64 },
    /// Every session of a provider session created at or before `before`.
    ProviderSession { sid: String, before: u64, until: u64 },
    /// Every session of a subject created at or before `before`.
    Subject { sub: String, before: u64, until: u64 },
    /// Every session created at or before `before`.
    Watermark { before: u64 },
}

impl Entry {
    /// The latest creation time of a session this revocation ends.
    fn before(&self) -> u64 {
        match self {
            Entry::Session { created_at, .. } => *created_at,
            Entry::ProviderSession { before, .. } | Entry::Subject { before, .. } | Entry::Watermark { before } => {
                *before
            }
        }
    }

    fn key(&self) -> Option<String> {
        match self {
            Entry::Session { id, .. } => Some(format!("id:{id}")),
            Entry::ProviderSession { sid, .. } => Some(format!("sid:{sid}")),
            Entry::Subject { sub, .. } => Some(format!("sub:{sub}")),
            Entry::Watermark { .. } => None,
        }
    }

    fn until(&self) -> u64 {
        match self {
            Entry::Session { until, .. } | Entry::ProviderSession { until, .. } | Entry::Subject { until, .. } => {
                *until
            }
            Entry::Watermark { .. } => u64::MAX,
        }
    }
}

#[derive(Debug)]
pub struct Revoked {
    entries: HashMap<String, Entry>,
    watermark: u64,
    cap: usize,
}

impl Revoked {
    pub fn new(cap: usize) -> Revoked {
        Revoked { entries: HashMap::new(), watermark: 0, cap: cap.max(1) }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn watermark(&self) -> u64 {
        self.watermark
    }

    /// Records a revocation (a repeat of the same key keeps the broader one). Returns the
    /// watermark when making room raised it, for the log.
    pub fn insert(&mut self, revocation: Entry, now: u64) -> Option<Entry> {
        let Some(key) = revocation.key() else {
            let Entry::Watermark { before } = revocation else { unreachable!("only watermarks have no key") };
            self.watermark = self.watermark.max(before);
            return None;
        };
        if revocation.until() <= now {
            return None;
        }
        let raised =
            if self.entries.len() >= self.cap && !self.entries.contains_key(&key) { self.make_room(now) } else { None };
        match self.entries.get(&key) {
            Some(old) if old.before() >= revocation.before() && old.until() >= revocation.until() => {}
            _ => {
                self.entries.insert(key, revocation);
            }
        }
        raised
    }

    /// Drops what expired; if that is not enough, folds the tenth of the revocations that cover
    /// the oldest sessions into the watermark.
    fn make_room(&mut self, now: u64) -> Option<Entry> {
        self.entries.retain(|_, r| r.until() > now);
        if self.entries.len() < self.cap {
            return None;
        }
        let mut befores: Vec<u64> = self.entries.values().map(Entry::before).collect();
        let evict = (self.cap / 10).max(1).min(befores.len());
        let (_, nth, _) = befores.select_nth_unstable(evict - 1);
        let threshold = *nth;
        // Everything at or below the threshold goes (ties included, so the set always shrinks).
        self.entries.retain(|_, r| r.before() > threshold);
        self.watermark = self.watermark.max(threshold);
        Some(Entry::Watermark { before: self.watermark })
    }

    pub fn covers(&self, session: &Session) -> bool {
        if session.created_at <= self.watermark {
            return true;
        }
        let by_key = |key: String| self.entries.get(&key).is_some_and(|r| session.created_at <= r.before());
        by_key(format!("id:{}", session.id))
            || session.sid.as_ref().is_some_and(|sid| by_key(format!("sid:{sid}")))
            || by_key(format!("sub:{}", session.subject))
    }

    /// What to write to a fresh log: every live revocation and the watermark.
    pub fn snapshot(&self, now: u64) -> Vec<Entry> {
        let mut out: Vec<Entry> = self.entries.values().filter(|r| r.until() > now).cloned().collect();
        if self.watermark > 0 {
            out.push(Entry::Watermark { before: self.watermark });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::core::session::model::TokenSet;

    fn session(id: &str, sub: &str, sid: &str, created_at: u64) -> Session {
        let claims = Arc::new(json!({"sub": sub, "sid": sid}));
        Session::new(id.into(), claims, TokenSet::default(), created_at, 3600)
    }

    #[test]
    fn each_kind_covers_what_it_names() {
        let mut revoked = Revoked::new(100);
        revoked.insert(Entry::Session { id: "a".into(), created_at: 10, until: 3610 }, 20);
        revoked.insert(Entry::ProviderSession { sid: "op-b".into(), before: 20, until: 3620 }, 20);
        revoked.insert(Entry::Subject { sub: "carol".into(), before: 20, until: 3620 }, 20);
        assert!(revoked.covers(&session("a", "alice", "op-a", 10)));
        assert!(!revoked.covers(&session("a2", "alice", "op-a", 10)));
        assert!(revoked.covers(&session("b", "bob", "op-b", 15)));
        assert!(!revoked.covers(&session("b", "bob", "op-b", 21)), "a later login of the same provider session");
        assert!(revoked.covers(&session("c", "carol", "op-c", 20)));
        assert!(!revoked.covers(&session("c", "carol", "op-c", 30)), "signed in again afterwards");
    }

    #[test]
    fn at_the_cap_old_revocations_fold_into_the_watermark_and_nothing_is_un_revoked() {
        let mut revoked = Revoked::new(100);
        let mut raised = Vec::new();
        for i in 0..1000u64 {
            let created_at = 1000 + i;
            if let Some(mark) =
                revoked.insert(Entry::Session { id: format!("s{i}"), created_at, until: created_at + 3600 }, 2000)
            {
                raised.push(mark);
            }
            assert!(revoked.len() <= 100, "after {i}: {}", revoked.len());
        }
        assert!(!raised.is_empty());
        // Every session ever logged out is still refused, by its entry or by the watermark.
        for i in 0..1000u64 {
            assert!(revoked.covers(&session(&format!("s{i}"), "u", "op", 1000 + i)), "s{i}");
        }
        // Sessions newer than the watermark that nobody logged out are untouched.
        assert!(!revoked.covers(&session("fresh", "u", "op", 1999)));
        assert!(revoked.watermark() < 1999);
    }

    #[test]
    fn expired_revocations_make_room_first() {
        let mut revoked = Revoked::new(10);
        for i in 0..10u64 {
            revoked.insert(Entry::Session { id: format!("old{i}"), created_at: i, until: 100 }, 50);
        }
        assert_eq!(revoked.insert(Entry::Session { id: "new".into(), created_at: 150, until: 3750 }, 200), None);
        assert_eq!((revoked.len(), revoked.watermark()), (1, 0));
    }
}

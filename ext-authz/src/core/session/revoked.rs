//! The revocations a stateless (cookie) session store remembers: ended sessions, provider
//! sessions and subjects, each until the sessions it names would have expired anyway.
//!
//! A revocation ends the sessions created at or before its [`Stamp`] (microseconds, strictly
//! ordered within the process), so a sign-in completed after a back-channel logout is never
//! caught by it, even in the same second. What an older version wrote has seconds only and
//! compares by seconds, as it did: a session without a stamp counts from the start of its
//! second, a revocation without one reaches to the end of its second.
//!
//! Two bounds, and reaching either never un-revokes anything. One subject's logouts: beyond
//! [`PER_SUBJECT`] they fold into one `Subject` revocation ("every session of this user created
//! up to the newest of them"), so signing in and out in a loop cannot fill the set; the price is
//! that the user's other sessions from before that sign-out end too (nobody else's). The whole
//! set: the revocations covering the oldest sessions fold into a *watermark* ("every session
//! created at or before this stamp is revoked"); under a flood of logouts from many users the
//! price is that the oldest sessions end early. Both are the safe direction.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::model::Session;
use super::stamp::{Stamp, MICROS};

/// One subject's logouts remembered one by one; the next folds them into a `Subject` entry.
pub const PER_SUBJECT: usize = 16;

/// One revocation, as remembered and as written to the revocation log. The `_us` stamps and a
/// logout's `sub` are absent from what an older version wrote (and an older version reading
/// ours ignores them, comparing the seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    /// One session (a logout), and whose it was.
    Session {
        id: String,
        created_at: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        created_us: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sub: Option<String>,
        until: u64,
    },
    /// Every session of a provider session created at or before `before`, and whose it was
    /// when the logout token named the subject too (so a subject's back-channel logouts count
    /// towards its bound like its own sign-outs).
    ProviderSession {
        sid: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sub: Option<String>,
        before: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before_us: Option<u64>,
        until: u64,
    },
    /// Every session of a subject created at or before `before`.
    Subject {
        sub: String,
        before: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before_us: Option<u64>,
        until: u64,
    },
    /// Every session created at or before `before`.
    Watermark {
        before: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before_us: Option<u64>,
    },
}

impl Entry {
    /// The logout of one session.
    pub fn logout(session: &Session) -> Entry {
        Entry::Session {
            id: session.id.clone(),
            created_at: session.created_at,
            created_us: session.created_us,
            sub: Some(session.subject.clone()),
            until: session.expires_at,
        }
    }

    /// Every session of provider session `sid` (of subject `sub`, when known) created up to
    /// `at`, remembered until `until`.
    pub fn provider_session(sid: &str, sub: Option<&str>, at: Stamp, until: u64) -> Entry {
        let sub = sub.map(str::to_owned);
        Entry::ProviderSession { sid: sid.to_string(), sub, before: at.secs, before_us: Some(at.micros), until }
    }

    /// The subject whose bound this entry counts towards: a logout's, or a provider session's.
    fn counted_subject(&self) -> Option<&str> {
        match self {
            Entry::Session { sub, .. } | Entry::ProviderSession { sub, .. } => sub.as_deref(),
            Entry::Subject { .. } | Entry::Watermark { .. } => None,
        }
    }

    /// Every session of subject `sub` created up to `at`, remembered until `until`.
    pub fn subject(sub: &str, at: Stamp, until: u64) -> Entry {
        Entry::Subject { sub: sub.to_string(), before: at.secs, before_us: Some(at.micros), until }
    }

    fn watermark(micros: u64) -> Entry {
        Entry::Watermark { before: micros / MICROS, before_us: Some(micros) }
    }

    /// The latest creation stamp (µs) of a session this revocation ends.
    fn before(&self) -> u64 {
        match self {
            Entry::Session { created_at, created_us, .. } => bound(*created_at, *created_us),
            Entry::ProviderSession { before, before_us, .. }
            | Entry::Subject { before, before_us, .. }
            | Entry::Watermark { before, before_us } => bound(*before, *before_us),
        }
    }

    fn key(&self) -> Option<String> {
        match self {
            Entry::Session { id, .. } => Some(format!("id:{id}")),
            Entry::ProviderSession { sid, .. } => Some(format!("sid:{sid}")),
            Entry::Subject { sub, .. } => Some(subject_key(sub)),
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

    /// Widens this revocation to cover what `other` covers too, for as long (a repeat of the
    /// same key, or a subject's logouts folded into its entry).
    fn widen(&mut self, other: &Entry) {
        let before = self.before().max(other.before());
        let end = self.until().max(other.until());
        let (secs, micros, until) = match self {
            Entry::Session { created_at, created_us, until, .. } => (created_at, created_us, until),
            Entry::ProviderSession { before, before_us, until, .. }
            | Entry::Subject { before, before_us, until, .. } => (before, before_us, until),
            Entry::Watermark { .. } => return,
        };
        (*secs, *micros, *until) = (before / MICROS, Some(before), end);
    }
}

/// A revocation's bound in µs; one written before stamps reaches to the end of its second.
fn bound(secs: u64, micros: Option<u64>) -> u64 {
    micros.unwrap_or(secs.saturating_mul(MICROS).saturating_add(MICROS - 1))
}

/// A session's creation in µs; one sealed before stamps counts from the start of its second
/// (so a revocation recorded in that second ends it, as by seconds).
fn created(session: &Session) -> u64 {
    session.created_us.unwrap_or(session.created_at.saturating_mul(MICROS))
}

fn subject_key(sub: &str) -> String {
    format!("sub:{sub}")
}

#[derive(Debug)]
pub struct Revoked {
    entries: HashMap<String, Entry>,
    /// The keys of each subject's `Session` entries, for the per-subject bound.
    logouts: HashMap<String, Vec<String>>,
    /// Every session created at or before this stamp (µs) is revoked.
    watermark: u64,
    cap: usize,
}

impl Revoked {
    pub fn new(cap: usize) -> Revoked {
        Revoked { entries: HashMap::new(), logouts: HashMap::new(), watermark: 0, cap: cap.max(1) }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every session created at or before this stamp (µs) is revoked.
    pub fn watermark(&self) -> u64 {
        self.watermark
    }

    /// Records a revocation (a repeat of the same key widens it to cover both). Returns what
    /// else changed, for the log after the revocation itself: a subject's logouts folded into
    /// one entry, a raised watermark.
    pub fn insert(&mut self, revocation: Entry, now: u64) -> Vec<Entry> {
        let Some(key) = revocation.key() else {
            self.watermark = self.watermark.max(revocation.before());
            return Vec::new();
        };
        if revocation.until() <= now || self.already_covered(&revocation) {
            return Vec::new();
        }
        if let Some(existing) = self.entries.get_mut(&key) {
            existing.widen(&revocation);
            return Vec::new();
        }
        let mut written = Vec::new();
        if self.entries.len() >= self.cap {
            written.extend(self.make_room(now));
        }
        let sub = revocation.counted_subject().map(str::to_owned);
        self.entries.insert(key.clone(), revocation);
        if let Some(sub) = sub {
            let logouts = self.logouts.entry(sub.clone()).or_default();
            logouts.push(key);
            if logouts.len() > PER_SUBJECT {
                written.push(self.fold(&sub));
            }
        }
        written
    }

    /// Whether what `revocation` ends is already ended for at least as long: by the watermark,
    /// or (a logout) by its subject's entry.
    fn already_covered(&self, revocation: &Entry) -> bool {
        if revocation.before() <= self.watermark {
            return true;
        }
        let Some(sub) = revocation.counted_subject() else { return false };
        self.entries
            .get(&subject_key(sub))
            .is_some_and(|s| s.before() >= revocation.before() && s.until() >= revocation.until())
    }

    /// Folds a subject's logouts into its `Subject` entry, returned for the log: every session of
    /// the subject created up to the newest of them ends.
    fn fold(&mut self, sub: &str) -> Entry {
        let mut folded = Entry::subject(sub, Stamp { secs: 0, micros: 0 }, 0);
        for key in self.logouts.remove(sub).unwrap_or_default() {
            if let Some(logout) = self.entries.remove(&key) {
                folded.widen(&logout);
            }
        }
        let entry = self.entries.entry(subject_key(sub)).or_insert_with(|| folded.clone());
        entry.widen(&folded);
        entry.clone()
    }

    /// Drops what expired; if that is not enough, folds the tenth of the revocations that cover
    /// the oldest sessions into the watermark.
    fn make_room(&mut self, now: u64) -> Option<Entry> {
        let before_pruning = self.entries.len();
        self.entries.retain(|_, r| r.until() > now);
        let raised = if self.entries.len() < self.cap {
            None
        } else {
            let mut befores: Vec<u64> = self.entries.values().map(Entry::before).collect();
            let evict = (self.cap / 10).max(1).min(befores.len());
            let (_, nth, _) = befores.select_nth_unstable(evict - 1);
            let threshold = *nth;
            // Everything at or below the threshold goes (ties included, so the set always shrinks).
            self.entries.retain(|_, r| r.before() > threshold);
            self.watermark = self.watermark.max(threshold);
            Some(Entry::watermark(self.watermark))
        };
        // The per-subject index follows what went (rebuilt only when something did).
        if self.entries.len() != before_pruning {
            self.logouts.clear();
            for (key, entry) in &self.entries {
                if let Some(sub) = entry.counted_subject() {
                    self.logouts.entry(sub.to_owned()).or_default().push(key.clone());
                }
            }
        }
        raised
    }

    pub fn covers(&self, session: &Session) -> bool {
        let created = created(session);
        if created <= self.watermark {
            return true;
        }
        let by_key = |key: String| self.entries.get(&key).is_some_and(|r| created <= r.before());
        by_key(format!("id:{}", session.id))
            || session.sid.as_ref().is_some_and(|sid| by_key(format!("sid:{sid}")))
            || by_key(subject_key(&session.subject))
    }

    /// What to write to a fresh log: every live revocation and the watermark.
    pub fn snapshot(&self, now: u64) -> Vec<Entry> {
        let mut out: Vec<Entry> = self.entries.values().filter(|r| r.until() > now).cloned().collect();
        if self.watermark > 0 {
            out.push(Entry::watermark(self.watermark));
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

    fn session(id: &str, sub: &str, sid: &str, created: Stamp) -> Session {
        let claims = Arc::new(json!({"sub": sub, "sid": sid}));
        Session::new(id.into(), claims, TokenSet::default(), created, 3600)
    }

    /// The start of second `secs`.
    fn at(secs: u64) -> Stamp {
        Stamp::at(secs, 0)
    }

    /// A session as an older version sealed it: seconds only.
    fn unstamped(mut session: Session) -> Session {
        session.created_us = None;
        session
    }

    #[test]
    fn each_kind_covers_what_it_names() {
        let mut revoked = Revoked::new(100);
        revoked.insert(Entry::logout(&session("a", "alice", "op-a", at(10))), 20);
        revoked.insert(Entry::provider_session("op-b", None, at(20), 3620), 20);
        revoked.insert(Entry::subject("carol", at(20), 3620), 20);
        assert!(revoked.covers(&session("a", "alice", "op-a", at(10))));
        assert!(!revoked.covers(&session("a2", "alice", "op-a", at(10))));
        assert!(revoked.covers(&session("b", "bob", "op-b", at(15))));
        assert!(!revoked.covers(&session("b", "bob", "op-b", at(21))), "a later login of the same provider session");
        assert!(revoked.covers(&session("c", "carol", "op-c", at(20))));
        assert!(!revoked.covers(&session("c", "carol", "op-c", at(30))), "signed in again afterwards");
    }

    #[test]
    fn a_revocation_spares_sessions_created_after_it_in_the_same_second() {
        let mut revoked = Revoked::new(100);
        revoked.insert(Entry::subject("carol", Stamp::at(20, 500), 3620), 20);
        revoked.insert(Entry::provider_session("op-b", None, Stamp::at(20, 500), 3620), 20);
        assert!(revoked.covers(&session("c1", "carol", "op-c", Stamp::at(20, 500))));
        assert!(!revoked.covers(&session("c2", "carol", "op-c", Stamp::at(20, 501))));
        assert!(revoked.covers(&session("b1", "bob", "op-b", Stamp::at(20, 499))));
        assert!(!revoked.covers(&session("b2", "bob", "op-b", Stamp::at(20, 501))));

        // As the store stamps them: a sign-in, the logout, a sign-in again, all in one second.
        let before = session("d1", "dave", "op-d", Stamp::next(40));
        revoked.insert(Entry::subject("dave", Stamp::next(40), 3640), 40);
        let after = session("d2", "dave", "op-d", Stamp::next(40));
        assert!(revoked.covers(&before));
        assert!(!revoked.covers(&after));
    }

    #[test]
    fn what_an_older_version_wrote_compares_by_seconds() {
        let lines = [
            r#"{"kind":"session","id":"a","created_at":10,"until":3610}"#,
            r#"{"kind":"provider_session","sid":"op-b","before":20,"until":3620}"#,
            r#"{"kind":"subject","sub":"carol","before":20,"until":3620}"#,
            r#"{"kind":"watermark","before":5}"#,
        ];
        let mut revoked = Revoked::new(100);
        for line in lines {
            let entry: Entry = serde_json::from_str(line).unwrap();
            assert_eq!(revoked.insert(entry, 20), Vec::new(), "{line}");
        }
        // Old sessions, old revocations: as before.
        assert!(revoked.covers(&unstamped(session("a", "alice", "op-a", at(10)))));
        assert!(revoked.covers(&unstamped(session("w", "walt", "op-w", at(5)))));
        assert!(!revoked.covers(&unstamped(session("w", "walt", "op-w", at(6)))));
        // A revocation without a stamp reaches to the end of its second.
        assert!(revoked.covers(&session("c1", "carol", "op-c", Stamp::at(20, 999_999))));
        assert!(!revoked.covers(&session("c2", "carol", "op-c", at(21))));
        assert!(revoked.covers(&session("w", "walt", "op-w", Stamp::at(5, 999_999))));
        // A session without a stamp counts from the start of its second.
        revoked.insert(Entry::subject("erin", Stamp::at(30, 1), 3630), 30);
        assert!(revoked.covers(&unstamped(session("e1", "erin", "op-e", at(30)))));
        assert!(!revoked.covers(&unstamped(session("e2", "erin", "op-e", at(31)))));

        // Ours round-trip, and an older version reading them finds the seconds it compares.
        let entry = Entry::logout(&session("f", "frank", "op-f", Stamp::at(40, 7)));
        let line = serde_json::to_string(&entry).unwrap();
        assert_eq!(serde_json::from_str::<Entry>(&line).unwrap(), entry);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!((value["created_at"].as_u64(), value["until"].as_u64()), (Some(40), Some(3640)), "{line}");
    }

    #[test]
    fn one_subject_signing_in_and_out_cannot_fill_the_set() {
        const ROUNDS: u64 = 100_000;
        // 15 sign-ins and sign-outs a second, from second 1000 on.
        let mallory =
            |i: u64| session(&format!("m{i}"), "mallory", &format!("op-m{i}"), Stamp::at(1000 + i / 15, i % 15));
        let mut revoked = Revoked::new(100);
        let mut log = Vec::new();
        let mut record = |revoked: &mut Revoked, entry: Entry, now: u64| {
            log.push(entry.clone());
            log.extend(revoked.insert(entry, now));
        };
        let alice_out = session("a-out", "alice", "op-a1", at(999));
        let alice_in = session("a-in", "alice", "op-a2", at(999));
        record(&mut revoked, Entry::logout(&alice_out), 999);
        for i in 0..ROUNDS {
            let s = mallory(i);
            // Half signed out here, half by the provider's back-channel logout of the sid.
            let entry = if i % 2 == 0 {
                Entry::logout(&s)
            } else {
                let at = Stamp { secs: s.created_at, micros: created(&s) };
                Entry::provider_session(s.sid.as_deref().unwrap(), Some("mallory"), at, s.expires_at)
            };
            record(&mut revoked, entry, s.created_at);
            let others = revoked.len() - 1;
            assert!(others <= PER_SUBJECT + 1, "after {i}: {others} entries for one subject");
            assert_eq!(revoked.watermark(), 0, "after {i}");
        }
        let bob = session("b", "bob", "op-b", at(1000 + ROUNDS / 15 + 1));
        let mallory_again = session("m-new", "mallory", "op-m-new", at(1000 + ROUNDS / 15 + 1));

        let replayed = {
            let mut replayed = Revoked::new(100);
            for entry in &log {
                replayed.insert(entry.clone(), 999);
            }
            replayed
        };
        assert!(log.iter().all(|e| !matches!(e, Entry::Watermark { .. })));
        for set in [&revoked, &replayed] {
            assert!(set.len() <= PER_SUBJECT + 2);
            assert!((0..ROUNDS).all(|i| set.covers(&mallory(i))), "every logged-out session stays revoked");
            assert!(set.covers(&alice_out));
            assert!(!set.covers(&alice_in), "nobody else's session ends");
            assert!(!set.covers(&bob));
            assert!(!set.covers(&mallory_again), "signing in again works");
        }
    }

    #[test]
    fn at_the_cap_old_revocations_fold_into_the_watermark_and_nothing_is_un_revoked() {
        let mut revoked = Revoked::new(100);
        let mut raised = Vec::new();
        let s = |i: u64| session(&format!("s{i}"), &format!("u{i}"), "op", at(1000 + i));
        for i in 0..1000u64 {
            raised.extend(revoked.insert(Entry::logout(&s(i)), 2000));
            assert!(revoked.len() <= 100, "after {i}: {}", revoked.len());
        }
        assert!(!raised.is_empty() && raised.iter().all(|e| matches!(e, Entry::Watermark { .. })));
        // Every session ever logged out is still refused, by its entry or by the watermark.
        for i in 0..1000u64 {
            assert!(revoked.covers(&s(i)), "s{i}");
        }
        // Sessions newer than the watermark that nobody logged out are untouched.
        assert!(!revoked.covers(&session("fresh", "u", "op", at(1999))));
        assert!(revoked.watermark() < at(1999).micros);
    }

    #[test]
    fn expired_revocations_make_room_first() {
        let mut revoked = Revoked::new(10);
        for i in 0..10u64 {
            let mut old = session(&format!("old{i}"), &format!("u{i}"), "op", at(1 + i));
            old.expires_at = 100;
            revoked.insert(Entry::logout(&old), 50);
        }
        assert_eq!(revoked.insert(Entry::logout(&session("new", "u", "op", at(150))), 200), Vec::new());
        assert_eq!((revoked.len(), revoked.watermark()), (1, 0));
    }
}

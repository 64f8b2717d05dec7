//! A login session: who signed in (the ID token's verified claims), the provider's tokens, and
//! the clock rules that decide whether a session can be used, must be refreshed, or has ended.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::stamp::Stamp;

/// The token endpoint's answer, as far as a session cares.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct TokenSet {
    pub id_token: Option<String>,
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
    pub expires_in: Option<u64>,
    pub scope: Option<String>,
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// Random, 256 bits: the Redis key, and what logout and revocation name.
    pub id: String,
    pub subject: String,
    /// The provider's session id (`sid`), which back-channel logout names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The verified ID token claims.
    pub claims: Value,
    pub scopes: Vec<String>,
    /// Kept for `id_token_hint` at logout.
    pub id_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_expires_at: Option<u64>,
    pub created_at: u64,
    /// The creation [`Stamp`] in microseconds, which orders the session against revocations
    /// finer than `created_at`. Absent in sessions sealed before stamps: those compare by
    /// seconds, as they did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_us: Option<u64>,
    /// The absolute end of the session, whatever refreshes happen.
    pub expires_at: u64,
}

/// Tokens are secrets: never in logs.
impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("subject", &self.subject)
            .field("sid", &self.sid)
            .field("scopes", &self.scopes)
            .field("access_expires_at", &self.access_expires_at)
            .field("refreshable", &self.refresh_token.is_some())
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    Fresh,
    /// Usable, but the access token expires within the refresh window: refresh it now.
    Refresh,
    Ended,
}

impl Session {
    /// A new session from a verified ID token and the token endpoint's answer, created at
    /// `created` ([`Stamp::next`] when signing in).
    pub fn new(id: String, claims: Arc<Value>, tokens: TokenSet, created: Stamp, lifetime: u64) -> Session {
        let now = created.secs;
        let subject = claims.get("sub").and_then(Value::as_str).unwrap_or_default().to_string();
        let sid = claims.get("sid").and_then(Value::as_str).map(str::to_owned);
        let mut session = Session {
            id,
            subject,
            sid,
            claims: (*claims).clone(),
            scopes: Vec::new(),
            id_token: String::new(),
            access_token: None,
            refresh_token: None,
            access_expires_at: None,
            created_at: now,
            created_us: Some(created.micros),
            expires_at: now.saturating_add(lifetime),
        };
        session.apply(tokens, now);
        session
    }

    /// Takes in a refresh's answer. Providers may omit what did not change (the refresh
    /// token, the ID token, the scope), so absent fields keep their old values.
    pub fn apply(&mut self, tokens: TokenSet, now: u64) {
        if let Some(id_token) = tokens.id_token {
            self.id_token = id_token;
        }
        if let Some(access) = tokens.access_token {
            self.access_token = Some(access);
            self.access_expires_at = tokens.expires_in.map(|s| now.saturating_add(s));
        }
        if tokens.refresh_token.is_some() {
            self.refresh_token = tokens.refresh_token;
        }
        if let Some(scope) = tokens.scope {
            self.scopes = scope.split_whitespace().map(str::to_owned).collect();
        }
    }

    /// Replaces the claims with those of a refreshed ID token (same subject, checked by the
    /// caller).
    pub fn update_claims(&mut self, claims: &Value) {
        self.claims = claims.clone();
        if let Some(sid) = claims.get("sid").and_then(Value::as_str) {
            self.sid = Some(sid.to_string());
        }
    }

    /// Ended at the absolute expiry, or when the access token has expired and cannot be
    /// refreshed. Refresh when the access token expires within `refresh_before` seconds.
    pub fn freshness(&self, now: u64, refresh_before: u64) -> Freshness {
        if now >= self.expires_at {
            return Freshness::Ended;
        }
        match (self.access_expires_at, &self.refresh_token) {
            (Some(at), None) if now >= at => Freshness::Ended,
            (Some(at), Some(_)) if now.saturating_add(refresh_before) >= at => Freshness::Refresh,
            _ => Freshness::Fresh,
        }
    }

    pub fn remaining(&self, now: u64) -> u64 {
        self.expires_at.saturating_sub(now)
    }

    /// The claims the route policy and identity headers see: the ID token's, with the granted
    /// scopes as `scope` when the ID token has none.
    pub fn identity_claims(&self) -> Arc<Value> {
        let mut claims = self.claims.clone();
        if let Value::Object(map) = &mut claims {
            if !map.contains_key("scope") && !map.contains_key("scp") {
                map.insert("scope".into(), Value::String(self.scopes.join(" ")));
            }
        }
        Arc::new(claims)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn session(tokens: TokenSet) -> Session {
        Session::new("id".into(), Arc::new(json!({"sub": "alice", "sid": "op-1"})), tokens, Stamp::at(1000, 0), 3600)
    }

    #[test]
    fn lifetimes_and_the_refresh_window() {
        let tokens = TokenSet {
            id_token: Some("idt".into()),
            access_token: Some("at".into()),
            refresh_token: Some("rt".into()),
            expires_in: Some(300),
            scope: Some("openid email".into()),
        };
        let s = session(tokens.clone());
        assert_eq!((s.subject.as_str(), s.sid.as_deref(), s.expires_at), ("alice", Some("op-1"), 4600));
        assert_eq!(s.freshness(1000, 60), Freshness::Fresh);
        assert_eq!(s.freshness(1240, 60), Freshness::Refresh);
        assert_eq!(s.freshness(4600, 60), Freshness::Ended);
        let no_refresh = session(TokenSet { refresh_token: None, ..tokens });
        assert_eq!(no_refresh.freshness(1299, 60), Freshness::Fresh);
        assert_eq!(no_refresh.freshness(1300, 60), Freshness::Ended);
        let no_expiry = session(TokenSet { id_token: Some("idt".into()), ..TokenSet::default() });
        assert_eq!(no_expiry.freshness(4599, 60), Freshness::Fresh);
    }

    #[test]
    fn a_refresh_keeps_what_the_provider_did_not_resend() {
        let mut s = session(TokenSet {
            id_token: Some("idt".into()),
            access_token: Some("at1".into()),
            refresh_token: Some("rt1".into()),
            expires_in: Some(300),
            scope: Some("openid".into()),
        });
        s.apply(TokenSet { access_token: Some("at2".into()), expires_in: Some(300), ..TokenSet::default() }, 1200);
        assert_eq!(s.access_token.as_deref(), Some("at2"));
        assert_eq!(s.refresh_token.as_deref(), Some("rt1"));
        assert_eq!(s.id_token, "idt");
        assert_eq!(s.access_expires_at, Some(1500));
        assert_eq!(s.identity_claims()["scope"], "openid");
    }

    #[test]
    fn debug_output_has_no_tokens() {
        let s = session(TokenSet {
            id_token: Some("secret-id-token".into()),
            access_token: Some("secret-access".into()),
            refresh_token: Some("secret-refresh".into()),
            ..TokenSet::default()
        });
        let text = format!("{s:?}");
        assert!(!text.contains("secret"), "{text}");
    }
}

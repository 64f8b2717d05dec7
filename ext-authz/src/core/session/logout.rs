//! OIDC Back-Channel Logout 1.0: what a verified logout token must hold, and what it revokes.

use serde_json::Value;

const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Which sessions a logout token ends: those of a provider session, of a user, or of a user's
/// provider session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub sid: Option<String>,
    pub sub: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogoutTokenError {
    #[error("the logout token has no backchannel-logout event")]
    NoEvent,
    #[error("the logout token names neither sid nor sub")]
    NoSubject,
    #[error("a logout token must not carry a nonce")]
    Nonce,
    #[error("the logout token has no iat")]
    NoIssuedAt,
    #[error("the logout token was issued too far from now")]
    Stale,
}

/// The checks of spec §2.6 after signature, `iss` and `aud`: the event, `sid` or `sub`, no
/// `nonce`, and an `iat` within `max_age` seconds of `now`.
pub fn check_logout_token(claims: &Value, now: u64, max_age: u64) -> Result<Revocation, LogoutTokenError> {
    if !claims.get("events").and_then(|e| e.get(EVENT)).is_some_and(Value::is_object) {
        return Err(LogoutTokenError::NoEvent);
    }
    if claims.get("nonce").is_some() {
        return Err(LogoutTokenError::Nonce);
    }
    let iat = claims.get("iat").and_then(Value::as_u64).ok_or(LogoutTokenError::NoIssuedAt)?;
    if iat.abs_diff(now) > max_age {
        return Err(LogoutTokenError::Stale);
    }
    let text = |name: &str| claims.get(name).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
    let revocation = Revocation { sid: text("sid"), sub: text("sub") };
    if revocation.sid.is_none() && revocation.sub.is_none() {
        return Err(LogoutTokenError::NoSubject);
    }
    Ok(revocation)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_valid_logout_token_names_what_it_revokes() {
        let claims = json!({"iat": 1000, "sid": "s1", "sub": "alice", "events": {EVENT: {}}});
        assert_eq!(
            check_logout_token(&claims, 1010, 300),
            Ok(Revocation { sid: Some("s1".into()), sub: Some("alice".into()) })
        );
    }

    #[test]
    fn malformed_logout_tokens_are_refused() {
        let ok = json!({"iat": 1000, "sid": "s1", "events": {EVENT: {}}});
        let with = |key: &str, value: Value| {
            let mut c = ok.clone();
            c[key] = value;
            c
        };
        assert_eq!(check_logout_token(&with("events", json!({})), 1000, 300), Err(LogoutTokenError::NoEvent));
        assert_eq!(check_logout_token(&with("nonce", json!("n")), 1000, 300), Err(LogoutTokenError::Nonce));
        assert_eq!(check_logout_token(&with("sid", json!("")), 1000, 300), Err(LogoutTokenError::NoSubject));
        assert_eq!(check_logout_token(&ok, 2000, 300), Err(LogoutTokenError::Stale));
        assert_eq!(
            check_logout_token(&json!({"sid": "s", "events": {EVENT: {}}}), 0, 300),
            Err(LogoutTokenError::NoIssuedAt)
        );
    }
}

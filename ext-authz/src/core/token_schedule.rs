//! When an upstream access token (OAuth2 client credentials) is used as it is, renewed in the
//! background, fetched while the request waits, or given up on. Pure: time is a parameter
//! (Unix seconds), so every case is a unit test.
//!
//! - A token is renewed from `refresh_before` ahead of its expiry (at most halfway through its
//!   life), by one request's background task while the others go on using it.
//! - A token is used until shortly before it expires (`skew`: the request still has to reach
//!   the upstream), however long the provider is down: the last good token bridges an outage
//!   shorter than the renewal window.
//! - Without a usable token a request waits for a fetch; after a failed one, requests fail fast
//!   for [`RETRY_AFTER_FAILURE`] instead of all asking a provider that is down.

/// Seconds after a failed fetch before the next one is tried.
pub const RETRY_AFTER_FAILURE: u64 = 2;

/// The lifetime assumed for a token whose answer names none (`expires_in` is optional).
pub const DEFAULT_LIFETIME: u64 = 300;

/// The shortest lifetime a token is kept for, whatever its answer says. A provider answering
/// `expires_in: 0` (or 1) would otherwise be asked again on every check, and every check would
/// wait for it; a token it truly expires early is refused upstream for at most this long.
pub const MIN_LIFETIME: u64 = 30;

/// A token's times, in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    pub obtained_at: u64,
    pub expires_at: u64,
}

impl Lifetime {
    /// For a token answered at `now` with `expires_in` (seconds), or [`DEFAULT_LIFETIME`];
    /// never shorter than [`MIN_LIFETIME`].
    pub fn new(now: u64, expires_in: Option<u64>) -> Lifetime {
        let length = expires_in.unwrap_or(DEFAULT_LIFETIME).max(MIN_LIFETIME);
        Lifetime { obtained_at: now, expires_at: now.saturating_add(length) }
    }

    fn length(self) -> u64 {
        self.expires_at.saturating_sub(self.obtained_at)
    }

    /// Used until `skew` before expiry: 5 s, or a quarter of a shorter life.
    fn usable_at(self, now: u64) -> bool {
        let skew = (self.length() / 4).min(5);
        now.saturating_add(skew) < self.expires_at
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// The token in hand is good.
    Use,
    /// Use it, and renew it in the background.
    UseAndRenew,
    /// No usable token: fetch one, the request waits.
    Fetch,
    /// No usable token, and a fetch just failed: answer 503 now.
    Fail,
}

/// What to do at `now` with the token in hand (if any), the last failed fetch (if any) and the
/// renewal lead `refresh_before` (seconds).
pub fn plan(now: u64, held: Option<Lifetime>, last_failure: Option<u64>, refresh_before: u64) -> Plan {
    let may_try = last_failure.is_none_or(|at| now >= at.saturating_add(RETRY_AFTER_FAILURE));
    match held {
        Some(lifetime) if lifetime.usable_at(now) => {
            let lead = refresh_before.min(lifetime.length() / 2);
            let renew_at = lifetime.expires_at.saturating_sub(lead);
            if now >= renew_at && may_try {
                Plan::UseAndRenew
            } else {
                Plan::Use
            }
        }
        _ if may_try => Plan::Fetch,
        _ => Plan::Fail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_800_000_000;

    #[test]
    fn a_token_is_kept_at_least_the_floor() {
        for expires_in in [0, 1, 29] {
            let lifetime = Lifetime::new(T, Some(expires_in));
            assert_eq!(lifetime.expires_at, T + MIN_LIFETIME);
            // Used without a new request for most of the floor, renewed halfway through it.
            assert_eq!(plan(T + 1, Some(lifetime), None, 60), Plan::Use);
            assert_eq!(plan(T + 14, Some(lifetime), None, 60), Plan::Use);
            assert_eq!(plan(T + 15, Some(lifetime), None, 60), Plan::UseAndRenew);
        }
        assert_eq!(Lifetime::new(T, Some(31)).expires_at, T + 31);
    }

    #[test]
    fn a_fresh_token_is_used_then_renewed_ahead_of_expiry() {
        let hour = Lifetime::new(T, Some(3600));
        assert_eq!(plan(T, Some(hour), None, 60), Plan::Use);
        assert_eq!(plan(T + 3539, Some(hour), None, 60), Plan::Use);
        assert_eq!(plan(T + 3540, Some(hour), None, 60), Plan::UseAndRenew);
        assert_eq!(plan(T + 3594, Some(hour), None, 60), Plan::UseAndRenew);
        assert_eq!(plan(T + 3595, Some(hour), None, 60), Plan::Fetch, "5 s before expiry it is not sent");
        assert_eq!(plan(T, None, None, 60), Plan::Fetch);
    }

    #[test]
    fn a_short_lived_token_renews_halfway_and_keeps_a_proportional_skew() {
        // Shorter than any answer makes (the floor), as a renewal lead of a long life would be.
        let short = Lifetime { obtained_at: T, expires_at: T + 20 };
        assert_eq!(plan(T + 9, Some(short), None, 60), Plan::Use);
        assert_eq!(plan(T + 10, Some(short), None, 60), Plan::UseAndRenew, "halfway, not at once");
        assert_eq!(plan(T + 14, Some(short), None, 60), Plan::UseAndRenew);
        assert_eq!(plan(T + 15, Some(short), None, 60), Plan::Fetch);
        assert_eq!(Lifetime::new(T, None).expires_at, T + DEFAULT_LIFETIME);
        let born_expired = Lifetime { obtained_at: T, expires_at: T };
        assert_eq!(plan(T, Some(born_expired), None, 60), Plan::Fetch, "born expired");
    }

    #[test]
    fn the_last_good_token_bridges_an_outage_and_failures_are_not_retried_at_once() {
        let hour = Lifetime::new(T, Some(3600));
        let failed = Some(T + 3541);
        assert_eq!(plan(T + 3542, Some(hour), failed, 60), Plan::Use, "renewal failed: keep using it");
        assert_eq!(plan(T + 3543, Some(hour), failed, 60), Plan::UseAndRenew, "and try again later");
        assert_eq!(plan(T + 3600, Some(hour), failed, 60), Plan::Fetch, "expired: fetch while waiting");
        let just_failed = Some(T + 3600);
        assert_eq!(plan(T + 3601, Some(hour), just_failed, 60), Plan::Fail, "fail fast, do not stampede");
        assert_eq!(plan(T + 3602, Some(hour), just_failed, 60), Plan::Fetch);
        assert_eq!(plan(u64::MAX, Some(hour), Some(u64::MAX), u64::MAX), Plan::Fetch, "no overflow at the end of time");
    }
}

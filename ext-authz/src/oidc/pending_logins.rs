//! The part of capping a browser's logins in flight that needs the sealer: which
//! of the login cookies a request carried are live logins of ours, and since when (see
//! `core::session::pending_logins` for the rule and the cap).

use super::Oidc;
use crate::core::session::cookies::Cookies;
use crate::core::session::login::LoginState;
use crate::core::session::pending_logins::{login_cookie_names, logins_to_clear, PendingLogin, MAX_LOGIN_COOKIES_READ};

impl Oidc {
    /// `Set-Cookie` values clearing the login cookies a new login replaces. At most
    /// [`MAX_LOGIN_COOKIES_READ`] values are opened (one authentication each); a name whose
    /// values were not reached counts as no login of ours.
    pub(super) fn clear_old_logins(&self, present: &Cookies<'_>, now: u64) -> Vec<String> {
        let purpose = self.login_purpose();
        let mut budget = MAX_LOGIN_COOKIES_READ;
        let mut pending = Vec::new();
        for name in login_cookie_names(present, &self.settings().cookie_name) {
            let mut expires_at = None;
            for sealed in present.values(name) {
                if budget == 0 {
                    break;
                }
                budget -= 1;
                let login = self.sealer.open(&purpose, sealed).ok();
                let login = login.and_then(|plain| serde_json::from_slice::<LoginState>(&plain).ok());
                expires_at = expires_at.max(login.map(|l| l.expires_at));
            }
            pending.push(PendingLogin { name, expires_at });
        }
        let attributes = self.login_attributes();
        logins_to_clear(&pending, now).into_iter().map(|name| attributes.clear(name)).collect()
    }
}

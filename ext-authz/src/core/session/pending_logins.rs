//! How many logins one browser may have in flight. Every login redirect sets a sealed
//! `<cookie>_login_<id>` cookie (about 340 bytes) for `login_timeout`, and only its callback
//! removes it: a browser that keeps starting logins without finishing them (tabs restored after
//! the session ended, a user giving up at the provider) would carry more and more of them on
//! every request until a proxy refuses its headers (Envoy's 60 KiB: 431 after about 180; a
//! proxy with an 8 KB limit after about 24), sign-in included. So a new login clears the
//! oldest ones the request carried and at most [`MAX_PENDING_LOGINS`] remain.

use super::cookies::Cookies;

/// Pending-login cookies a browser keeps at most, the one being set included. Four lets a few
/// tabs sign in at once (a login started in a fifth tab makes the oldest one's callback fail
/// with "open the application again") and costs about 1.4 KB of request headers, far below the
/// smallest common proxy limit (8 KB) even next to a chunked session cookie.
pub const MAX_PENDING_LOGINS: usize = 4;

/// Login cookies of one request looked at (names, and sealed values opened) at most: far more
/// than a browser we answer can hold. Those beyond are left to expire: a browser that piled
/// them up elsewhere loses up to this many with each login it starts.
pub const MAX_LOGIN_COOKIES_READ: usize = 32;

/// What the login cookie named after `state` looks like (see
/// [`super::login::login_cookie_name`]): `<session cookie>_login_` and 12 base64url characters.
/// Only such names are ever echoed back in a clearing `Set-Cookie`.
pub fn is_login_cookie_name(name: &str, session_cookie: &str) -> bool {
    name.strip_prefix(session_cookie)
        .and_then(|rest| rest.strip_prefix("_login_"))
        .is_some_and(|id| id.len() == 12 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

/// The distinct login cookie names a request carries, in the browser's order, at most
/// [`MAX_LOGIN_COOKIES_READ`].
pub fn login_cookie_names<'a>(cookies: &Cookies<'a>, session_cookie: &str) -> Vec<&'a str> {
    let mut names: Vec<&'a str> = Vec::new();
    for name in cookies.names().filter(|n| is_login_cookie_name(n, session_cookie)) {
        if names.len() == MAX_LOGIN_COOKIES_READ {
            break;
        }
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// One login cookie a request carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingLogin<'a> {
    pub name: &'a str,
    /// When its login expires (the latest, if the name came more than once); `None` when no
    /// value opened as one of our logins (forged, foreign key, another deployment).
    pub expires_at: Option<u64>,
}

/// The login cookies to clear when a new login is set, so that at most [`MAX_PENDING_LOGINS`]
/// remain with it: every one that is no live login of ours first (it can only make the headers
/// bigger), then the oldest live ones by expiry (logins share one timeout, so the earliest to
/// expire was started first; on a tie the one the browser sent first, its older cookie).
pub fn logins_to_clear<'a>(pending: &[PendingLogin<'a>], now: u64) -> Vec<&'a str> {
    let (mut live, dead): (Vec<(usize, &PendingLogin<'a>)>, Vec<_>) =
        pending.iter().enumerate().partition(|(_, p)| p.expires_at.is_some_and(|at| at > now));
    live.sort_by_key(|(index, p)| (p.expires_at, *index));
    let excess = live.len().saturating_sub(MAX_PENDING_LOGINS - 1);
    dead.into_iter().chain(live.into_iter().take(excess)).map(|(_, p)| p.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(name: &str, expires_at: Option<u64>) -> PendingLogin<'_> {
        PendingLogin { name, expires_at }
    }

    #[test]
    fn only_names_we_could_have_set_are_login_cookies() {
        assert!(is_login_cookie_name("s_login_abcdefghij-_", "s"));
        for other in
            ["s_login_abcdefghijk", "s_login_abcdefghijklm", "s_login_abcdefghij.k", "t_login_abcdefghijkl", "s", "s_0"]
        {
            assert!(!is_login_cookie_name(other, "s"), "{other:?}");
        }
        let cookies =
            Cookies::parse(Some("s_login_aaaaaaaaaaaa=1; x=2; s_login_bbbbbbbbbbbb=3; s_login_aaaaaaaaaaaa=4"));
        assert_eq!(login_cookie_names(&cookies, "s"), ["s_login_aaaaaaaaaaaa", "s_login_bbbbbbbbbbbb"]);
    }

    #[test]
    fn the_names_read_are_bounded() {
        let header: Vec<String> = (0..100).map(|i| format!("s_login_{i:012}=v")).collect();
        let header = header.join("; ");
        let names = login_cookie_names(&Cookies::parse(Some(&header)), "s");
        assert_eq!(names.len(), MAX_LOGIN_COOKIES_READ);
        assert_eq!(names[0], "s_login_000000000000");
    }

    #[test]
    fn below_the_cap_only_dead_logins_go() {
        assert!(logins_to_clear(&[], 100).is_empty());
        let carried =
            [pending("a", Some(200)), pending("forged", None), pending("b", Some(300)), pending("old", Some(100))];
        assert_eq!(logins_to_clear(&carried, 100), ["forged", "old"]);
    }

    #[test]
    fn the_oldest_live_logins_go_so_the_new_one_makes_the_cap() {
        let carried: Vec<PendingLogin> = ["e", "a", "d", "b", "c"]
            .iter()
            .map(|name| pending(name, Some(200 + u64::from(name.as_bytes()[0]))))
            .collect();
        assert_eq!(logins_to_clear(&carried, 100), ["a", "b"]);
        let with_junk = [&[pending("x", None)][..], &carried].concat();
        assert_eq!(logins_to_clear(&with_junk, 100), ["x", "a", "b"]);
        // Started in the same second: the one the browser sent first is the older.
        let ties = [pending("1", Some(500)), pending("2", Some(500)), pending("3", Some(500)), pending("4", Some(500))];
        assert_eq!(logins_to_clear(&ties, 100), ["1"]);
    }

    #[test]
    fn whatever_is_carried_at_most_the_cap_remains_with_the_new_login() {
        for count in 0..40u64 {
            let names: Vec<String> = (0..count).map(|i| i.to_string()).collect();
            let carried: Vec<PendingLogin> = names
                .iter()
                .zip(0..)
                .map(|(name, i)| pending(name, (i % 3 != 0).then_some(1000 + (i * 7919) % 97)))
                .collect();
            let cleared = logins_to_clear(&carried, 1000);
            let remaining = carried.iter().filter(|p| !cleared.contains(&p.name)).count();
            assert!(remaining < MAX_PENDING_LOGINS, "{count}: {remaining} remain");
            assert!(carried.iter().filter(|p| !cleared.contains(&p.name)).all(|p| p.expires_at > Some(1000)));
        }
    }
}

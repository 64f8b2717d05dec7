//! Other spellings of the headers an answer sets or removes. Many backends read `X_User_ID` as
//! `X-User-ID`: CGI and everything built on it (WSGI, Rack, PHP) turn both into `HTTP_X_USER_ID`,
//! and some frameworks fold `_` to `-` themselves. A client that sends `x_user_id` next to the
//! `x-user-id` we set could then choose who it is. Envoy compares header names byte for byte, so
//! removing `x-user-id` leaves `x_user_id` in place: each such spelling is removed by its own
//! name.
//!
//! Request header names arrive lower-case (Envoy lower-cases them), so only a name with an
//! underscore can be another spelling; a request without one costs a scan of its names.

/// Whether `sent` and `ours` name the same header once case is ignored and `_` is read as `-`.
pub fn same_after_folding(sent: &str, ours: &str) -> bool {
    let fold = |b: u8| if b == b'_' { b'-' } else { b.to_ascii_lowercase() };
    sent.len() == ours.len() && sent.bytes().zip(ours.bytes()).all(|(a, b)| fold(a) == fold(b))
}

/// The names in `sent` (a request's header names) that are another spelling of one of `ours`
/// (the names an answer sets or removes), to be removed too. Empty, without calling `ours`,
/// when no sent name holds an underscore.
///
/// A name equal to one of ours but for case is never returned: Envoy removes headers by name
/// whatever their case, after it sets them, so removing it would remove the value we set.
pub fn other_spellings<'s, 'o, O>(sent: impl IntoIterator<Item = &'s str>, ours: impl Fn() -> O) -> Vec<String>
where
    O: Iterator<Item = &'o str>,
{
    let mut found = Vec::new();
    for name in sent.into_iter().filter(|name| name.contains('_')) {
        let is_ours = ours().any(|o| o.eq_ignore_ascii_case(name));
        if !is_ours && ours().any(|o| same_after_folding(name, o)) && !found.iter().any(|f| f == name) {
            found.push(name.to_string());
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: [&str; 3] = ["x-user-id", "x-org-id", "authorization"];

    fn spellings(sent: &[&str]) -> Vec<String> {
        other_spellings(sent.iter().copied(), || OURS.into_iter())
    }

    #[test]
    fn underscores_and_case_fold_to_our_names() {
        assert!(same_after_folding("x_user_id", "x-user-id"));
        assert!(same_after_folding("X_User_ID", "x-user-id"));
        assert!(same_after_folding("x-user_id", "x-user-id"));
        assert!(same_after_folding("x-user-id", "x_user_id"), "either side may hold the underscore");
        assert!(!same_after_folding("x_user_idx", "x-user-id"));
        assert!(!same_after_folding("x.user.id", "x-user-id"));
        assert!(!same_after_folding("xuserid", "x-user-id"));
    }

    #[test]
    fn every_underscore_spelling_of_ours_is_found_once() {
        let sent = ["host", "x_user_id", "X_User_ID", "x-user_id", "x_org-id", "x_user_id", "x-user-id"];
        assert_eq!(spellings(&sent), vec!["x_user_id", "X_User_ID", "x-user_id", "x_org-id"]);
    }

    #[test]
    fn names_not_ours_and_our_own_names_are_left_alone() {
        // Underscore headers of someone else's: not ours to remove (Envoy drops them anyway
        // with the shipped configs).
        assert!(spellings(&["x_request_id", "my_header", "x_user_ids"]).is_empty());
        // Our own name in another case would, removed, take away the value we set.
        let ours_with_underscore = || ["x_tenant"].into_iter();
        assert!(other_spellings(["X_TENANT", "x_tenant"], ours_with_underscore).is_empty());
        assert!(other_spellings(["x-tenant", "x_Tenant"], ours_with_underscore).is_empty());
    }

    #[test]
    fn a_request_without_underscores_costs_no_lookup_of_ours() {
        let looked = std::cell::Cell::new(0);
        let ours = || {
            looked.set(looked.get() + 1);
            OURS.into_iter()
        };
        assert!(other_spellings(["host", "x-user-id", "authorization", "cookie"], ours).is_empty());
        assert_eq!(looked.get(), 0);
    }
}

//! An allowed request's answer: what to set and remove on the upstream request, the dynamic
//! metadata, and who was allowed.

use std::sync::Arc;

use serde_json::{Map, Value};

use shared::spiffe::SpiffeId;

use super::{CredentialSource, Engine, Found, FoundKind};
use crate::core::header_spellings;
use crate::core::identity::Identity;
use crate::core::identity_part::IdentityPart;
use crate::core::principals::{PrincipalSource, XFCC};
use crate::core::request::AuthRequest;
use crate::core::session::cookies::Cookies;

#[derive(Debug, Clone, PartialEq)]
pub struct Allow {
    /// The identity's headers, removals and metadata, shared by every check of the identity
    /// (see `identity_part`); `None` without an identity.
    pub identity_part: Option<Arc<IdentityPart>>,
    /// Headers to set on the upstream request (overwriting), after the identity's.
    pub headers: Vec<(String, String)>,
    /// Headers to remove from the upstream request, after the identity's.
    pub remove: Vec<String>,
    /// Query parameters to remove (a credential passed in the query).
    pub remove_query: Vec<String>,
    pub identity: Option<Identity>,
    /// The calling workload's SPIFFE ID, when it has one.
    pub principal: Option<String>,
    /// For dynamic metadata: the identity part's own map unless something was added to it.
    pub metadata: Arc<Map<String, Value>>,
    pub reason: &'static str,
    /// `Set-Cookie` values for the client's response (a refreshed session).
    pub set_cookies: Vec<String>,
    /// The upstream credential to set (an index into the config's `upstream_credentials`);
    /// the service layer fetches it and adds its header.
    pub upstream: Option<usize>,
}

impl Allow {
    /// Every header to set: the identity's, then the rest.
    pub fn all_headers(&self) -> impl Iterator<Item = (&str, &str)> {
        let part = self.identity_part.iter().flat_map(|p| p.headers.iter());
        part.chain(self.headers.iter()).map(|(name, value)| (name.as_str(), value.as_str()))
    }

    /// Every header to remove: the identity's, then the rest.
    pub fn all_removed(&self) -> impl Iterator<Item = &str> {
        let part = self.identity_part.iter().flat_map(|p| p.remove.iter());
        part.chain(self.remove.iter()).map(String::as_str)
    }

    /// Whether the metadata is the identity part's as it is (so its encoding can be reused).
    pub fn metadata_is_the_identity_parts(&self) -> bool {
        self.identity_part.as_ref().is_some_and(|part| Arc::ptr_eq(&part.metadata, &self.metadata))
    }

    /// Sets `name` to `value`, overwriting any copy and never also removing it (Envoy removes
    /// after it sets, so a removal would take ours away).
    pub fn set_header(&mut self, name: &str, value: String) {
        self.own_header(name);
        self.remove.retain(|h| h != name);
        self.headers.retain(|(h, _)| h != name);
        self.headers.push((name.to_string(), value));
    }

    /// Removes `name` from the upstream request, unless it is already removed.
    pub fn remove_header(&mut self, name: &str) {
        if !self.all_removed().any(|h| h == name) {
            self.remove.push(name.to_string());
        }
    }

    /// Before a change to `name`: when the shared identity part sets or removes it, its lists
    /// are copied into this answer's own (in the same order) so the change applies to them.
    fn own_header(&mut self, name: &str) {
        let Some(part) = self.identity_part.as_ref() else { return };
        if !part.headers.iter().any(|(h, _)| h == name) && !part.remove.iter().any(|h| h == name) {
            return;
        }
        let part = self.identity_part.take().expect("checked above");
        self.headers.splice(0..0, part.headers.iter().cloned());
        self.remove.splice(0..0, part.remove.iter().cloned());
    }
}

impl Engine {
    /// The allow of a request: the identity's headers, every header of ours it does not set
    /// removed, the credential stripped unless it is forwarded, our cookies cut out.
    pub(super) fn allow(
        &self,
        request: &AuthRequest,
        identity: Option<Identity>,
        credential: Option<&Found<'_>>,
        principal: Option<SpiffeId>,
        reason: &'static str,
    ) -> Allow {
        // Every identity header we own and do not set is removed, so client-sent copies never
        // reach the backend: the identity's part says which, or without one all of them.
        let identity_part = identity.as_ref().map(|i| i.answer_part(&self.identity));
        let mut remove: Vec<String> = match &identity_part {
            Some(_) => Vec::new(),
            None => self.identity.headers.owned().map(str::to_owned).collect(),
        };
        let mut headers = Vec::new();
        let mut remove_query = Vec::new();
        let forward = |found: &Found<'_>| {
            self.forward_credential || (self.forward_api_keys && matches!(found.kind, FoundKind::ApiKey))
        };
        let mut strip_cookie: Option<&str> = None;
        if let Some(source) = credential.filter(|f| !forward(f)).and_then(|f| f.source) {
            match source {
                CredentialSource::Header { name, .. } => remove.push(name.clone()),
                CredentialSource::Query(name) => remove_query.push(name.clone()),
                CredentialSource::Cookie(name) => strip_cookie = Some(name),
            }
        }
        // A credential cookie, and our session cookies always, are cut out of the `cookie`
        // header; the rest of the header goes on as it came. Without either there is nothing
        // to cut, and the header is not even parsed.
        if strip_cookie.is_some() || self.sessions.is_some() {
            let ours = |name: &str| {
                strip_cookie == Some(name) || self.sessions.as_ref().is_some_and(|policy| policy.is_our_cookie(name))
            };
            let cookies = Cookies::parse(request.header("cookie"));
            if cookies.names().any(ours) {
                match cookies.header_without(ours) {
                    Some(rest) => headers.push(("cookie".into(), rest)),
                    None => remove.push("cookie".into()),
                }
            }
        }
        let principal = principal.map(|id| id.to_string());
        if let Some(name) = &self.workload.header {
            match &principal {
                Some(id) => headers.push((name.clone(), id.clone())),
                None => remove.push(name.clone()),
            }
        }
        // A header we trusted is ours to consume: the backend must not trust it a second time.
        if self.workload.source == PrincipalSource::Xfcc {
            remove.push(XFCC.into());
        }
        // Every other spelling of a header we set or remove (`x_user_id` for `x-user-id`) goes
        // too: a backend that reads `_` as `-` would take it for ours (see header_spellings).
        let ours = || {
            let set = headers.iter().map(|(name, _)| name.as_str());
            self.identity.headers.owned().chain(set).chain(remove.iter().map(String::as_str))
        };
        let spellings = header_spellings::other_spellings(request.headers.keys().map(String::as_str), ours);
        remove.extend(spellings);
        let mut metadata = identity_part.as_ref().map(|part| part.metadata.clone()).unwrap_or_default();
        if let Some(id) = principal.as_ref().filter(|_| self.identity.dynamic_metadata) {
            Arc::make_mut(&mut metadata).insert("principal".into(), Value::String(id.clone()));
        }
        Allow {
            identity_part,
            headers,
            remove,
            remove_query,
            identity,
            principal,
            metadata,
            reason,
            set_cookies: Vec::new(),
            upstream: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::identity::{ArrayFormat, IdentityHeaders};
    use crate::core::identity_part::IdentityAnswer;
    use serde_json::json;

    fn allow_for(claims: Value) -> Allow {
        let settings = Arc::new(IdentityAnswer {
            headers: IdentityHeaders {
                rules: IdentityHeaders::defaults(),
                arrays: ArrayFormat::Join(",".into()),
                payload_header: None,
            },
            dynamic_metadata: true,
            metadata_claims: Vec::new(),
        });
        let identity = Identity::from_jwt("corp", Arc::new(claims));
        let part = identity.answer_part(&settings);
        Allow {
            metadata: part.metadata.clone(),
            identity_part: Some(part),
            headers: vec![("x-client-principal".into(), "spiffe://a/b".into())],
            remove: vec!["x-api-key".into()],
            remove_query: vec![],
            identity: Some(identity),
            principal: None,
            reason: "authenticated",
            set_cookies: vec![],
            upstream: None,
        }
    }

    fn headers(allow: &Allow) -> Vec<(&str, &str)> {
        allow.all_headers().collect()
    }

    #[test]
    fn the_identity_part_comes_first_then_the_rest() {
        let allow = allow_for(json!({"sub": "u1"}));
        assert_eq!(headers(&allow), vec![("x-user-id", "u1"), ("x-client-principal", "spiffe://a/b")]);
        let removed: Vec<_> = allow.all_removed().collect();
        assert_eq!(removed, vec!["x-org-id", "x-user-email", "x-user-role", "x-user-scopes", "x-api-key"]);
        assert!(allow.metadata_is_the_identity_parts());
    }

    #[test]
    fn setting_a_header_the_identity_part_names_takes_its_lists_over() {
        // One the part sets: ours replaces it, in the part's order.
        let mut allow = allow_for(json!({"sub": "u1"}));
        allow.set_header("x-user-id", "upstream".into());
        assert!(allow.identity_part.is_none(), "the shared part is left as it was");
        assert_eq!(headers(&allow), vec![("x-client-principal", "spiffe://a/b"), ("x-user-id", "upstream")]);
        // One the part removes: set, and no longer removed.
        let mut allow = allow_for(json!({"sub": "u1"}));
        allow.set_header("x-org-id", "acme".into());
        assert!(!allow.all_removed().any(|h| h == "x-org-id"));
        assert!(headers(&allow).contains(&("x-org-id", "acme")));
        // One it does not name: the part stays shared.
        let mut allow = allow_for(json!({"sub": "u1"}));
        allow.set_header("authorization", "Bearer t".into());
        assert!(allow.identity_part.is_some());
        assert_eq!(headers(&allow).last(), Some(&("authorization", "Bearer t")));
    }

    #[test]
    fn a_header_is_removed_once() {
        let mut allow = allow_for(json!({"sub": "u1"}));
        allow.remove_header("x-org-id");
        allow.remove_header("authorization");
        allow.remove_header("authorization");
        assert_eq!(allow.all_removed().filter(|h| *h == "x-org-id").count(), 1);
        assert_eq!(allow.all_removed().filter(|h| *h == "authorization").count(), 1);
    }
}

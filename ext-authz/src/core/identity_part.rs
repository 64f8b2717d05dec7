//! The part of an allow answer that depends only on who the caller is and on the policy's
//! identity settings: the identity headers, the owned headers it does not set (removed so a
//! client cannot supply them), and the dynamic metadata.
//!
//! Why it is built once per identity and policy: the same API key, the same cached token, is
//! presented again and again, and rendering its headers and metadata — and the protocol layer's
//! encoding of them — was the largest part of an API-key check's cost. The part is remembered
//! on the identity (shared by its clones, so an API key's stored identity and a cached token's
//! keep it) together with the settings that made it; a reload that changes the settings makes a
//! new `IdentityAnswer`, and the next check of each identity builds its part again.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwapOption;
use serde_json::{Map, Value};

use super::claims::ClaimPath;
use super::identity_headers::IdentityHeaders;

/// How an allowed identity is shown to the backend (headers) and to Envoy (dynamic metadata).
#[derive(Debug, Clone, PartialEq)]
pub struct IdentityAnswer {
    pub headers: IdentityHeaders,
    /// Send the identity to Envoy as dynamic metadata (for rate-limit descriptors and access
    /// logs). On by default; off saves building, encoding and Envoy's decoding of it on every
    /// allowed request when nothing reads it.
    pub dynamic_metadata: bool,
    /// Claims copied into dynamic metadata under their own names.
    pub metadata_claims: Vec<ClaimPath>,
}

/// What [`IdentityAnswer`] makes of one identity.
pub struct IdentityPart {
    /// The settings it was made with, held so their address cannot be reused by other settings
    /// while this part is remembered (the memo compares addresses).
    made_by: Arc<IdentityAnswer>,
    /// Headers to set, in the order of the settings' rules.
    pub headers: Vec<(String, String)>,
    /// Owned identity headers this identity does not set.
    pub remove: Vec<String>,
    /// Empty when dynamic metadata is off.
    pub metadata: Arc<Map<String, Value>>,
    /// The protocol layer's encoding of this part, made on its first use.
    encoded: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl IdentityAnswer {
    /// The part of an identity with these claims, scopes and metadata (not remembered; see
    /// `Identity::answer_part`).
    pub fn part(
        self: &Arc<Self>,
        claims: &Value,
        scopes: &[String],
        metadata: Arc<Map<String, Value>>,
    ) -> IdentityPart {
        let headers = self.headers.render(claims, scopes);
        let remove =
            self.headers.owned().filter(|name| !headers.iter().any(|(h, _)| h == name)).map(str::to_owned).collect();
        let mut metadata = if self.dynamic_metadata { metadata } else { Arc::default() };
        if self.dynamic_metadata && !self.metadata_claims.is_empty() {
            let extra: Vec<_> = self
                .metadata_claims
                .iter()
                .filter_map(|path| Some((path.name().to_string(), path.lookup(claims)?.clone())))
                .collect();
            if !extra.is_empty() {
                Arc::make_mut(&mut metadata).extend(extra);
            }
        }
        IdentityPart { made_by: self.clone(), headers, remove, metadata, encoded: OnceLock::new() }
    }
}

impl IdentityPart {
    /// The protocol layer's encoding of this part: made by `encode` on first use, then reused.
    /// `None` when another protocol's encoding took the slot first (the caller encodes afresh).
    pub fn encoded<T: Any + Send + Sync>(&self, encode: impl FnOnce(&IdentityPart) -> T) -> Option<&T> {
        self.encoded.get_or_init(|| Box::new(encode(self))).downcast_ref()
    }
}

impl fmt::Debug for IdentityPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityPart")
            .field("headers", &self.headers)
            .field("remove", &self.remove)
            .field("metadata", &self.metadata)
            .finish_non_exhaustive()
    }
}

impl PartialEq for IdentityPart {
    fn eq(&self, other: &Self) -> bool {
        self.headers == other.headers && self.remove == other.remove && self.metadata == other.metadata
    }
}

/// An identity's remembered part, shared by the identity's clones. A cache, not part of who
/// the caller is: two identities compare equal whatever their memos hold.
#[derive(Clone, Default)]
pub struct PartMemo(Arc<ArcSwapOption<IdentityPart>>);

impl PartMemo {
    /// The part `answer` made, or else `build` makes now and the memo keeps.
    pub fn get_or_build(
        &self,
        answer: &Arc<IdentityAnswer>,
        build: impl FnOnce() -> IdentityPart,
    ) -> Arc<IdentityPart> {
        if let Some(part) = self.0.load().as_ref().filter(|part| Arc::ptr_eq(&part.made_by, answer)) {
            return part.clone();
        }
        let part = Arc::new(build());
        self.0.store(Some(part.clone()));
        part
    }
}

impl PartialEq for PartMemo {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl fmt::Debug for PartMemo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PartMemo")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::identity::{ArrayFormat, Identity};
    use serde_json::json;

    fn answer(dynamic_metadata: bool) -> Arc<IdentityAnswer> {
        Arc::new(IdentityAnswer {
            headers: IdentityHeaders {
                rules: IdentityHeaders::defaults(),
                arrays: ArrayFormat::Join(",".into()),
                payload_header: None,
            },
            dynamic_metadata,
            metadata_claims: vec![ClaimPath::parse("plan")],
        })
    }

    #[test]
    fn a_part_is_built_once_per_settings_and_shared_by_clones() {
        let identity = Identity::from_jwt("corp", Arc::new(json!({"sub": "u1", "scope": "read", "plan": "gold"})));
        let settings = answer(true);
        let first = identity.answer_part(&settings);
        let again = identity.clone().answer_part(&settings);
        assert!(Arc::ptr_eq(&first, &again), "a clone of the identity finds the same part");
        assert_eq!(first.headers, vec![("x-user-id".into(), "u1".into()), ("x-user-scopes".into(), "read".into())]);
        assert_eq!(first.remove, vec!["x-org-id", "x-user-email", "x-user-role"]);
        assert_eq!(first.metadata["plan"], "gold");
        // New settings (a reload), even equal ones: built again, and with what they say.
        let quiet = answer(false);
        let rebuilt = identity.answer_part(&quiet);
        assert!(!Arc::ptr_eq(&first, &rebuilt));
        assert!(rebuilt.metadata.is_empty(), "dynamic metadata off in the new settings");
        assert!(!Arc::ptr_eq(&identity.answer_part(&answer(true)), &rebuilt));
    }

    #[test]
    fn the_encoded_slot_keeps_the_first_protocols_encoding() {
        let identity = Identity::from_jwt("corp", Arc::new(json!({"sub": "u1"})));
        let part = identity.answer_part(&answer(true));
        assert_eq!(part.encoded(|p| p.headers.len()), Some(&1));
        assert_eq!(part.encoded(|_| 99usize), Some(&1), "made once");
        assert_eq!(part.encoded(|_| "other".to_string()), None, "another type does not replace it");
    }
}

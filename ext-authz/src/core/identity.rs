//! Who the caller is, and the headers the backend sees about it. The same mapping serves JWT
//! claims and API-key metadata (an API key's metadata is presented as claims).

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::claims::{scalar_text, scopes};
pub use super::identity_headers::{ArrayFormat, HeaderSource, IdentityHeaders};
use super::identity_part::{IdentityAnswer, IdentityPart, PartMemo};

#[derive(Debug, Clone, PartialEq)]
pub enum AuthMethod {
    Jwt { provider: String },
    ApiKey,
    Session { provider: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub method: AuthMethod,
    pub claims: Arc<Value>,
    pub scopes: Vec<String>,
    /// For dynamic metadata; built with the identity, so an identity that is reused (an API
    /// key's) builds it once.
    metadata: Arc<Map<String, Value>>,
    /// Its part of an allow answer, remembered (see `identity_part`).
    part: PartMemo,
}

impl Identity {
    /// An identity from its claims; the constructors below say which claims each method gives.
    pub fn new(method: AuthMethod, claims: Arc<Value>, scopes: Vec<String>) -> Identity {
        let metadata = Arc::new(build_metadata(&method, &claims, &scopes));
        Identity { method, claims, scopes, metadata, part: PartMemo::default() }
    }

    pub fn from_jwt(provider: &str, claims: Arc<Value>) -> Identity {
        let scopes = scopes(&claims);
        Identity::new(AuthMethod::Jwt { provider: provider.to_string() }, claims, scopes)
    }

    /// A login session: the ID token's claims, with the granted scopes.
    pub fn from_session(provider: &str, claims: Arc<Value>) -> Identity {
        let scopes = scopes(&claims);
        Identity::new(AuthMethod::Session { provider: provider.to_string() }, claims, scopes)
    }

    /// For dynamic metadata (rate limiting on identity, access logs).
    pub fn metadata(&self) -> Arc<Map<String, Value>> {
        self.metadata.clone()
    }

    /// The headers, removals and metadata `answer` gives this identity: built on the first
    /// check with these settings, then shared by every check of this identity (and its clones).
    pub fn answer_part(&self, answer: &Arc<IdentityAnswer>) -> Arc<IdentityPart> {
        self.part.get_or_build(answer, || answer.part(&self.claims, &self.scopes, self.metadata.clone()))
    }
}

fn build_metadata(method: &AuthMethod, claims: &Value, scopes: &[String]) -> Map<String, Value> {
    let mut out = Map::new();
    let text = |name: &str| claims.get(name).and_then(scalar_text);
    if let Some(user) = text("user_id").or_else(|| text("sub")) {
        out.insert("user_id".into(), json!(user));
    }
    for name in ["org_id", "client_id"] {
        if let Some(value) = text(name) {
            out.insert(name.into(), json!(value));
        }
    }
    out.insert("scopes".into(), json!(scopes.join(" ")));
    match method {
        AuthMethod::Jwt { provider } => {
            out.insert("auth_method".into(), json!("jwt"));
            out.insert("provider".into(), json!(provider));
        }
        AuthMethod::ApiKey => {
            out.insert("auth_method".into(), json!("api_key"));
        }
        AuthMethod::Session { provider } => {
            out.insert("auth_method".into(), json!("session"));
            out.insert("provider".into(), json!(provider));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::apikeys::ApiKeyEntry;
    use crate::core::claims::ClaimPath;

    fn headers(arrays: ArrayFormat) -> IdentityHeaders {
        let mut rules = IdentityHeaders::defaults();
        rules.push(("x-groups".into(), HeaderSource::Claims(vec![ClaimPath::parse("https://example.com/groups")])));
        rules.push(("x-tenant".into(), HeaderSource::Claims(vec![ClaimPath::parse("org.tenant")])));
        IdentityHeaders { rules, arrays, payload_header: Some("x-auth-payload".into()) }
    }

    #[test]
    fn claims_to_headers() {
        let claims = json!({"sub": "u1", "email": "a@b.c\r\nx-evil: 1", "scope": "read write",
            "https://example.com/groups": ["ops", "dev"], "org": {"tenant": 7}});
        let identity = Identity::from_jwt("corp", Arc::new(claims));
        let rendered = headers(ArrayFormat::Join(",".into())).render(&identity.claims, &identity.scopes);
        let get = |n: &str| rendered.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("x-user-id"), Some("u1"));
        assert_eq!(get("x-user-email"), Some("a@b.cx-evil: 1"), "no header injection");
        assert_eq!(get("x-user-scopes"), Some("read,write"));
        assert_eq!(get("x-groups"), Some("ops,dev"));
        assert_eq!(get("x-tenant"), Some("7"));
        assert_eq!(get("x-org-id"), None);
        assert!(get("x-auth-payload").is_some());
        let json = headers(ArrayFormat::Json).render(&identity.claims, &identity.scopes);
        assert!(json.contains(&("x-groups".to_string(), r#"["ops","dev"]"#.to_string())));
    }

    #[test]
    fn api_keys_are_identities_too() {
        let entry = ApiKeyEntry {
            hash: [0; 32],
            client_id: "billing".into(),
            scopes: vec!["invoices:read".into()],
            org_id: Some("acme".into()),
            attributes: json!({"plan": "pro"}).as_object().unwrap().clone(),
        };
        let identity = entry.identity();
        let rendered = headers(ArrayFormat::Join(" ".into())).render(&identity.claims, &identity.scopes);
        assert!(rendered.contains(&("x-user-id".into(), "billing".into())));
        assert!(rendered.contains(&("x-org-id".into(), "acme".into())));
        assert_eq!(identity.metadata()["client_id"], "billing");
        assert_eq!(identity.metadata()["auth_method"], "api_key");
    }
}

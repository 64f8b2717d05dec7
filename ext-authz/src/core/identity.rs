//! Who the caller is, and the headers the backend sees about it. The same mapping serves JWT
//! claims and API-key metadata (an API key's metadata is presented as claims).

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::claims::{scalar_text, scopes, ClaimPath};
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
        self.part.get_or_build(answer, self)
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

/// Where a header's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum HeaderSource {
    /// The first of these claims that is present.
    Claims(Vec<ClaimPath>),
    Scopes,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ArrayFormat {
    Join(String),
    Json,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IdentityHeaders {
    /// Lower-case header names with their sources.
    pub rules: Vec<(String, HeaderSource)>,
    pub arrays: ArrayFormat,
    /// A header carrying the whole verified payload as base64url JSON.
    pub payload_header: Option<String>,
}

impl IdentityHeaders {
    /// `org_id → x-org-id`, `user_id`/`sub → x-user-id`, `email → x-user-email`,
    /// `role → x-user-role`, scopes → `x-user-scopes`.
    pub fn defaults() -> Vec<(String, HeaderSource)> {
        let claims = |names: &[&str]| HeaderSource::Claims(names.iter().map(|n| ClaimPath::parse(n)).collect());
        vec![
            ("x-org-id".into(), claims(&["org_id"])),
            ("x-user-id".into(), claims(&["user_id", "sub"])),
            ("x-user-email".into(), claims(&["email"])),
            ("x-user-role".into(), claims(&["role"])),
            ("x-user-scopes".into(), HeaderSource::Scopes),
        ]
    }

    /// Every header name we own: set from the identity, or removed when it has no value, so a
    /// client can never supply its own.
    pub fn owned(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|(name, _)| name.as_str()).chain(self.payload_header.as_deref())
    }

    pub fn render(&self, identity: &Identity) -> Vec<(String, String)> {
        let mut headers = Vec::with_capacity(self.rules.len() + 1);
        for (name, source) in &self.rules {
            let value = match source {
                HeaderSource::Scopes => (!identity.scopes.is_empty()).then(|| self.format(&json!(identity.scopes))),
                HeaderSource::Claims(paths) => paths
                    .iter()
                    .find_map(|p| p.lookup(&identity.claims))
                    .filter(|v| !v.is_null())
                    .map(|v| self.format(v)),
            };
            if let Some(value) = value.map(|v| sanitize(&v)).filter(|v| !v.is_empty()) {
                headers.push((name.clone(), value));
            }
        }
        if let Some(name) = &self.payload_header {
            let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(identity.claims.to_string());
            headers.push((name.clone(), payload));
        }
        headers
    }

    fn format(&self, value: &Value) -> String {
        match value {
            Value::Array(items) => match &self.arrays {
                ArrayFormat::Json => value.to_string(),
                ArrayFormat::Join(separator) => items
                    .iter()
                    .map(|i| scalar_text(i).unwrap_or_else(|| i.to_string()))
                    .collect::<Vec<_>>()
                    .join(separator),
            },
            other => scalar_text(other).unwrap_or_else(|| other.to_string()),
        }
    }
}

/// Header values may not carry control characters (a claim with a newline must not become a
/// second header).
fn sanitize(value: &str) -> String {
    value.chars().filter(|c| !c.is_control()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::apikeys::ApiKeyEntry;

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
        let rendered = headers(ArrayFormat::Join(",".into())).render(&identity);
        let get = |n: &str| rendered.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("x-user-id"), Some("u1"));
        assert_eq!(get("x-user-email"), Some("a@b.cx-evil: 1"), "no header injection");
        assert_eq!(get("x-user-scopes"), Some("read,write"));
        assert_eq!(get("x-groups"), Some("ops,dev"));
        assert_eq!(get("x-tenant"), Some("7"));
        assert_eq!(get("x-org-id"), None);
        assert!(get("x-auth-payload").is_some());
        let json = headers(ArrayFormat::Json).render(&identity);
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
        let rendered = headers(ArrayFormat::Join(" ".into())).render(&identity);
        assert!(rendered.contains(&("x-user-id".into(), "billing".into())));
        assert!(rendered.contains(&("x-org-id".into(), "acme".into())));
        assert_eq!(identity.metadata()["client_id"], "billing");
        assert_eq!(identity.metadata()["auth_method"], "api_key");
    }
}

//! The headers the backend sees about the caller: which claims become which headers, how arrays
//! are written, and the optional header with the whole verified payload.

use base64::Engine as _;
use serde_json::{json, Value};

use super::claims::{scalar_text, ClaimPath};

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

    /// The headers an identity with these claims and scopes gets.
    pub fn render(&self, claims: &Value, scopes: &[String]) -> Vec<(String, String)> {
        let mut headers = Vec::with_capacity(self.rules.len() + 1);
        for (name, source) in &self.rules {
            let value = match source {
                HeaderSource::Scopes => (!scopes.is_empty()).then(|| self.format(&json!(scopes))),
                HeaderSource::Claims(paths) => {
                    paths.iter().find_map(|p| p.lookup(claims)).filter(|v| !v.is_null()).map(|v| self.format(v))
                }
            };
            if let Some(value) = value.map(|v| sanitize(&v)).filter(|v| !v.is_empty()) {
                headers.push((name.clone(), value));
            }
        }
        if let Some(name) = &self.payload_header {
            let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string());
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

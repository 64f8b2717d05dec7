//! Reading claims: nested paths (`org.id`), claim names that themselves contain dots
//! (`https://example.com/roles`), and scopes from `scope` or `scp`.

use serde_json::Value;

/// A compiled claim path. Lookup tries the whole name as one claim first (so URI-style names
/// with dots work), then the dotted segments as a nested path; the list form
/// (`["https://x.io/claims", "tenant"]`) gives the segments explicitly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPath {
    whole: String,
    segments: Vec<String>,
}

impl ClaimPath {
    pub fn parse(path: &str) -> ClaimPath {
        ClaimPath { whole: path.to_string(), segments: path.split('.').map(str::to_owned).collect() }
    }

    pub fn from_segments(segments: Vec<String>) -> ClaimPath {
        ClaimPath { whole: segments.join("."), segments }
    }

    pub fn name(&self) -> &str {
        &self.whole
    }

    pub fn lookup<'a>(&self, claims: &'a Value) -> Option<&'a Value> {
        if self.segments.len() > 1 {
            if let Some(v) = claims.get(&self.whole) {
                return Some(v);
            }
        }
        self.segments.iter().try_fold(claims, |value, segment| value.get(segment))
    }
}

/// Scopes from `scope` (space-delimited string or array) or `scp` (the same, as Azure AD writes).
pub fn scopes(claims: &Value) -> Vec<String> {
    for name in ["scope", "scp"] {
        match claims.get(name) {
            Some(Value::String(s)) => return s.split_whitespace().map(str::to_owned).collect(),
            Some(Value::Array(items)) => {
                return items
                    .iter()
                    .filter_map(Value::as_str)
                    .flat_map(str::split_whitespace)
                    .map(str::to_owned)
                    .collect()
            }
            _ => {}
        }
    }
    Vec::new()
}

/// A claim value as text for comparisons and headers: strings as they are, other scalars in
/// their JSON form.
pub fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_and_dotted_names() {
        let claims = json!({"org": {"id": "o1"}, "https://example.com/roles": ["a"], "a.b": 1, "a": {"b": 2}});
        assert_eq!(ClaimPath::parse("org.id").lookup(&claims), Some(&json!("o1")));
        assert_eq!(ClaimPath::parse("https://example.com/roles").lookup(&claims), Some(&json!(["a"])));
        assert_eq!(ClaimPath::parse("a.b").lookup(&claims), Some(&json!(1)), "the literal name wins");
        let explicit = ClaimPath::from_segments(vec!["a".into(), "b".into()]);
        assert_eq!(explicit.lookup(&json!({"a": {"b": 2}})), Some(&json!(2)));
        assert_eq!(ClaimPath::parse("missing.x").lookup(&claims), None);
    }

    #[test]
    fn scopes_from_strings_and_arrays() {
        assert_eq!(scopes(&json!({"scope": "a b  c"})), vec!["a", "b", "c"]);
        assert_eq!(scopes(&json!({"scp": ["a", "b"]})), vec!["a", "b"]);
        assert!(scopes(&json!({})).is_empty());
    }
}

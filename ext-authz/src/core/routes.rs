//! Route policy, compiled once per config load: public paths, then rules in order (optional
//! host, methods, and an exact, prefix or `{param}` template path), then the default for
//! requests no rule matches.

use serde_json::Value;

use shared::spiffe::IdPattern;

use super::claims::{scalar_text, ClaimPath};
use super::principals::TextPattern;

/// How a rule's path matches. Written in config as `/exact`, `/prefix/*` or `/items/{id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Exact(String),
    Prefix(String),
    /// Segments; `None` stands for a `{param}` matching one non-empty segment.
    Template(Vec<Option<String>>),
}

/// Why a path pattern is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("path {0:?} must start with '/'")]
    NotAbsolute(String),
    #[error("path {0:?}: '*' only at the end, and not with {{params}}")]
    StarWithParams(String),
    #[error("path {0:?}: '*' only at the end")]
    StarInside(String),
    #[error("path {pattern:?}: bad parameter {segment:?}")]
    BadParameter { pattern: String, segment: String },
}

impl PathMatch {
    pub fn parse(pattern: &str) -> Result<PathMatch, PatternError> {
        if !pattern.starts_with('/') {
            return Err(PatternError::NotAbsolute(pattern.into()));
        }
        if let Some(prefix) = pattern.strip_suffix('*') {
            if prefix.contains(['*', '{', '}']) {
                return Err(PatternError::StarWithParams(pattern.into()));
            }
            return Ok(PathMatch::Prefix(prefix.to_string()));
        }
        if pattern.contains('*') {
            return Err(PatternError::StarInside(pattern.into()));
        }
        if !pattern.contains(['{', '}']) {
            return Ok(PathMatch::Exact(pattern.to_string()));
        }
        let segments = pattern
            .split('/')
            .map(|segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) if !name.is_empty() && !name.contains(['{', '}']) => Ok(None),
                _ if segment.contains(['{', '}']) => {
                    Err(PatternError::BadParameter { pattern: pattern.into(), segment: segment.into() })
                }
                _ => Ok(Some(segment.to_string())),
            })
            .collect::<Result<_, _>>()?;
        Ok(PathMatch::Template(segments))
    }

    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Exact(exact) => path == exact,
            PathMatch::Prefix(prefix) => path.starts_with(prefix.as_str()),
            PathMatch::Template(segments) => {
                let mut parts = path.split('/');
                for segment in segments {
                    match (segment, parts.next()) {
                        (Some(literal), Some(part)) if literal == part => {}
                        (None, Some(part)) if !part.is_empty() => {}
                        _ => return false,
                    }
                }
                parts.next().is_none()
            }
        }
    }
}

/// A credential a rule accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// JWTs from these providers (indexes into the provider list); `None` = any provider.
    Jwt(Option<Vec<usize>>),
    ApiKey,
    /// A browser login session (the `oidc` section).
    Session,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Equals(Value),
    OneOf(Vec<Value>),
    /// The claim (an array, or a space-delimited string) holds this value.
    Contains(Value),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClaimRule {
    pub claim: ClaimPath,
    pub condition: Condition,
}

impl ClaimRule {
    pub fn holds(&self, claims: &Value) -> bool {
        let Some(value) = self.claim.lookup(claims) else { return false };
        match &self.condition {
            Condition::Equals(expected) => same(value, expected),
            Condition::OneOf(options) => options.iter().any(|o| same(value, o)),
            Condition::Contains(expected) => match value {
                Value::Array(items) => items.iter().any(|item| same(item, expected)),
                Value::String(s) => scalar_text(expected).is_some_and(|e| s.split_whitespace().any(|token| token == e)),
                _ => false,
            },
        }
    }
}

/// Equal as JSON, or as text when one side is a string (`"42"` matches `42`).
fn same(a: &Value, b: &Value) -> bool {
    a == b || matches!((scalar_text(a), scalar_text(b)), (Some(x), Some(y)) if x == y)
}

/// What a matched rule requires.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Requirements {
    /// The user credentials accepted (the first present is used). Empty only with
    /// `principals`: the calling workload's identity is then enough.
    pub credentials: Vec<Credential>,
    pub scopes: Vec<String>,
    pub claims: Vec<ClaimRule>,
    /// The calling workload's SPIFFE ID must match one (when not empty).
    pub principals: Vec<IdPattern>,
    /// The user's `<iss>/<sub>` must match one (when not empty).
    pub request_principals: Vec<TextPattern>,
}

impl Requirements {
    /// Any of `credentials`, with no further condition.
    pub fn any_of(credentials: Vec<Credential>) -> Requirements {
        Requirements { credentials, ..Requirements::default() }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub host: Option<String>,
    /// Upper-case; empty means any method.
    pub methods: Vec<String>,
    pub path: PathMatch,
    pub requires: Requirements,
    /// The upstream credential set on requests this rule allows (an index into the config's
    /// `upstream_credentials`).
    pub upstream: Option<usize>,
}

impl Rule {
    fn matches(&self, host: &str, method: &str, path: &str) -> bool {
        self.host.as_deref().is_none_or(|h| h == host)
            && (self.methods.is_empty() || self.methods.iter().any(|m| m == method))
            && self.path.matches(path)
    }
}

/// What happens to requests no rule matches.
#[derive(Debug, Clone, PartialEq)]
pub enum DefaultPolicy {
    Deny,
    /// Any valid credential of these kinds.
    Authenticated(Requirements),
    Allow,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteTable {
    pub public: Vec<PathMatch>,
    pub rules: Vec<Rule>,
    pub default: DefaultPolicy,
}

/// The outcome of routing a request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Routed<'a> {
    Public,
    Rule(&'a Rule),
    Default(&'a DefaultPolicy),
}

impl RouteTable {
    pub fn route(&self, host: &str, method: &str, path: &str) -> Routed<'_> {
        if self.public.iter().any(|p| p.matches(path)) {
            return Routed::Public;
        }
        match self.rules.iter().find(|r| r.matches(host, method, path)) {
            Some(rule) => Routed::Rule(rule),
            None => Routed::Default(&self.default),
        }
    }

    /// The name of the route a request takes: a rule's name, `public` or `default`.
    pub fn name(&self, host: &str, method: &str, path: &str) -> &str {
        match self.route(host, method, path) {
            Routed::Public => "public",
            Routed::Rule(rule) => &rule.name,
            Routed::Default(_) => "default",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn path_patterns() {
        let exact = PathMatch::parse("/orders").unwrap();
        assert!(exact.matches("/orders") && !exact.matches("/orders/1"));
        let prefix = PathMatch::parse("/static/*").unwrap();
        assert!(prefix.matches("/static/a/b") && !prefix.matches("/stat"));
        let template = PathMatch::parse("/orders/{id}/items").unwrap();
        assert!(template.matches("/orders/42/items"));
        assert!(!template.matches("/orders//items") && !template.matches("/orders/42/items/x"));
        assert!(PathMatch::parse("orders").is_err());
        assert!(PathMatch::parse("/a/*/b").is_err());
        assert!(PathMatch::parse("/a/{b").is_err());
    }

    #[test]
    fn claim_conditions() {
        let claims = json!({"role": "admin", "groups": ["ops", "dev"], "scope": "a b", "level": 3});
        let rule = |claim: &str, condition| ClaimRule { claim: ClaimPath::parse(claim), condition };
        assert!(rule("role", Condition::Equals(json!("admin"))).holds(&claims));
        assert!(rule("level", Condition::Equals(json!("3"))).holds(&claims));
        assert!(rule("role", Condition::OneOf(vec![json!("x"), json!("admin")])).holds(&claims));
        assert!(rule("groups", Condition::Contains(json!("ops"))).holds(&claims));
        assert!(rule("scope", Condition::Contains(json!("b"))).holds(&claims));
        assert!(!rule("groups", Condition::Contains(json!("qa"))).holds(&claims));
        assert!(!rule("missing", Condition::Equals(json!("x"))).holds(&claims));
    }

    #[test]
    fn routing_order() {
        let requires = Requirements::any_of(vec![Credential::ApiKey]);
        let table = RouteTable {
            public: vec![PathMatch::parse("/healthz").unwrap()],
            rules: vec![
                Rule {
                    name: "read".into(),
                    host: Some("api.example.com".into()),
                    methods: vec!["GET".into()],
                    path: PathMatch::parse("/orders/*").unwrap(),
                    requires: requires.clone(),
                    upstream: None,
                },
                Rule {
                    name: "any".into(),
                    host: None,
                    methods: vec![],
                    path: PathMatch::parse("/orders/*").unwrap(),
                    requires,
                    upstream: None,
                },
            ],
            default: DefaultPolicy::Deny,
        };
        assert_eq!(table.route("x", "GET", "/healthz"), Routed::Public);
        assert!(matches!(table.route("api.example.com", "GET", "/orders/1"), Routed::Rule(r) if r.name == "read"));
        assert!(matches!(table.route("api.example.com", "POST", "/orders/1"), Routed::Rule(r) if r.name == "any"));
        assert!(matches!(table.route("api.example.com", "GET", "/other"), Routed::Default(DefaultPolicy::Deny)));
    }
}

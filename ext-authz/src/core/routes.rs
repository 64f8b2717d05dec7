//! Route policy, compiled once per config load: public paths, then rules in order (optional
//! host, methods, an exact, prefix or `{param}` template path, address lists, conditions;
//! deny rules before allow rules), then the default for requests no rule matches. Named
//! policies (`policies:`) are tables of the same shape, chosen per request by the gateway's
//! route ([`policies`]).

use std::sync::Arc;

use serde_json::Value;

use shared::spiffe::IdPattern;

use super::cel::{Expression, SourceAddresses};
use super::claims::{scalar_text, ClaimPath};
use super::error_code::ErrorCode;
use super::principals::TextPattern;
use super::request::AuthRequest;

mod addresses;
mod policies;

pub use super::cidr::parse_cidr;
pub use super::route_annotation::{RouteAnnotation, RouteMetadataKey, Unreadable, MAX_ANNOTATION_BYTES};
pub use addresses::{AddressMatch, AddressMiss, Unknown};
pub use policies::{NamedPolicy, Policies, PolicySelector, Selected};

/// How a rule's path matches. Written in config as `/exact`, `/prefix/*`, `/items/{id}`, or a
/// template with a final `/*` (`/orgs/{org}/*`: the template's segments, then any rest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Exact(String),
    Prefix(String),
    Template(Template),
}

/// A path template: segments, each a literal or a `{name}` matching one non-empty segment
/// (captured by that name, for conditions as `route.<name>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub segments: Vec<Segment>,
    /// Written with a final `/*`: any rest after the segments (at least the `/`).
    pub rest: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Literal(String),
    Param(String),
}

/// Why a path pattern is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("path {0:?} must start with '/'")]
    NotAbsolute(String),
    #[error("path {0:?}: '*' only at the end, and with {{params}} only as a final '/*'")]
    StarWithParams(String),
    #[error("path {0:?}: '*' only at the end")]
    StarInside(String),
    #[error("path {pattern:?}: bad parameter {segment:?}")]
    BadParameter { pattern: String, segment: String },
    #[error("path {pattern:?}: parameter {{{name}}} appears twice")]
    DuplicateParameter { pattern: String, name: String },
}

impl PathMatch {
    pub fn parse(pattern: &str) -> Result<PathMatch, PatternError> {
        if !pattern.starts_with('/') {
            return Err(PatternError::NotAbsolute(pattern.into()));
        }
        let (template, rest) = match pattern.strip_suffix('*') {
            Some(prefix) if !prefix.contains(['*', '{', '}']) => return Ok(PathMatch::Prefix(prefix.to_string())),
            Some(prefix) => match prefix.strip_suffix('/') {
                Some(template) if !template.contains('*') => (template, true),
                _ => return Err(PatternError::StarWithParams(pattern.into())),
            },
            None if pattern.contains('*') => return Err(PatternError::StarInside(pattern.into())),
            None if !pattern.contains(['{', '}']) => return Ok(PathMatch::Exact(pattern.to_string())),
            None => (pattern, false),
        };
        let mut segments: Vec<Segment> = Vec::new();
        for segment in template.split('/') {
            let parsed = match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) if is_param_name(name) => Segment::Param(name.to_string()),
                _ if segment.contains(['{', '}']) => {
                    return Err(PatternError::BadParameter { pattern: pattern.into(), segment: segment.into() })
                }
                _ => Segment::Literal(segment.to_string()),
            };
            if let Segment::Param(name) = &parsed {
                if segments.iter().any(|s| matches!(s, Segment::Param(n) if n == name)) {
                    return Err(PatternError::DuplicateParameter { pattern: pattern.into(), name: name.clone() });
                }
            }
            segments.push(parsed);
        }
        Ok(PathMatch::Template(Template { segments, rest }))
    }

    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Exact(exact) => path == exact,
            PathMatch::Prefix(prefix) => path.starts_with(prefix.as_str()),
            PathMatch::Template(template) => template.walk(path, |_, _| {}),
        }
    }

    /// The `{name}` captures of a matching path, in the template's order (empty for other
    /// patterns, or when `path` does not match).
    pub fn captures<'a>(&'a self, path: &'a str) -> Vec<(&'a str, &'a str)> {
        let PathMatch::Template(template) = self else { return Vec::new() };
        let mut captured = Vec::new();
        if !template.walk(path, |name, value| captured.push((name, value))) {
            captured.clear();
        }
        captured
    }
}

impl Template {
    /// Whether `path` matches, telling `capture` each parameter's value on the way.
    fn walk<'a>(&'a self, path: &'a str, mut capture: impl FnMut(&'a str, &'a str)) -> bool {
        let mut parts = path.split('/');
        for segment in &self.segments {
            match (segment, parts.next()) {
                (Segment::Literal(literal), Some(part)) if literal == part => {}
                (Segment::Param(name), Some(part)) if !part.is_empty() => capture(name, part),
                _ => return false,
            }
        }
        // With a final `/*` a rest must follow (`/orgs/acme/`, `/orgs/acme/x`), as a prefix's
        // `/` must; without one, nothing may.
        parts.next().is_some() == self.rest
    }
}

/// A parameter's name: anything but braces (`route.org`, or `route['order-id']` for a name a
/// condition cannot write after a dot).
fn is_param_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['{', '}'])
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

/// What a matching rule does.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Answers the request (first matching allow rule): its credential, scopes, claims,
    /// principals and conditions decide.
    Allow,
    /// Denies, before any allow rule is looked at, with this code and message in the JSON
    /// error (`error:`; by default `DENIED` and "denied by rule <name>").
    Deny { code: ErrorCode, message: Arc<str> },
}

/// Whether a rule (or a named policy) takes part in the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Enforce,
    /// Evaluated, its would-be answer logged and counted; never changes the answer.
    Shadow,
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
    pub action: Action,
    /// `when:` — CEL conditions, every one of which must hold (compiled at config load).
    pub when: Vec<Arc<Expression>>,
    /// CIDR lists on the client and peer addresses.
    pub addresses: AddressMatch,
    pub mode: Mode,
}

/// Which part of a rule's match did not hold for a request (for `explain` and logs), or that
/// all did. Checked in this order; conditions, credentials, scopes and claims come after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleMatch {
    Matches,
    Host,
    Method,
    Path,
    Address(AddressMiss),
}

impl Rule {
    /// An enforced allow rule with nothing but these parts (the other fields empty).
    pub fn allow(name: &str, path: PathMatch, requires: Requirements) -> Rule {
        Rule {
            name: name.to_string(),
            host: None,
            methods: Vec::new(),
            path,
            requires,
            upstream: None,
            action: Action::Allow,
            when: Vec::new(),
            addresses: AddressMatch::default(),
            mode: Mode::Enforce,
        }
    }

    pub fn is_deny(&self) -> bool {
        matches!(self.action, Action::Deny { .. })
    }

    /// Whether judging the rule needs the caller's identity: a condition reads `identity`, or
    /// the rule names scopes or claims. A deny rule that does not is judged before any
    /// credential is checked.
    pub fn reads_identity(&self) -> bool {
        !self.requires.scopes.is_empty()
            || !self.requires.claims.is_empty()
            || self.when.iter().any(|condition| condition.uses().identity)
    }

    /// Host, method, path and address lists against a request (the first part that fails, or
    /// [`RuleMatch::Matches`]). An address list on an unknown address fails closed: it does not
    /// hold for an allow rule and holds for a deny rule (see the `addresses` module).
    pub fn matches_request(&self, request: &AuthRequest, source: SourceAddresses) -> RuleMatch {
        if !self.matches(&request.host, &request.method, &request.path) {
            return if self.host.as_deref().is_some_and(|h| h != request.host) {
                RuleMatch::Host
            } else if !self.methods.is_empty() && !self.methods.contains(&request.method) {
                RuleMatch::Method
            } else {
                RuleMatch::Path
            };
        }
        let unknown = if self.is_deny() { Unknown::Holds } else { Unknown::Fails };
        match self.addresses.check(source, unknown) {
            Some(miss) => RuleMatch::Address(miss),
            None => RuleMatch::Matches,
        }
    }

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
    /// The allow route of a request: a public path, the first enforced allow rule that matches
    /// (host, method, path, address lists), or the default. Deny and shadow rules are not
    /// routes (the decision judges them apart).
    pub fn route_request(&self, request: &AuthRequest, source: SourceAddresses) -> Routed<'_> {
        if self.public.iter().any(|p| p.matches(&request.path)) {
            return Routed::Public;
        }
        let routes = |rule: &&Rule| !rule.is_deny() && rule.mode == Mode::Enforce;
        match self.rules.iter().filter(routes).find(|r| r.matches_request(request, source) == RuleMatch::Matches) {
            Some(rule) => Routed::Rule(rule),
            None => Routed::Default(&self.default),
        }
    }

    /// The allow route by host, method and path alone, for a caller without the request's
    /// addresses: a rule with address lists is taken as matching them.
    pub fn route(&self, host: &str, method: &str, path: &str) -> Routed<'_> {
        if self.public.iter().any(|p| p.matches(path)) {
            return Routed::Public;
        }
        let routes = |rule: &&Rule| !rule.is_deny() && rule.mode == Mode::Enforce;
        match self.rules.iter().filter(routes).find(|r| r.matches(host, method, path)) {
            Some(rule) => Routed::Rule(rule),
            None => Routed::Default(&self.default),
        }
    }

    /// The name of the route a request takes (see [`RouteTable::route`]): a rule's name,
    /// `public` or `default`.
    pub fn name(&self, host: &str, method: &str, path: &str) -> &str {
        Routed::name(self.route(host, method, path))
    }

    /// The deny rules, in order (enforced and shadow).
    pub fn deny_rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().filter(|rule| rule.is_deny())
    }
}

impl<'a> Routed<'a> {
    /// A rule's name, `public` or `default`.
    pub fn name(self) -> &'a str {
        match self {
            Routed::Public => "public",
            Routed::Rule(rule) => &rule.name,
            Routed::Default(_) => "default",
        }
    }
}

#[cfg(test)]
mod tests;

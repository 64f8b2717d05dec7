//! Why a request is answered as it is, rule by rule, for `ext-authz explain`: the policy the
//! request names and why, each deny rule and each allow rule in order with the part of its
//! match that did not hold (host, method, path, an address list) or that it matched, and each
//! condition's value. Pure: it reads the compiled policy through the same predicates the
//! decision uses ([`Rule::matches_request`], [`Policies::select`], [`Expression::evaluate`]),
//! and never decides — the answer is the decision's own (`Engine::check`).

use serde::Serialize;
use shared::spiffe::SpiffeId;

use super::cel::{Activation, Facts, SourceAddresses};
use super::decision::Engine;
use super::identity::Identity;
use super::request::AuthRequest;
use super::routes::{
    AddressMiss, Credential, DefaultPolicy, Mode, PathMatch, Policies, Requirements, RouteTable, Routed, Rule,
    RuleMatch, Segment, Selected,
};

/// The request's facts, as the decision has them.
pub struct Inputs<'a> {
    pub request: &'a AuthRequest,
    pub source: SourceAddresses,
    pub principal: Option<&'a SpiffeId>,
    pub now: u64,
}

/// The whole explanation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trace {
    pub policy: PolicyChoice,
    /// The tables looked at, in the order the decision looks at them.
    pub tables: Vec<TableTrace>,
}

/// Which policy answers, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyChoice {
    /// `routes`, or a named policy.
    pub name: String,
    pub why: String,
}

/// One route table (`routes` or a named policy) as the request met it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableTrace {
    pub name: String,
    /// `answers`: its allow rules decide; `deny rules only`: `routes` beside the named policy
    /// that answers; `shadow`: evaluated for the log, never the answer.
    pub role: &'static str,
    /// The public path the request's path matched, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public: Option<String>,
    pub deny_rules: Vec<RuleTrace>,
    pub rules: Vec<RuleTrace>,
    /// The default, when no rule took the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleTrace {
    pub name: String,
    /// `shadow` rules never change the answer.
    pub shadow: bool,
    /// `matched`, `skipped` (a part of its match did not hold), or `not reached` (an earlier
    /// rule took the request).
    pub verdict: &'static str,
    /// Why, in words ("method DELETE is not one of GET, HEAD").
    pub why: String,
    /// What the rule that takes the request requires ("accepts jwt:corp; scopes orders:write").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requires: Option<String>,
    /// Each `when` condition's value, for a rule whose host, method, path and addresses match.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ConditionTrace>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConditionTrace {
    pub expression: String,
    /// `true`, `false`, `error: <text>`, or `not evaluated` (after one that does not hold).
    pub value: String,
}

/// The trace of `request` through `routes` and `policies`. `identity` is the identity the
/// allow route's credential gives (`None`: none, or not valid), which conditions reading
/// `identity` see, as the decision's do.
pub fn trace(engine: &Engine, inputs: &Inputs<'_>, identity: Option<&Identity>) -> Trace {
    let (routes, policies, request) = (&engine.routes, &engine.policies, inputs.request);
    // The allow route's credential is missing or refused: the decision answers that before it
    // looks at identity deny rules or the route's conditions.
    let refused = identity.is_none()
        && answering_table(routes, policies, request)
            .and_then(|table| route_requirements(table, inputs))
            .is_some_and(|requires| !requires.credentials.is_empty());
    let who = Who { identity, refused };
    let table = |name, role, table| table_trace(engine, name, role, table, inputs, who);
    let (policy, tables) = match policies.select(request) {
        Selected::Routes => {
            let why = "the route names no policy (context extension or route metadata): routes answers".into();
            (PolicyChoice { name: "routes".into(), why }, vec![table("routes", "answers", routes)])
        }
        Selected::Unknown(name) => {
            let why = format!("{}, which no policy has: denied (UNKNOWN_POLICY)", named_by(policies, request, name));
            (PolicyChoice { name: name.into(), why }, Vec::new())
        }
        Selected::Named(name, policy) if policy.mode == Mode::Shadow => {
            let why =
                format!("{}, in shadow mode: routes answers, {name} is only logged", named_by(policies, request, name));
            let tables = vec![table("routes", "answers", routes), table(name, "shadow", &policy.table)];
            (PolicyChoice { name: name.into(), why }, tables)
        }
        Selected::Named(name, policy) => {
            let why = named_by(policies, request, name);
            let mut deny_only = table("routes", "deny rules only", routes);
            (deny_only.rules, deny_only.public, deny_only.default) = (Vec::new(), None, None);
            let tables = vec![deny_only, table(name, "answers", &policy.table)];
            (PolicyChoice { name: name.into(), why }, tables)
        }
    };
    Trace { policy, tables }
}

/// The identity conditions see, and whether the route's credential was refused (then nothing
/// that reads the identity is judged).
#[derive(Clone, Copy)]
struct Who<'a> {
    identity: Option<&'a Identity>,
    refused: bool,
}

/// The table whose allow rules answer the request (`None`: it names a policy that does not
/// exist).
pub fn answering_table<'a>(
    routes: &'a RouteTable,
    policies: &'a Policies,
    request: &'a AuthRequest,
) -> Option<&'a RouteTable> {
    match policies.select(request) {
        Selected::Routes => Some(routes),
        Selected::Named(_, policy) if policy.mode == Mode::Shadow => Some(routes),
        Selected::Named(_, policy) => Some(&policy.table),
        Selected::Unknown(_) => None,
    }
}

/// What the allow route of `table` requires of a credential (`None`: a public path, or a
/// default that needs none).
pub fn route_requirements<'a>(table: &'a RouteTable, inputs: &Inputs<'_>) -> Option<&'a Requirements> {
    match table.route_request(inputs.request, inputs.source) {
        Routed::Rule(rule) => Some(&rule.requires),
        Routed::Default(DefaultPolicy::Authenticated(requires)) => Some(requires),
        Routed::Public | Routed::Default(_) => None,
    }
}

/// Where the request named `name`.
fn named_by(policies: &Policies, request: &AuthRequest, name: &str) -> String {
    let key = &policies.selector.context_extension;
    if !key.is_empty() && request.context_extensions.get(key).is_some_and(|v| v == name) {
        return format!("context extension {key}={name}");
    }
    match &policies.selector.route_metadata {
        Some(at) => format!("route metadata {} annotation {}={name}", at.namespace, at.annotation),
        None => format!("the route names {name}"),
    }
}

fn table_trace(
    engine: &Engine,
    name: &str,
    role: &'static str,
    table: &RouteTable,
    inputs: &Inputs<'_>,
    who: Who<'_>,
) -> TableTrace {
    let request = inputs.request;
    let deny_rules = table.rules.iter().filter(|r| r.is_deny()).map(|r| deny_rule(r, inputs, who)).collect();
    let public = table.public.iter().find(|p| p.matches(&request.path)).map(pattern);
    // The rule that takes the request is the decision's own routing's; the others are judged
    // to say why they did not, up to it (the decision looks no further).
    let routed = table.route_request(request, inputs.source);
    let mut passed = false;
    let mut rules = Vec::new();
    for rule in table.rules.iter().filter(|r| !r.is_deny()) {
        let shadow = rule.mode == Mode::Shadow;
        if passed || public.is_some() {
            let why = if public.is_some() { "the path is public" } else { "an earlier rule took the request" };
            let verdict = "not reached";
            rules.push(RuleTrace {
                name: rule.name.clone(),
                shadow,
                verdict,
                why: why.into(),
                requires: None,
                conditions: Vec::new(),
            });
            continue;
        }
        // A shadow rule's would-be answer is its own: no refused credential stops it.
        let evaluate = !(who.refused && !shadow && !rule.requires.credentials.is_empty());
        let mut traced = judge(rule, inputs, who.identity, evaluate);
        if traced.verdict == "matched" {
            traced.why = match shadow {
                true => "its would-be answer is logged, not the answer (shadow)".into(),
                false => "takes the request".into(),
            };
            traced.requires = Some(requirements(engine, &rule.requires));
        }
        passed = matches!(routed, Routed::Rule(taker) if std::ptr::eq(taker, rule));
        rules.push(traced);
    }
    let default = matches!(routed, Routed::Default(_)).then(|| match &table.default {
        DefaultPolicy::Deny => "deny (no rule took the request)".to_string(),
        DefaultPolicy::Allow => "allow (no rule took the request)".to_string(),
        DefaultPolicy::Authenticated(requires) => {
            format!("authenticated (no rule took the request): {}", requirements(engine, requires))
        }
    });
    TableTrace { name: name.into(), role, public, deny_rules, rules, default }
}

/// A deny rule: its match, then its scopes and claims (against the identity), then its
/// conditions.
fn deny_rule(rule: &Rule, inputs: &Inputs<'_>, who: Who<'_>) -> RuleTrace {
    let identity = who.identity;
    let after_credential = rule.reads_identity() && who.refused;
    let mut traced = judge(rule, inputs, identity, !after_credential);
    if traced.verdict != "matched" {
        return traced;
    }
    if after_credential {
        traced.verdict = "not reached";
        traced.why = "it reads the identity, and the route's credential is missing or refused".into();
        return traced;
    }
    let unmet = identity_unmet(&rule.requires, identity);
    let holds = |c: &ConditionTrace| c.value == "true";
    let erred = traced.conditions.iter().any(|c| c.value.starts_with("error"));
    traced.why = match unmet {
        Some(unmet) => {
            traced.verdict = "skipped";
            unmet
        }
        None if erred => "a condition failed to evaluate: denies (CONDITION_ERROR)".into(),
        None if traced.conditions.iter().all(holds) => {
            if rule.mode == Mode::Shadow {
                "would deny (shadow: not the answer)".into()
            } else {
                "denies".into()
            }
        }
        None => {
            traced.verdict = "skipped";
            "a condition does not hold".into()
        }
    };
    traced
}

/// A rule's host, method, path and address lists against the request, then (when they match)
/// its conditions' values.
/// `evaluate`: false when the decision never gets to the conditions (they are listed, not
/// evaluated).
fn judge(rule: &Rule, inputs: &Inputs<'_>, identity: Option<&Identity>, evaluate: bool) -> RuleTrace {
    let request = inputs.request;
    let skipped = |why: String| RuleTrace {
        name: rule.name.clone(),
        shadow: rule.mode == Mode::Shadow,
        verdict: "skipped",
        why,
        requires: None,
        conditions: Vec::new(),
    };
    let source = inputs.source;
    match rule.matches_request(request, source) {
        RuleMatch::Host => {
            return skipped(format!("host {} is not {}", shown(&request.host), rule.host.as_deref().unwrap_or("")))
        }
        RuleMatch::Method => {
            return skipped(format!("method {} is not one of {}", request.method, rule.methods.join(", ")))
        }
        RuleMatch::Path => return skipped(format!("path {} does not match {}", request.path, pattern(&rule.path))),
        RuleMatch::Address(miss) => return skipped(address_miss(rule, miss, source)),
        RuleMatch::Matches => {}
    }
    let captures = rule.path.captures(&request.path);
    let mut activation = Activation::new(Facts {
        request,
        source,
        identity,
        principal: inputs.principal,
        route: &captures,
        context: &request.context_extensions,
        now: inputs.now,
    });
    // In order, up to the first that does not hold, as the decision evaluates them.
    let mut stopped = !evaluate;
    let conditions = rule
        .when
        .iter()
        .map(|condition| {
            let value = match stopped {
                true => "not evaluated".to_string(),
                false => match condition.evaluate(&mut activation) {
                    Ok(value) => value.to_string(),
                    Err(e) => format!("error: {e}"),
                },
            };
            stopped = value != "true";
            ConditionTrace { expression: condition.source().to_string(), value }
        })
        .collect();
    let shadow = rule.mode == Mode::Shadow;
    RuleTrace { name: rule.name.clone(), shadow, verdict: "matched", why: String::new(), requires: None, conditions }
}

/// Why a deny rule's scopes or claims do not hold for the identity (`None`: they do).
fn identity_unmet(requires: &Requirements, identity: Option<&Identity>) -> Option<String> {
    if requires.scopes.is_empty() && requires.claims.is_empty() {
        return None;
    }
    let Some(identity) = identity else { return Some("no identity for its scopes and claims".into()) };
    let missing: Vec<&str> =
        requires.scopes.iter().filter(|s| !identity.scopes.contains(s)).map(String::as_str).collect();
    if !missing.is_empty() {
        return Some(format!("the identity lacks scope {}", missing.join(" ")));
    }
    let rule = requires.claims.iter().find(|r| !r.holds(&identity.claims))?;
    Some(format!("claim {:?} does not satisfy its rule", rule.claim.name()))
}

fn address_miss(rule: &Rule, miss: AddressMiss, source: SourceAddresses) -> String {
    let (address, list, against) = match miss {
        AddressMiss::ClientIps => (source.client, &rule.addresses.client_ips, "is not in"),
        AddressMiss::NotClientIps => (source.client, &rule.addresses.not_client_ips, "is in"),
        AddressMiss::PeerIps => (source.peer, &rule.addresses.peer_ips, "is not in"),
        AddressMiss::NotPeerIps => (source.peer, &rule.addresses.not_peer_ips, "is in"),
    };
    let who = if matches!(miss, AddressMiss::ClientIps | AddressMiss::NotClientIps) { "client" } else { "peer" };
    let address = address.map_or_else(|| "unknown".to_string(), |a| a.to_string());
    let list: Vec<String> = list.iter().map(ToString::to_string).collect();
    format!("{who} address {address} {against} {} [{}]", miss.key(), list.join(", "))
}

/// What a route requires, as the config says it ("accepts jwt:corp; scopes orders:write").
fn requirements(engine: &Engine, requires: &Requirements) -> String {
    let kinds: Vec<String> = requires
        .credentials
        .iter()
        .map(|credential| match credential {
            Credential::Jwt(None) => "jwt".to_string(),
            Credential::Jwt(Some(providers)) => {
                let names =
                    providers.iter().filter_map(|p| engine.providers.get(*p)).map(|p| format!("jwt:{}", p.name));
                names.collect::<Vec<_>>().join(", ")
            }
            Credential::ApiKey => "api_key".into(),
            Credential::Session => "session".into(),
        })
        .collect();
    let mut parts = vec![match kinds.is_empty() {
        true => "accepts the workload's identity alone".to_string(),
        false => format!("accepts {}", kinds.join(", ")),
    }];
    if !requires.principals.is_empty() {
        let principals: Vec<String> = requires.principals.iter().map(ToString::to_string).collect();
        parts.push(format!("principals {}", principals.join(", ")));
    }
    if !requires.request_principals.is_empty() {
        parts.push(format!("{} request principal patterns", requires.request_principals.len()));
    }
    if !requires.scopes.is_empty() {
        parts.push(format!("scopes {}", requires.scopes.join(" ")));
    }
    if !requires.claims.is_empty() {
        let claims: Vec<&str> = requires.claims.iter().map(|rule| rule.claim.name()).collect();
        parts.push(format!("claim rules on {}", claims.join(", ")));
    }
    parts.join("; ")
}

fn shown(host: &str) -> &str {
    if host.is_empty() {
        "(none)"
    } else {
        host
    }
}

/// A path pattern as the config writes it.
pub fn pattern(path: &PathMatch) -> String {
    match path {
        PathMatch::Exact(exact) => exact.clone(),
        PathMatch::Prefix(prefix) => format!("{prefix}*"),
        PathMatch::Template(template) => {
            let segments: Vec<String> = template
                .segments
                .iter()
                .map(|segment| match segment {
                    Segment::Literal(literal) => literal.clone(),
                    Segment::Param(name) => format!("{{{name}}}"),
                })
                .collect();
            format!("{}{}", segments.join("/"), if template.rest { "/*" } else { "" })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pattern is said as the config wrote it.
    #[test]
    fn patterns_read_back_as_written() {
        for written in ["/orders", "/static/*", "/orgs/{org}/orders/{id}", "/orgs/{org}/*", "/"] {
            assert_eq!(pattern(&PathMatch::parse(written).unwrap()), written);
        }
    }
}

//! The `routes:` section (and each of `policies:`, which have its shape): public paths, rules
//! (allow or deny; host, methods, path, address lists → accepted credentials, scopes, claim
//! rules, workload and request principals, `when` conditions) and the default for requests no
//! rule matches.

use super::check::{each, Check, Checked};
use super::identity::claim_path;
use super::keys::{self, RoutesDefault, RuleAction};
use super::raw::{self, RawRoutes, RawRule};
use crate::core::principals::TextPattern;
use crate::core::routes::{
    Action, ClaimRule, Condition, Credential, DefaultPolicy, PathMatch, Requirements, RouteTable, Rule,
};
use shared::spiffe::IdPattern;

mod rule_parts;

/// The credentials the rest of the config makes available, which `accept:` lists may name.
pub struct Available<'a> {
    /// JWT provider names, in order (a `jwt:<name>` names the provider at that index).
    pub providers: Vec<&'a str>,
    pub api_keys: bool,
    pub sessions: bool,
    /// `workload_identity.trust_domains`: principal patterns must name one (when not empty).
    pub trust_domains: &'a [String],
    /// `upstream_credentials` names, in order (a rule's `upstream_credential` names one).
    pub upstream_credentials: Vec<&'a str>,
}

pub fn routes(raw: Option<&RawRoutes>, available: &Available<'_>, c: &Check<'_>) -> Checked<RouteTable> {
    let Some(routes) = raw else {
        return c.fail("routes", "missing: a config must say which requests it lets through (is the file cut short?)");
    };
    let shape = TableShape {
        public: &routes.public,
        default: &routes.default,
        default_accept: &routes.default_accept,
        rules: &routes.rules,
    };
    table("routes", &shape, available, c)
}

/// The keys a route table is written with (`routes`, or one of `policies`).
pub struct TableShape<'a> {
    pub public: &'a [String],
    pub default: &'a str,
    pub default_accept: &'a [String],
    pub rules: &'a [RawRule],
}

/// A route table at `at` (`routes`, `policies.orders`).
pub fn table(at: &str, raw: &TableShape<'_>, available: &Available<'_>, c: &Check<'_>) -> Checked<RouteTable> {
    let rules = each(raw.rules, |i, r| rule(&rule_key(at, i, r), i, r, available, c));
    let public =
        each(raw.public, |i, p| PathMatch::parse(p).or_else(|e| c.fail(format!("{at}.public[{i}]"), e.to_string())));
    let default = match c.choice(&format!("{at}.default"), &keys::ROUTES_DEFAULT, raw.default) {
        Ok(RoutesDefault::Deny) => Ok(DefaultPolicy::Deny),
        Ok(RoutesDefault::Allow) => Ok(DefaultPolicy::Allow),
        Ok(RoutesDefault::Authenticated) => {
            accept(raw.default_accept, &format!("{at}.default_accept"), false, available, c)
                .map(|credentials| DefaultPolicy::Authenticated(Requirements::any_of(credentials)))
        }
        Err(reported) => Err(reported),
    };
    Ok(RouteTable { public: public?, rules: rules?, default: default? })
}

/// Where a rule's problems are reported: `routes.rules[2]`, with its name when it has one
/// (`routes.rules[2] (org-orders)`), so a problem is found by either.
fn rule_key(at: &str, i: usize, r: &RawRule) -> String {
    match &r.name {
        Some(name) => format!("{at}.rules[{i}] ({name})"),
        None => format!("{at}.rules[{i}]"),
    }
}

fn rule(key: &str, i: usize, r: &RawRule, available: &Available<'_>, c: &Check<'_>) -> Checked<Rule> {
    let name = r.name.clone().unwrap_or_else(|| format!("rule-{i}"));
    let action = c.choice(&format!("{key}.action"), &keys::RULE_ACTION, &r.action);
    let path = PathMatch::parse(&r.path).or_else(|e| c.fail(format!("{key}.path"), e.to_string()));
    let methods = each(&r.methods, |_, m| {
        if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()) {
            return c.fail(format!("{key}.methods"), format!("{m:?} is not an HTTP method"));
        }
        Ok(m.to_ascii_uppercase())
    });
    let claims = each(&r.claims, |j, rule| {
        let condition = match (&rule.equals, &rule.one_of, &rule.contains) {
            (Some(v), None, None) => Condition::Equals(v.clone()),
            (None, Some(v), None) => Condition::OneOf(v.clone()),
            (None, None, Some(v)) => Condition::Contains(v.clone()),
            _ => return c.fail(format!("{key}.claims[{j}]"), "set exactly one of equals, one_of and contains"),
        };
        Ok(ClaimRule { claim: claim_path(&rule.claim), condition })
    });
    let principals = each(&r.principals, |j, text| principal(text, &format!("{key}.principals[{j}]"), available, c));
    let request_principals = each(&r.request_principals, |j, text| {
        TextPattern::parse(text).or_else(|e| c.fail(format!("{key}.request_principals[{j}]"), e.to_string()))
    });
    let upstream = match &r.upstream_credential {
        // A deny rule's is refused with its other allow-only keys.
        None | Some(_) if action == Ok(RuleAction::Deny) => Ok(None),
        None => Ok(None),
        Some(name) => match available.upstream_credentials.iter().position(|n| n == name) {
            Some(index) => Ok(Some(index)),
            None => {
                c.fail(format!("{key}.upstream_credential"), format!("no upstream_credentials entry is named {name:?}"))
            }
        },
    };
    let credentials = match action {
        // A deny rule answers without a credential: what it reads of the caller is its
        // conditions' `identity`, its scopes and its claims.
        Ok(RuleAction::Deny) => rule_parts::deny_only(key, r, c).map(|()| Vec::new()),
        Ok(RuleAction::Allow) => {
            let defaulted = raw::default_accept();
            let list = r.accept.as_deref().unwrap_or(&defaulted);
            accept(list, &format!("{key}.accept"), !r.principals.is_empty(), available, c)
        }
        // Which credentials a rule of no known action needs cannot be told.
        Err(_) => Ok(Vec::new()),
    };
    let when = rule_parts::conditions(key, &r.when, c);
    let addresses = rule_parts::addresses(key, r, c);
    let mode = c.choice(&format!("{key}.mode"), &keys::RULE_MODE, &r.mode);
    let action = match action {
        Ok(RuleAction::Deny) => rule_parts::deny_answer(key, &name, r.error.as_ref(), c),
        Ok(RuleAction::Allow) if r.error.is_some() => {
            c.fail(format!("{key}.error"), "only a deny rule (action: deny) has an error to answer with")
        }
        Ok(RuleAction::Allow) => Ok(Action::Allow),
        Err(reported) => Err(reported),
    };
    Ok(Rule {
        name,
        host: r.host.as_ref().map(|h| h.to_ascii_lowercase()),
        methods: methods?,
        path: path?,
        requires: Requirements {
            credentials: credentials?,
            scopes: r.scopes.clone(),
            claims: claims?,
            principals: principals?,
            request_principals: request_principals?,
        },
        upstream: upstream?,
        action: action?,
        when: when?,
        addresses: addresses?,
        mode: mode?,
    })
}

/// A SPIFFE ID pattern of a trust domain the `workload_identity` section accepts.
fn principal(text: &str, key: &str, available: &Available<'_>, c: &Check<'_>) -> Checked<IdPattern> {
    if !text.starts_with("spiffe://") {
        return c.fail(
            key,
            format!(
                "{text:?} is not a SPIFFE ID pattern: write spiffe://<trust domain>/<path>, with * for one \
                 segment and a final /** for any rest (Istio's \"cluster.local/ns/shop/*\" is \
                 \"spiffe://cluster.local/ns/shop/**\")"
            ),
        );
    }
    let pattern = IdPattern::parse(text).or_else(|e| c.fail(key, format!("{text:?}: {e}")))?;
    let domains = available.trust_domains;
    if !domains.is_empty() && !domains.iter().any(|d| d == pattern.trust_domain()) {
        return c.fail(
            key,
            format!(
                "trust domain {:?} is not in workload_identity.trust_domains, so no caller could match",
                pattern.trust_domain()
            ),
        );
    }
    Ok(pattern)
}

/// An `accept:` list: `jwt`, `jwt:<provider>`, `api_key`, `session`, each configured. Empty
/// only when the rule names `principals` (`workload_only`): the workload's identity suffices.
fn accept(
    list: &[String],
    key: &str,
    workload_only: bool,
    available: &Available<'_>,
    c: &Check<'_>,
) -> Checked<Vec<Credential>> {
    let credentials = each(list, |j, item| {
        let here = format!("{key}[{j}]");
        Ok(match item.as_str() {
            "api_key" if !available.api_keys => {
                return c.fail(here, "api_key is accepted but no api_keys are configured")
            }
            "api_key" => Credential::ApiKey,
            "session" if !available.sessions => return c.fail(here, "session is accepted but oidc is not configured"),
            "session" => Credential::Session,
            "jwt" if available.providers.is_empty() => {
                return c.fail(here, "jwt is accepted but no jwt_providers are configured")
            }
            "jwt" => Credential::Jwt(None),
            other => match other.strip_prefix("jwt:") {
                Some(name) => match available.providers.iter().position(|p| *p == name) {
                    Some(index) => Credential::Jwt(Some(vec![index])),
                    None => return c.fail(here, format!("no JWT provider is named {name:?}")),
                },
                None => return c.fail(here, format!("{other:?} is not jwt, jwt:<provider>, api_key or session")),
            },
        })
    })?;
    if credentials.is_empty() && !workload_only {
        return c.fail(key, "accept at least one credential (an empty list only with principals: the workload alone)");
    }
    Ok(credentials)
}

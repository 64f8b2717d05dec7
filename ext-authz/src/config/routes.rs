//! The `routes:` section: public paths, rules (host, methods, path → accepted credentials,
//! scopes, claim rules, workload and request principals) and the default for requests no rule
//! matches.

use super::check::{each, Check, Checked};
use super::identity::claim_path;
use super::keys::{self, RoutesDefault};
use super::raw::{RawRoutes, RawRule};
use crate::core::principals::TextPattern;
use crate::core::routes::{ClaimRule, Condition, Credential, DefaultPolicy, PathMatch, Requirements, RouteTable, Rule};
use shared::spiffe::IdPattern;

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
    let rules = each(&routes.rules, |i, r| rule(i, r, available, c));
    let public = each(&routes.public, |i, p| {
        PathMatch::parse(p).or_else(|e| c.fail(format!("routes.public[{i}]"), e.to_string()))
    });
    let default = match c.choice("routes.default", &keys::ROUTES_DEFAULT, &routes.default) {
        Ok(RoutesDefault::Deny) => Ok(DefaultPolicy::Deny),
        Ok(RoutesDefault::Allow) => Ok(DefaultPolicy::Allow),
        Ok(RoutesDefault::Authenticated) => {
            accept(&routes.default_accept, "routes.default_accept", false, available, c)
                .map(|credentials| DefaultPolicy::Authenticated(Requirements::any_of(credentials)))
        }
        Err(reported) => Err(reported),
    };
    Ok(RouteTable { public: public?, rules: rules?, default: default? })
}

fn rule(i: usize, r: &RawRule, available: &Available<'_>, c: &Check<'_>) -> Checked<Rule> {
    let key = format!("routes.rules[{i}]");
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
        None => Ok(None),
        Some(name) => match available.upstream_credentials.iter().position(|n| n == name) {
            Some(index) => Ok(Some(index)),
            None => {
                c.fail(format!("{key}.upstream_credential"), format!("no upstream_credentials entry is named {name:?}"))
            }
        },
    };
    let workload_only = !r.principals.is_empty();
    let credentials = accept(&r.accept, &format!("{key}.accept"), workload_only, available, c);
    Ok(Rule {
        name: r.name.clone().unwrap_or_else(|| format!("rule-{i}")),
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

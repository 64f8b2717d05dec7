//! The trace's words: why a rule's match did not hold, what a route requires, a path pattern as
//! the config writes it. Words only — every verdict they describe is the decision's.

use crate::core::cel::SourceAddresses;
use crate::core::decision::Engine;
use crate::core::identity::Identity;
use crate::core::request::AuthRequest;
use crate::core::routes::{AddressMiss, Credential, PathMatch, Requirements, Rule, RuleMatch, Segment};

/// Why a rule's host, method, path or address lists do not hold (`None`: they do).
pub(super) fn match_miss(rule: &Rule, request: &AuthRequest, source: SourceAddresses) -> Option<String> {
    Some(match rule.matches_request(request, source) {
        RuleMatch::Host => format!("host {} is not {}", shown(&request.host), rule.host.as_deref().unwrap_or("")),
        RuleMatch::Method => format!("method {} is not one of {}", request.method, rule.methods.join(", ")),
        RuleMatch::Path => format!("path {} does not match {}", request.path, pattern(&rule.path)),
        RuleMatch::Address(miss) => address_miss(rule, miss, source),
        RuleMatch::Matches => return None,
    })
}

/// Why a deny rule's scopes or claims do not hold for the identity, once the decision's
/// `deny_identity_holds` said they do not.
pub(super) fn identity_unmet(requires: &Requirements, identity: Option<&Identity>) -> String {
    let Some(identity) = identity else { return "no identity for its scopes and claims".into() };
    let missing: Vec<&str> =
        requires.scopes.iter().filter(|s| !identity.scopes.contains(s)).map(String::as_str).collect();
    if !missing.is_empty() {
        return format!("the identity lacks scope {}", missing.join(" "));
    }
    match requires.claims.iter().find(|r| !r.holds(&identity.claims)) {
        Some(rule) => format!("claim {:?} does not satisfy its rule", rule.claim.name()),
        None => "its scopes and claims do not hold for the identity".into(),
    }
}

fn address_miss(rule: &Rule, miss: AddressMiss, source: SourceAddresses) -> String {
    let (address, list, against) = match miss {
        AddressMiss::ClientIps => (source.client, &rule.addresses.client_ips, "is not in"),
        AddressMiss::NotClientIps => (source.client, &rule.addresses.not_client_ips, "is in"),
        AddressMiss::PeerIps => (source.peer, &rule.addresses.peer_ips, "is not in"),
        AddressMiss::NotPeerIps => (source.peer, &rule.addresses.not_peer_ips, "is in"),
    };
    let who = if matches!(miss, AddressMiss::ClientIps | AddressMiss::NotClientIps) { "client" } else { "peer" };
    // Only an allow rule misses on an unknown address: its lists fail closed (a deny rule's hold).
    let Some(address) = address else {
        return format!("{who} address unknown: an allow rule's {} does not hold for it", miss.key());
    };
    let list: Vec<String> = list.iter().map(ToString::to_string).collect();
    format!("{who} address {address} {against} {} [{}]", miss.key(), list.join(", "))
}

/// What a route requires, as the config says it ("accepts jwt:corp; scopes orders:write").
pub(super) fn requirements(engine: &Engine, requires: &Requirements) -> String {
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

//! A rule's `when` conditions and a deny rule's whole match, the decision's own steps (also
//! called by `explain`, so the trace cannot drift from the answer).

use shared::spiffe::SpiffeId;

use super::{deny, Deny, ErrorCode, METHOD_OVERRIDE_HEADERS, METHOD_OVERRIDE_QUERY};
use crate::core::cel::{Activation, EvalError, Facts, SourceAddresses};
use crate::core::header_spellings;
use crate::core::identity::Identity;
use crate::core::request::AuthRequest;
use crate::core::routes::{Requirements, Rule, RuleMatch};

/// How a rule's conditions came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conditions {
    Hold,
    /// The condition at this index is false.
    False(usize),
    /// The condition at this index could not be evaluated.
    Error(usize),
}

/// How a deny rule came out for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyRule {
    Holds,
    NotHeld,
    /// The condition at this index could not be evaluated (the rule denies).
    Error(usize),
}

/// Whether a deny rule holds for a request: host, methods (the request's, or one a method
/// override names, see [`override_methods`]), path, address lists, its scopes and claims (see
/// [`deny_identity_holds`]), and every condition, in this order — the decision's own step, for
/// `explain` to call rather than re-implement.
pub fn deny_rule_holds(
    rule: &Rule,
    request: &AuthRequest,
    source: SourceAddresses,
    identity: Option<&Identity>,
    principal: Option<&SpiffeId>,
    now: u64,
) -> DenyRule {
    judge_deny_rule(rule, request, source, identity, principal, now, &mut None)
}

/// [`deny_rule_holds`], with a condition's error text in `error`.
pub(super) fn judge_deny_rule(
    rule: &Rule,
    request: &AuthRequest,
    source: SourceAddresses,
    identity: Option<&Identity>,
    principal: Option<&SpiffeId>,
    now: u64,
    error: &mut Option<String>,
) -> DenyRule {
    let overridden;
    let request = match rule.matches_request(request, source) {
        RuleMatch::Matches => request,
        // A framework that honours `X-HTTP-Method-Override: DELETE` on a POST deletes: a deny
        // rule on DELETE must match it. The rule is then judged as that method throughout (its
        // conditions see it as `request.method`). The copy is made only for such a request.
        RuleMatch::Method => {
            let Some(method) = override_methods(request).find(|m| rule.methods.contains(m)) else {
                return DenyRule::NotHeld;
            };
            overridden = AuthRequest { method, ..request.clone() };
            if rule.matches_request(&overridden, source) != RuleMatch::Matches {
                return DenyRule::NotHeld;
            }
            &overridden
        }
        _ => return DenyRule::NotHeld,
    };
    if !deny_identity_holds(&rule.requires, identity) {
        return DenyRule::NotHeld;
    }
    match conditions_noting(rule, request, source, identity, principal, now, error) {
        Conditions::Hold => DenyRule::Holds,
        Conditions::False(_) => DenyRule::NotHeld,
        Conditions::Error(index) => DenyRule::Error(index),
    }
}

/// The methods a request's method overrides name (upper case): each header of
/// [`METHOD_OVERRIDE_HEADERS`] in any spelling frameworks read alike, and the `_method` query
/// parameter.
pub fn override_methods(request: &AuthRequest) -> impl Iterator<Item = String> + '_ {
    let headers = request
        .headers
        .iter()
        .filter(|(name, _)| METHOD_OVERRIDE_HEADERS.iter().any(|o| header_spellings::same_after_folding(name, o)));
    let query = request.query_param(METHOD_OVERRIDE_QUERY);
    headers.map(|(_, value)| value.clone()).chain(query).map(|method| method.trim().to_ascii_uppercase())
}

/// A deny rule's scopes and claims: every scope and every claim rule must hold for the identity
/// (never without one); a rule naming neither holds for anyone.
pub fn deny_identity_holds(requires: &Requirements, identity: Option<&Identity>) -> bool {
    if requires.scopes.is_empty() && requires.claims.is_empty() {
        return true;
    }
    let Some(identity) = identity else { return false };
    requires.scopes.iter().all(|s| identity.scopes.contains(s))
        && requires.claims.iter().all(|c| c.holds(&identity.claims))
}

/// A rule's `when` conditions against a request: every one must hold.
pub fn evaluate_conditions(
    rule: &Rule,
    request: &AuthRequest,
    source: SourceAddresses,
    identity: Option<&Identity>,
    principal: Option<&SpiffeId>,
    now: u64,
) -> Conditions {
    conditions_noting(rule, request, source, identity, principal, now, &mut None)
}

/// [`evaluate_conditions`], with an evaluation error's text in `error` (it names types and
/// keys, never a request's or a claim's value). The decision notes it; the service logs it
/// (rate-limited, see `ConditionLog`).
pub(super) fn conditions_noting(
    rule: &Rule,
    request: &AuthRequest,
    source: SourceAddresses,
    identity: Option<&Identity>,
    principal: Option<&SpiffeId>,
    now: u64,
    error: &mut Option<String>,
) -> Conditions {
    let mut outcome = Conditions::Hold;
    evaluate_conditions_each(rule, request, source, identity, principal, now, |index, value| {
        outcome = match value {
            Ok(true) => Conditions::Hold,
            Ok(false) => Conditions::False(index),
            Err(failure) => {
                *error = Some(failure.to_string());
                Conditions::Error(index)
            }
        }
    });
    outcome
}

/// A rule's `when` conditions in order, each one's value given to `seen` with its index, up to
/// the first that is false or cannot be evaluated (the decision's own walk, for `explain` to
/// show each value). Nothing is logged here.
pub fn evaluate_conditions_each(
    rule: &Rule,
    request: &AuthRequest,
    source: SourceAddresses,
    identity: Option<&Identity>,
    principal: Option<&SpiffeId>,
    now: u64,
    mut seen: impl FnMut(usize, Result<bool, &EvalError>),
) {
    if rule.when.is_empty() {
        return;
    }
    let route = rule.path.captures(&request.path);
    let facts =
        Facts { request, source, identity, principal, route: &route, context: &request.context_extensions, now };
    let mut activation = Activation::new(facts);
    for (index, condition) in rule.when.iter().enumerate() {
        let value = condition.evaluate(&mut activation);
        let holds = matches!(value, Ok(true));
        seen(index, value.as_ref().copied());
        if !holds {
            return;
        }
    }
}

pub(super) fn condition_error(rule: &Rule, index: usize) -> Deny {
    let message = format!("condition {} of rule {} cannot be evaluated", index + 1, rule.name);
    deny(403, ErrorCode::ConditionError, &message, None, "condition_error")
}

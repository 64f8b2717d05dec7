//! Why a request is answered as it is, rule by rule, for `ext-authz explain`: the policy the
//! request names and why, each deny rule and each allow rule in order with the part of its
//! match that did not hold (host, method, path, an address list) or that it matched, and each
//! condition's value.
//!
//! The trace takes every step with the decision's own code, in the decision's order (see
//! `decision/run.rs`): the addresses ([`Engine::source`]), the answering table
//! ([`Engine::answering_table`]), the routing ([`RouteTable::route_request`]), the workload and
//! credential checks ([`check_principal`], [`Engine::find_credential`], [`Engine::verify_found`],
//! [`authorize`]), the deny rules ([`deny_rule_holds`]) and the conditions
//! ([`evaluate_conditions_each`]). What it adds is only the words for why; it never decides —
//! the answer is the decision's own (`Engine::decide`).
//!
//! [`check_principal`]: super::decision::check_principal
//! [`authorize`]: super::decision::authorize
//! [`deny_rule_holds`]: super::decision::deny_rule_holds
//! [`evaluate_conditions_each`]: super::decision::evaluate_conditions_each

mod reach;
mod rules;
mod words;

use serde::Serialize;
use shared::spiffe::SpiffeId;

use super::cel::SourceAddresses;
use super::decision::{Context, Engine};
use super::request::AuthRequest;
use super::routes::{Mode, Policies, RouteTable, Selected};
pub use words::pattern;

/// The request's facts, as the decision has them.
pub struct Inputs<'a> {
    pub request: &'a AuthRequest,
    /// [`Engine::source`]'s: an IPv4-mapped peer (`::ffff:10.1.2.3`) is the IPv4 address.
    pub source: SourceAddresses,
    pub principal: Option<SpiffeId>,
    /// The keys, API keys, token cache and time the decision runs with.
    pub ctx: &'a Context<'a>,
}

impl<'a> Inputs<'a> {
    /// The facts the decision takes from `request`, with the decision's own functions.
    pub fn new(engine: &Engine, request: &'a AuthRequest, ctx: &'a Context<'a>) -> Inputs<'a> {
        Inputs { request, source: engine.source(request), principal: engine.workload.principal(request), ctx }
    }
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
    /// `matched`, `skipped` (a part of its match did not hold), or `not reached` (the decision
    /// answered before it).
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
    /// `true`, `false`, `error: <text>`, or `not evaluated` (after one that does not hold, or
    /// when the decision answers before the conditions).
    pub value: String,
}

/// The trace of `inputs.request` through `engine`'s routes and policies.
pub fn trace(engine: &Engine, inputs: &Inputs<'_>) -> Trace {
    let (routes, policies, request) = (&engine.routes, &engine.policies, inputs.request);
    let (policy, tables) = match policies.select(request) {
        Selected::Routes => {
            let why = "the route names no policy (context extension or route metadata): routes answers".into();
            let (_, answers) = rules::run(engine, inputs, None, ("routes", "answers", routes));
            (PolicyChoice { name: "routes".into(), why }, vec![answers])
        }
        Selected::Unknown(name) => {
            let why = format!("{}, which no policy has: denied (UNKNOWN_POLICY)", named_by(policies, request, name));
            (PolicyChoice { name: name.into(), why }, Vec::new())
        }
        Selected::Named(name, policy) if policy.mode == Mode::Shadow => {
            let why =
                format!("{}, in shadow mode: routes answers, {name} is only logged", named_by(policies, request, name));
            // Two runs, as the decision's: `routes` for the answer, the policy for the log (with
            // `routes`' deny rules, traced once, in the first).
            let (_, answers) = rules::run(engine, inputs, None, ("routes", "answers", routes));
            let (_, shadow) = rules::run(engine, inputs, Some(routes), (name, "shadow", &policy.table));
            (PolicyChoice { name: name.into(), why }, vec![answers, shadow])
        }
        Selected::Named(name, policy) => {
            let why = named_by(policies, request, name);
            let (deny_only, answers) = rules::run(engine, inputs, Some(routes), (name, "answers", &policy.table));
            let tables = deny_only.into_iter().chain([answers]).collect();
            (PolicyChoice { name: name.into(), why }, tables)
        }
    };
    Trace { policy, tables }
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

/// One table of a run: its name, its role in the trace, and the table.
type Named<'t> = (&'t str, &'static str, &'t RouteTable);

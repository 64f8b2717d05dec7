//! One run of the decision through a table (beside a named policy, with `routes`' deny rules
//! first), traced in the decision's order: the deny rules that do not read the identity, the
//! allow route, the route's credential, the deny rules that read it, the route's conditions.
//! Each verdict is a decision step's; an earlier answer leaves what comes after `not reached`.

use crate::core::decision::{deny_identity_holds, deny_rule_holds, evaluate_conditions_each, DenyRule, Engine};
use crate::core::identity::Identity;
use crate::core::routes::{DefaultPolicy, Mode, RouteTable, Routed, Rule};

use super::reach::Reach;
use super::words::{identity_unmet, match_miss, pattern, requirements};
use super::{ConditionTrace, Inputs, Named, RuleTrace, TableTrace};

/// The run's trace: `routes`' deny rules (`outer`, beside a named policy), and the table's.
pub(super) fn run(
    engine: &Engine,
    inputs: &Inputs<'_>,
    outer: Option<&RouteTable>,
    (name, role, table): Named<'_>,
) -> (Option<TableTrace>, TableTrace) {
    let routed = table.route_request(inputs.request, inputs.source);
    let denies: Vec<&Rule> = outer.into_iter().flat_map(RouteTable::deny_rules).chain(table.deny_rules()).collect();
    // The allow route's principal and credential (a route that takes none: a credential the
    // request carries, for the deny rules that read the identity).
    let open = denies.iter().any(|rule| rule.reads_identity());
    let who = match routed {
        Routed::Rule(rule) => Reach::of(engine, inputs, &rule.requires, open),
        Routed::Default(DefaultPolicy::Authenticated(requires)) => Reach::of(engine, inputs, requires, open),
        Routed::Public | Routed::Default(_) => Reach::open(engine, inputs, open),
    };
    // A shadow policy's run notes no shadow rule of its own (see `Run::record` in the decision).
    let mut run = Run { engine, inputs, record: role != "shadow", denied: false };
    let mut traced: Vec<Option<RuleTrace>> = vec![None; denies.len()];
    // Those that do not read the identity, before any credential is looked at.
    for (i, rule) in denies.iter().enumerate().filter(|(_, rule)| !rule.reads_identity()) {
        traced[i] = Some(run.deny_rule(rule, None));
    }
    let denied_first = run.denied;
    let (public, rules, default) = match denied_first {
        true => {
            let why = "a deny rule denied the request first";
            (None, allow_rules(table).map(|rule| not_reached(rule, why)).collect(), None)
        }
        false => run.allow_rules(table, routed, &who),
    };
    // Those that read it, once the route's credential is verified (or it takes none).
    for (i, rule) in denies.iter().enumerate().filter(|(_, rule)| rule.reads_identity()) {
        traced[i] = Some(match who.refused && !run.denied {
            true => refused_deny_rule(rule, inputs),
            false => run.deny_rule(rule, who.identity.as_ref()),
        });
    }
    let mut traced = traced.into_iter().flatten();
    let outer_count = outer.map_or(0, |routes| routes.deny_rules().count());
    let outer = outer.map(|_| TableTrace {
        name: "routes".into(),
        role: "deny rules only",
        public: None,
        deny_rules: traced.by_ref().take(outer_count).collect(),
        rules: Vec::new(),
        default: None,
    });
    let deny_rules = traced.collect();
    // The route's own conditions come after the deny rules that read the identity.
    let rules = match (routed, run.denied && !denied_first) {
        (Routed::Rule(taker), true) => rules.into_iter().map(|r| unreached_conditions(r, taker)).collect(),
        _ => rules,
    };
    (outer, TableTrace { name: name.into(), role, public, deny_rules, rules, default })
}

struct Run<'a, 'i> {
    engine: &'a Engine,
    inputs: &'a Inputs<'i>,
    /// Shadow allow rules get their would-be answers (not in a shadow policy's run).
    record: bool,
    /// An enforced deny rule denied: the decision judges nothing after it.
    denied: bool,
}

impl Run<'_, '_> {
    /// A deny rule, judged by the decision's `deny_rule_holds`; then in words.
    fn deny_rule(&mut self, rule: &Rule, identity: Option<&Identity>) -> RuleTrace {
        if self.denied {
            return not_reached(rule, "an earlier deny rule denied the request");
        }
        let inputs = self.inputs;
        let (request, source, now) = (inputs.request, inputs.source, inputs.ctx.now);
        let outcome = deny_rule_holds(rule, request, source, identity, inputs.principal.as_ref(), now);
        let shadow = rule.mode == Mode::Shadow;
        let (verdict, why, conditions_reached) = match outcome {
            DenyRule::Holds if shadow => ("matched", "would deny (shadow: not the answer)".into(), true),
            DenyRule::Holds => ("matched", "denies".into(), true),
            DenyRule::Error(_) => ("matched", "a condition failed to evaluate: denies (CONDITION_ERROR)".into(), true),
            DenyRule::NotHeld => match match_miss(rule, request, source) {
                Some(why) => return skipped(rule, why),
                // The decision stops at the scopes and claims: the conditions are not evaluated.
                None if !deny_identity_holds(&rule.requires, identity) => {
                    ("skipped", identity_unmet(&rule.requires, identity), false)
                }
                None => ("skipped", "a condition does not hold".into(), true),
            },
        };
        let why = match (verdict, match_miss(rule, request, source)) {
            // The decision's match took a method override's method (`X-HTTP-Method-Override`).
            ("matched", Some(_)) => format!("{why} (the method a method override names)"),
            _ => why,
        };
        self.denied |= verdict == "matched" && !shadow;
        let conditions = self.conditions(rule, identity, conditions_reached);
        RuleTrace { name: rule.name.clone(), shadow, verdict, why, requires: None, conditions }
    }

    /// The public path, each allow rule up to the one that takes the request (and the shadow
    /// ones after it), and the default.
    fn allow_rules(
        &self,
        table: &RouteTable,
        routed: Routed<'_>,
        who: &Reach,
    ) -> (Option<String>, Vec<RuleTrace>, Option<String>) {
        let (engine, request) = (self.engine, self.inputs.request);
        let public = table.public.iter().find(|p| p.matches(&request.path)).map(pattern);
        let mut passed = false;
        let mut rules = Vec::new();
        for rule in allow_rules(table) {
            // Past the rule that answers only shadow rules are matched, for their would-be
            // answers (none in a shadow policy's run).
            let shadow = rule.mode == Mode::Shadow;
            if public.is_some() || (passed && !(shadow && self.record)) {
                let why = if public.is_some() { "the path is public" } else { "an earlier rule took the request" };
                rules.push(not_reached(rule, why));
                continue;
            }
            if let Some(why) = match_miss(rule, request, self.inputs.source) {
                rules.push(skipped(rule, why));
                continue;
            }
            let requires = Some(requirements(engine, &rule.requires));
            let (why, conditions) = match routed {
                Routed::Rule(taker) if std::ptr::eq(taker, rule) => {
                    passed = true;
                    let reached = who.conditions_reached(&rule.requires);
                    ("takes the request", self.conditions(rule, who.for_conditions(&rule.requires), reached))
                }
                // In a shadow policy's run a shadow rule has no would-be answer of its own.
                _ if !self.record => ("a shadow rule in a shadow policy is not evaluated", unevaluated(rule)),
                // A shadow rule's would-be answer is its own: its own credential and identity.
                _ => {
                    let own = Reach::of(engine, self.inputs, &rule.requires, false);
                    let reached = own.conditions_reached(&rule.requires);
                    let why = "its would-be answer is logged, not the answer (shadow)";
                    (why, self.conditions(rule, own.for_conditions(&rule.requires), reached))
                }
            };
            rules.push(RuleTrace {
                name: rule.name.clone(),
                shadow,
                verdict: "matched",
                why: why.into(),
                requires,
                conditions,
            });
        }
        let default = matches!(routed, Routed::Default(_)).then(|| match &table.default {
            DefaultPolicy::Deny => "deny (no rule took the request)".to_string(),
            DefaultPolicy::Allow => "allow (no rule took the request)".to_string(),
            DefaultPolicy::Authenticated(requires) => {
                format!("authenticated (no rule took the request): {}", requirements(engine, requires))
            }
        });
        (public, rules, default)
    }

    /// Each condition's value as the decision's evaluation meets them, in order up to the first
    /// that does not hold (`reached`: false when the decision answers before the conditions).
    fn conditions(&self, rule: &Rule, identity: Option<&Identity>, reached: bool) -> Vec<ConditionTrace> {
        let mut values = vec!["not evaluated".to_string(); rule.when.len()];
        if reached {
            let inputs = self.inputs;
            let principal = inputs.principal.as_ref();
            let (request, source, now) = (inputs.request, inputs.source, inputs.ctx.now);
            evaluate_conditions_each(rule, request, source, identity, principal, now, |index, value| {
                values[index] = match value {
                    Ok(value) => value.to_string(),
                    Err(error) => format!("error: {error}"),
                };
            });
        }
        let expressions = rule.when.iter().map(|condition| condition.source().to_string());
        expressions.zip(values).map(|(expression, value)| ConditionTrace { expression, value }).collect()
    }
}

/// A deny rule that reads the identity when the route's principal or credential is refused:
/// the decision answers that first.
fn refused_deny_rule(rule: &Rule, inputs: &Inputs<'_>) -> RuleTrace {
    if let Some(why) = match_miss(rule, inputs.request, inputs.source) {
        return skipped(rule, why);
    }
    let mut traced = not_reached(rule, "it reads the identity, and the route's credential is missing or refused");
    traced.conditions = unevaluated(rule);
    traced
}

/// The route's rule when a deny rule that reads the identity denied before its conditions.
fn unreached_conditions(mut traced: RuleTrace, taker: &Rule) -> RuleTrace {
    if traced.name == taker.name && !traced.shadow {
        traced.conditions = unevaluated(taker);
    }
    traced
}

fn allow_rules(table: &RouteTable) -> impl Iterator<Item = &Rule> {
    table.rules.iter().filter(|rule| !rule.is_deny())
}

fn unevaluated(rule: &Rule) -> Vec<ConditionTrace> {
    let expressions = rule.when.iter().map(|condition| condition.source().to_string());
    expressions.map(|expression| ConditionTrace { expression, value: "not evaluated".into() }).collect()
}

fn skipped(rule: &Rule, why: String) -> RuleTrace {
    let shadow = rule.mode == Mode::Shadow;
    RuleTrace { name: rule.name.clone(), shadow, verdict: "skipped", why, requires: None, conditions: Vec::new() }
}

fn not_reached(rule: &Rule, why: &str) -> RuleTrace {
    let shadow = rule.mode == Mode::Shadow;
    let why = why.into();
    RuleTrace { name: rule.name.clone(), shadow, verdict: "not reached", why, requires: None, conditions: Vec::new() }
}

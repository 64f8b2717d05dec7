//! One evaluation of a request against one policy, in the order the policy model fixes:
//!
//! 1. deny rules that do not read `identity` (those of `routes`, then the answering policy's
//!    own), before any credential is looked at;
//! 2. the allow route: a public path, the first enforced allow rule matching host, method, path
//!    and address lists, or the default (every shadow allow rule that matches, before or after
//!    that rule, has its would-be answer noted);
//! 3. the route's workload principals, its credential (found and verified);
//! 4. deny rules that read `identity`, with the verified identity, or with none (`identity.kind
//!    == "none"`) on a route that takes no credential;
//! 5. the route's request principals, scopes and claims, then its `when` conditions;
//! 6. the CSRF guard of session requests, and the allow.
//!
//! A deny rule wins over every allow (Istio's DENY before ALLOW). A condition that cannot be
//! evaluated denies (`CONDITION_ERROR`), in deny and allow rules alike: never an allow.

use shared::spiffe::SpiffeId;

use super::conditions::{condition_error, conditions_noting, judge_deny_rule, Conditions, DenyRule};
use super::verdict::{ConditionFailure, Notes, ShadowHit, Would};
use super::{
    authorize, check_principal, deny, Context, Decision, Deny, Engine, ErrorCode, FoundKind, METHOD_OVERRIDE_HEADERS,
    METHOD_OVERRIDE_QUERY,
};
use crate::core::cel::SourceAddresses;
use crate::core::header_spellings;
use crate::core::identity::Identity;
use crate::core::request::AuthRequest;
use crate::core::routes::{Action, Credential, DefaultPolicy, Mode, Requirements, RouteTable, Routed, Rule, RuleMatch};
use crate::core::session::login::wants_login_redirect;

/// The label of the `routes` section's rules in notes, logs and metrics.
pub const ROUTES: &str = "routes";

pub(super) struct Run<'e, 'r> {
    pub engine: &'e Engine,
    pub request: &'r AuthRequest,
    pub ctx: &'r Context<'r>,
    /// The keys were fetched anew for a token naming an unknown key (see
    /// [`Engine::decide_refetched`]).
    pub refetched: bool,
    pub source: SourceAddresses,
    pub principal: Option<SpiffeId>,
    /// The answering table and its name.
    pub table: &'e RouteTable,
    pub label: &'e str,
    /// `routes`, when a named policy answers: its deny rules apply to every request.
    pub outer: Option<&'e RouteTable>,
    pub notes: &'r mut Notes<'e>,
    /// Note shadow rules' answers and failed conditions (off for a shadow policy's would-be
    /// run, whose one answer is noted by the caller).
    pub record: bool,
    /// The deny rule that answered, when one did.
    pub denied_by: Option<&'e str>,
}

impl<'e> Run<'e, '_> {
    /// The answer, and the route it came from (a deny rule's name when one denied).
    pub fn answer(&mut self) -> (Decision, &'e str) {
        if let Some(refused) = self.judge_denies(None, false) {
            return (Decision::Deny(refused), self.denied_by.unwrap_or(ROUTES));
        }
        let routed = self.route();
        let decision = match routed {
            Routed::Public => self.open("public"),
            Routed::Default(DefaultPolicy::Allow) => self.open("default_allow"),
            Routed::Default(DefaultPolicy::Deny) => {
                let refused = match self.open_identity() {
                    Ok(identity) => self.judge_denies(identity.as_ref(), true),
                    Err(decision) => return (*decision, routed.name()),
                };
                let refused = refused.unwrap_or_else(|| {
                    deny(403, ErrorCode::Forbidden, "no route allows this request", None, "no_route")
                });
                Decision::Deny(refused)
            }
            Routed::Default(DefaultPolicy::Authenticated(requirements)) => {
                self.answer_requirements(requirements, None, None, true)
            }
            Routed::Rule(rule) => self.answer_requirements(&rule.requires, rule.upstream, Some(rule), true),
        };
        (decision, self.denied_by.unwrap_or(routed.name()))
    }

    /// The deny rules that do not read `identity` alone: the denial and the rule's name.
    pub fn early_denial(&mut self) -> Option<(Deny, &'e str)> {
        let refused = self.judge_denies(None, false)?;
        Some((refused, self.denied_by.unwrap_or(ROUTES)))
    }

    /// The allow route. Every shadow allow rule that matches is answered and noted, those
    /// after the enforced rule that answers too: a shadow rule is a candidate to replace a rule,
    /// wherever it was written (as Istio judges a dry-run policy beside the enforced ones). Only
    /// shadow rules are matched past the answer, and none in a shadow policy's run.
    fn route(&mut self) -> Routed<'e> {
        let table = self.table;
        if table.public.iter().any(|p| p.matches(&self.request.path)) {
            return Routed::Public;
        }
        let mut answer = None;
        for rule in table.rules.iter().filter(|rule| !rule.is_deny()) {
            if answer.is_some() && rule.mode == Mode::Enforce {
                continue;
            }
            if rule.matches_request(self.request, self.source) != RuleMatch::Matches {
                continue;
            }
            if rule.mode == Mode::Enforce {
                answer = Some(rule);
                if !self.record {
                    break;
                }
                continue;
            }
            if self.record {
                let would = self.answer_requirements(&rule.requires, rule.upstream, Some(rule), false);
                self.notes.shadow.push(ShadowHit::of(self.label, &rule.name, &would));
            }
        }
        answer.map_or(Routed::Default(&table.default), Routed::Rule)
    }

    /// A route that takes no credential: the identity deny rules (with the identity of a
    /// credential the request carries anyway, see [`Run::open_identity`]), then allow.
    fn open(&mut self, reason: &'static str) -> Decision {
        let identity = match self.open_identity() {
            Ok(identity) => identity,
            Err(decision) => return *decision,
        };
        if let Some(refused) = self.judge_denies(identity.as_ref(), true) {
            return Decision::Deny(refused);
        }
        Decision::Allow(self.engine.allow(self.request, None, None, self.principal.take(), reason))
    }

    /// The identity the deny rules that read `identity` see on a route that takes no credential
    /// (public, `default: allow`, workload-only, `default: deny`). As Istio's DENY uses a
    /// validated token on any path, a credential the request carries is verified: the first
    /// present of a token (any provider) or an API key, the kinds the config reads anywhere.
    /// Best effort: a valid one is the identity; a missing, invalid or expired one is none
    /// (`identity.kind == "none"`), never a 401 here. Two answers are passed on: a key to fetch
    /// (once: still unknown after the fetch, it is none), and keys never loaded (unavailable:
    /// a token that cannot be judged is not taken for no token). A session is not read here
    /// (the session layer opens one only for routes that accept sessions). Nothing is looked
    /// for when no deny rule reads `identity`; the identity only feeds the deny rules: the
    /// allow has no identity headers, and the credential is left as it came.
    fn open_identity(&self) -> Result<Option<Identity>, Box<Decision>> {
        let outer = self.outer.into_iter().flat_map(RouteTable::deny_rules);
        if !outer.chain(self.table.deny_rules()).any(Rule::reads_identity) {
            return Ok(None);
        }
        self.engine.open_identity(self.request, self.ctx, self.refetched)
    }

    /// The answer of a route's requirements (a rule's, or `default: authenticated`'s), and of
    /// its conditions. `judge_denies`: the deny rules that read `identity` are judged once the
    /// identity is known (off for a shadow rule's would-be answer, which is the rule's alone).
    fn answer_requirements(
        &mut self,
        requirements: &'e Requirements,
        upstream: Option<usize>,
        rule: Option<&'e Rule>,
        judge_denies: bool,
    ) -> Decision {
        let (engine, request, ctx) = (self.engine, self.request, self.ctx);
        if let Some(refused) = check_principal(self.principal.as_ref(), requirements) {
            return Decision::Deny(refused);
        }
        if requirements.credentials.is_empty() {
            let identity = match judge_denies.then(|| self.open_identity()).transpose() {
                Ok(identity) => identity.flatten(),
                Err(decision) => return *decision,
            };
            if let Some(refused) = self.identity_denies(identity.as_ref(), judge_denies) {
                return Decision::Deny(refused);
            }
            if let Some(refused) = rule.and_then(|rule| self.allow_conditions(rule, None, !judge_denies)) {
                return Decision::Deny(refused);
            }
            let allow = engine.allow(request, None, None, self.principal_for_allow(judge_denies), "workload");
            return Decision::Allow(super::Allow { upstream, ..allow });
        }
        let Some(found) = engine.find_credential(request, requirements, ctx) else {
            if requirements.credentials.contains(&Credential::Session) && wants_login_redirect(request) {
                return Decision::Login;
            }
            return Decision::Deny(deny(
                401,
                ErrorCode::Unauthorized,
                "missing credentials",
                Some("Bearer".into()),
                "missing_credentials",
            ));
        };
        let identity = match engine.verify_found(&found, ctx) {
            Ok(identity) => identity,
            Err(decision) => return *decision,
        };
        if let Some(refused) = self.identity_denies(Some(&identity), judge_denies) {
            return Decision::Deny(refused);
        }
        if let Some(refused) = authorize(&identity, requirements) {
            return Decision::Deny(refused);
        }
        if let Some(refused) = rule.and_then(|rule| self.allow_conditions(rule, Some(&identity), !judge_denies)) {
            return Decision::Deny(refused);
        }
        if let (FoundKind::Session, Some(policy)) = (&found.kind, &engine.sessions) {
            if policy.cross_site(request) {
                return Decision::Deny(deny(
                    403,
                    ErrorCode::Forbidden,
                    "a cross-site request cannot use the session",
                    None,
                    "csrf",
                ));
            }
        }
        let principal = self.principal_for_allow(judge_denies);
        let mut allow = engine.allow(request, Some(identity), Some(&found), principal, "authenticated");
        allow.upstream = upstream;
        if let (FoundKind::Session, Some(policy), Some(session)) = (&found.kind, &engine.sessions, ctx.session) {
            match session.access_token.as_deref().filter(|_| policy.forward_access_token) {
                Some(token) => allow.set_header("authorization", format!("Bearer {token}")),
                // The session is the identity: a client's own bearer token must not ride along
                // to a backend that might trust it.
                None if !policy.pass_client_authorization => allow.remove_header("authorization"),
                None => {}
            }
            if !policy.pass_method_override {
                // The names always: in HTTP mode Envoy passes ext-authz only the headers it is
                // told to, so their absence here proves nothing (removing an absent header
                // costs nothing). And every other spelling sent (`x_http_method_override` reads
                // the same to many frameworks).
                let spellings = request.headers.keys().filter(|sent| {
                    METHOD_OVERRIDE_HEADERS.iter().any(|o| header_spellings::same_after_folding(sent, o))
                });
                for name in METHOD_OVERRIDE_HEADERS.iter().copied().chain(spellings.map(String::as_str)) {
                    allow.remove_header(name);
                }
                if request.query_param(METHOD_OVERRIDE_QUERY).is_some() {
                    allow.remove_query.push(METHOD_OVERRIDE_QUERY.to_string());
                }
            }
        }
        Decision::Allow(allow)
    }

    /// The workload's identity for an allow: the run's own for its answer (`last`), a copy for
    /// a shadow rule's would-be answer, which comes before it.
    fn principal_for_allow(&mut self, last: bool) -> Option<SpiffeId> {
        if last {
            self.principal.take()
        } else {
            self.principal.clone()
        }
    }

    /// The deny rules that read `identity`, once it is known (`judge: false`: none, for a
    /// shadow rule's would-be answer).
    fn identity_denies(&mut self, identity: Option<&Identity>, judge: bool) -> Option<Deny> {
        if !judge {
            return None;
        }
        self.judge_denies(identity, true)
    }

    /// The deny rules that read `identity` (`after_identity`) or those that do not, in order:
    /// `routes`' first, then the answering policy's. The first enforced one that holds denies;
    /// shadow ones that hold are noted.
    fn judge_denies(&mut self, identity: Option<&Identity>, after_identity: bool) -> Option<Deny> {
        let (outer, table, own_label) = (self.outer, self.table, self.label);
        let outer = outer.into_iter().flat_map(|table| table.deny_rules().map(|rule| (ROUTES, rule)));
        let own = table.deny_rules().map(|rule| (own_label, rule));
        for (label, rule) in outer.chain(own).filter(|(_, rule)| rule.reads_identity() == after_identity) {
            let mut error = None;
            let refused = match self.deny_rule_holds(rule, identity, &mut error) {
                DenyRule::Holds => self.deny_answer(rule),
                DenyRule::Error(index) => {
                    self.condition_failed(label, rule, index, rule.mode == Mode::Shadow, error);
                    condition_error(rule, index)
                }
                DenyRule::NotHeld => continue,
            };
            if rule.mode == Mode::Shadow {
                if self.record {
                    self.notes.shadow.push(ShadowHit {
                        policy: label,
                        rule: &rule.name,
                        would: Would::Deny,
                        code: Some(refused.code),
                    });
                }
                continue;
            }
            self.denied_by = Some(&rule.name);
            return Some(refused);
        }
        None
    }

    /// Whether a deny rule holds for this request (see [`deny_rule_holds`]); a condition's
    /// error text goes to `error`.
    fn deny_rule_holds(&self, rule: &Rule, identity: Option<&Identity>, error: &mut Option<String>) -> DenyRule {
        let principal = self.principal.as_ref();
        judge_deny_rule(rule, self.request, self.source, identity, principal, self.ctx.now, error)
    }

    fn deny_answer(&self, rule: &Rule) -> Deny {
        let Action::Deny { code, message } = &rule.action else { unreachable!("judged as a deny rule") };
        Deny { code: code.clone(), ..deny(403, ErrorCode::Denied, message, None, "deny_rule") }
    }

    /// An allow rule's conditions: `None` when they hold, else the denial (`shadow`: a shadow
    /// rule's would-be answer).
    fn allow_conditions(&mut self, rule: &'e Rule, identity: Option<&Identity>, shadow: bool) -> Option<Deny> {
        let mut error = None;
        let principal = self.principal.as_ref();
        let (request, source, now) = (self.request, self.source, self.ctx.now);
        match conditions_noting(rule, request, source, identity, principal, now, &mut error) {
            Conditions::Hold => None,
            Conditions::False(index) => {
                let message = format!("condition {} of rule {} does not hold", index + 1, rule.name);
                Some(deny(403, ErrorCode::Forbidden, &message, None, "condition_false"))
            }
            Conditions::Error(index) => {
                self.condition_failed(self.label, rule, index, shadow, error);
                Some(condition_error(rule, index))
            }
        }
    }

    /// Notes a condition that could not be evaluated, for the log and the metrics (a shadow
    /// rule's, or any in a shadow policy's run, as would-be: never counted as a denial).
    fn condition_failed(&mut self, label: &'e str, rule: &'e Rule, index: usize, shadow: bool, error: Option<String>) {
        let shadow = shadow || !self.record;
        let error = error.unwrap_or_default();
        self.notes.condition_errors.push(ConditionFailure { policy: label, rule: &rule.name, index, shadow, error });
    }
}

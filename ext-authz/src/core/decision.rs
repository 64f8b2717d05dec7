//! The decision: route the request, find and verify its credential, check scopes and claim
//! rules, and answer with the identity headers or a uniform error.

use std::sync::Arc;

use shared::spiffe::SpiffeId;

use super::apikeys::ApiKeyStore;
use super::cel::SourceAddresses;
use super::client_address::ClientAddress;
use super::identity::Identity;
use super::identity_part::IdentityAnswer;
use super::jwt::{JwtPolicy, KeySet};
use super::principals::{request_principal, WorkloadIdentity};
use super::request::AuthRequest;
use super::routes::{Credential, DefaultPolicy, Mode, Policies, Requirements, RouteTable, Routed, Selected};
use super::session::cookies::is_chunk_of;
use super::session::model::Session;
use super::token_cache::TokenCache;

mod allow;
mod condition_log;
mod conditions;
mod credential;
mod errors;
mod run;
mod session_guards;
mod verdict;
pub use allow::Allow;
pub use condition_log::{ConditionLog, CONDITION_LOG_INTERVAL_SECS};
pub use conditions::{
    deny_identity_holds, deny_rule_holds, evaluate_conditions, evaluate_conditions_each, override_methods, Conditions,
    DenyRule,
};
pub use credential::{CredentialSource, Found, FoundKind};
pub use errors::{deny, error_body, fit_for_headers, is_header_value, Deny, ErrorCode, PAGE_HEADERS};
use run::Run;
pub use run::ROUTES;
pub use session_guards::{from_our_origin, METHOD_OVERRIDE_HEADERS, METHOD_OVERRIDE_QUERY};
pub use verdict::{ConditionFailure, Notes, ShadowHit, Verdict, Would};

#[derive(Debug, Clone, PartialEq)]
pub struct Provider {
    pub name: String,
    pub policy: JwtPolicy,
    pub sources: Vec<CredentialSource>,
}

/// How login sessions take part in decisions (the `oidc` section).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Names the identity's provider in metadata.
    pub provider: String,
    /// Our cookies (`name`, its chunks `name_N`, login state `name_login_…`) never reach the
    /// backend.
    pub cookie_name: String,
    /// Send the session's access token upstream as `Authorization: Bearer …`.
    pub forward_access_token: bool,
    /// Let a client-sent `Authorization` through on session-authenticated requests.
    pub pass_client_authorization: bool,
    /// Let method overrides through on session-authenticated requests (see
    /// [`METHOD_OVERRIDE_HEADERS`]).
    pub pass_method_override: bool,
    /// The CSRF guard, when on: the origins a state-changing session request may come from.
    pub csrf_origins: Option<Vec<String>>,
}

impl SessionPolicy {
    /// A state-changing request riding on a session cookie must come from a page of its own
    /// origin, one of ours: the rule the logout path uses too (see [`from_our_origin`]).
    pub fn cross_site(&self, request: &AuthRequest) -> bool {
        let Some(origins) = &self.csrf_origins else { return false };
        if matches!(request.method.as_str(), "GET" | "HEAD" | "OPTIONS") {
            return false;
        }
        !from_our_origin(request, origins)
    }

    pub fn is_our_cookie(&self, name: &str) -> bool {
        name == self.cookie_name
            || is_chunk_of(name, &self.cookie_name)
            || name.strip_prefix(self.cookie_name.as_str()).is_some_and(|rest| rest.starts_with("_login_"))
    }
}

/// The compiled policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Engine {
    pub routes: RouteTable,
    /// Named policies, and how a request's route names one.
    pub policies: Policies,
    /// How the client's address is found (`client_address:`).
    pub client_address: ClientAddress,
    pub providers: Vec<Provider>,
    pub api_key_sources: Vec<CredentialSource>,
    /// The identity headers and dynamic metadata of an allowed request.
    pub identity: Arc<IdentityAnswer>,
    /// Where the calling workload's identity comes from, and its header.
    pub workload: WorkloadIdentity,
    /// Pass the credential on to the backend (default: strip it).
    pub forward_credential: bool,
    /// Pass API keys on even when other credentials are stripped (e.g. for rate limits that
    /// key on the API-key header after ext_authz has run).
    pub forward_api_keys: bool,
    pub sessions: Option<SessionPolicy>,
}

/// A request asked about, and whether its token's keys were just fetched anew.
struct Asked<'r, 'c> {
    request: &'r AuthRequest,
    ctx: &'r Context<'c>,
    refetched: bool,
}

/// The mutable state a decision reads: keys, API keys, the token cache and the time.
pub struct Context<'a> {
    /// Per provider; `None` until its keys were loaded once.
    pub keys: &'a [Option<Arc<KeySet>>],
    pub api_keys: &'a ApiKeyStore,
    pub cache: &'a TokenCache,
    /// The generation of the providers' rules the check runs under (see `TokenCache::get`).
    pub token_rules: u64,
    pub now: u64,
    /// The request's login session, already opened and checked by the session layer.
    pub session: Option<&'a Session>,
}

/// A redirect answered to the browser instead of forwarding the request: to the provider's
/// login, back to the application after the callback, or away after logout.
#[derive(Debug, Clone, PartialEq)]
pub struct Redirect {
    pub location: String,
    pub set_cookies: Vec<String>,
    pub reason: &'static str,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Allow(Allow),
    Deny(Deny),
    /// We cannot decide (keys never loaded): an internal failure, not a deny.
    Unavailable(String),
    /// The token names a key this provider does not have (yet): refresh its keys and ask again.
    UnknownKey {
        provider: usize,
    },
    /// A browser without a session on a route that accepts sessions: the session layer starts
    /// a login.
    Login,
}

/// A request whose path could not be normalized never reaches routing: 400.
pub fn refuse_path(request: &AuthRequest) -> Option<Decision> {
    let problem = request.path_error?;
    Some(Decision::Deny(deny(400, ErrorCode::BadRequest, &problem.to_string(), None, "bad_path")))
}

impl Engine {
    pub fn check(&self, request: &AuthRequest, ctx: &Context<'_>) -> Decision {
        self.decide(request, ctx).decision
    }

    /// The decision, with the policy and route that made it and its notes (shadow answers,
    /// failed conditions). The policy the gateway's route names answers (`routes` when none is
    /// named); a shadow policy is evaluated beside `routes`, which answers.
    pub fn decide<'e>(&'e self, request: &AuthRequest, ctx: &Context<'_>) -> Verdict<'e> {
        self.decide_asked(&Asked { request, ctx, refetched: false })
    }

    /// [`Engine::decide`] again once the keys of a provider whose key a token named
    /// ([`Decision::UnknownKey`]) were fetched anew: a token on a route that takes no credential
    /// (read only for the deny rules) whose key is still unknown is then no identity, not a 401.
    pub fn decide_refetched<'e>(&'e self, request: &AuthRequest, ctx: &Context<'_>) -> Verdict<'e> {
        self.decide_asked(&Asked { request, ctx, refetched: true })
    }

    fn decide_asked<'e>(&'e self, asked: &Asked<'_, '_>) -> Verdict<'e> {
        let request = asked.request;
        let mut notes = Notes::default();
        if let Some(refused) = refuse_path(request) {
            return Verdict { decision: refused, policy: None, route: None, notes };
        }
        let (decision, policy, route) = match self.policies.select(request) {
            Selected::Routes => {
                let (decision, route) = self.run(asked, &self.routes, ROUTES, &mut notes, true);
                (decision, None, Some(route))
            }
            Selected::Named(name, named) if named.mode == Mode::Enforce => {
                let (decision, route) = self.run(asked, &named.table, name, &mut notes, true);
                (decision, Some(name), Some(route))
            }
            Selected::Named(name, named) => {
                let (decision, route) = self.run(asked, &self.routes, ROUTES, &mut notes, true);
                let (would, would_route) = self.run(asked, &named.table, name, &mut notes, false);
                notes.shadow.push(ShadowHit::of(name, would_route, &would));
                (decision, None, Some(route))
            }
            Selected::Unknown(name) => {
                let name: String = name.chars().take(128).collect();
                tracing::warn!(
                    request_id = request.request_id(),
                    "the route names policy {name:?}, which this config does not have: denied"
                );
                let refused = deny(
                    403,
                    ErrorCode::UnknownPolicy,
                    "the route names a policy that does not exist",
                    None,
                    "unknown_policy",
                );
                (Decision::Deny(refused), None, None)
            }
        };
        Verdict { decision, policy, route, notes }
    }

    /// The deny rules that do not read `identity`, alone (`routes`' then the answering
    /// policy's): for the requests answered before the policy's rules — the login callback
    /// and logout paths — so an address, header or path deny rule holds there too (a login
    /// from outside `not_client_ips` never gets its session cookie). `None` when none denies;
    /// a policy the config does not have leaves `routes`' alone (the path is ours).
    pub fn deny_early<'e>(&'e self, request: &AuthRequest, ctx: &Context<'_>) -> Option<Verdict<'e>> {
        let (table, label, policy) = match self.policies.select(request) {
            Selected::Named(name, named) if named.mode == Mode::Enforce => (&named.table, name, Some(name)),
            _ => (&self.routes, ROUTES, None),
        };
        let mut notes = Notes::default();
        let asked = Asked { request, ctx, refetched: false };
        let (refused, route) = self.runner(&asked, table, label, &mut notes, true).early_denial()?;
        Some(Verdict { decision: Decision::Deny(refused), policy, route: Some(route), notes })
    }

    /// One policy's answer (`table`, named `label`; with `routes`' deny rules when it is a
    /// named policy), and the route it came from.
    fn run<'e>(
        &'e self,
        asked: &Asked<'_, '_>,
        table: &'e RouteTable,
        label: &'e str,
        notes: &mut Notes<'e>,
        record: bool,
    ) -> (Decision, &'e str) {
        self.runner(asked, table, label, notes, record).answer()
    }

    fn runner<'e, 'a>(
        &'e self,
        asked: &'a Asked<'_, '_>,
        table: &'e RouteTable,
        label: &'e str,
        notes: &'a mut Notes<'e>,
        record: bool,
    ) -> Run<'e, 'a> {
        let (request, ctx) = (asked.request, asked.ctx);
        let outer = (!std::ptr::eq(table, &self.routes)).then_some(&self.routes);
        Run {
            engine: self,
            request,
            ctx,
            refetched: asked.refetched,
            source: self.source(request),
            principal: self.workload.principal(request),
            table,
            label,
            outer,
            notes,
            record,
            denied_by: None,
        }
    }

    /// The request's addresses: the peer Envoy saw, and the client after the trusted hops.
    pub fn source(&self, request: &AuthRequest) -> SourceAddresses {
        SourceAddresses {
            peer: request.peer_address.map(|a| a.to_canonical()),
            client: self.client_address.of(request),
        }
    }

    /// The route table that answers a request: the named policy its route chooses (enforced),
    /// else `routes`; `None` for a policy that does not exist.
    pub fn answering_table(&self, request: &AuthRequest) -> Option<&RouteTable> {
        match self.policies.select(request) {
            Selected::Named(_, named) if named.mode == Mode::Enforce => Some(&named.table),
            Selected::Named(..) | Selected::Routes => Some(&self.routes),
            Selected::Unknown(_) => None,
        }
    }

    /// Whether the request's route accepts a login session (so the session layer reads one).
    pub fn accepts_session(&self, request: &AuthRequest) -> bool {
        let Some(table) = self.answering_table(request) else { return false };
        let requirements = match table.route_request(request, self.source(request)) {
            Routed::Rule(rule) => &rule.requires,
            Routed::Default(DefaultPolicy::Authenticated(requirements)) => requirements,
            _ => return false,
        };
        requirements.credentials.contains(&Credential::Session)
    }
}

/// The workload check of a route that names principals; `None` when it holds (or there is none).
pub fn check_principal(principal: Option<&SpiffeId>, requirements: &Requirements) -> Option<Deny> {
    if requirements.principals.is_empty() {
        return None;
    }
    let (message, reason) = match principal {
        None => ("this route needs the calling workload's identity (mutual TLS)", "missing_principal"),
        Some(id) if !requirements.principals.iter().any(|p| p.matches(id)) => {
            ("the calling workload is not allowed on this route", "principal_not_allowed")
        }
        Some(_) => return None,
    };
    Some(deny(403, ErrorCode::Forbidden, message, None, reason))
}

/// Request principal, scope and claim checks; `None` when everything holds.
pub fn authorize(identity: &Identity, requirements: &Requirements) -> Option<Deny> {
    if !requirements.request_principals.is_empty() {
        let allowed = request_principal(&identity.claims)
            .is_some_and(|who| requirements.request_principals.iter().any(|p| p.matches(&who)));
        if !allowed {
            let message = "the token's issuer and subject are not allowed on this route";
            return Some(deny(403, ErrorCode::Forbidden, message, None, "request_principal"));
        }
    }
    let missing: Vec<&str> =
        requirements.scopes.iter().filter(|s| !identity.scopes.contains(s)).map(String::as_str).collect();
    if !missing.is_empty() {
        let challenge = format!(r#"Bearer error="insufficient_scope", scope="{}""#, requirements.scopes.join(" "));
        let message = format!("missing scope: {}", missing.join(" "));
        return Some(deny(403, ErrorCode::InsufficientScope, &message, Some(challenge), "insufficient_scope"));
    }
    if let Some(rule) = requirements.claims.iter().find(|r| !r.holds(&identity.claims)) {
        let message = format!("claim {:?} does not satisfy the route's rule", rule.claim.name());
        return Some(deny(403, ErrorCode::Forbidden, &message, None, "claim_rule"));
    }
    None
}

#[cfg(test)]
mod tests;

//! The decision: route the request, find and verify its credential, check scopes and claim
//! rules, and answer with the identity headers or a uniform error.

use std::sync::Arc;

use serde_json::{json, Value};
use shared::spiffe::SpiffeId;

use super::apikeys::ApiKeyStore;
use super::cel::SourceAddresses;
use super::client_address::ClientAddress;
use super::header_spellings;
use super::identity::Identity;
use super::identity_part::IdentityAnswer;
use super::jwt::{self, JwtError, JwtPolicy, KeySet};
use super::principals::{request_principal, PrincipalSource, WorkloadIdentity, XFCC};
use super::request::AuthRequest;
use super::routes::{Credential, DefaultPolicy, Mode, Policies, Requirements, RouteTable, Routed, Selected};
use super::session::cookies::{is_chunk_of, Cookies};
use super::session::model::Session;
use super::token_cache::{TokenCache, Verification};

mod allow;
mod run;
mod session_guards;
mod verdict;
pub use allow::Allow;
use run::Run;
pub use run::{deny_identity_holds, deny_rule_holds, evaluate_conditions, Conditions, DenyRule, ROUTES};
pub use session_guards::{from_our_origin, METHOD_OVERRIDE_HEADERS, METHOD_OVERRIDE_QUERY};
pub use verdict::{ConditionFailure, Notes, ShadowHit, Verdict, Would};

/// Where a credential is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// A header (lower-case name); the value must start with `prefix`, which is removed.
    Header {
        name: String,
        prefix: String,
    },
    Query(String),
    Cookie(String),
}

impl CredentialSource {
    pub fn read(&self, request: &AuthRequest) -> Option<String> {
        let value = match self {
            CredentialSource::Header { name, prefix } => {
                let raw = request.header(name)?.trim();
                // Scheme names are case-insensitive (`bearer` = `Bearer`). `get`, not an index:
                // a value whose first bytes end inside a character (`¡ૹᾶ`) is no match, not a panic.
                if !raw.get(..prefix.len()).is_some_and(|head| head.eq_ignore_ascii_case(prefix)) {
                    return None;
                }
                raw[prefix.len()..].trim().to_string()
            }
            CredentialSource::Query(name) => request.query_param(name)?,
            CredentialSource::Cookie(name) => request.cookie(name)?.to_string(),
        };
        (!value.is_empty()).then_some(value)
    }
}

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

/// The `code` of the JSON error. Built-in codes, and a deny rule's own (a config string, shared
/// by every denial of that rule: cloning it copies no text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorCode {
    Unauthorized,
    ExpiredToken,
    Forbidden,
    InsufficientScope,
    /// The login callback was not a valid answer to a login we started.
    LoginFailed,
    /// The identity provider cannot be reached for a new login.
    LoginUnavailable,
    /// The request itself is malformed (a path that cannot be normalized safely).
    BadRequest,
    /// The method is not one this path answers (a GET of the logout path).
    MethodNotAllowed,
    /// Something the request needs is missing for now (an upstream credential): retry later.
    Unavailable,
    /// A dependency refused this request for good (the session store refused its session):
    /// retrying would not help, and it is not an outage.
    Internal,
    /// A deny rule without a code of its own matched.
    Denied,
    /// A rule's condition could not be evaluated (a missing key, a wrong type, a bound).
    ConditionError,
    /// The gateway's route named a policy this config does not have.
    UnknownPolicy,
    /// A deny rule's own `error.code` (upper snake case, none of the above).
    Custom(Arc<str>),
}

impl ErrorCode {
    /// The built-in codes (a deny rule's own code may be none of them but `DENIED`).
    pub const BUILT_IN: [ErrorCode; 13] = [
        ErrorCode::Unauthorized,
        ErrorCode::ExpiredToken,
        ErrorCode::Forbidden,
        ErrorCode::InsufficientScope,
        ErrorCode::LoginFailed,
        ErrorCode::LoginUnavailable,
        ErrorCode::BadRequest,
        ErrorCode::MethodNotAllowed,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
        ErrorCode::Denied,
        ErrorCode::ConditionError,
        ErrorCode::UnknownPolicy,
    ];

    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::ExpiredToken => "EXPIRED_TOKEN",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::InsufficientScope => "INSUFFICIENT_SCOPE",
            ErrorCode::LoginFailed => "LOGIN_FAILED",
            ErrorCode::LoginUnavailable => "LOGIN_UNAVAILABLE",
            ErrorCode::BadRequest => "BAD_REQUEST",
            ErrorCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::Internal => "INTERNAL",
            ErrorCode::Denied => "DENIED",
            ErrorCode::ConditionError => "CONDITION_ERROR",
            ErrorCode::UnknownPolicy => "UNKNOWN_POLICY",
            ErrorCode::Custom(code) => code,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Deny {
    /// 401 or 403; 400/503 for login callbacks.
    pub status: u16,
    pub code: ErrorCode,
    pub message: String,
    pub www_authenticate: Option<String>,
    /// Why, for metrics and logs (never a secret).
    pub reason: &'static str,
    /// `Set-Cookie` values for the client (e.g. clearing a failed login's state).
    pub set_cookies: Vec<String>,
    /// More response headers (`allow` on a 405), fixed names and values of ours.
    pub headers: Vec<(&'static str, String)>,
    /// An HTML page to answer instead of the JSON error (the logout confirmation).
    pub page: Option<String>,
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

/// The credential found on a request and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found<'e> {
    /// The credential as read (empty for a session).
    pub value: String,
    /// `None` for a session: the session layer read it, and its cookies are always stripped.
    pub source: Option<&'e CredentialSource>,
    pub kind: FoundKind,
}

/// The kind of credential found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FoundKind {
    /// A token, and the providers (indexes) reading it at that place: its `iss` picks one.
    Jwt(Vec<usize>),
    ApiKey,
    Session,
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
        let mut notes = Notes::default();
        if let Some(refused) = refuse_path(request) {
            return Verdict { decision: refused, policy: None, route: None, notes };
        }
        let (decision, policy, route) = match self.policies.select(request) {
            Selected::Routes => {
                let (decision, route) = self.run(request, ctx, &self.routes, ROUTES, &mut notes, true);
                (decision, None, Some(route))
            }
            Selected::Named(name, named) if named.mode == Mode::Enforce => {
                let (decision, route) = self.run(request, ctx, &named.table, name, &mut notes, true);
                (decision, Some(name), Some(route))
            }
            Selected::Named(name, named) => {
                let (decision, route) = self.run(request, ctx, &self.routes, ROUTES, &mut notes, true);
                let (would, would_route) = self.run(request, ctx, &named.table, name, &mut notes, false);
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

    /// One policy's answer (`table`, named `label`; with `routes`' deny rules when it is a
    /// named policy), and the route it came from.
    fn run<'e>(
        &'e self,
        request: &AuthRequest,
        ctx: &Context<'_>,
        table: &'e RouteTable,
        label: &'e str,
        notes: &mut Notes<'e>,
        record: bool,
    ) -> (Decision, &'e str) {
        let outer = (!std::ptr::eq(table, &self.routes)).then_some(&self.routes);
        let mut run = Run {
            engine: self,
            request,
            ctx,
            source: self.source(request),
            principal: self.workload.principal(request),
            table,
            label,
            outer,
            notes,
            record,
            denied_by: None,
        };
        run.answer()
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

    /// The first credential present, in the order the rule lists credential kinds: the
    /// decision's own lookup (`explain` calls it too).
    pub fn find_credential<'e>(
        &'e self,
        request: &AuthRequest,
        requirements: &Requirements,
        ctx: &Context<'_>,
    ) -> Option<Found<'e>> {
        for credential in &requirements.credentials {
            match credential {
                Credential::Session => {
                    if ctx.session.is_some() {
                        return Some(Found { value: String::new(), source: None, kind: FoundKind::Session });
                    }
                }
                Credential::ApiKey => {
                    for source in &self.api_key_sources {
                        if let Some(value) = source.read(request) {
                            return Some(Found { value, source: Some(source), kind: FoundKind::ApiKey });
                        }
                    }
                }
                Credential::Jwt(allowed) => {
                    let allowed: Vec<usize> = match allowed {
                        Some(list) => list.clone(),
                        None => (0..self.providers.len()).collect(),
                    };
                    // The same token location may serve several providers; the token's `iss`
                    // picks among them.
                    for provider in allowed.iter().map(|p| &self.providers[*p]) {
                        for source in &provider.sources {
                            if let Some(value) = source.read(request) {
                                let same_source: Vec<usize> = allowed
                                    .iter()
                                    .copied()
                                    .filter(|q| self.providers[*q].sources.contains(source))
                                    .collect();
                                return Some(Found { value, source: Some(source), kind: FoundKind::Jwt(same_source) });
                            }
                        }
                    }
                }
            }
        }
        None
    }

    /// The identity a found credential gives: an API key looked up, a token verified, the
    /// session's claims; or the decision to answer instead (the decision's own step).
    pub fn verify_found(&self, found: &Found<'_>, ctx: &Context<'_>) -> Result<Identity, Box<Decision>> {
        match &found.kind {
            FoundKind::ApiKey => ctx.api_keys.identity(&found.value).ok_or_else(|| {
                Box::new(Decision::Deny(deny(
                    401,
                    ErrorCode::Unauthorized,
                    "invalid API key",
                    Some(r#"Bearer error="invalid_token", error_description="invalid API key""#.into()),
                    "invalid_api_key",
                )))
            }),
            FoundKind::Jwt(providers) => self.verify_jwt(&found.value, providers, ctx),
            FoundKind::Session => match (ctx.session, &self.sessions) {
                (Some(session), Some(policy)) => {
                    Ok(Identity::from_session(&policy.provider, session.identity_claims()))
                }
                _ => Err(Box::new(Decision::Unavailable("a session was found without session settings".into()))),
            },
        }
    }

    /// Verifies a token against the providers reading it (cache first): its identity, or the
    /// decision to answer instead (401, keys not loaded, or a key to fetch).
    pub fn verify_jwt(&self, token: &str, providers: &[usize], ctx: &Context<'_>) -> Result<Identity, Box<Decision>> {
        if let Some((p, keys, identity)) = ctx.cache.get(token, ctx.now, ctx.token_rules) {
            let same_keys = ctx.keys.get(p).and_then(Option::as_ref).is_some_and(|k| k.fingerprint() == keys);
            if providers.contains(&p) && same_keys {
                return Ok(identity);
            }
        }
        let peeked = jwt::peek(token).map_err(|e| Box::new(invalid_token(&e)))?;
        let p = providers
            .iter()
            .copied()
            .find(|p| Some(self.providers[*p].policy.issuer.as_str()) == peeked.issuer.as_deref())
            .ok_or_else(|| Box::new(invalid_token(&JwtError::WrongIssuer)))?;
        let provider = &self.providers[p];
        let Some(keys) = ctx.keys.get(p).and_then(Option::as_ref) else {
            return Err(Box::new(Decision::Unavailable(format!(
                "no keys loaded yet for JWT provider {:?}",
                provider.name
            ))));
        };
        match jwt::verify(&peeked, &provider.policy, keys, ctx.now) {
            Ok(verified) => {
                let identity = Identity::from_jwt(&provider.name, verified.claims);
                let at = Verification { provider: p, keys: keys.fingerprint(), rules: ctx.token_rules };
                ctx.cache.insert(token, at, &identity, verified.valid_until);
                Ok(identity)
            }
            Err(JwtError::UnknownKey(_)) => Err(Box::new(Decision::UnknownKey { provider: p })),
            Err(e) => Err(Box::new(invalid_token(&e))),
        }
    }

    fn allow(
        &self,
        request: &AuthRequest,
        identity: Option<Identity>,
        credential: Option<&Found<'_>>,
        principal: Option<SpiffeId>,
        reason: &'static str,
    ) -> Allow {
        // Every identity header we own and do not set is removed, so client-sent copies never
        // reach the backend: the identity's part says which, or without one all of them.
        let identity_part = identity.as_ref().map(|i| i.answer_part(&self.identity));
        let mut remove: Vec<String> = match &identity_part {
            Some(_) => Vec::new(),
            None => self.identity.headers.owned().map(str::to_owned).collect(),
        };
        let mut headers = Vec::new();
        let mut remove_query = Vec::new();
        let forward = |found: &Found<'_>| {
            self.forward_credential || (self.forward_api_keys && matches!(found.kind, FoundKind::ApiKey))
        };
        let mut strip_cookie: Option<&str> = None;
        if let Some(source) = credential.filter(|f| !forward(f)).and_then(|f| f.source) {
            match source {
                CredentialSource::Header { name, .. } => remove.push(name.clone()),
                CredentialSource::Query(name) => remove_query.push(name.clone()),
                CredentialSource::Cookie(name) => strip_cookie = Some(name),
            }
        }
        // A credential cookie, and our session cookies always, are cut out of the `cookie`
        // header; the rest of the header goes on as it came. Without either there is nothing
        // to cut, and the header is not even parsed.
        if strip_cookie.is_some() || self.sessions.is_some() {
            let ours = |name: &str| {
                strip_cookie == Some(name) || self.sessions.as_ref().is_some_and(|policy| policy.is_our_cookie(name))
            };
            let cookies = Cookies::parse(request.header("cookie"));
            if cookies.names().any(ours) {
                match cookies.header_without(ours) {
                    Some(rest) => headers.push(("cookie".into(), rest)),
                    None => remove.push("cookie".into()),
                }
            }
        }
        let principal = principal.map(|id| id.to_string());
        if let Some(name) = &self.workload.header {
            match &principal {
                Some(id) => headers.push((name.clone(), id.clone())),
                None => remove.push(name.clone()),
            }
        }
        // A header we trusted is ours to consume: the backend must not trust it a second time.
        if self.workload.source == PrincipalSource::Xfcc {
            remove.push(XFCC.into());
        }
        // Every other spelling of a header we set or remove (`x_user_id` for `x-user-id`) goes
        // too: a backend that reads `_` as `-` would take it for ours (see header_spellings).
        let ours = || {
            let set = headers.iter().map(|(name, _)| name.as_str());
            self.identity.headers.owned().chain(set).chain(remove.iter().map(String::as_str))
        };
        let spellings = header_spellings::other_spellings(request.headers.keys().map(String::as_str), ours);
        remove.extend(spellings);
        let mut metadata = identity_part.as_ref().map(|part| part.metadata.clone()).unwrap_or_default();
        if let Some(id) = principal.as_ref().filter(|_| self.identity.dynamic_metadata) {
            Arc::make_mut(&mut metadata).insert("principal".into(), Value::String(id.clone()));
        }
        Allow {
            identity_part,
            headers,
            remove,
            remove_query,
            identity,
            principal,
            metadata,
            reason,
            set_cookies: Vec::new(),
            upstream: None,
        }
    }
}

/// The workload check of a route that names principals; `None` when it holds (or there is none).
fn check_principal(principal: Option<&SpiffeId>, requirements: &Requirements) -> Option<Deny> {
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
fn authorize(identity: &Identity, requirements: &Requirements) -> Option<Deny> {
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

fn invalid_token(error: &JwtError) -> Decision {
    let (code, reason) = match error {
        JwtError::Expired => (ErrorCode::ExpiredToken, "expired_token"),
        JwtError::Malformed(_) => (ErrorCode::Unauthorized, "malformed_token"),
        _ => (ErrorCode::Unauthorized, "invalid_token"),
    };
    let description = error.to_string();
    let challenge = format!(r#"Bearer error="invalid_token", error_description="{description}""#);
    Decision::Deny(deny(401, code, &description, Some(challenge), reason))
}

pub fn deny(status: u16, code: ErrorCode, message: &str, challenge: Option<String>, reason: &'static str) -> Deny {
    Deny {
        status,
        code,
        message: message.to_string(),
        www_authenticate: challenge,
        reason,
        set_cookies: Vec::new(),
        headers: Vec::new(),
        page: None,
    }
}

impl Deny {
    /// Answers with an HTML page of ours instead of the JSON error; both protocols send it
    /// with [`PAGE_HEADERS`].
    pub fn with_page(mut self, html: String) -> Deny {
        self.page = Some(html);
        self
    }

    /// The `WWW-Authenticate` challenge to send. Every 401 carries one (RFC 9110 §15.5.2
    /// requires it, and clients decide from it how to authenticate): a plain `Bearer` when the
    /// denial did not name a more specific one.
    pub fn challenge(&self) -> Option<&str> {
        match (&self.www_authenticate, self.status) {
            (Some(challenge), _) => Some(challenge),
            (None, 401) => Some("Bearer"),
            (None, _) => None,
        }
    }
}

/// Headers every HTML page of ours is sent with, whoever built it: no other site may frame it
/// (a framed sign-out button is a click away from a sign-out the user never meant).
pub const PAGE_HEADERS: [(&str, &str); 2] =
    [("content-security-policy", "frame-ancestors 'none'"), ("x-frame-options", "DENY")];

/// Whether a value may go into a response header as it is: visible ASCII, spaces and tabs.
/// The last line of defence before Envoy: every value from a request is checked or encoded long
/// before, and one that is not fit here is dropped (and logged) rather than sent.
pub fn is_header_value(text: &str) -> bool {
    text.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
}

/// The values of `values` fit for a header; the others are logged and dropped.
pub fn fit_for_headers<'v>(name: &'static str, values: &'v [String]) -> impl Iterator<Item = &'v String> + 'v {
    values.iter().filter(move |value| {
        let fit = is_header_value(value);
        if !fit {
            tracing::error!(header = %name, "a response header value with unsafe bytes was dropped");
        }
        fit
    })
}

/// The uniform JSON error body.
pub fn error_body(deny: &Deny, request_id: &str, timestamp: &str) -> String {
    json!({
        "error": {"code": deny.code.as_str(), "message": deny.message, "request_id": request_id},
        "metadata": {"success": false, "timestamp": timestamp},
    })
    .to_string()
}

#[cfg(test)]
mod tests;

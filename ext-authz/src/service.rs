//! The authorizer: the current policy, keys and API keys, and the check itself — including the
//! one retry after re-fetching keys for an unknown key id. Protocol-free; `grpc.rs` and `http.rs`
//! translate.

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use shared::traces::{CallTrace, HeaderCarrier};
use tokio::sync::watch;
use tracing::field::Empty;
use tracing::Instrument;

use crate::core::apikeys::ApiKeyStore;
use crate::core::decision::{deny, ConditionLog, Context, Decision, Engine, ErrorCode, Notes};
use crate::core::request::AuthRequest;
use crate::core::token_cache::TokenCache;
use crate::decision_log::{DecisionLog, Entry};
use crate::jwks::KeyManager;
use crate::metrics::Metrics;
use crate::oidc::{Oidc, SessionLookup};
use crate::outcome::Outcome;
use crate::upstream::UpstreamCredentials;

pub use shared::clock::{system_clock, Clock};

mod upstream_credential;
use upstream_credential::add_upstream_credential;

/// What a config load puts in service, swapped as a whole.
pub struct Policy {
    pub engine: Engine,
    pub keys: Arc<KeyManager>,
    /// Stops the key refresh tasks when the key manager is replaced (shared by policies that
    /// reuse the same keys).
    pub stop_refresh: Arc<watch::Sender<bool>>,
    /// Browser logins, when the config has an `oidc` section.
    pub oidc: Option<Arc<Oidc>>,
    /// Credentials set on the upstream request by the rules that name them.
    pub upstream: Arc<UpstreamCredentials>,
    /// The generation of the JWT providers' rules, for the token cache: set by
    /// [`Authorizer::replace_policy`], which moves it on when a reload changes a provider.
    pub token_rules: u64,
}

pub struct Authorizer {
    policy: ArcSwap<Policy>,
    api_keys: ArcSwap<ApiKeyStore>,
    cache: TokenCache,
    pub metrics: Metrics,
    clock: Clock,
    decision_log: Option<DecisionLog>,
    /// Conditions that could not be evaluated, logged at most once per rule per interval.
    condition_log: ConditionLog,
    /// Files whose change was refused while the last good ones serve (`config`, `api_keys`),
    /// as `/readyz` says it (what, and where to look; the log has why).
    refused: parking_lot::Mutex<std::collections::BTreeMap<&'static str, String>>,
}

impl Authorizer {
    pub fn new(policy: Policy, api_keys: ApiKeyStore, cache_size: usize, metrics: Metrics, clock: Clock) -> Authorizer {
        Authorizer {
            policy: ArcSwap::from_pointee(policy),
            api_keys: ArcSwap::from_pointee(api_keys),
            cache: TokenCache::new(cache_size),
            metrics,
            clock,
            decision_log: None,
            condition_log: ConditionLog::default(),
            refused: parking_lot::Mutex::default(),
        }
    }

    /// Token cache lookups so far: (hits, misses).
    pub fn token_cache_lookups(&self) -> (u64, u64) {
        self.cache.lookups()
    }

    /// Writes one line per decision to `log`.
    pub fn with_decision_log(mut self, log: DecisionLog) -> Authorizer {
        self.decision_log = Some(log);
        self
    }

    /// The current time in Unix seconds, from the authorizer's clock.
    pub fn now(&self) -> u64 {
        (self.clock)()
    }

    pub fn clock(&self) -> Clock {
        self.clock.clone()
    }

    pub fn policy(&self) -> Arc<Policy> {
        self.policy.load_full()
    }

    /// Puts a new policy in service; returns the old one so the caller can stop its tasks.
    /// When a JWT provider changed (issuer, audiences, algorithms, name…), tokens verified
    /// under the old rules are verified again: the token cache answers only for the rules of
    /// the policy a check runs under, even for a check that started before the swap.
    pub fn replace_policy(&self, mut policy: Policy) -> Arc<Policy> {
        let current = self.policy.load();
        let changed = policy.engine.providers != current.engine.providers;
        policy.token_rules = current.token_rules + u64::from(changed);
        self.policy.swap(Arc::new(policy))
    }

    pub fn replace_api_keys(&self, store: ApiKeyStore) {
        self.api_keys.store(Arc::new(store));
    }

    pub fn api_key_count(&self) -> usize {
        self.api_keys.load().len()
    }

    /// Ready once every JWT provider has keys.
    pub fn ready(&self) -> bool {
        self.policy.load().keys.ready()
    }

    /// Why not ready, on one line (where each provider without keys is set; the log has why).
    pub fn not_ready(&self) -> Option<String> {
        self.policy.load().keys.not_ready()
    }

    /// Records the outcome of reloading `what`: why a change was refused, or `None` once one
    /// is taken.
    pub fn note_reload(&self, what: &'static str, refused: Option<String>) {
        let mut notes = self.refused.lock();
        match refused {
            Some(why) => notes.insert(what, why),
            None => notes.remove(what),
        };
    }

    /// The refused changes in force, each on its own line of text.
    pub fn refused_reloads(&self) -> Vec<String> {
        self.refused.lock().values().cloned().collect()
    }

    /// The final outcome of a check: the engine's intermediate requests (a key refetch, a
    /// login to start) are resolved here. `metadata` is the gRPC call's (where Envoy's client
    /// puts its span); without a trace context there, the request's own headers are read.
    pub async fn check(
        &self,
        request: &AuthRequest,
        mode: &'static str,
        metadata: Option<&http::HeaderMap>,
    ) -> Outcome {
        let started = Instant::now();
        // A check that will not be recorded gets no span at all (see `CallTrace`).
        let trace = match metadata {
            Some(metadata) => CallTrace::read(&[&HeaderCarrier(metadata), &request.headers]),
            None => CallTrace::read(&[&request.headers]),
        };
        let recorded = trace.recorded();
        let span = trace.span(|| {
            tracing::info_span!(
                "Check",
                otel.kind = "server",
                authz.mode = mode,
                http.request.method = shared::traces::cut(&request.method),
                authz.decision = Empty,
                authz.reason = Empty,
                authz.route = Empty,
                authz.auth_method = Empty,
                authz.provider = Empty,
            )
        });
        let policy = self.policy.load_full();
        let (decision, trail) =
            shared::traces::run_call(recorded, self.decide(request, &policy).instrument(span.clone())).await;
        let (outcome, reason) = decision.labels();
        let latency = started.elapsed();
        self.metrics.decision(outcome, reason, mode, latency.as_secs_f64());
        self.metrics.notes(&trail.notes);
        if !trail.notes.condition_errors.is_empty() {
            let now = (self.clock)();
            for failed in &trail.notes.condition_errors {
                self.condition_log.record(failed, request.request_id(), now);
            }
        }
        // The route that answered, borrowed from the policy; for the answers made before the
        // policy's rules (a login's own paths), the route the request's path takes.
        let wants_route = (self.decision_log.is_some() || !span.is_disabled()) && request.path_error.is_none();
        let route = match trail.decided {
            true => trail.route,
            false => wants_route.then(|| policy.engine.routes.name(&request.host, &request.method, &request.path)),
        };
        if !span.is_disabled() {
            span.record("authz.decision", outcome);
            span.record("authz.reason", reason);
            if let Some(route) = route {
                span.record("authz.route", route);
            }
            if let Some((_, method, provider)) = decision.authenticated() {
                span.record("authz.auth_method", method);
                if let Some(provider) = provider {
                    span.record("authz.provider", provider);
                }
            }
            if let Outcome::Unavailable(why) = &decision {
                shared::traces::record_error(&span, why.clone());
            }
        }
        if let Some(log) = &self.decision_log {
            let principal = match &decision {
                Outcome::Allow(allow) => allow.principal.clone(),
                _ => policy.engine.workload.principal(request).map(|id| id.to_string()),
            };
            let principal = principal.as_deref();
            let shadow = &trail.notes.shadow;
            log.record(&Entry {
                request,
                outcome: &decision,
                route,
                mode,
                latency,
                principal,
                policy: trail.policy,
                shadow,
            });
        }
        if let Outcome::Unavailable(why) = &decision {
            tracing::error!(request_id = request.request_id(), "cannot decide: {why}");
        } else {
            tracing::debug!(request_id = request.request_id(), method = %request.method, path = %request.path, outcome, reason, "checked");
        }
        decision
    }

    /// The outcome, and what the policy's rules made of the request (when they were asked).
    async fn decide<'p>(&self, request: &AuthRequest, policy: &'p Policy) -> (Outcome, Trail<'p>) {
        let mut trail = Trail::default();
        let outcome = self.outcome(request, policy, &mut trail).await;
        (outcome, trail)
    }

    async fn outcome<'p>(&self, request: &AuthRequest, policy: &'p Policy, trail: &mut Trail<'p>) -> Outcome {
        let api_keys = self.api_keys.load_full();
        let now = (self.clock)();
        let oidc = policy.oidc.as_deref();
        if let Some(Decision::Deny(refused)) = crate::core::decision::refuse_path(request) {
            return Outcome::Deny(refused);
        }
        // The login flows' futures are large and most checks never run them: boxed, they cost
        // an allocation when they run instead of bytes copied with every check's future.
        if let Some(oidc) = oidc {
            // The login's own paths answer before the policy's rules, but not before its deny
            // rules that read no identity (an address or header rule holds there too). Those that
            // read one are not judged: neither path is forwarded to a backend, and the callback's
            // identity does not exist until the login it completes.
            let settings = oidc.settings();
            if request.path == settings.callback_path || request.path == settings.logout_path {
                let keys = policy.keys.snapshot();
                let ctx = Context {
                    keys: &keys,
                    api_keys: &api_keys,
                    cache: &self.cache,
                    token_rules: policy.token_rules,
                    now,
                    session: None,
                };
                if let Some(verdict) = policy.engine.deny_early(request, &ctx) {
                    *trail =
                        Trail { decided: true, policy: verdict.policy, route: verdict.route, notes: verdict.notes };
                    if let Decision::Deny(refused) = verdict.decision {
                        return Outcome::Deny(refused);
                    }
                }
            }
            if let Some(decision) = Box::pin(oidc.handle_own_path(request, now)).await {
                return decision;
            }
        }
        let lookup = match oidc {
            Some(oidc) if policy.engine.accepts_session(request) => Box::pin(oidc.session(request, now)).await,
            _ => SessionLookup::default(),
        };
        if let Some(error) = &lookup.store_failed {
            return Outcome::Deny(crate::oidc::session_store_failed(error));
        }
        let mut refetched = false;
        loop {
            let keys = policy.keys.snapshot();
            let ctx = Context {
                keys: &keys,
                api_keys: &api_keys,
                cache: &self.cache,
                token_rules: policy.token_rules,
                now,
                session: lookup.session.as_ref(),
            };
            let verdict = match refetched {
                false => policy.engine.decide(request, &ctx),
                true => policy.engine.decide_refetched(request, &ctx),
            };
            *trail = Trail { decided: true, policy: verdict.policy, route: verdict.route, notes: verdict.notes };
            match verdict.decision {
                Decision::UnknownKey { provider } if !refetched => {
                    refetched = true;
                    // The refetch runs on its own task: a Check waits for it at most
                    // `unknown_kid_wait` (a hanging key server must not hang every check that
                    // names a new key), while the fetch goes on and serves later checks.
                    let keys = policy.keys.clone();
                    let wait = keys.unknown_kid_wait(provider);
                    let refetch =
                        tokio::spawn(async move { keys.refetch_for_unknown_kid(provider).await }.in_current_span());
                    if !matches!(tokio::time::timeout(wait, refetch).await, Ok(Ok(true))) {
                        return unknown_key();
                    }
                }
                Decision::UnknownKey { .. } => return unknown_key(),
                Decision::Login => {
                    return match oidc {
                        Some(oidc) => Box::pin(oidc.start_login(request, now)).await,
                        None => Outcome::Unavailable("a login was asked for without an oidc section".into()),
                    }
                }
                Decision::Allow(mut allow) => {
                    if let Some(index) = allow.upstream {
                        if let Err(refused) =
                            add_upstream_credential(&policy.upstream, index, &mut allow, request).await
                        {
                            return Outcome::Deny(refused);
                        }
                    }
                    allow.set_cookies.extend(lookup.set_cookies);
                    return Outcome::Allow(allow);
                }
                Decision::Deny(mut deny) => {
                    deny.set_cookies.extend(lookup.set_cookies);
                    return Outcome::Deny(deny);
                }
                Decision::Unavailable(why) => return Outcome::Unavailable(why),
            }
        }
    }
}

/// What the policy's rules made of a request, for logs, spans and metrics.
#[derive(Default)]
struct Trail<'p> {
    /// The rules were asked (not so for a login's own paths, or a refusal before them).
    decided: bool,
    policy: Option<&'p str>,
    route: Option<&'p str>,
    notes: Notes<'p>,
}

/// The answer to a token whose key its provider does not have, even after a refetch.
pub fn unknown_key() -> Outcome {
    Outcome::Deny(deny(
        401,
        ErrorCode::Unauthorized,
        "the token's signing key is unknown",
        Some(r#"Bearer error="invalid_token", error_description="unknown signing key""#.into()),
        "unknown_key",
    ))
}

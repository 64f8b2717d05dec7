//! What a check ends in, as the protocol adapters (`grpc.rs`, `http.rs`) see it: only final
//! outcomes. The policy engine's intermediate requests — "refetch this provider's keys",
//! "start a login" — are resolved inside the service layer and never reach an adapter.

use crate::core::decision::{Allow, Deny, Redirect};
use crate::core::identity::AuthMethod;

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Forward the request upstream, with these header changes.
    Allow(Allow),
    /// Answer the client with this error (and its cookies).
    Deny(Deny),
    /// Send the browser elsewhere: to the provider's login, back after the callback, away after
    /// logout.
    Redirect(Redirect),
    /// No decision could be made (keys never loaded): an internal failure, so the gateway's
    /// failure mode decides.
    Unavailable(String),
}

impl Outcome {
    /// (outcome, reason) for metrics and logs.
    pub fn labels(&self) -> (&'static str, &'static str) {
        match self {
            Outcome::Allow(allow) => ("allow", allow.reason),
            Outcome::Deny(deny) => ("deny", deny.reason),
            Outcome::Redirect(redirect) => ("redirect", redirect.reason),
            Outcome::Unavailable(_) => ("error", "unavailable"),
        }
    }

    /// For an allow with an identity: (its id — `sub`, else `client_id` —, how it
    /// authenticated, with which provider); on a route the workload's identity alone opened,
    /// (its SPIFFE ID, `workload`, none). Never a credential.
    pub fn authenticated(&self) -> Option<(Option<&str>, &'static str, Option<&str>)> {
        let Outcome::Allow(allow) = self else { return None };
        let Some(identity) = allow.identity.as_ref() else {
            return (allow.reason == "workload").then_some((allow.principal.as_deref(), "workload", None));
        };
        let id = ["sub", "client_id"].iter().find_map(|claim| identity.claims.get(claim)?.as_str());
        let (method, provider) = match &identity.method {
            AuthMethod::Jwt { provider } => ("jwt", Some(provider.as_str())),
            AuthMethod::ApiKey => ("api_key", None),
            AuthMethod::Session { provider } => ("session", Some(provider.as_str())),
        };
        Some((id, method, provider))
    }
}

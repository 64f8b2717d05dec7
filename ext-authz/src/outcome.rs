//! What a check ends in, as the protocol adapters (`grpc.rs`, `http.rs`) see it: only final
//! outcomes. The policy engine's intermediate requests — "refetch this provider's keys",
//! "start a login" — are resolved inside the service layer and never reach an adapter.

use crate::core::decision::{Allow, Deny, Redirect};

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
}

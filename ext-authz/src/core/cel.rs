//! CEL conditions (`when:`), compiled once per config load and evaluated per request against a
//! typed activation: `request`, `source`, `identity`, `route`, `context` and `now`.
//!
//! SKELETON (issue 35): the interface the policy code is written against. The "cel" helper
//! replaces every `todo!()` and may add fields, but keeps these names and signatures.

use std::collections::HashMap;
use std::net::IpAddr;

use shared::spiffe::SpiffeId;

use super::identity::Identity;
use super::request::AuthRequest;

/// A compiled `when:` expression.
#[derive(Debug)]
pub struct Expression {
    source: String,
}

impl PartialEq for Expression {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

/// Which top-level variables an expression reads (so a deny rule that never reads `identity`
/// can be judged before any credential is checked).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Uses {
    pub request: bool,
    pub source: bool,
    pub identity: bool,
    pub route: bool,
    pub context: bool,
    pub now: bool,
}

/// Why an expression was refused at config load: where (1-based line and column in the
/// expression's own text) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct CompileError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Why an evaluation failed (the rule then denies with its own reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EvalError(pub String);

/// The addresses of the request: what Envoy saw, and the client after trusted hops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceAddresses {
    pub peer: Option<IpAddr>,
    pub client: Option<IpAddr>,
}

/// Everything a request's conditions may read, borrowed from the decision in progress.
pub struct Facts<'a> {
    pub request: &'a AuthRequest,
    pub source: SourceAddresses,
    /// `None`: no credential was checked (a public route, or a deny rule judged first).
    pub identity: Option<&'a Identity>,
    /// The calling workload's SPIFFE ID.
    pub principal: Option<&'a SpiffeId>,
    /// The matched path template's captures (`{org}` → ("org", "acme")).
    pub route: &'a [(&'a str, &'a str)],
    /// Envoy's `context_extensions`.
    pub context: &'a HashMap<String, String>,
    /// Unix seconds.
    pub now: u64,
}

/// The values of one request's variables, built once per request (lazily) and shared by every
/// expression evaluated for it.
pub struct Activation<'a> {
    facts: Facts<'a>,
}

impl<'a> Activation<'a> {
    pub fn new(facts: Facts<'a>) -> Activation<'a> {
        Activation { facts }
    }

    pub fn facts(&self) -> &Facts<'a> {
        &self.facts
    }
}

/// Compiles one expression: syntax, known variables and functions, types where they can be
/// told, and the size bounds.
pub fn compile(source: &str) -> Result<Expression, CompileError> {
    let _ = source;
    todo!("cel helper")
}

impl Expression {
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn uses(&self) -> Uses {
        todo!("cel helper")
    }

    /// Whether the expression holds for this request. A result that is not a boolean is an
    /// error.
    pub fn evaluate(&self, activation: &mut Activation<'_>) -> Result<bool, EvalError> {
        let _ = activation;
        todo!("cel helper")
    }
}

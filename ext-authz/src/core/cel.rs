//! CEL conditions (`when:`), compiled once per config load and evaluated per request against a
//! typed activation: `request`, `source`, `identity`, `route`, `context` and `now`
//! (documented in docs/ext-authz.md, "Conditions (CEL)").
//!
//! - `compile` (compile.rs): parse, bound (bounds.rs), check types against the declared
//!   activation (check.rs, schema.rs), compile the `matches`/`inCidr` literals (functions.rs),
//!   and note what the expression reads (needs.rs).
//! - `Activation` (activation.rs, values.rs): one per request, shared by its expressions;
//!   converts only what they read, borrowing the request's strings, bounded.
//!
//! Evaluation never parses and never panics (a property test feeds arbitrary expressions and
//! activations, tests/fuzz.rs); every failure is an `EvalError`, on which a rule denies.

mod activation;
mod bounds;
mod built;
mod check;
mod compile;
mod direct;
mod eval_errors;
mod functions;
mod needs;
mod schema;
mod size;
mod slots;
mod values;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::IpAddr;

use cel::common::ast::IdedExpr;
use cel::common::value::Val;
use shared::spiffe::SpiffeId;

use super::identity::Identity;
use super::request::AuthRequest;
pub use bounds::{
    MAX_CLAIM_DEPTH, MAX_COMPREHENSION_DEPTH, MAX_COST, MAX_ENTRIES, MAX_EXPRESSION_BYTES, MAX_NODES, MAX_STRING_BYTES,
};
use needs::Needs;

/// A compiled `when:` expression.
#[derive(Debug)]
pub struct Expression {
    source: String,
    /// The parsed tree, macros expanded, literal arguments replaced by `@N` references.
    expr: IdedExpr,
    /// The compiled literal arguments, bound as `@0`, `@1`, ...
    literals: Vec<Box<dyn Val>>,
    needs: Needs,
    uses: Uses,
    /// The same expression for the direct evaluator, when it is in its subset.
    direct: Option<direct::Program>,
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
/// expression's own text, in characters) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct CompileError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Why an evaluation failed (the rule then denies with its own reason). The text names what
/// went wrong, never a header's or a claim's value.
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

/// The values of one request's variables, built once per request (lazily: only what some
/// expression reads) and shared by every expression evaluated for it.
pub struct Activation<'a> {
    facts: Facts<'a>,
    built: activation::Slots<'a>,
}

impl<'a> Activation<'a> {
    pub fn new(facts: Facts<'a>) -> Activation<'a> {
        Activation { facts, built: Default::default() }
    }

    pub fn facts(&self) -> &Facts<'a> {
        &self.facts
    }
}

/// Compiles one expression: syntax, known variables and functions, types where they can be
/// told, and the size bounds.
pub fn compile(source: &str) -> Result<Expression, CompileError> {
    compile::compile(source)
}

/// Runs a config load on one thread whose stack fits the CEL parser: the expressions it
/// compiles are compiled there, rather than each on a thread started for it.
pub fn on_compiler_thread<T: Send>(load: impl FnOnce() -> T + Send) -> T {
    compile::on_compiler_thread(load)
}

impl Expression {
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn uses(&self) -> Uses {
        self.uses
    }

    /// Whether the expression holds for this request. A result that is not a boolean is an
    /// error.
    pub fn evaluate(&self, activation: &mut Activation<'_>) -> Result<bool, EvalError> {
        if let Some(answer) =
            self.direct.as_ref().and_then(|d| d.evaluate(&activation.facts, &self.needs, &self.source))
        {
            return answer;
        }
        activation::evaluate(self, &activation.facts, &mut activation.built)
    }

    /// Whether the direct evaluator takes this expression (the interpreter may still answer a
    /// request the subset leaves to it).
    #[cfg(test)]
    pub fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// The interpreter's answer alone, for the differential test.
    #[cfg(test)]
    pub fn evaluate_interpreted(&self, activation: &mut Activation<'_>) -> Result<bool, EvalError> {
        activation::evaluate(self, &activation.facts, &mut activation.built)
    }
}

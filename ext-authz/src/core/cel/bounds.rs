//! The bounds of a condition: how large an expression may be (checked when the config is
//! loaded) and how large the request's values that reach it may be (checked when they are
//! put in the activation: a value over its bound is an evaluation error, so the rule denies;
//! nothing is ever truncated, which could turn a "no" into a "yes").
//!
//! The numbers are documented in docs/ext-authz.md, "Conditions (CEL)".

/// Bytes of one expression's text.
pub const MAX_EXPRESSION_BYTES: usize = 4096;
/// Nodes of one expression's syntax tree, after the macros (`all`, `exists`, `map`, ...) are
/// expanded: each such macro adds about six nodes of its own.
pub const MAX_NODES: usize = 256;
/// Brackets (`(`, `[`, `{`) inside one another: checked before parsing, as the parser recurses
/// once per level.
pub const MAX_NESTING: usize = 32;
/// Levels of the syntax tree (`a.b.c == 1` is 4): how deep evaluation recurses, on a request's
/// thread (2 MiB of stack).
pub const MAX_DEPTH: usize = 48;
/// Comprehensions (`all`, `exists`, `exists_one`, `map`, `filter`) inside one another.
pub const MAX_COMPREHENSION_DEPTH: usize = 2;
/// The estimated worst-case cost of one evaluation: one per node evaluated, a `+` adding what it
/// may copy (one per list entry, one per 256 bytes of a string: see `size`), and a
/// comprehension's body counting once per element its range may hold (a list or map from the
/// request or the claims: [`MAX_ENTRIES`]; a literal: its length; `a + b`: the sum of theirs, up
/// to [`MAX_ENTRIES`]; a `map` or `filter`: its own range's). It is what rejects a comprehension
/// over request data nested in another one (256 × 256 × its body), which the depth bound allows,
/// and lists or strings rebuilt on every round of one.
pub const MAX_COST: u64 = 20_000;
/// Bytes of a regular expression given to `matches`, and the size its compiled form may take
/// (the `regex` crate's `size_limit`, and its lazy DFA's cache).
pub const MAX_PATTERN_BYTES: usize = 1024;
pub const MAX_REGEX_SIZE: usize = 256 * 1024;

/// Bytes of one string that reaches CEL: a header value, a query parameter, a claim, a path
/// capture, a context extension; and of one string or bytes an expression builds with `+` (see
/// `built`).
pub const MAX_STRING_BYTES: usize = 16 * 1024;
/// Entries of one list or map that reaches CEL: the headers, the query parameters, the route's
/// captures, the context extensions, a claim's list or map, the scopes; and of one list an
/// expression builds with `+`.
pub const MAX_ENTRIES: usize = 256;
/// Levels of nested maps and lists in the claims (`claims.a.b` is level 2 below `claims`).
pub const MAX_CLAIM_DEPTH: usize = 8;

/// Why a request's value was refused; the text names the place, never the value.
pub fn string_too_long(place: &str, len: usize) -> String {
    format!("{place} is {len} bytes, over the bound of {MAX_STRING_BYTES}")
}

pub fn too_many_entries(place: &str, len: usize) -> String {
    format!("{place} has {len} entries, over the bound of {MAX_ENTRIES}")
}

pub fn too_deep(place: &str) -> String {
    format!("{place} nests maps and lists deeper than {MAX_CLAIM_DEPTH} levels")
}

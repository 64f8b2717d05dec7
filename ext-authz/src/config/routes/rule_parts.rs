//! The parts of a rule that issue 35 added: a deny rule's answer and what it may not name,
//! `when` conditions (compiled here, once per load), and address lists.

use std::sync::Arc;

use super::super::check::{each, Check, Checked};
use super::super::raw::{RawDenyError, RawRule, RawWhen};
use crate::core::cel::{self, Expression};
use crate::core::decision::ErrorCode;
use crate::core::routes::{parse_cidr, Action, AddressMatch};

/// The longest `error.code` and `error.message` (they go into every denial's JSON body).
const MAX_CODE: usize = 64;
const MAX_MESSAGE: usize = 512;

/// A deny rule answers without a credential and sets nothing upstream: keys that only mean
/// something on an allow rule are refused rather than ignored.
pub fn deny_only(key: &str, r: &RawRule, c: &Check<'_>) -> Checked<()> {
    let mut refused = Ok(());
    let mut refuse = |name: &str, what: &str| {
        refused = c.fail(format!("{key}.{name}"), format!("a deny rule {what}"));
    };
    if r.accept.is_some() {
        refuse(
            "accept",
            "takes no credential: it reads the caller through identity in its conditions, scopes and claims",
        );
    }
    if !r.principals.is_empty() {
        refuse("principals", "matches workloads with a condition: identity.principal == 'spiffe://…'");
    }
    if !r.request_principals.is_empty() {
        refuse("request_principals", "matches users with a condition on identity.claims.iss and identity.claims.sub");
    }
    if r.upstream_credential.is_some() {
        refuse("upstream_credential", "lets nothing through, so it sets no upstream credential");
    }
    refused
}

/// `when:` — each expression compiled (syntax, variables, types, bounds); a problem is reported
/// at `when` (one expression) or `when[j]` (a list), with the position in the expression.
pub fn conditions(key: &str, when: &RawWhen, c: &Check<'_>) -> Checked<Vec<Arc<Expression>>> {
    let compile = |at: String, text: &str| {
        if text.trim().is_empty() {
            return c.fail(at, "an empty condition: write a CEL expression, or leave when out");
        }
        cel::compile(text).map(Arc::new).or_else(|e| c.fail(at, e.to_string()))
    };
    match when {
        RawWhen::One(text) => compile(format!("{key}.when"), text).map(|e| vec![e]),
        RawWhen::Many(list) => each(list, |j, text| compile(format!("{key}.when[{j}]"), text)),
    }
}

/// `client_ips`, `not_client_ips`, `peer_ips`, `not_peer_ips`: CIDRs or single addresses.
pub fn addresses(key: &str, r: &RawRule, c: &Check<'_>) -> Checked<AddressMatch> {
    let list = |name: &str, texts: &[String]| {
        each(texts, |j, text| parse_cidr(text).or_else(|e| c.fail(format!("{key}.{name}[{j}]"), e)))
    };
    let client_ips = list("client_ips", &r.client_ips);
    let not_client_ips = list("not_client_ips", &r.not_client_ips);
    let peer_ips = list("peer_ips", &r.peer_ips);
    let not_peer_ips = list("not_peer_ips", &r.not_peer_ips);
    Ok(AddressMatch {
        client_ips: client_ips?,
        not_client_ips: not_client_ips?,
        peer_ips: peer_ips?,
        not_peer_ips: not_peer_ips?,
    })
}

/// A deny rule's answer: `error.code` (upper snake case; `DENIED` when not set; none of the
/// other built-in codes, which clients read as ours) and `error.message` (`denied by rule
/// <name>` when not set).
pub fn deny_answer(key: &str, name: &str, error: Option<&RawDenyError>, c: &Check<'_>) -> Checked<Action> {
    let error = error.unwrap_or(&RawDenyError { code: None, message: None });
    let code = match error.code.as_deref() {
        None => Ok(ErrorCode::Denied),
        Some(code) => error_code(code).or_else(|problem| c.fail(format!("{key}.error.code"), problem)),
    };
    let message = match error.message.as_deref() {
        None => Ok(Arc::from(format!("denied by rule {name}"))),
        Some(text) if text.trim().is_empty() || text.len() > MAX_MESSAGE || text.chars().any(char::is_control) => c
            .fail(
                format!("{key}.error.message"),
                format!("write a message of 1 to {MAX_MESSAGE} bytes, on one line (no control characters)"),
            ),
        Some(text) => Ok(Arc::from(text)),
    };
    Ok(Action::Deny { code: code?, message: message? })
}

fn error_code(code: &str) -> Result<ErrorCode, String> {
    let upper_snake = code
        .split('_')
        .all(|word| !word.is_empty() && word.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()))
        && code.starts_with(|ch: char| ch.is_ascii_uppercase());
    if !upper_snake || code.len() > MAX_CODE {
        return Err(format!(
            "{code:?} is not an error code: upper snake case (CONTRACTOR_READ_ONLY), at most {MAX_CODE} characters"
        ));
    }
    match ErrorCode::BUILT_IN.iter().find(|built_in| built_in.as_str() == code) {
        Some(ErrorCode::Denied) => Ok(ErrorCode::Denied),
        Some(_) => Err(format!(
            "{code} is one of ext-authz's own codes, which clients read as ext-authz's answers: name the rule's \
             reason (or leave code out for DENIED)"
        )),
        None => Ok(ErrorCode::Custom(Arc::from(code))),
    }
}

//! What a decision was made of besides the decision itself — the policy and route that
//! answered, the shadow rules' and policies' would-be answers, the conditions that could not be
//! evaluated — for the decision log, metrics, spans and `explain`. Names are borrowed from the
//! engine; nothing here is allocated unless a shadow rule or a failing condition adds to it.

use super::{Decision, ErrorCode};

#[derive(Debug)]
pub struct Verdict<'e> {
    pub decision: Decision,
    /// The named policy that answered (`None`: `routes`, or none could be chosen).
    pub policy: Option<&'e str>,
    /// The rule that answered (an allow rule, or the deny rule that denied), `public` or
    /// `default`; `None` when the request was refused before routing (a bad path, an unknown
    /// policy).
    pub route: Option<&'e str>,
    pub notes: Notes<'e>,
}

#[derive(Debug, Default)]
pub struct Notes<'e> {
    pub shadow: Vec<ShadowHit<'e>>,
    pub condition_errors: Vec<ConditionFailure<'e>>,
}

/// A shadow rule that would have answered, or a shadow policy's would-be answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowHit<'e> {
    /// The policy's name (`routes` for the `routes` section's rules).
    pub policy: &'e str,
    /// The rule (`public`, `default` for a shadow policy's answer from those).
    pub rule: &'e str,
    pub would: Would,
    /// The error code a would-be denial carries.
    pub code: Option<ErrorCode>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Would {
    Allow,
    Deny,
}

impl Would {
    pub fn as_str(self) -> &'static str {
        match self {
            Would::Allow => "allow",
            Would::Deny => "deny",
        }
    }
}

/// A condition whose evaluation failed (the rule denied, or would have for a shadow rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionFailure<'e> {
    pub policy: &'e str,
    pub rule: &'e str,
    /// Its index in the rule's `when` list.
    pub index: usize,
    /// A would-be answer (a shadow rule's, or in a shadow policy's run): counted apart, never
    /// as a denial.
    pub shadow: bool,
    /// The evaluation error's text (types and keys, never a value), for the log.
    pub error: String,
}

impl<'e> ShadowHit<'e> {
    /// The would-be answer `decision` of `rule` in `policy`. A login to start is a denial
    /// (`UNAUTHORIZED`), as is an answer that could not be made (`UNAVAILABLE`).
    pub fn of(policy: &'e str, rule: &'e str, decision: &Decision) -> ShadowHit<'e> {
        let (would, code) = match decision {
            Decision::Allow(_) => (Would::Allow, None),
            Decision::Deny(deny) => (Would::Deny, Some(deny.code.clone())),
            Decision::Login => (Would::Deny, Some(ErrorCode::Unauthorized)),
            Decision::Unavailable(_) | Decision::UnknownKey { .. } => (Would::Deny, Some(ErrorCode::Unavailable)),
        };
        ShadowHit { policy, rule, would, code }
    }
}

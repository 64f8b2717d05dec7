//! The `code` of the uniform JSON error: what a denial says, and what a deny rule's `error`
//! names (a leaf, so rules and the decision share it without depending on each other).

use std::sync::Arc;

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

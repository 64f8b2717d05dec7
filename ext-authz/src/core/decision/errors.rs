//! A denial: its code, status and message, and the uniform JSON error body and headers it is
//! answered with.

use serde_json::json;

pub use crate::core::error_code::ErrorCode;

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

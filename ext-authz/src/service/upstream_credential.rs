//! The check's last step for a rule that names an upstream credential.

use crate::core::decision::{deny, Allow, Deny, ErrorCode};
use crate::core::request::AuthRequest;
use crate::upstream::UpstreamCredentials;

/// Sets the rule's upstream credential on an allowed request, overwriting the client's copy of
/// its header (and never also removing it: Envoy would remove ours). Without a credential the
/// request is refused with 503 rather than sent upstream without one.
pub(super) async fn add_upstream_credential(
    upstream: &UpstreamCredentials,
    index: usize,
    allow: &mut Allow,
    request: &AuthRequest,
) -> Result<(), Deny> {
    match upstream.header(index).await {
        Ok((name, value)) => {
            allow.set_header(name, value);
            Ok(())
        }
        Err(e) => {
            tracing::warn!(request_id = request.request_id(), "{e}");
            let mut refused = deny(
                503,
                ErrorCode::Unavailable,
                "the upstream's credential is unavailable; retry later",
                None,
                "upstream_credential",
            );
            refused.headers.push(("retry-after", "2".into()));
            Err(refused)
        }
    }
}

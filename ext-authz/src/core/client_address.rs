//! The client's address: the peer Envoy saw, or the address a configured number of trusted
//! `X-Forwarded-For` hops in front of Envoy reported.
//!
//! SKELETON (issue 35): the "gateway" helper implements it; the policy code calls it.

use std::net::IpAddr;

use super::request::AuthRequest;

/// The client address of `request` when `trusted_hops` proxies in front of Envoy append to
/// `X-Forwarded-For` (0: the peer address itself).
pub fn client(request: &AuthRequest, trusted_hops: u32) -> Option<IpAddr> {
    let _ = (request, trusted_hops);
    todo!("gateway helper")
}

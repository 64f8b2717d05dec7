//! `ext-authz`: Envoy's external authorization service.
#![forbid(unsafe_code)]

pub mod core;
pub mod testing;

//! `ext-authz`: Envoy's external authorization service.
#![forbid(unsafe_code)]

pub mod config;
pub mod core;
pub mod testing;

//! `ext-authz`: Envoy's external authorization service.
#![forbid(unsafe_code)]

pub mod app;
pub mod config;
pub mod core;
pub mod grpc;
pub mod http;
pub mod jwks;
pub mod key_files;
pub mod metrics;
pub mod oidc;
pub mod outcome;
pub mod provider_body;
pub mod service;
/// Signing keys and JWKS for tests: only with the `test-util` feature (test code, e2e, bench).
#[cfg(any(test, feature = "test-util"))]
pub mod testing;

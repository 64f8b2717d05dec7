//! `ext-authz`: Envoy's external authorization service.
//!
//! - [`core`]: pure — requests and paths, routes, JWT verification, API keys, identity
//!   headers, the decision, the token cache, and the login session rules (sealing, cookies,
//!   login/logout protocol, revocations). No network, no clock of its own.
//! - [`service`]: the authorizer (policy + keys + API keys + cache + logins), resolving the
//!   engine's intermediate requests into an [`outcome::Outcome`].
//! - [`grpc`], [`http`]: the protocol adapters (Envoy's gRPC and HTTP ext_authz modes, health,
//!   metrics); they see only final outcomes.
//! - [`jwks`], [`provider_body`]: key sets from providers (discovery, URIs, files), bounded.
//! - [`oidc`]: browser logins — provider calls, callback, sessions, refresh, logout, stores.
//! - [`config`]: the config file, one module per section, every problem reported; it builds
//!   the components' own settings types ([`jwks::ProviderKeys`], [`key_files::ApiKeysLocation`],
//!   [`oidc::OidcSettings`], the core's engine). Only `config` and [`app`] know the whole config.
//! - [`key_files`]: API key files; [`secret`]: secret bytes that never print.
//! - [`app`]: start, reload (through `shared::reload`), stop; `app::policy` turns a config into
//!   the policy in service.
//! - [`metrics`]; `testing` only with the `test-util` feature.
#![forbid(unsafe_code)]

pub mod app;
pub mod config;
pub mod core;
pub mod decision_log;
pub mod grpc;
pub mod http;
pub mod jwks;
pub mod key_files;
pub mod metrics;
pub mod oauth;
pub mod oidc;
pub mod outcome;
pub mod provider_body;
pub mod secret;
pub mod service;
/// Signing keys and JWKS for tests: only with the `test-util` feature (test code, e2e, bench).
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
pub mod upstream;
pub mod yaml_words;

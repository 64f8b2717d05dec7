//! `ratelimit`: Envoy's global rate limit service, a drop-in for envoyproxy/ratelimit.
//!
//! - [`core`]: pure — config files, descriptor matching, counter keys, verdicts.
//! - [`store`]: counters in memory or Redis behind one trait.
//! - [`service`]: the limiter (core + store + local cache + metrics).
//! - [`grpc`], [`http`]: the protocol adapters.
//! - [`loader`], [`provider`], [`xds`]: config files with hot reload, or an xDS server, and the
//!   one path a config takes into service.
//! - [`local_cache`], [`metrics`], [`validate`] (`ratelimit validate`), [`cli`] (the arguments).
//! - [`settings`] (the top): the reference's environment settings, each declared once in
//!   `settings::vars`, read once at start and handed to each component as its own type;
//!   [`app`]: starting and stopping everything. Only these two know the whole settings.
#![forbid(unsafe_code)]

pub mod app;
pub mod batch;
pub mod cli;
pub mod core;
pub mod grpc;
pub mod http;
pub mod loader;
pub mod local_cache;
pub mod metrics;
pub mod provider;
pub mod service;
pub mod settings;
pub mod store;
pub mod validate;
pub mod xds;

pub use app::{start, start_with_clocks, Running, StartError};

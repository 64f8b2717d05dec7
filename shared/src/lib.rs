//! Plumbing shared by Gatehouse's services, and nothing else: no auth or limit logic lives here.
//!
//! - [`bounded_yaml`]: size, nesting and alias bounds on every YAML file read.
//! - [`file_end`]: telling a whole YAML file from one cut short (the end-of-document marker).
//! - [`reload`]: the one way reloadable files are watched, read off the serving threads and swapped.
//! - [`mod@env`]: settings from the environment through a seam: each declared once (name,
//!   default, parser, help) and read reporting every bad value; `--help` tables from the same
//!   declarations.
//! - [`telemetry`]: tracing with the reference's `LOG_LEVEL` / `LOG_FORMAT`.
//! - [`metrics`]: counters, gauges and histograms in the Prometheus text format.
//! - [`proto`]: JSON values as protobuf Structs (Envoy dynamic metadata).
//! - [`health`]: component health driving `grpc.health.v1` and HTTP health checks.
//! - [`shutdown`]: the signals that stop a service.
//! - [`tls`]: TLS for gRPC servers, certificates reloaded when their files change.
//! - [`redis`]: Redis connections (single, cluster, sentinel; TCP, unix, TLS, auth).
//! - [`serve`]: gRPC and HTTP servers on pre-bound listeners: graceful stop that waits for calls
//!   in progress (never for idle connections), HTTP header-read timeouts, the open-files limit.
//! - [`clock`]: the injected "now" both services read.
//! - `testing` (only with the `test-util` feature): real Redis, OpenID Provider and Envoy
//!   processes for tests, free ports, the one poll loop (`eventually`), the one test clock (`TestClock`).
#![forbid(unsafe_code)]

pub mod bounded_yaml;
pub mod clock;
pub mod env;
pub mod file_end;
pub mod health;
pub mod metrics;
pub mod proto;
pub mod redis;
pub mod reload;
pub mod serve;
pub mod shutdown;
pub mod spiffe;
pub mod statsd;
pub mod telemetry;
/// Test support (real Redis, OpenID Provider and Envoy processes, free ports): only with the
/// `test-util` feature, which only test code and the e2e/bench crates turn on.
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
pub mod tls;
pub mod traces;

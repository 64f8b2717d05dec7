//! The `server:` and `log:` sections.

use std::net::SocketAddr;
use std::time::Duration;

use super::check::{Check, Checked};
use super::raw::{RawLog, RawServer};

/// Where and how the service listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub http_check_prefix: String,
    pub shutdown_delay: Duration,
    pub shutdown_timeout: Duration,
}

/// `server:`: addresses, the HTTP-mode check prefix, shutdown timing.
pub fn server(raw: &RawServer, c: &Check<'_>) -> Checked<ServerSettings> {
    let grpc_addr = c.addr("server.grpc_addr", &raw.grpc_addr);
    let http_addr = c.addr("server.http_addr", &raw.http_addr);
    let http_check_prefix = match raw.http_check_prefix.trim_end_matches('/') {
        p if p.starts_with('/') || p.is_empty() => Ok(p.to_string()),
        p => c.fail("server.http_check_prefix", format!("{p:?} must start with '/'")),
    };
    let shutdown_delay = c.duration("server.shutdown_delay", &raw.shutdown_delay);
    let shutdown_timeout = c.duration("server.shutdown_timeout", &raw.shutdown_timeout);
    Ok(ServerSettings {
        grpc_addr: grpc_addr?,
        http_addr: http_addr?,
        http_check_prefix: http_check_prefix?,
        shutdown_delay: shutdown_delay?,
        shutdown_timeout: shutdown_timeout?,
    })
}

/// `log:`: the level and whether lines are JSON.
pub fn log(raw: &RawLog, c: &Check<'_>) -> Checked<(String, bool)> {
    let level = match shared::telemetry::level_directive(&raw.level) {
        Some(_) => Ok(raw.level.clone()),
        None => c.fail("log.level", format!("{:?} is not trace, debug, info, warn or error", raw.level)),
    };
    let json = match raw.format.as_str() {
        "text" => Ok(false),
        "json" => Ok(true),
        other => c.fail("log.format", format!("{other:?} is not text or json")),
    };
    Ok((level?, json?))
}

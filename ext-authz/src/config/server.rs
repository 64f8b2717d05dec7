//! The `server:` and `log:` sections.

use std::net::SocketAddr;
use std::time::Duration;

use shared::serve::GrpcTimeouts;
use shared::telemetry::LogFormat;
use shared::tls::{AllowedClient, TlsFiles};

use super::check::{Check, Checked};
use super::keys;
use super::raw::{RawLog, RawServer, RawTls};

/// Where and how the service listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub http_check_prefix: String,
    pub shutdown_delay: Duration,
    pub shutdown_timeout: Duration,
    /// `grpc_idle_timeout` (`0s`: none).
    pub grpc_timeouts: GrpcTimeouts,
    /// TLS on the gRPC port, when configured.
    pub grpc_tls: Option<TlsFiles>,
    /// TLS on the HTTP port, when configured.
    pub http_tls: Option<TlsFiles>,
}

/// `server:`: addresses, the HTTP-mode check prefix, shutdown timing, the gRPC idle timeout.
pub fn server(raw: &RawServer, c: &Check<'_>) -> Checked<ServerSettings> {
    let grpc_addr = c.addr("server.grpc_addr", &raw.grpc_addr);
    let http_addr = c.addr("server.http_addr", &raw.http_addr);
    let http_check_prefix = match raw.http_check_prefix.trim_end_matches('/') {
        p if p.starts_with('/') || p.is_empty() => Ok(p.to_string()),
        p => c.fail("server.http_check_prefix", format!("{p:?} must start with '/'")),
    };
    let shutdown_delay = c.duration("server.shutdown_delay", &raw.shutdown_delay);
    let shutdown_timeout = c.duration("server.shutdown_timeout", &raw.shutdown_timeout);
    let grpc_idle = c.duration("server.grpc_idle_timeout", &raw.grpc_idle_timeout);
    let grpc_tls = raw.grpc_tls.as_ref().map(|tls| tls_files(tls, "server.grpc_tls", c)).transpose();
    let http_tls = raw.http_tls.as_ref().map(|tls| tls_files(tls, "server.http_tls", c)).transpose();
    Ok(ServerSettings {
        grpc_addr: grpc_addr?,
        http_addr: http_addr?,
        http_check_prefix: http_check_prefix?,
        shutdown_delay: shutdown_delay?,
        shutdown_timeout: shutdown_timeout?,
        grpc_timeouts: GrpcTimeouts { idle: Some(grpc_idle?).filter(|idle| !idle.is_zero()), ..Default::default() },
        grpc_tls: grpc_tls?,
        http_tls: http_tls?,
    })
}

/// A TLS section: files (which must exist now, or are listed without secrets; their content
/// is checked at start) and the allowed client identities.
fn tls_files(raw: &RawTls, key: &str, c: &Check<'_>) -> Checked<TlsFiles> {
    let file = |name: &str, value: &str| {
        if value.is_empty() {
            return c.fail(format!("{key}.{name}"), "required");
        }
        c.mounted_file(&format!("{key}.{name}"), value)
    };
    let cert = file("cert_file", &raw.cert_file);
    let private_key = file("key_file", &raw.key_file);
    let client_ca = raw.client_ca_file.as_deref().map(|ca| file("client_ca_file", ca)).transpose();
    let needs_ca = if !raw.allowed_clients.is_empty() && raw.client_ca_file.is_none() {
        c.fail(format!("{key}.allowed_clients"), "needs client_ca_file (client certificates)")
    } else {
        Ok(())
    };
    let allowed_clients = super::check::each(&raw.allowed_clients, |i, text| {
        AllowedClient::parse(text).or_else(|e| c.fail(format!("{key}.allowed_clients[{i}]"), e.to_string()))
    });
    needs_ca?;
    Ok(TlsFiles { cert: cert?, key: private_key?, client_ca: client_ca?, allowed_clients: allowed_clients? })
}

/// `log:`: the level and whether lines are JSON.
pub fn log(raw: &RawLog, c: &Check<'_>) -> Checked<(String, bool)> {
    let level = match shared::telemetry::level_directive(&raw.level) {
        Some(_) => Ok(raw.level.clone()),
        None => c.fail("log.level", format!("{:?} is not trace, debug, info, warn or error", raw.level)),
    };
    let json = c.choice("log.format", &keys::LOG_FORMAT, &raw.format).map(|format| format == LogFormat::Json);
    Ok((level?, json?))
}

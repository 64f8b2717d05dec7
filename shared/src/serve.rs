//! Serving on pre-bound listeners until a stop signal, so that `main` and tests share one code
//! path and tests can bind port 0 and read the address back.

mod first_bytes;
mod grpc;
mod http1;
pub mod unary;

pub use first_bytes::FIRST_BYTES_WITHIN;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub use grpc::{grpc_server, CountStreams, GrpcRouter, GrpcServer, GrpcTimeouts};
pub use http1::HttpTimeouts;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// The running servers and background tasks of a service, stopped together.
pub struct Servers {
    stopping: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    calls: Calls,
}

impl Default for Servers {
    fn default() -> Self {
        Servers { stopping: watch::channel(false).0, tasks: Vec::new(), calls: Calls::default() }
    }
}

/// The gRPC calls in progress, so that a graceful stop waits for calls, never for idle
/// connections: gRPC clients (Envoy above all) keep connections open between calls, and a
/// connection that never finished its HTTP/2 handshake would otherwise hold a shutdown for the
/// whole `SHUTDOWN_TIMEOUT`. A service's handlers hold a [`CallGuard`] while they work.
#[derive(Clone, Default)]
pub struct Calls(Arc<CallsState>);

#[derive(Default)]
struct CallsState {
    count: AtomicUsize,
    none_left: Notify,
}

/// One call in progress; dropping it ends the call.
pub struct CallGuard(Arc<CallsState>);

impl Calls {
    pub fn start(&self) -> CallGuard {
        self.0.count.fetch_add(1, Ordering::SeqCst);
        CallGuard(self.0.clone())
    }

    /// Resolves once no call is in progress, and still none a moment later (a call that
    /// raced the stop on an open connection gets that moment to show up).
    async fn drained(&self) {
        self.none_in_progress().await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        self.none_in_progress().await;
    }

    /// Resolves when no call is in progress.
    async fn none_in_progress(&self) {
        loop {
            // Created before the check, so a call ending in between still wakes it.
            let ended = self.0.none_left.notified();
            if self.0.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            ended.await;
        }
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.none_left.notify_waiters();
        }
    }
}

impl Servers {
    /// The signal every server and task watches to stop.
    pub fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// The counter of gRPC calls in progress, for the services' handlers.
    pub fn calls(&self) -> Calls {
        self.calls.clone()
    }

    pub fn push(&mut self, task: JoinHandle<()>) {
        self.tasks.push(task);
    }

    /// Graceful stop: report `component` unhealthy first, wait `delay` so load balancers notice,
    /// stop accepting, then let in-flight calls finish within `timeout` (warning on overrun).
    pub async fn shutdown(
        self,
        health: &crate::health::Health,
        component: &'static str,
        delay: std::time::Duration,
        timeout: std::time::Duration,
    ) {
        health.set(component, false);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let _ = self.stopping.send(true);
        let drain = async {
            for task in self.tasks {
                let _ = task.await;
            }
        };
        if tokio::time::timeout(timeout, drain).await.is_err() {
            tracing::warn!(?timeout, "in-flight calls did not finish in time; stopping anyway");
        }
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
pub async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|&s| s).await;
}

/// Serves a gRPC router (built from [`grpc_server`]); on stop, stops accepting, lets the calls
/// in progress finish, then closes every connection (idle ones do not hold the stop). A
/// connection idle for `timeouts.idle` is closed on the way (see [`GrpcTimeouts`]).
pub fn grpc(
    router: GrpcRouter,
    listener: TcpListener,
    timeouts: GrpcTimeouts,
    calls: Calls,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    use tokio_stream::StreamExt;
    let incoming = tonic::transport::server::TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .map(|accepted| accepted.map(|stream| first_bytes::FirstBytes::new(stream, FIRST_BYTES_WITHIN)));
    grpc::serve(router, incoming, timeouts, calls, stop)
}

/// Serves an axum router with the default [`HttpTimeouts`]; on stop, stops accepting, closes
/// idle connections and lets in-flight requests finish.
pub fn http(router: axum::Router, listener: TcpListener, stop: watch::Receiver<bool>) -> JoinHandle<()> {
    http1::serve(router, listener, HttpTimeouts::default(), None, stop)
}

/// [`http`] over TLS whose certificate follows its files (see [`crate::tls`]).
pub fn http_tls(
    router: axum::Router,
    listener: TcpListener,
    tls: std::sync::Arc<crate::tls::ReloadingServer>,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    http1::serve(router, listener, HttpTimeouts::default(), Some(tls), stop)
}

/// Raises the soft limit on open files to the hard limit, so connections and config files do
/// not run out of descriptors at the common default of 1024 (a few hundred idle clients would
/// otherwise make every port, and even config reloads, fail with "Too many open files").
/// Logs the limit in force, or why it could not be raised. Called once at start.
pub fn raise_open_files_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(limit, "open files limit (soft) raised to the hard limit"),
        Err(e) => tracing::warn!("cannot raise the open files limit, keeping it: {e}"),
    }
}

/// Why a health probe failed, said in full: a container's health log is often all an operator
/// sees.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{addr} is not a socket address")]
    Address { addr: String },
    #[error("cannot connect to {addr}: {source} (is the service running, on this port?)")]
    Connect { addr: String, source: std::io::Error },
    #[error("{addr} did not answer: {source}")]
    Io { addr: String, source: std::io::Error },
    #[error("GET {path} on {addr} answered {status}: {body}")]
    Status { addr: String, path: String, status: String, body: String },
}

/// A container health probe: `GET path` on `addr` over plain HTTP/1.1 with a short timeout;
/// Ok on status 200, else why not. For images without curl (`<binary> healthcheck`).
pub fn probe(addr: &str, path: &str) -> Result<(), ProbeError> {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    let timeout = std::time::Duration::from_secs(2);
    let target = addr
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| ProbeError::Address { addr: addr.to_string() })?;
    let mut stream = std::net::TcpStream::connect_timeout(&target, timeout)
        .map_err(|source| ProbeError::Connect { addr: addr.to_string(), source })?;
    let io = |source| ProbeError::Io { addr: addr.to_string(), source };
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(io)?;
    let mut answer = Vec::new();
    stream.take(4096).read_to_end(&mut answer).map_err(io)?;
    let text = String::from_utf8_lossy(&answer);
    let status_line = text.lines().next().unwrap_or_default();
    if status_line.starts_with("HTTP/1.1 200") {
        return Ok(());
    }
    let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body).trim();
    Err(ProbeError::Status {
        addr: addr.to_string(),
        path: path.to_string(),
        status: if status_line.is_empty() { "nothing".into() } else { status_line.to_string() },
        body: body.chars().take(200).collect(),
    })
}

/// Binds `host:port`; `what` names the listener in the error.
pub async fn bind(what: &'static str, host: &str, port: u16) -> Result<TcpListener, BindError> {
    let error = |unresolved, source| BindError { what, address: format!("{host}:{port}"), source, unresolved };
    // Resolved apart from the bind, so that a host naming nothing (the settings' fault) is told
    // from a port in use or refused (the machine's state).
    let addresses: Vec<std::net::SocketAddr> = match tokio::net::lookup_host((host, port)).await {
        Ok(found) => found.collect(),
        Err(source) => return Err(error(true, source)),
    };
    if addresses.is_empty() {
        let source = std::io::Error::new(std::io::ErrorKind::NotFound, "the host resolves to no address");
        return Err(error(true, source));
    }
    TcpListener::bind(addresses.as_slice()).await.map_err(|source| error(false, source))
}

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {what} address {address}: {source}")]
pub struct BindError {
    pub what: &'static str,
    pub address: String,
    pub source: std::io::Error,
    /// The host did not resolve: a settings fault, where a port in use is not.
    pub unresolved: bool,
}

/// `:9090` → `("0.0.0.0", 9090)`, `host:port` → `(host, port)`, `[::1]:9090` → `("::1", 9090)`.
pub fn split_host_port(address: &str) -> Option<(String, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    Some((host.to_string(), port.parse().ok()?))
}

/// Serves a gRPC router on a unix socket (as [`grpc`] does).
pub fn grpc_unix(
    router: GrpcRouter,
    listener: tokio::net::UnixListener,
    timeouts: GrpcTimeouts,
    calls: Calls,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    grpc::serve(router, incoming, timeouts, calls, stop)
}

/// Binds a unix socket at `path`, replacing a stale socket file left by an earlier run.
pub fn bind_unix(path: &std::path::Path) -> Result<tokio::net::UnixListener, BindError> {
    let error =
        |source| BindError { what: "gRPC unix socket", address: path.display().to_string(), source, unresolved: false };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) => {
            std::fs::remove_file(path).map_err(error)?;
        }
        _ => {}
    }
    tokio::net::UnixListener::bind(path).map_err(error)
}

/// Serves a gRPC router over TLS whose certificate follows its files (see [`crate::tls`]),
/// as [`grpc`] does.
pub fn grpc_tls(
    router: GrpcRouter,
    listener: TcpListener,
    tls: std::sync::Arc<crate::tls::ReloadingServer>,
    timeouts: GrpcTimeouts,
    calls: Calls,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let incoming = tls.incoming(listener, stop.clone());
    grpc::serve(router, incoming, timeouts, calls, stop)
}

#[cfg(test)]
mod tests {
    use super::split_host_port;

    #[test]
    fn addresses() {
        assert_eq!(split_host_port(":19001"), Some(("0.0.0.0".into(), 19001)));
        assert_eq!(split_host_port("127.0.0.1:9090"), Some(("127.0.0.1".into(), 9090)));
        assert_eq!(split_host_port("[::1]:9090"), Some(("::1".into(), 9090)));
        assert_eq!(split_host_port("9090"), None);
    }

    /// A host that names nothing is told from a port in use: the first is the settings' fault.
    #[tokio::test]
    async fn an_unresolved_host_is_told_from_a_taken_port() {
        let unknown = super::bind("HTTP", "no-such-host.invalid", 0).await.unwrap_err();
        assert!(unknown.unresolved, "{unknown}");
        assert!(unknown.to_string().starts_with("cannot listen on HTTP address no-such-host.invalid:0: "), "{unknown}");
        let taken = super::bind("HTTP", "127.0.0.1", 0).await.unwrap();
        let port = taken.local_addr().unwrap().port();
        let in_use = super::bind("HTTP", "127.0.0.1", port).await.unwrap_err();
        assert!(!in_use.unresolved, "{in_use}");
        assert_eq!(in_use.source.kind(), std::io::ErrorKind::AddrInUse);
    }
}

//! Starting and stopping the whole service: store, config loading and hot reload, the gRPC,
//! HTTP, debug and metrics servers, health and graceful shutdown. Used by `main` and by tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use shared::health::Health;
use shared::redis::RedisSetupError;
use shared::serve::{self, bind, split_host_port, BindError, Servers};
use shared::tls::{ReloadingServer, TlsError};
use tokio::net::TcpListener;

mod backend;

use crate::grpc::RateLimitGrpc;
use crate::loader::ConfigTree;
use crate::metrics::Metrics;
use crate::provider::{FileProvider, Installer};
use crate::service::{Clock, Clocks, RateLimiter};
use crate::settings::{Backend, Settings};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener that cannot be opened, with the settings that place it: a host that does
    /// not resolve is a settings error (exit 64), a port in use or refused is not (exit 1); either
    /// way the line says what to change.
    #[error("{source} (set by {settings})")]
    Bind { settings: &'static str, source: BindError },
    #[error("gRPC server TLS (GRPC_SERVER_TLS_CERT, GRPC_SERVER_TLS_KEY, GRPC_CLIENT_TLS_CACERT): {0}")]
    Tls(#[from] TlsError),
    #[error("PROMETHEUS_ADDR {0:?} is not host:port or :port")]
    MetricsAddress(String),
    #[error(transparent)]
    Redis(#[from] RedisSetupError),
    #[error(
        "Redis at {url} did not answer PING within REDIS_STARTUP_MAX_ELAPSED_TIME ({elapsed:?}): {last_error}{hint}"
    )]
    RedisUnreachable { url: String, elapsed: Duration, last_error: String, hint: &'static str },
}

impl StartError {
    /// Whether the settings are at fault (exit 64, as for a settings error): values the
    /// settings check passed but the component refused, such as a certificate that does not
    /// parse or a listen host that names nothing. Most such values are refused by the settings
    /// check already; a host is resolved only here, where it is used.
    pub fn is_settings(&self) -> bool {
        match self {
            StartError::Tls(_) | StartError::MetricsAddress(_) | StartError::Redis(_) => true,
            StartError::Bind { source, .. } => source.unresolved,
            StartError::RedisUnreachable { .. } => false,
        }
    }
}

/// A started service.
pub struct Running {
    /// The gRPC TCP address; `None` when serving on `GRPC_UDS`.
    pub grpc_addr: Option<SocketAddr>,
    pub http_addr: SocketAddr,
    pub debug_addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    pub limiter: Arc<RateLimiter>,
    pub health: Health,
    servers: Servers,
    shutdown_delay: Duration,
    shutdown_timeout: Duration,
}

impl Running {
    /// Graceful stop: report not serving first, wait `SHUTDOWN_DELAY` so load balancers notice,
    /// stop accepting, let in-flight calls finish (within `SHUTDOWN_TIMEOUT`), then return.
    pub async fn shutdown(self) {
        self.servers.shutdown(&self.health, "sigterm", self.shutdown_delay, self.shutdown_timeout).await;
    }
}

/// Starts everything with a seconds clock (tests that move time by whole seconds; token buckets
/// then see whole seconds too). The service itself runs [`start_with_clocks`] with
/// [`Clocks::system`].
pub async fn start(settings: Settings, clock: Clock) -> Result<Running, StartError> {
    start_with_clocks(settings, Clocks::from_seconds(clock)).await
}

/// Starts everything. Like the reference, the store is reached and the first config load is
/// attempted before any port is opened.
pub async fn start_with_clocks(settings: Settings, clocks: Clocks) -> Result<Running, StartError> {
    let clock = clocks.seconds.clone();
    for warning in &settings.warnings {
        tracing::warn!("{warning}");
    }
    let mut servers = Servers::default();
    let statsd = settings.statsd.as_ref().map(|statsd_settings| {
        let statsd = shared::statsd::Statsd::default();
        let transport = format!("{:?}", statsd_settings.transport).to_lowercase();
        tracing::info!(host = %statsd_settings.host, port = statsd_settings.port, %transport,
            every = ?statsd_settings.flush_interval, "sending stats to statsd");
        servers.push(tokio::spawn(statsd.clone().run(statsd_settings.clone(), servers.stop_signal())));
        statsd
    });
    let metrics = Metrics::new(settings.response_time_in_millis, statsd);
    let (health, health_server, follow_health) = Health::new("ratelimit");
    tokio::spawn(follow_health);
    health.set("sigterm", true);
    if settings.healthy_with_at_least_one_config_loaded {
        health.set("config", false);
    }

    let store = backend::open(&settings, &health, &mut servers, &clock).await?;

    let limiter = Arc::new(RateLimiter::new(store, settings.limiter.clone(), metrics, health.clone(), clocks));

    let installer = Installer::new(
        limiter.clone(),
        settings.reloadable.clone(),
        health.clone(),
        settings.healthy_with_at_least_one_config_loaded,
    );
    // Like the reference, serve only once the provider has had its first say (a load or an
    // error), unless FORCE_START_WITHOUT_INITIAL_CONFIG.
    let (first_event, first_event_seen) = tokio::sync::oneshot::channel();
    let provider = match &settings.xds {
        None => {
            let files = FileProvider {
                tree: ConfigTree::new(settings.runtime.clone()),
                installer,
                poll_interval: settings.runtime.poll_interval,
            };
            tokio::spawn(files.run(first_event, servers.stop_signal()))
        }
        Some(xds) => tokio::spawn(crate::xds::run(xds.clone(), installer, first_event, servers.stop_signal())),
    };
    servers.push(provider);
    if settings.force_start_without_initial_config {
        if limiter.loaded().is_none() {
            tracing::warn!(
                "serving before a config loads (FORCE_START_WITHOUT_INITIAL_CONFIG): calls fail until one does"
            );
        }
    } else {
        let _ = first_event_seen.await;
    }
    if settings.backend == Backend::Redis {
        servers.push(tokio::spawn(backend::probe(limiter.clone(), servers.stop_signal())));
    }

    let grpc = match &settings.grpc_uds {
        Some(path) => GrpcListener::Unix(serve::bind_unix(path).map_err(placed("GRPC_UDS"))?),
        None => GrpcListener::Tcp(
            bind("gRPC", &settings.grpc_host, settings.grpc_port).await.map_err(placed("GRPC_HOST and GRPC_PORT"))?,
        ),
    };
    let http = bind("HTTP", &settings.http_host, settings.http_port).await.map_err(placed("HOST and PORT"))?;
    let debug =
        bind("debug", &settings.debug_host, settings.debug_port).await.map_err(placed("DEBUG_HOST and DEBUG_PORT"))?;
    let metrics_listener = match settings.use_prometheus {
        true => {
            let (host, port) = split_host_port(&settings.prometheus_addr)
                .ok_or_else(|| StartError::MetricsAddress(settings.prometheus_addr.clone()))?;
            Some(bind("metrics", &host, port).await.map_err(placed("PROMETHEUS_ADDR"))?)
        }
        false => None,
    };
    let address = |l: &TcpListener| l.local_addr().expect("a bound listener has an address");
    let grpc_addr = match &grpc {
        GrpcListener::Tcp(listener) => Some(address(listener)),
        GrpcListener::Unix(_) => None,
    };
    let (http_addr, debug_addr) = (address(&http), address(&debug));
    let metrics_addr = metrics_listener.as_ref().map(address);

    let grpc_server = serve::grpc_server()
        .max_connection_age(settings.grpc_max_connection_age)
        .max_connection_age_grace(settings.grpc_max_connection_age_grace)
        .add_service(health_server)
        .add_service(RateLimitGrpc::server(limiter.clone(), servers.calls()));
    let timeouts = settings.grpc_timeouts;
    match (grpc, &settings.grpc_tls) {
        (GrpcListener::Unix(listener), _) => {
            servers.push(serve::grpc_unix(grpc_server, listener, timeouts, servers.calls(), servers.stop_signal()))
        }
        (GrpcListener::Tcp(listener), None) => {
            servers.push(serve::grpc(grpc_server, listener, timeouts, servers.calls(), servers.stop_signal()))
        }
        (GrpcListener::Tcp(listener), Some(files)) => {
            let tls = Arc::new(ReloadingServer::new(files.clone())?);
            let counter = limiter.metrics().clone();
            let watching = tls.clone().watch(settings.runtime.poll_interval, counter, servers.stop_signal());
            servers.push(tokio::spawn(watching));
            servers.push(serve::grpc_tls(grpc_server, listener, tls, timeouts, servers.calls(), servers.stop_signal()));
        }
    }
    servers.push(serve::http(crate::http::main_router(limiter.clone(), health.clone()), http, servers.stop_signal()));
    servers.push(serve::http(crate::http::debug_router(limiter.clone()), debug, servers.stop_signal()));
    if let Some(listener) = metrics_listener {
        let router = crate::http::metrics_router(limiter.clone(), &settings.prometheus_path);
        servers.push(serve::http(router, listener, servers.stop_signal()));
    }
    let grpc_uds = settings.grpc_uds.as_ref().map(|p| p.display().to_string());
    tracing::info!(?grpc_addr, ?grpc_uds, %http_addr, %debug_addr, ?metrics_addr, "ratelimit serving");

    Ok(Running {
        grpc_addr,
        http_addr,
        debug_addr,
        metrics_addr,
        limiter,
        health,
        servers,
        shutdown_delay: settings.shutdown_delay,
        shutdown_timeout: settings.shutdown_timeout,
    })
}

/// A listener's error, with the settings that place it.
fn placed(settings: &'static str) -> impl FnOnce(BindError) -> StartError {
    move |source| StartError::Bind { settings, source }
}

/// Where gRPC is served: TCP (`GRPC_HOST:GRPC_PORT`) or a unix socket (`GRPC_UDS`).
enum GrpcListener {
    Tcp(TcpListener),
    Unix(tokio::net::UnixListener),
}

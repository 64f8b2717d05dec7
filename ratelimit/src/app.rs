//! Starting and stopping the whole service: store, config loading and hot reload, the gRPC,
//! HTTP, debug and metrics servers, health and graceful shutdown. Used by `main` and by tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shared::health::Health;
use shared::redis::{RedisPool, RedisSetupError};
use shared::serve::{self, bind, split_host_port, BindError, Servers};
use shared::tls::{ReloadingServer, TlsError};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::grpc::RateLimitGrpc;
use crate::loader::ConfigTree;
use crate::metrics::Metrics;
use crate::provider::{FileProvider, Installer};
use crate::service::{Clock, Clocks, RateLimiter};
use crate::settings::{Backend, Settings};
use crate::store::{CounterStore, MemoryStore, RedisStore};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener that cannot be opened, with the settings that place it (a port in use is
    /// no settings error, an unknown host is: either way the line says what to change).
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
    /// parse. Most such values are refused by the settings check already.
    pub fn is_settings(&self) -> bool {
        matches!(self, StartError::Tls(_) | StartError::MetricsAddress(_) | StartError::Redis(_))
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

    let store: Arc<dyn CounterStore> = match settings.backend {
        Backend::Memory => {
            if settings.backend_defaulted {
                tracing::warn!("no BACKEND_TYPE or REDIS_URL set: counting in memory, which suits one instance only; set REDIS_URL for a shared count");
            } else {
                tracing::info!("counting in memory (BACKEND_TYPE=memory)");
            }
            let memory = Arc::new(MemoryStore::with_capacity(settings.memory_max_counters));
            servers.push(tokio::spawn(sweep_memory(Arc::downgrade(&memory), clock.clone(), servers.stop_signal())));
            memory
        }
        Backend::Redis => {
            health.set("redis", false);
            let pool = Arc::new(RedisPool::new(&settings.redis)?);
            let per_second = match &settings.redis_per_second {
                Some(per_second) => Some(Arc::new(RedisPool::new(per_second)?)),
                None => None,
            };
            let store = Arc::new(RedisStore::new(pool, per_second));
            connect_with_backoff(store.as_ref(), &settings).await?;
            health.set("redis", true);
            tracing::info!(url = %settings.redis.url, topology = ?settings.redis.topology, "connected to Redis");
            store
        }
    };

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
        servers.push(tokio::spawn(probe_store(limiter.clone(), servers.stop_signal())));
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

/// Retries PING with exponential backoff and jitter, as the reference does at startup.
async fn connect_with_backoff(store: &dyn CounterStore, settings: &Settings) -> Result<(), StartError> {
    let started = Instant::now();
    let mut interval = settings.redis_startup_initial_interval;
    loop {
        match store.ping().await {
            Ok(()) => return Ok(()),
            Err(e) => {
                let elapsed = started.elapsed();
                let limit = settings.redis_startup_max_elapsed;
                if !limit.is_zero() && elapsed >= limit {
                    return Err(StartError::RedisUnreachable {
                        url: settings.redis.url.clone(),
                        elapsed,
                        last_error: e.to_string(),
                        hint: unreachable_hint(settings),
                    });
                }
                let hint = unreachable_hint(settings);
                tracing::warn!(url = %settings.redis.url, retry_in = ?interval, "Redis not reachable yet: {e}{hint}");
                let jittered = interval.mul_f64(0.5 + fastrand::f64());
                tokio::time::sleep(jittered).await;
                interval = (interval * 2).min(settings.redis_startup_max_interval);
            }
        }
    }
}

/// What a Redis that does not answer at startup may be down to, when its settings say unix
/// socket (the reference's default): a `host:port` is refused by the settings check, but a
/// missing or mistyped socket path only shows here, as "No such file or directory".
fn unreachable_hint(settings: &Settings) -> &'static str {
    let unix = |redis: &shared::redis::RedisSettings| redis.socket_type == shared::redis::SocketType::Unix;
    match (unix(&settings.redis), settings.redis_per_second.as_ref().is_some_and(unix)) {
        (true, _) => " (REDIS_URL is a unix socket path, as REDIS_SOCKET_TYPE=unix; for a Redis over TCP set REDIS_SOCKET_TYPE=tcp and REDIS_URL=host:port)",
        (false, true) => " (REDIS_PERSECOND_URL is a unix socket path, as REDIS_PERSECOND_SOCKET_TYPE=unix; for a Redis over TCP set REDIS_PERSECOND_SOCKET_TYPE=tcp)",
        (false, false) => "",
    }
}

async fn probe_store(limiter: Arc<RateLimiter>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => limiter.probe_store().await,
            _ = stop.changed() => return,
        }
    }
}

async fn sweep_memory(store: std::sync::Weak<MemoryStore>, clock: Clock, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(10)) => match store.upgrade() {
                Some(store) => { store.sweep(clock()); }
                None => return,
            },
            _ = stop.changed() => return,
        }
    }
}

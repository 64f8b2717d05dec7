//! Starting and stopping ext-authz: keys and API keys loaded, gRPC and HTTP servers up, config
//! and key files re-read when they change, graceful shutdown. Used by `main` and by tests.
//! A config becomes a policy in `policy` (at start and on every reload alike); `reload` keeps
//! the config and API key files in service.

mod policy;
mod reload;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use shared::health::Health;
use shared::serve::{self, BindError, Servers};
use shared::tls::ReloadingServer;
use tokio::sync::watch;

use crate::config::AuthzConfig;
use crate::core::apikeys::ApiKeyError;
use crate::decision_log::{DecisionLog, LogSink, Reopen};
use crate::grpc::AuthorizationGrpc;
use crate::key_files;
use crate::metrics::Metrics;
use crate::service::{Authorizer, Clock};
use policy::PolicyError;

pub const SERVICE_NAME: &str = "envoy.service.auth.v3.Authorization";

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error("API keys: {0}")]
    ApiKeys(#[from] ApiKeyError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("decision log: cannot open {path}: {source}")]
    DecisionLog { path: String, source: std::io::Error },
    #[error("{section}: {source}")]
    Tls { section: &'static str, source: shared::tls::TlsError },
}

pub struct Running {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub authorizer: Arc<Authorizer>,
    pub health: Health,
    stopping_flag: Arc<AtomicBool>,
    servers: Servers,
    shutdown_delay: Duration,
    shutdown_timeout: Duration,
    /// The decision log's file, when there is one, to reopen on SIGHUP.
    decision_log_file: Option<Reopen>,
}

impl Running {
    /// On SIGHUP (logrotate's `postrotate`): the decision log's file is reopened before its
    /// next line. Nothing else is re-read on a signal: config and key files are watched.
    pub fn hangup(&self) {
        match &self.decision_log_file {
            Some(reopen) => {
                tracing::info!("SIGHUP: reopening the decision log file");
                reopen.request();
            }
            None => tracing::info!("SIGHUP: no decision log file to reopen; ignored"),
        }
    }

    /// Not ready first (health and `/readyz`), then after `shutdown_delay` stop accepting and
    /// let in-flight checks finish within `shutdown_timeout`.
    pub async fn shutdown(self) {
        self.stopping_flag.store(true, Ordering::Relaxed);
        self.authorizer.policy().stop_refresh.send_replace(true);
        self.authorizer.policy().upstream.stop();
        self.servers.shutdown(&self.health, "shutdown", self.shutdown_delay, self.shutdown_timeout).await;
    }
}

pub async fn start(
    config: AuthzConfig,
    env: Arc<HashMap<String, String>>,
    clock: Clock,
) -> Result<Running, StartError> {
    let metrics = Metrics::default();
    let api_keys = key_files::load_any(config.api_keys.as_ref())?;
    tracing::info!(api_keys = api_keys.len(), providers = config.provider_keys.len(), "loading JWT keys");
    let policy = policy::build(&config, None, &metrics, &clock).await?;
    let mut authorizer = Authorizer::new(policy, api_keys, config.cache_size, metrics.clone(), clock);
    let mut decision_log_file = None;
    if let Some(log) = start_decision_log(&config, &metrics)? {
        if matches!(log.settings().to, LogSink::File(_)) {
            decision_log_file = Some(log.reopener());
        }
        authorizer = authorizer.with_decision_log(log);
    }
    let authorizer = Arc::new(authorizer);
    export_token_cache_lookups(&metrics, &authorizer);

    let (health, health_server, follow) = Health::new(SERVICE_NAME);
    tokio::spawn(follow);
    health.set("keys", authorizer.ready());
    let mut servers = Servers::default();
    let stopping_flag = Arc::new(AtomicBool::new(false));

    // Certificates are read before any port opens: a bad pair stops the start with nothing
    // half running.
    let tls = |section: &'static str, files: &shared::tls::TlsFiles, for_http: bool| {
        let made =
            if for_http { ReloadingServer::for_http1(files.clone()) } else { ReloadingServer::new(files.clone()) };
        made.map(Arc::new).map_err(|source| StartError::Tls { section, source })
    };
    let grpc_tls = config.server.grpc_tls.as_ref().map(|files| tls("server.grpc_tls", files, false)).transpose()?;
    let http_tls = config.server.http_tls.as_ref().map(|files| tls("server.http_tls", files, true)).transpose()?;

    let grpc = serve::bind("gRPC", &config.server.grpc_addr.ip().to_string(), config.server.grpc_addr.port()).await?;
    let http = serve::bind("HTTP", &config.server.http_addr.ip().to_string(), config.server.http_addr.port()).await?;
    let grpc_addr = grpc.local_addr().expect("bound");
    let http_addr = http.local_addr().expect("bound");

    let router = serve::grpc_server()
        .add_service(health_server)
        .add_service(AuthorizationGrpc::server(authorizer.clone(), servers.calls()));
    let http_router =
        crate::http::router(authorizer.clone(), config.server.http_check_prefix.clone(), stopping_flag.clone());
    let sections = [
        ("server.grpc_tls", &grpc_tls, &config.server.grpc_tls),
        ("server.http_tls", &http_tls, &config.server.http_tls),
    ];
    for (section, server, files) in sections {
        if let (Some(server), Some(files)) = (server, files) {
            let watching = server.clone().watch(config.reload_interval, metrics.clone(), servers.stop_signal());
            servers.push(tokio::spawn(watching));
            let mutual = if files.client_ca.is_some() { "mutual TLS" } else { "TLS" };
            tracing::info!(cert = %files.cert.display(), allowed_clients = files.allowed_clients.len(), "{section}: {mutual}");
        }
    }
    let (calls, stop) = (servers.calls(), servers.stop_signal());
    let timeouts = config.server.grpc_timeouts;
    servers.push(match grpc_tls {
        None => serve::grpc(router, grpc, timeouts, calls, stop.clone()),
        Some(server) => serve::grpc_tls(router, grpc, server, timeouts, calls, stop.clone()),
    });
    servers.push(match http_tls {
        None => serve::http(http_router, http, stop),
        Some(server) => serve::http_tls(http_router, http, server, stop),
    });
    servers.push(tokio::spawn(follow_readiness(authorizer.clone(), health.clone(), servers.stop_signal())));
    let shutdown_delay = config.server.shutdown_delay;
    let shutdown_timeout = config.server.shutdown_timeout;
    servers.push(tokio::spawn(reload::watch_files(config, env, authorizer.clone(), servers.stop_signal())));
    tracing::info!(%grpc_addr, %http_addr, "ext-authz serving");
    Ok(Running {
        grpc_addr,
        http_addr,
        authorizer,
        health,
        stopping_flag,
        servers,
        shutdown_delay,
        shutdown_timeout,
        decision_log_file,
    })
}

/// Health follows readiness: serving once every provider's keys are loaded.
async fn follow_readiness(authorizer: Arc<Authorizer>, health: Health, mut stop: watch::Receiver<bool>) {
    loop {
        health.set("keys", authorizer.ready());
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// The decision log, when the config turns it on (read at start only).
fn start_decision_log(config: &AuthzConfig, metrics: &Metrics) -> Result<Option<DecisionLog>, StartError> {
    let Some(settings) = &config.decision_log else { return Ok(None) };
    let to = match &settings.to {
        LogSink::Stdout => "stdout".to_string(),
        LogSink::File(path) => path.display().to_string(),
    };
    let log = DecisionLog::start(settings.clone(), metrics.decision_log_dropped.clone())
        .map_err(|source| StartError::DecisionLog { path: to.clone(), source })?;
    let (max_size, max_files) = settings.rotation.map(|r| (r.max_size, r.max_files)).unzip();
    tracing::info!(%to, sample_rate = settings.sample_rate, allows = settings.allows, ?max_size, ?max_files,
        "decision log on");
    Ok(Some(log))
}

/// `ext_authz_token_cache_lookups_total{result}`, read from the cache at each scrape (the
/// cache counts; the hot path touches no metric family).
fn export_token_cache_lookups(metrics: &Metrics, authorizer: &Arc<Authorizer>) {
    let authorizer = Arc::downgrade(authorizer);
    metrics.registry.add_collector(move |out| {
        let Some(authorizer) = authorizer.upgrade() else { return };
        let (hits, misses) = authorizer.token_cache_lookups();
        let series = [(vec![("result", "hit".to_string())], hits), (vec![("result", "miss".to_string())], misses)];
        let help = "Verified-token cache lookups by result.";
        shared::metrics::counter_text(out, "ext_authz_token_cache_lookups_total", help, &series);
    });
}

//! Redis connections for the reference's settings: single, cluster or sentinel topologies,
//! TCP or unix sockets, optional TLS (with client certificates) and `password` or
//! `user:password` auth.
//!
//! A [`RedisPool`] holds `pool_size` multiplexed connections. [`RedisPool::pipeline`] is the hot
//! path: the commands of concurrent callers are gathered into one batch and written at once on
//! the next connection ([`pipelining`]), so Redis reads many commands per system call instead of a
//! few. [`RedisPool::query`] sends a caller's pipeline on its own (rare calls: sessions, probes).
//! A connection that fails is dropped and re-dialled by the next caller, so the pool recovers by
//! itself when Redis comes back. Whether a failed call is an outage or this call's own fault
//! is decided once, here, for every store: [`RedisCallError::is_transient`] ([`error`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{
    AsyncConnectionConfig, ClientTlsConfig, FromRedisValue, Pipeline, RedisConnectionInfo, RedisError, TlsCertificates,
    TlsMode, Value,
};

mod address;
mod error;
mod gather;
mod pipelining;

use address::connection_info;
use error::{is_connection_fault, is_timeout};
pub use error::{is_transient, RedisCallError};
pub use gather::Gather;
pub use pipelining::{PipelineStats, Replies};

/// The most commands one auto-pipelined write carries; a caller whose commands fill the batch
/// sends it at once and the next callers open another.
pub const MAX_PIPELINE_COMMANDS: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketType {
    Tcp,
    Unix,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    Single,
    Cluster,
    Sentinel,
}

/// Connection settings. `auth` values are secrets: never log them.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSettings {
    pub socket_type: SocketType,
    pub topology: Topology,
    /// single: `host:port` or a socket path; cluster: `host:port,host:port,…`;
    /// sentinel: `master-name,host:port,host:port,…`.
    pub url: String,
    pub auth: Option<String>,
    pub sentinel_auth: Option<String>,
    pub tls: bool,
    pub tls_client_cert: Option<PathBuf>,
    pub tls_client_key: Option<PathBuf>,
    pub tls_ca_cert: Option<PathBuf>,
    pub tls_skip_hostname_verification: bool,
    pub pool_size: usize,
    pub timeout: Duration,
    /// The most commands one auto-pipelined write carries ([`MAX_PIPELINE_COMMANDS`]).
    pub max_pipeline_commands: usize,
}

impl RedisSettings {
    /// One Redis over TCP at `url` (`host:port`): no auth, no TLS, `pool_size` connections, the
    /// default batch bound; other fields by struct update.
    pub fn single_tcp(url: String, pool_size: usize, timeout: Duration) -> RedisSettings {
        RedisSettings {
            socket_type: SocketType::Tcp,
            topology: Topology::Single,
            url,
            auth: None,
            sentinel_auth: None,
            tls: false,
            tls_client_cert: None,
            tls_client_key: None,
            tls_ca_cert: None,
            tls_skip_hostname_verification: false,
            pool_size,
            timeout,
            max_pipeline_commands: MAX_PIPELINE_COMMANDS,
        }
    }
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("socket_type", &self.socket_type)
            .field("topology", &self.topology)
            .field("url", &self.url)
            .field("auth", &self.auth.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .field("pool_size", &self.pool_size)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Why settings cannot make a pool. The texts name no setting: the services do, each with its
/// own names (`REDIS_URL` or `REDIS_PERSECOND_URL`, `oidc.session.redis.url`).
#[derive(Debug, thiserror::Error)]
pub enum RedisSetupError {
    #[error("Expected master name and a list of urls for the sentinels, in the format: <redis master name>,<sentinel1>,...,<sentineln>")]
    SentinelUrl,
    #[error("{url:?} is not host:port")]
    Address { url: String },
    /// A unix socket type with an address that reads as `host:port` and names no file: it can
    /// never connect (the reference dials it as a path too, and retries for ever).
    #[error("{address:?} is host:port, but the socket type is unix, which reads it as a socket path")]
    HostPortAsSocketPath { address: String },
    #[error("cannot read {path}: {source}")]
    TlsFile { path: PathBuf, source: std::io::Error },
    #[error("invalid Redis settings: {0}")]
    Redis(#[from] RedisError),
}

pub struct RedisPool {
    connections: Arc<Connections>,
}

/// The connections and the batch being gathered for them; shared with the tasks that send
/// batches.
struct Connections {
    dialer: Dialer,
    slots: Vec<Slot>,
    next: AtomicUsize,
    timeout: Duration,
    batcher: pipelining::Batcher,
}

enum Dialer {
    Client(redis::Client, AsyncConnectionConfig),
    Cluster(redis::cluster::ClusterClient),
    Sentinel(tokio::sync::Mutex<SentinelClient>, AsyncConnectionConfig),
}

#[derive(Clone)]
enum Connection {
    Multiplexed(MultiplexedConnection),
    Cluster(ClusterConnection),
}

#[derive(Default)]
struct Slot {
    /// parking_lot's: held for a clone or a store, never across an await, and without
    /// poisoning (a panic elsewhere must not take every later call down with it).
    connection: parking_lot::Mutex<Option<Connection>>,
    /// Serialises dialling so an outage does not make every waiting request dial at once.
    dialling: tokio::sync::Mutex<()>,
}

impl RedisPool {
    /// Builds the pool without touching the network.
    pub fn new(settings: &RedisSettings) -> Result<RedisPool, RedisSetupError> {
        if settings.tls {
            // rustls needs one process-wide crypto provider; we build with ring only. An error
            // here means one is installed already, which is just as good.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let timeout = settings.timeout;
        let config =
            AsyncConnectionConfig::new().set_connection_timeout(Some(timeout)).set_response_timeout(Some(timeout));
        let auth = redis_auth(settings.auth.as_deref());
        let certs = tls_certificates(settings)?;
        let (master, addresses) = settings.master_and_addresses()?;
        let (dialer, slots) = match settings.topology {
            Topology::Single => {
                let info = connection_info(settings, addresses[0])?.set_redis_settings(auth);
                let client = match certs {
                    Some(certs) => redis::Client::build_with_tls(info, certs)?,
                    None => redis::Client::open(info)?,
                };
                (Dialer::Client(client, config), settings.pool_size.max(1))
            }
            Topology::Cluster => {
                let nodes =
                    addresses.iter().map(|node| connection_info(settings, node)).collect::<Result<Vec<_>, _>>()?;
                let mut builder = redis::cluster::ClusterClientBuilder::new(nodes)
                    .connection_timeout(timeout)
                    .response_timeout(timeout);
                if let Some(user) = auth.username() {
                    builder = builder.username(user);
                }
                if let Some(password) = auth.password() {
                    builder = builder.password(password);
                }
                if settings.tls {
                    let mode =
                        if settings.tls_skip_hostname_verification { TlsMode::Insecure } else { TlsMode::Secure };
                    builder = builder.tls(mode);
                    if let Some(certs) = certs {
                        builder = builder.certs(certs);
                    }
                }
                // One cluster connection multiplexes over every node already.
                (Dialer::Cluster(builder.build()?), 1)
            }
            Topology::Sentinel => {
                // `master_and_addresses` refused a sentinel URL without one.
                let master = master.ok_or(RedisSetupError::SentinelUrl)?;
                let sentinels = addresses
                    .iter()
                    .map(|s| {
                        connection_info(&RedisSettings { tls: false, ..settings.clone() }, s)
                            .map(|info| info.set_redis_settings(redis_auth(settings.sentinel_auth.as_deref())))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let mut node = SentinelNodeConnectionInfo::default().set_redis_connection_info(auth);
                if settings.tls {
                    node = node.set_tls_mode(if settings.tls_skip_hostname_verification {
                        TlsMode::Insecure
                    } else {
                        TlsMode::Secure
                    });
                }
                let client = SentinelClient::build(sentinels, master, Some(node), SentinelServerType::Master)?;
                (Dialer::Sentinel(tokio::sync::Mutex::new(client), config), settings.pool_size.max(1))
            }
        };
        Ok(RedisPool {
            connections: Arc::new(Connections {
                dialer,
                slots: (0..slots).map(|_| Slot::default()).collect(),
                next: AtomicUsize::new(0),
                timeout,
                batcher: pipelining::Batcher::new(settings.max_pipeline_commands),
            }),
        })
    }

    /// Runs the commands `build` adds, auto-pipelined with those of concurrent callers (one
    /// write for all of them; see [`pipelining`]), and returns this caller's replies in order.
    /// An error reply to one command is its [`Value::ServerError`] (see [`reply`]); the call
    /// fails as a whole only when Redis does (connection, timeout). On a cluster, where one
    /// pipeline must not mix keys of different nodes, the commands go as their own pipeline.
    pub async fn pipeline(&self, build: impl FnOnce(&mut Pipeline)) -> Result<Replies, RedisCallError> {
        if self.is_cluster() {
            let mut pipeline = redis::pipe();
            pipeline.ignore_errors();
            build(&mut pipeline);
            // Boxed: a call on its own (dialling, timeout) is a large future, and every caller's
            // future would carry its size although only clusters take this path.
            return Box::pin(self.query(&pipeline)).await;
        }
        pipelining::Batcher::call(&self.connections, build).await
    }

    /// The most commands one auto-pipelined write carries (`max_pipeline_commands`).
    pub fn max_pipeline_commands(&self) -> usize {
        self.connections.batcher.max_commands()
    }

    /// What auto-pipelining has sent so far.
    pub fn pipeline_stats(&self) -> PipelineStats {
        self.connections.batcher.stats()
    }

    /// Runs a pipeline on the next connection (dialling it if needed), within the timeout, on
    /// its own: for rare calls. Hot paths use [`RedisPool::pipeline`].
    pub async fn query<T: FromRedisValue>(&self, pipeline: &Pipeline) -> Result<T, RedisCallError> {
        self.connections.query_on(self.connections.next_slot(), pipeline).await
    }

    /// [`RedisPool::query`] for a pipeline that may safely run twice (reads, `SET`, `DEL`,
    /// `SADD`, `EXPIRE`): after a restart of Redis every pooled connection is dead, and the
    /// first call on each would fail although Redis is back. A call that fails on a broken
    /// connection (not a timeout: that would double the wait) is retried once on a fresh one,
    /// within what is left of the one timeout: the whole call never outlasts it.
    /// Counters (`INCRBY`) must not use this: the first attempt may have counted.
    pub async fn query_idempotent<T: FromRedisValue>(&self, pipeline: &Pipeline) -> Result<T, RedisCallError> {
        // The same slot: its broken connection was just dropped, so the retry dials afresh.
        let connections = &self.connections;
        let slot = connections.next_slot();
        let started = tokio::time::Instant::now();
        match connections.query_within(slot, pipeline, connections.timeout).await {
            Err(e) if is_connection_fault(&e) && !is_timeout(&e) => {
                let left = connections.timeout.saturating_sub(started.elapsed());
                if left.is_zero() {
                    return Err(e);
                }
                tracing::debug!("Redis connection lost, retrying once on a new one: {e}");
                connections.query_within(slot, pipeline, left).await
            }
            result => result,
        }
    }

    /// Whether commands of different keys may live on different nodes, so that one pipeline must
    /// not mix keys (Redis Cluster refuses cross-slot pipelines).
    pub fn is_cluster(&self) -> bool {
        matches!(self.connections.dialer, Dialer::Cluster(_))
    }

    /// `PING`, auto-pipelined like the counters it vouches for; succeeds only on `PONG`.
    pub async fn ping(&self) -> Result<(), RedisCallError> {
        let replies = self
            .pipeline(|p| {
                p.cmd("PING");
            })
            .await?;
        let pong: String = reply(replies.into_iter().next().unwrap_or(Value::Nil))?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(RedisCallError::Redis(RedisError::from((redis::ErrorKind::Client, "unexpected PING answer", pong))))
        }
    }
}

/// One command's reply as `T`; an error reply is the error it carries.
pub fn reply<T: FromRedisValue>(value: Value) -> Result<T, RedisError> {
    match value {
        Value::ServerError(error) => Err(error.into()),
        value => Ok(T::from_redis_value(value)?),
    }
}

impl Connections {
    fn next_slot(&self) -> &Slot {
        &self.slots[self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len()]
    }

    async fn query_on<T: FromRedisValue>(&self, slot: &Slot, pipeline: &Pipeline) -> Result<T, RedisCallError> {
        self.query_within(slot, pipeline, self.timeout).await
    }

    /// One call on `slot`, given up after `within` (the configured timeout, or what is left
    /// of it for a retry).
    async fn query_within<T: FromRedisValue>(
        &self,
        slot: &Slot,
        pipeline: &Pipeline,
        within: Duration,
    ) -> Result<T, RedisCallError> {
        let call = async {
            let mut connection = self.connection(slot).await?;
            let result = match &mut connection {
                Connection::Multiplexed(c) => pipeline.query_async(c).await,
                Connection::Cluster(c) => pipeline.query_async(c).await,
            };
            result.map_err(RedisCallError::from)
        };
        let result = match tokio::time::timeout(within, call).await {
            Ok(result) => result,
            Err(_) => Err(RedisCallError::Timeout(self.timeout)),
        };
        if let Err(e) = &result {
            if is_connection_fault(e) {
                *slot.connection.lock() = None;
            }
        }
        result
    }

    async fn connection(&self, slot: &Slot) -> Result<Connection, RedisError> {
        if let Some(c) = slot.connection.lock().clone() {
            return Ok(c);
        }
        // Dialling is rare and its state is large (the cluster and sentinel handshakes): boxed,
        // it does not inflate every query's future, which the stores move into a box per call
        // (a profile showed that copy as the Redis path's biggest single cost).
        Box::pin(self.dial(slot)).await
    }

    async fn dial(&self, slot: &Slot) -> Result<Connection, RedisError> {
        let _dialling = slot.dialling.lock().await;
        if let Some(c) = slot.connection.lock().clone() {
            return Ok(c);
        }
        let connection = match &self.dialer {
            Dialer::Client(client, config) => {
                Connection::Multiplexed(client.get_multiplexed_async_connection_with_config(config).await?)
            }
            Dialer::Cluster(client) => Connection::Cluster(client.get_async_connection().await?),
            Dialer::Sentinel(client, config) => {
                Connection::Multiplexed(client.lock().await.get_async_connection_with_config(config).await?)
            }
        };
        *slot.connection.lock() = Some(connection.clone());
        Ok(connection)
    }
}

fn redis_auth(auth: Option<&str>) -> RedisConnectionInfo {
    let info = RedisConnectionInfo::default();
    match auth {
        None | Some("") => info,
        Some(auth) => match auth.split_once(':') {
            Some((user, password)) => info.set_username(user).set_password(password),
            None => info.set_password(auth),
        },
    }
}

fn tls_certificates(settings: &RedisSettings) -> Result<Option<TlsCertificates>, RedisSetupError> {
    if !settings.tls || (settings.tls_client_cert.is_none() && settings.tls_ca_cert.is_none()) {
        return Ok(None);
    }
    let read =
        |path: &PathBuf| std::fs::read(path).map_err(|source| RedisSetupError::TlsFile { path: path.clone(), source });
    let client_tls = match (&settings.tls_client_cert, &settings.tls_client_key) {
        (Some(cert), Some(key)) => Some(ClientTlsConfig { client_cert: read(cert)?, client_key: read(key)? }),
        _ => None,
    };
    let root_cert = settings.tls_ca_cert.as_ref().map(read).transpose()?;
    Ok(Some(TlsCertificates { client_tls, root_cert }))
}

//! The counter store at startup and in the background: memory (swept of expired counters) or
//! Redis (reached before any port opens, then probed so that health and outages follow it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use shared::health::Health;
use shared::redis::RedisPool;
use shared::serve::Servers;
use tokio::sync::watch;

use super::StartError;
use crate::service::{Clock, RateLimiter};
use crate::settings::{Backend, Settings};
use crate::store::{CounterStore, MemoryStore, RedisStore};

/// The store the settings choose. A Redis store has answered PING when this returns (retried
/// as the reference does, within `REDIS_STARTUP_MAX_ELAPSED_TIME`).
pub(super) async fn open(
    settings: &Settings,
    health: &Health,
    servers: &mut Servers,
    clock: &Clock,
) -> Result<Arc<dyn CounterStore>, StartError> {
    match settings.backend {
        Backend::Memory => {
            if settings.backend_defaulted {
                tracing::warn!("no BACKEND_TYPE or REDIS_URL set: counting in memory, which suits one instance only; set REDIS_URL for a shared count");
            } else {
                tracing::info!("counting in memory (BACKEND_TYPE=memory)");
            }
            let memory = Arc::new(MemoryStore::with_capacity(settings.memory_max_counters));
            servers.push(tokio::spawn(sweep_memory(Arc::downgrade(&memory), clock.clone(), servers.stop_signal())));
            Ok(memory)
        }
        Backend::Redis => {
            health.set("redis", false);
            let pool = Arc::new(RedisPool::new(&settings.redis)?);
            let per_second = match &settings.redis_per_second {
                Some(per_second) => Some(Arc::new(RedisPool::new(per_second)?)),
                None => None,
            };
            let store = Arc::new(RedisStore::new(pool, per_second));
            connect_with_backoff(store.as_ref(), settings).await?;
            health.set("redis", true);
            tracing::info!(url = %settings.redis.url, topology = ?settings.redis.topology, "connected to Redis");
            Ok(store)
        }
    }
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

/// What a Redis that does not answer at startup may be down to, when an address is read as a
/// unix socket path (the reference's default socket type, and no `redis://`-style scheme): a
/// `host:port` is refused by the settings check, but a missing or mistyped socket path only
/// shows here, as "No such file or directory". A URL with a scheme gets no hint: it says how
/// it is dialled, and the advice would be wrong.
fn unreachable_hint(settings: &Settings) -> &'static str {
    let paths = |redis: &shared::redis::RedisSettings| !redis.socket_paths().is_empty();
    match (paths(&settings.redis), settings.redis_per_second.as_ref().is_some_and(paths)) {
        (true, _) => " (REDIS_URL is a unix socket path, as REDIS_SOCKET_TYPE=unix; for a Redis over TCP set REDIS_SOCKET_TYPE=tcp and REDIS_URL=host:port)",
        (false, true) => " (REDIS_PERSECOND_URL is a unix socket path, as REDIS_PERSECOND_SOCKET_TYPE=unix; for a Redis over TCP set REDIS_PERSECOND_SOCKET_TYPE=tcp)",
        (false, false) => "",
    }
}

/// Asks the store every second whether it answers (outages and health follow it).
pub(super) async fn probe(limiter: Arc<RateLimiter>, mut stop: watch::Receiver<bool>) {
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn hint(pairs: &[(&str, &str)]) -> &'static str {
        let env: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        unreachable_hint(&Settings::from_env(&env).unwrap())
    }

    /// The socket advice only where an address is read as a socket path: a URL with a scheme
    /// (the unix socket type is the default, so it is set for those too) gets none.
    #[test]
    fn the_socket_hint_is_given_for_socket_paths_only() {
        let redis = |url: &str| hint(&[("BACKEND_TYPE", "redis"), ("REDIS_URL", url)]);
        assert!(redis("/run/redis/redis.sock").contains("set REDIS_SOCKET_TYPE=tcp and REDIS_URL=host:port"));
        for url in ["redis://127.0.0.1:6379", "rediss://redis:6380", "unix:///run/redis/redis.sock"] {
            assert_eq!(redis(url), "", "{url}");
        }
        let per_second = hint(&[
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            ("REDIS_PERSECOND", "true"),
            ("REDIS_PERSECOND_URL", "/run/redis/per-second.sock"),
        ]);
        assert!(per_second.starts_with(" (REDIS_PERSECOND_URL is a unix socket path"), "{per_second}");
    }
}

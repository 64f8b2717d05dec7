//! What a failed Redis call means, decided once for every store: **transient** when Redis as a
//! whole (or the way to it) failed — any command on any key would have failed the same way, and
//! it may work again later — or **about this call** when Redis answered and refused this command
//! or key. The stores act on it: the rate limiter applies `REDIS_FAILURE_MODE` and flips health
//! only for a transient error, the session store answers 503 "temporarily unavailable" only for
//! one; anything else is that request's own error.
//!
//! | error | transient | why |
//! |---|---|---|
//! | I/O: refused, reset, closed, EOF, timed out, socket permission | yes | the connection |
//! | our timeout ([`RedisCallError::Timeout`]), a short answer (a desynchronised connection) | yes | the connection |
//! | auth refused at connect, `NOAUTH`, `WRONGPASS` | yes | every command is refused |
//! | `LOADING`, `READONLY`, `MASTERDOWN`, `TRYAGAIN`, `CLUSTERDOWN`, `MOVED`, `ASK` | yes | the server's state (redis-rs retries them: `retry_method`) |
//! | no cluster node, no master or replica from the sentinels | yes | the topology |
//! | `OOM`, `BUSY`, `MISCONF`, `NOREPLICAS` | yes | the server refuses writes (or everything) for now |
//! | `WRONGTYPE`, `ERR …` (wrong arguments, not an integer, script errors), `EXECABORT`, `NOSCRIPT`, `CROSSSLOT`, `NOPERM`, other codes | no | about this command or key |
//! | a reply not of the expected type (`Parse`, `UnexpectedReturnType`), client-side errors | no | about this reply |
//! | [`RedisCallError::Abandoned`] | no | our send task died (a bug), not Redis |
//!
//! `OOM`: Redis refuses every write once `maxmemory` is reached with a no-eviction policy; it
//! concerns the server, not the key written, and passes as keys expire or memory is raised — so
//! transient, like `READONLY`: the rate limiter's failure mode is the right answer meanwhile.
//!
//! An error code we do not know is about this call: the server answered, so it and the
//! connection work; classing unknowns as outages would let one odd reply flip health and open
//! `REDIS_FAILURE_MODE=allow` for everyone.

use std::time::Duration;

use redis::{ErrorKind, RedisError};

/// A failed call: Redis said no, or did not answer in time.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RedisCallError {
    #[error(transparent)]
    Redis(#[from] RedisError),
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("Redis answered {got} replies to {expected} commands")]
    ShortAnswer { expected: usize, got: usize },
    #[error("the task sending this call to Redis stopped before answering")]
    Abandoned,
}

impl RedisCallError {
    /// Whether Redis as a whole failed (see the module's table), not this call alone.
    pub fn is_transient(&self) -> bool {
        match self {
            RedisCallError::Timeout(_) | RedisCallError::ShortAnswer { .. } => true,
            RedisCallError::Abandoned => false,
            RedisCallError::Redis(e) => is_transient(e),
        }
    }
}

/// Error reply codes about the server's state rather than the command (see the module's table).
const TRANSIENT_CODES: &[&str] = &[
    "LOADING",
    "READONLY",
    "MASTERDOWN",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "MOVED",
    "ASK",
    "OOM",
    "BUSY",
    "MISCONF",
    "NOREPLICAS",
    "NOAUTH",
    "WRONGPASS",
];

/// Whether `error` means Redis as a whole failed (see the module's table).
pub fn is_transient(error: &RedisError) -> bool {
    // A pipeline's error replies come as one error whose `code()` is the first reply's only
    // when redis-rs knows that code (not `WRONGTYPE`, `OOM`, …): read every reply's code.
    if let Some(replies) = error.clone().into_server_errors() {
        return replies.iter().any(|(_, reply)| TRANSIENT_CODES.contains(&reply.code()));
    }
    if let Some(code) = error.code() {
        return TRANSIENT_CODES.contains(&code);
    }
    match error.kind() {
        ErrorKind::Io
        | ErrorKind::AuthenticationFailed
        | ErrorKind::ClusterConnectionNotFound
        | ErrorKind::MasterNameNotFoundBySentinel
        | ErrorKind::NoValidReplicasFoundBySentinel => true,
        // `Parse` is both a reply of the wrong type for its command and, rarely, a garbled
        // stream; the latter also drops the connection, which the next call sees as I/O.
        _ => false,
    }
}

/// Ours, or the client's own response timeout (which fires first when both are the same).
pub(super) fn is_timeout(error: &RedisCallError) -> bool {
    match error {
        RedisCallError::Timeout(_) => true,
        RedisCallError::Redis(e) => e.is_timeout(),
        _ => false,
    }
}

/// Faults of the connection itself (as opposed to an error reply), after which it is re-dialled.
pub(super) fn is_connection_fault(error: &RedisCallError) -> bool {
    match error {
        RedisCallError::Timeout(_) | RedisCallError::ShortAnswer { .. } | RedisCallError::Abandoned => true,
        RedisCallError::Redis(e) => {
            e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_unrecoverable_error()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::reply;
    use redis::ServerErrorKind;

    /// The error an error reply becomes, parsed from the wire as redis-rs reads it.
    fn replied(line: &str) -> RedisCallError {
        let value = redis::parse_redis_value(format!("-{line}\r\n").as_bytes()).unwrap();
        reply::<redis::Value>(value).unwrap_err().into()
    }

    fn io(kind: std::io::ErrorKind) -> RedisCallError {
        RedisError::from(std::io::Error::from(kind)).into()
    }

    #[test]
    fn the_connection_and_the_servers_state_are_transient() {
        for kind in [
            std::io::ErrorKind::ConnectionRefused,
            std::io::ErrorKind::ConnectionReset,
            std::io::ErrorKind::BrokenPipe,
            std::io::ErrorKind::UnexpectedEof,
            std::io::ErrorKind::TimedOut,
            std::io::ErrorKind::PermissionDenied,
        ] {
            assert!(io(kind).is_transient(), "{kind:?}");
        }
        assert!(RedisCallError::Timeout(Duration::from_millis(5)).is_transient());
        assert!(RedisCallError::ShortAnswer { expected: 2, got: 1 }.is_transient());
        for line in [
            "LOADING Redis is loading the dataset in memory",
            "READONLY You can't write against a read only replica.",
            "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
            "TRYAGAIN Multiple keys request during rehashing of slot",
            "CLUSTERDOWN The cluster is down",
            "MOVED 3999 127.0.0.1:6381",
            "ASK 3999 127.0.0.1:6381",
            "OOM command not allowed when used memory > 'maxmemory'.",
            "BUSY Redis is busy running a script.",
            "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk.",
            "NOREPLICAS Not enough good replicas to write.",
            "NOAUTH Authentication required.",
            "WRONGPASS invalid username-password pair or user is disabled.",
        ] {
            assert!(replied(line).is_transient(), "{line}");
        }
        let auth = RedisError::from((ErrorKind::AuthenticationFailed, "Password authentication failed"));
        assert!(RedisCallError::from(auth).is_transient());
        let nodes = RedisError::from((ErrorKind::ClusterConnectionNotFound, "no node"));
        assert!(RedisCallError::from(nodes).is_transient());
    }

    #[test]
    fn a_reply_about_one_command_or_key_is_not() {
        for line in [
            "WRONGTYPE Operation against a key holding the wrong kind of value",
            "ERR value is not an integer or out of range",
            "ERR wrong number of arguments for 'incrby' command",
            "ERR Error running script (call to f_0123): @user_script:1: Script attempted to access a non local key",
            "NOSCRIPT No matching script. Please use EVAL.",
            "EXECABORT Transaction discarded because of previous errors.",
            "CROSSSLOT Keys in request don't hash to the same slot",
            "NOPERM this user has no permissions to run the 'evalsha' command",
            "SOMETHINGNEW nobody told us about this one",
        ] {
            assert!(!replied(line).is_transient(), "{line}");
        }
        let wrong_type = reply::<u64>(redis::Value::SimpleString("abc".into())).unwrap_err();
        assert!(!RedisCallError::from(wrong_type).is_transient());
        assert!(!RedisCallError::Abandoned.is_transient());
    }

    #[test]
    fn a_server_kind_made_by_the_client_is_read_by_its_code() {
        let read_only = RedisError::from((ErrorKind::Server(ServerErrorKind::ReadOnly), "read only"));
        assert!(RedisCallError::from(read_only).is_transient());
        let no_perm = RedisError::from((ErrorKind::Server(ServerErrorKind::NoPerm), "no permission"));
        assert!(!RedisCallError::from(no_perm).is_transient());
    }

    /// Against a real Redis: a key of the wrong type is this call's fault, in a pipeline of
    /// many replies too; a stopped Redis is an outage.
    #[tokio::test]
    async fn a_planted_key_is_not_an_outage_and_a_stopped_redis_is() {
        let mut server = crate::testing::RedisServer::start();
        let settings = crate::redis::RedisSettings::single_tcp(server.url(), 1, Duration::from_secs(5));
        let pool = crate::redis::RedisPool::new(&settings).unwrap();
        let mut plant = redis::pipe();
        plant.cmd("RPUSH").arg("planted").arg("x");
        pool.query_idempotent::<()>(&plant).await.unwrap();

        let mut get = redis::pipe();
        get.cmd("GET").arg("planted");
        let error = pool.query_idempotent::<(Option<String>,)>(&get).await.unwrap_err();
        assert!(!error.is_transient(), "{error}");
        assert!(error.to_string().contains("WRONGTYPE"), "{error}");

        let mut several = redis::pipe();
        several.cmd("SET").arg("fine").arg("1").ignore();
        several.cmd("SADD").arg("planted").arg("member").ignore();
        let error = pool.query_idempotent::<()>(&several).await.unwrap_err();
        assert!(!error.is_transient(), "{error}");

        server.stop();
        let error = pool.query_idempotent::<(Option<String>,)>(&get).await.unwrap_err();
        assert!(error.is_transient(), "{error}");
    }
}

//! Where a Redis is: its settings' addresses turned into the client's connection info, and the
//! checks a service runs on them before it starts (so a `REDIS_URL` that can never connect is a
//! settings error, not a retry loop).

use std::path::PathBuf;

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo};

use super::{tls_certificates, RedisSettings, RedisSetupError, SocketType, Topology};

impl RedisSettings {
    /// What [`RedisPool::new`] would refuse, found without building anything: every address
    /// parses (and none is `host:port` read as a socket path), the TLS files can be read. For
    /// the services' settings checks, which run before anything starts.
    pub fn check(&self) -> Result<(), RedisSetupError> {
        for address in self.addresses()? {
            connection_info(self, address)?;
        }
        tls_certificates(self)?;
        Ok(())
    }

    /// The addresses dialled, trimmed: the single Redis, each cluster node, or each sentinel
    /// (without the master name).
    pub fn addresses(&self) -> Result<Vec<&str>, RedisSetupError> {
        Ok(self.master_and_addresses()?.1)
    }

    /// The sentinel topology's master name (`None` for the others) and [`Self::addresses`].
    pub(super) fn master_and_addresses(&self) -> Result<(Option<&str>, Vec<&str>), RedisSetupError> {
        let parts = || self.url.split(',').map(str::trim);
        match self.topology {
            Topology::Single => Ok((None, vec![self.url.trim()])),
            Topology::Cluster => Ok((None, parts().collect())),
            Topology::Sentinel => {
                let mut parts = parts();
                let master = parts.next().filter(|m| !m.is_empty()).ok_or(RedisSetupError::SentinelUrl)?;
                let sentinels: Vec<&str> = parts.collect();
                if sentinels.is_empty() {
                    return Err(RedisSetupError::SentinelUrl);
                }
                Ok((Some(master), sentinels))
            }
        }
    }

    /// The addresses read as unix socket paths: with the unix socket type, those without a
    /// scheme (a `redis://…` or `unix://…` URL says for itself how it is dialled).
    pub fn socket_paths(&self) -> Vec<&str> {
        if self.socket_type != SocketType::Unix {
            return Vec::new();
        }
        let addresses = self.addresses().unwrap_or_default();
        addresses.into_iter().filter(|a| !a.contains("://")).collect()
    }

    /// The unix socket paths among the addresses that do not exist (yet): a socket may appear
    /// after the service starts (a sidecar), so this is worth a warning, not a refusal.
    pub fn missing_socket_paths(&self) -> Vec<&str> {
        self.socket_paths().into_iter().filter(|a| !std::path::Path::new(a).exists()).collect()
    }
}

pub(super) fn connection_info(settings: &RedisSettings, address: &str) -> Result<ConnectionInfo, RedisSetupError> {
    if address.contains("://") {
        return Ok(address.into_connection_info()?);
    }
    let addr = match settings.socket_type {
        SocketType::Unix => {
            let path = PathBuf::from(address);
            if host_port(address).is_some() && !path.exists() {
                return Err(RedisSetupError::HostPortAsSocketPath { address: address.to_string() });
            }
            ConnectionAddr::Unix(path)
        }
        SocketType::Tcp => {
            let (host, port) =
                host_port(address).ok_or_else(|| RedisSetupError::Address { url: address.to_string() })?;
            if settings.tls {
                ConnectionAddr::TcpTls {
                    host: host.to_string(),
                    port,
                    insecure: settings.tls_skip_hostname_verification,
                    tls_params: None,
                }
            } else {
                ConnectionAddr::Tcp(host.to_string(), port)
            }
        }
    };
    Ok(addr.into_connection_info()?)
}

/// `host:port` or `[v6]:port`, split; `None` for anything else (a path has no port after its
/// last colon, or a slash in its "host").
fn host_port(address: &str) -> Option<(&str, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.contains('/') {
        return None;
    }
    Some((host, port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn settings(socket_type: SocketType, topology: Topology, url: &str) -> RedisSettings {
        let tcp = RedisSettings::single_tcp(url.into(), 1, Duration::from_secs(1));
        RedisSettings { socket_type, topology, ..tcp }
    }

    /// A directory of this test's own, removed by the caller.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("redis-address-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn problem(socket_type: SocketType, topology: Topology, url: &str) -> String {
        settings(socket_type, topology, url).check().map_or_else(|e| e.to_string(), |()| "ok".into())
    }

    #[test]
    fn host_port_is_refused_as_a_socket_path_unless_such_a_file_exists() {
        use SocketType::*;
        let refused = "\"127.0.0.1:6379\" is host:port, but the socket type is unix, which reads it as a socket path";
        assert_eq!(problem(Unix, Topology::Single, "127.0.0.1:6379"), refused);
        assert!(problem(Unix, Topology::Cluster, "/run/a.sock,redis:6379").contains("\"redis:6379\" is host:port"));
        assert_eq!(problem(Unix, Topology::Single, "/run/redis/redis.sock"), "ok", "a path is a path");
        assert_eq!(problem(Tcp, Topology::Single, "127.0.0.1:6379"), "ok");
        let dir = scratch("odd");
        let odd = dir.join("cache:6379");
        std::fs::write(&odd, "").unwrap();
        let taken = problem(Unix, Topology::Single, odd.to_str().unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(taken, "ok", "a file of that name is taken as it");
    }

    #[test]
    fn every_address_is_checked_in_every_topology() {
        use SocketType::Tcp;
        assert_eq!(problem(Tcp, Topology::Single, "localhost"), "\"localhost\" is not host:port");
        assert_eq!(problem(Tcp, Topology::Cluster, "a:1, b"), "\"b\" is not host:port");
        assert_eq!(problem(Tcp, Topology::Sentinel, "mymaster,a:26379,b"), "\"b\" is not host:port");
        assert!(problem(Tcp, Topology::Sentinel, "mymaster").starts_with("Expected master name"));
        assert_eq!(problem(Tcp, Topology::Sentinel, "mymaster, a:26379"), "ok");
        assert_eq!(problem(Tcp, Topology::Single, "[::1]:6379"), "ok");
        assert!(problem(Tcp, Topology::Single, "redis://a:b:c").starts_with("invalid Redis settings: "));
    }

    #[test]
    fn tls_files_are_read_when_tls_is_on() {
        let on = RedisSettings {
            tls: true,
            tls_ca_cert: Some("/nonexistent/ca.pem".into()),
            ..settings(SocketType::Tcp, Topology::Single, "a:6379")
        };
        assert!(on.check().unwrap_err().to_string().starts_with("cannot read /nonexistent/ca.pem: "));
        assert!(RedisSettings { tls: false, ..on }.check().is_ok(), "unused files are not read");
    }

    #[test]
    fn missing_socket_paths_are_listed_for_unix_only() {
        let dir = scratch("sockets");
        let there = dir.join("redis.sock");
        std::fs::write(&there, "").unwrap();
        let url = format!("{},/nonexistent/redis.sock", there.display());
        let unix = settings(SocketType::Unix, Topology::Cluster, &url);
        let missing: Vec<String> = unix.missing_socket_paths().into_iter().map(String::from).collect();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(missing, ["/nonexistent/redis.sock"]);
        assert!(RedisSettings { socket_type: SocketType::Tcp, ..unix }.missing_socket_paths().is_empty());
    }

    #[test]
    fn socket_paths_are_the_unix_addresses_without_a_scheme() {
        let unix = |topology, url| settings(SocketType::Unix, topology, url);
        let mixed = unix(Topology::Cluster, "/run/a.sock, redis://b:6379, unix:///run/c.sock");
        assert_eq!(mixed.socket_paths(), ["/run/a.sock"]);
        assert!(unix(Topology::Single, "rediss://a:6380").socket_paths().is_empty(), "a URL is not a path");
        assert_eq!(unix(Topology::Sentinel, "mymaster,/run/s.sock").socket_paths(), ["/run/s.sock"]);
        assert!(settings(SocketType::Tcp, Topology::Single, "/run/a.sock").socket_paths().is_empty());
    }
}

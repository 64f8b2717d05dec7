//! Values that parse but could only fail later, once a component uses them: a Redis address
//! that is not one, a file that cannot be read, a metrics address without a port, an xDS
//! server address or header gRPC refuses. Checked here, with the settings, so such a value stops
//! the start at once (exit 64, one line naming the setting and the fix) instead of failing after
//! the first config load, or retrying for ever.

use std::path::{Path, PathBuf};

use shared::env::EnvReader;
use shared::redis::{RedisSettings, RedisSetupError, SocketType};

use super::vars::*;
use super::RedisVars;
use crate::xds::{XdsError, XdsSettings};

/// One Redis's addresses and TLS files (`vars` says which settings name them; the files are
/// shared by both Redis, so the per-second one skips them when the main one `files_checked`).
/// A unix socket path that does not exist yet is only a warning: the socket may appear once the
/// service runs (a sidecar), and the startup retries until then.
pub(super) fn redis(
    r: &mut EnvReader<'_>,
    vars: &RedisVars,
    redis: &RedisSettings,
    files_checked: bool,
    warnings: &mut Vec<String>,
) {
    let url = vars.url.name;
    let socket = vars.socket_type.name;
    let socket_written = if r.raw(socket).is_some() { "" } else { " (its default)" };
    let reason = match redis.check() {
        Ok(()) => None,
        // Reported by `redis_settings` already.
        Err(RedisSetupError::SentinelUrl) => None,
        Err(RedisSetupError::HostPortAsSocketPath { address }) => Some(format!(
            "{address:?} is host:port, but {socket} is unix{socket_written}, which reads it as a socket path; set {socket}=tcp"
        )),
        Err(RedisSetupError::Address { url: address }) => {
            Some(format!("{address:?} is not host:port (with {socket}=tcp); write host:port, e.g. redis:6379"))
        }
        Err(RedisSetupError::Redis(e)) => {
            Some(format!("not a Redis address ({e}); expected host:port, redis://…, rediss://… or unix://…"))
        }
        Err(RedisSetupError::TlsFile { .. }) if files_checked => None,
        Err(RedisSetupError::TlsFile { path, source }) => {
            let name = setting_naming(
                &path,
                [
                    (redis.tls_ca_cert.as_ref(), REDIS_TLS_CACERT.name),
                    (redis.tls_client_cert.as_ref(), REDIS_TLS_CLIENT_CERT.name),
                    (redis.tls_client_key.as_ref(), REDIS_TLS_CLIENT_KEY.name),
                ],
            );
            r.fail(name, Some(path.display().to_string()), &format!("cannot read it: {source}"));
            None
        }
    };
    if let Some(reason) = reason {
        r.fail(url, Some(redis.url.clone()), &reason);
    }
    if redis.socket_type == SocketType::Unix {
        for path in redis.missing_socket_paths() {
            warnings.push(format!(
                "{url}={path:?}: no such socket yet ({socket} is unix{socket_written}), the start waits for it; \
                 for a Redis over TCP set {socket}=tcp and {url}=host:port"
            ));
        }
    }
}

/// `PROMETHEUS_ADDR`, when the metrics server runs.
pub(super) fn prometheus_addr(r: &mut EnvReader<'_>, address: &str) {
    if shared::serve::split_host_port(address).is_none() {
        r.fail(PROMETHEUS_ADDR.name, Some(address.into()), "expected host:port or :port, e.g. :9090");
    }
}

/// The gRPC server's certificate, key and client CA: readable files.
pub(super) fn grpc_tls_files(r: &mut EnvReader<'_>, files: &shared::tls::TlsFiles) {
    let named = [
        (GRPC_SERVER_TLS_CERT.name, Some(&files.cert)),
        (GRPC_SERVER_TLS_KEY.name, Some(&files.key)),
        (GRPC_CLIENT_TLS_CACERT.name, files.client_ca.as_ref()),
    ];
    for (name, path) in named {
        if let Some(Err(e)) = path.map(std::fs::File::open) {
            r.fail(name, path.map(|p| p.display().to_string()), &format!("cannot read it: {e}"));
        }
    }
}

/// The xDS server address, the extra headers and the TLS files, when limits come from xDS.
pub(super) fn xds(r: &mut EnvReader<'_>, xds: &XdsSettings) {
    let (name, value, reason) = match xds.check() {
        Ok(()) => return,
        Err(XdsError::Address(url)) => (CONFIG_GRPC_XDS_SERVER_URL.name, Some(url), "expected host:port".to_string()),
        Err(XdsError::Header(key)) => {
            // Not echoed: a header may carry a token.
            let reason = format!(
                "the header {key:?} is not valid gRPC metadata (names: lowercase letters, digits, -_.; values: visible ASCII)"
            );
            (CONFIG_GRPC_XDS_CLIENT_ADDITIONAL_HEADERS.name, None, reason)
        }
        Err(XdsError::File { path, source }) => {
            let tls = xds.tls.as_ref();
            let name = setting_naming(
                &path,
                [
                    (tls.map(|t| &t.ca_cert), CONFIG_GRPC_XDS_SERVER_TLS_CACERT.name),
                    (tls.and_then(|t| t.client_cert.as_ref()), CONFIG_GRPC_XDS_CLIENT_TLS_CERT.name),
                    (tls.and_then(|t| t.client_key.as_ref()), CONFIG_GRPC_XDS_CLIENT_TLS_KEY.name),
                ],
            );
            (name, Some(path.display().to_string()), format!("cannot read it: {source}"))
        }
        Err(e) => (CONFIG_GRPC_XDS_SERVER_URL.name, Some(xds.server_url.clone()), e.to_string()),
    };
    r.fail(name, value, &reason);
}

/// Which of a component's TLS settings names `path`, the file its check could not read: the
/// component's error has the path only. The CA's setting (the first) if none does, which the
/// checks never leave: they read only these files.
fn setting_naming(path: &Path, files: [(Option<&PathBuf>, &'static str); 3]) -> &'static str {
    let first = files[0].1;
    files
        .into_iter()
        .find_map(|(file, name)| (file.map(PathBuf::as_path) == Some(path)).then_some(name))
        .unwrap_or(first)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::Settings;

    fn problems(pairs: &[(&str, &str)]) -> String {
        let env: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_env(&env).map_or_else(|e| e.to_string(), |s| format!("ok, warnings: {:?}", s.warnings))
    }

    #[test]
    fn host_port_on_the_default_unix_socket_type_is_refused_with_the_fix() {
        assert_eq!(
            problems(&[("REDIS_URL", "127.0.0.1:6379")]),
            "invalid settings:\n  REDIS_URL=\"127.0.0.1:6379\" is not valid: \"127.0.0.1:6379\" is host:port, but \
             REDIS_SOCKET_TYPE is unix (its default), which reads it as a socket path; set REDIS_SOCKET_TYPE=tcp"
        );
        let written = problems(&[("REDIS_URL", "redis:6379"), ("REDIS_SOCKET_TYPE", "unix")]);
        assert!(written.contains("but REDIS_SOCKET_TYPE is unix, which"), "{written}");
        let per_second = problems(&[
            ("REDIS_URL", "redis:6379"),
            ("REDIS_SOCKET_TYPE", "tcp"),
            ("REDIS_PERSECOND", "true"),
            ("REDIS_PERSECOND_URL", "redis-2:6379"),
        ]);
        assert!(per_second.contains("REDIS_PERSECOND_URL=\"redis-2:6379\" is not valid"), "{per_second}");
        assert!(per_second.contains("set REDIS_PERSECOND_SOCKET_TYPE=tcp"), "{per_second}");
    }

    #[test]
    fn a_missing_socket_path_is_a_warning_that_names_the_fix() {
        let missing = problems(&[("BACKEND_TYPE", "redis")]);
        assert!(missing.starts_with("ok"), "{missing}");
        assert!(
            missing.contains(
                "REDIS_URL=\\\"/var/run/nutcracker/ratelimit.sock\\\": no such socket yet (REDIS_SOCKET_TYPE is unix (its default)), \
                 the start waits for it; for a Redis over TCP set REDIS_SOCKET_TYPE=tcp and REDIS_URL=host:port"
            ),
            "{missing}"
        );
        assert_eq!(problems(&[]), "ok, warnings: []", "the memory backend does not look at Redis settings");
    }

    #[test]
    fn a_redis_address_that_cannot_be_dialled_is_a_settings_error() {
        let tcp = |url: &str, topology: &str| {
            problems(&[("REDIS_URL", url), ("REDIS_SOCKET_TYPE", "tcp"), ("REDIS_TYPE", topology)])
        };
        let single = tcp("localhost", "single");
        assert!(
            single.ends_with("REDIS_URL=\"localhost\" is not valid: \"localhost\" is not host:port (with REDIS_SOCKET_TYPE=tcp); write host:port, e.g. redis:6379"),
            "{single}"
        );
        assert!(tcp("a:7000,b", "cluster").contains("REDIS_URL=\"a:7000,b\" is not valid: \"b\" is not host:port"));
        assert!(tcp("mymaster,a:26379,b", "sentinel").contains("\"b\" is not host:port"));
        let url = tcp("redis://a:b:c", "single");
        assert!(url.contains("is not valid: not a Redis address ("), "{url}");
        assert!(url.contains("expected host:port, redis://…, rediss://… or unix://…"), "{url}");
        let sentinel = tcp("onlymaster", "sentinel");
        assert_eq!(sentinel.matches("Expected master name").count(), 1, "reported once: {sentinel}");
    }

    #[test]
    fn unreadable_files_name_their_setting() {
        let redis = problems(&[
            ("REDIS_URL", "redis:6379"),
            ("REDIS_SOCKET_TYPE", "tcp"),
            ("REDIS_TLS", "true"),
            ("REDIS_TLS_CACERT", "/nonexistent/ca.pem"),
            ("REDIS_PERSECOND", "true"),
            ("REDIS_PERSECOND_URL", "redis:6380"),
            ("REDIS_PERSECOND_SOCKET_TYPE", "tcp"),
            ("REDIS_PERSECOND_TLS", "true"),
        ]);
        let line = "REDIS_TLS_CACERT=\"/nonexistent/ca.pem\" is not valid: cannot read it: No such file or directory";
        assert_eq!(redis.matches(line).count(), 1, "once, for the files both Redis share: {redis}");
        let grpc = problems(&[
            ("GRPC_SERVER_USE_TLS", "true"),
            ("GRPC_SERVER_TLS_CERT", "/nonexistent/cert.pem"),
            ("GRPC_SERVER_TLS_KEY", "/nonexistent/key.pem"),
        ]);
        assert!(grpc.contains("GRPC_SERVER_TLS_CERT=\"/nonexistent/cert.pem\" is not valid: cannot read it"), "{grpc}");
        assert!(grpc.contains("GRPC_SERVER_TLS_KEY=\"/nonexistent/key.pem\" is not valid: cannot read it"), "{grpc}");
    }

    #[test]
    fn the_metrics_address_and_the_xds_server_are_checked_when_used() {
        let metrics = problems(&[("USE_STATSD", "false"), ("USE_PROMETHEUS", "true"), ("PROMETHEUS_ADDR", "9090")]);
        assert!(metrics.ends_with("PROMETHEUS_ADDR=\"9090\" is not valid: expected host:port or :port, e.g. :9090"));
        assert!(problems(&[("PROMETHEUS_ADDR", "9090")]).starts_with("ok"), "unused: not checked");
        let xds = |pairs: &[(&str, &str)]| problems(&[&[("CONFIG_TYPE", "GRPC_XDS_SOTW")], pairs].concat());
        let address = xds(&[("CONFIG_GRPC_XDS_SERVER_URL", "::bad")]);
        assert!(
            address.ends_with("CONFIG_GRPC_XDS_SERVER_URL=\"::bad\" is not valid: expected host:port"),
            "{address}"
        );
        let ca =
            xds(&[("CONFIG_GRPC_XDS_SERVER_USE_TLS", "true"), ("CONFIG_GRPC_XDS_SERVER_TLS_CACERT", "/nonexistent")]);
        assert!(ca.contains("CONFIG_GRPC_XDS_SERVER_TLS_CACERT=\"/nonexistent\" is not valid: cannot read it"), "{ca}");
        let header = xds(&[("CONFIG_GRPC_XDS_CLIENT_ADDITIONAL_HEADERS", "Bad Name:secret-token")]);
        assert!(
            header.contains("CONFIG_GRPC_XDS_CLIENT_ADDITIONAL_HEADERS is not valid: the header \"Bad Name\""),
            "{header}"
        );
        assert!(!header.contains("secret-token"), "a header value is never echoed: {header}");
    }
}

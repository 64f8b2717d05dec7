//! The `ratelimit` binary itself: `--help`, `validate`, the default memory backend, the
//! example config, one log line per Redis outage, and graceful shutdown on SIGTERM.

mod support;

use std::process::Command;
use std::time::Duration;

use shared::testing::eventually;
use support::process::Process;
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_ratelimit");

fn examples() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

#[test]
fn help_documents_every_setting() {
    let output = Command::new(BIN).arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for setting in ratelimit::settings::vars::ALL {
        let name = setting.name();
        assert!(help.contains(name), "--help does not mention {name}");
    }
    assert!(help.contains("ratelimit validate"));
}

#[test]
fn validate_lists_every_error() {
    let good = Command::new(BIN).arg("validate").arg(examples().join("ratelimit/config")).output().unwrap();
    assert!(good.status.success(), "{}", String::from_utf8_lossy(&good.stderr));
    assert!(String::from_utf8_lossy(&good.stdout).starts_with("OK: 1 files, 1 domains"));

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.yaml"),
        "domain: a\ndescriptors:\n  - key: k\n    rate_limit: {unit: fortnight}\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("b.yaml"), "domain: b\nunknown_key: 1\n").unwrap();
    let bad = Command::new(BIN).arg("validate").arg(dir.path()).output().unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let report = String::from_utf8(bad.stderr).unwrap();
    assert_eq!(
        report,
        "a.yaml: invalid rate limit unit 'fortnight'\nb.yaml: config error, unknown key 'unknown_key'\n"
    );

    // --reference: whether envoyproxy/ratelimit could load the files too.
    let both = Command::new(BIN).args(["validate", "--reference"]).arg(examples().join("ratelimit/config")).output();
    let both = both.unwrap();
    assert!(String::from_utf8_lossy(&both.stdout).ends_with("; loadable by envoyproxy/ratelimit too\n"), "{both:?}");
    let ours = tempfile::tempdir().unwrap();
    let limit = "domain: c\ndescriptors:\n  - key: k\n    rate_limit: {unit: minute, requests_per_unit: 5, algorithm: sliding_window}\n";
    std::fs::write(ours.path().join("c.yaml"), limit).unwrap();
    let plain = Command::new(BIN).arg("validate").arg(ours.path()).output().unwrap();
    assert!(plain.status.success(), "Gatehouse loads it: {plain:?}");
    let refused = Command::new(BIN).args(["validate", "--reference"]).arg(ours.path()).output().unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(refused.stderr).unwrap(),
        "c.yaml: not loadable by envoyproxy/ratelimit: config error, unknown key 'algorithm' (a Gatehouse extension)\n"
    );
}

#[test]
fn bad_settings_exit_64_naming_each() {
    let output =
        Command::new(BIN).env_clear().env("GRPC_PORT", "x").env("REDIS_FAILURE_MODE", "open").output().unwrap();
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("GRPC_PORT=\"x\"") && stderr.contains("REDIS_FAILURE_MODE=\"open\""), "{stderr}");
}

/// A Redis setting that can never connect stops the start at once, naming the fix; before, the
/// reference's default socket type made `host:port` a file path retried for ever.
#[test]
fn a_redis_url_that_cannot_work_exits_64_naming_the_fix() {
    let output = Command::new(BIN).env_clear().env("REDIS_URL", "127.0.0.1:6379").output().unwrap();
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("REDIS_URL=\"127.0.0.1:6379\" is not valid"), "{stderr}");
    assert!(stderr.contains("set REDIS_SOCKET_TYPE=tcp"), "{stderr}");
    let tcp = Command::new(BIN).env_clear().env("REDIS_URL", "redis").env("REDIS_SOCKET_TYPE", "tcp").output();
    let tcp = tcp.unwrap();
    assert_eq!(tcp.status.code(), Some(64), "{tcp:?}");
    assert!(String::from_utf8_lossy(&tcp.stderr).contains("REDIS_URL=\"redis\" is not valid"), "{tcp:?}");
}

/// A socket path that does not exist may still appear (a sidecar), so the start waits for it;
/// its warning and each retry line say what else to set.
#[test]
fn a_missing_redis_socket_is_retried_with_the_fix_in_each_line() {
    let root = tempfile::tempdir().unwrap();
    let output = Command::new(BIN)
        .env_clear()
        .env("REDIS_URL", root.path().join("redis.sock"))
        .env("REDIS_STARTUP_INITIAL_INTERVAL", "10ms")
        .env("REDIS_STARTUP_MAX_ELAPSED_TIME", "1ms")
        .env("USE_STATSD", "false")
        .env("LOG_LEVEL", "warn")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("no such socket yet (REDIS_SOCKET_TYPE is unix (its default))"), "{stderr}");
    let last = stderr.lines().last().unwrap();
    assert!(last.starts_with("ratelimit: Redis at "), "{stderr}");
    assert!(last.ends_with("for a Redis over TCP set REDIS_SOCKET_TYPE=tcp and REDIS_URL=host:port)"), "{stderr}");
}

/// A listener that cannot be opened says which settings place it.
#[test]
fn a_taken_port_names_its_settings() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let root = tempfile::tempdir().unwrap();
    let output = Command::new(BIN)
        .env_clear()
        .envs([("RUNTIME_ROOT", root.path().to_str().unwrap()), ("USE_STATSD", "false")])
        .envs([("GRPC_HOST", "127.0.0.1"), ("GRPC_PORT", "0"), ("DEBUG_HOST", "127.0.0.1"), ("DEBUG_PORT", "0")])
        .envs([("HOST", "127.0.0.1"), ("PORT", port.as_str())])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains(&format!("cannot listen on HTTP address 127.0.0.1:{port}: ")), "{stderr}");
    assert!(stderr.trim_end().ends_with("(set by HOST and PORT)"), "{stderr}");
}

/// A listen host that names nothing is a settings error (exit 64), told from a port in use
/// (exit 1, above): the line names the settings either way.
#[test]
fn an_unresolvable_listen_host_exits_64_naming_its_settings() {
    let root = tempfile::tempdir().unwrap();
    let output = Command::new(BIN)
        .env_clear()
        .envs([("RUNTIME_ROOT", root.path().to_str().unwrap()), ("USE_STATSD", "false")])
        .envs([("GRPC_HOST", "no-such-host.invalid"), ("GRPC_PORT", "0")])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64), "{output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("cannot listen on gRPC address no-such-host.invalid:0: "), "{stderr}");
    assert!(stderr.trim_end().ends_with("(set by GRPC_HOST and GRPC_PORT)"), "{stderr}");
}

#[test]
fn argument_errors_name_the_argument_and_exit_64() {
    let refused = |args: &[&str]| {
        let output = Command::new(BIN).env_clear().args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(64), "{args:?}: {output:?}");
        String::from_utf8(output.stderr).unwrap()
    };
    assert!(refused(&["serve"]).starts_with("ratelimit: unexpected argument \"serve\": expected validate, healthcheck"));
    assert!(refused(&["validate"]).starts_with("ratelimit: validate: name the config files or directories"));
    assert!(refused(&["validate", "--strict", "x"]).contains("unknown option \"--strict\""));
    assert!(refused(&["healthcheck", "8080"]).contains("\"8080\" after healthcheck, which takes none"));
    assert!(
        refused(&["GRPC_PORT=9000"]).contains("settings are environment variables, as in `GRPC_PORT=9000 ratelimit`")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_on_memory_with_the_example_config() {
    let root = examples();
    let mut p = Process::start(&[
        ("RUNTIME_ROOT", root.to_str().unwrap()),
        ("RUNTIME_SUBDIRECTORY", "ratelimit"),
        ("RUNTIME_WATCH_ROOT", "false"),
        ("LOG_LEVEL", "info"),
    ]);
    let mut client = p.client().await;
    let mut codes = Vec::new();
    for _ in 0..6 {
        let r = client.should_rate_limit(request("gatehouse", vec![descriptor(&[("api_key", "k1")])])).await.unwrap();
        codes.push(r.into_inner().overall_code);
    }
    assert_eq!(codes, vec![1, 1, 1, 1, 1, 2], "5 per minute, then OVER_LIMIT");
    // SIGHUP (sent to every process after a log rotation) is logged and changes nothing.
    let hup = Command::new("kill").args(["-HUP", &p.child.id().to_string()]).status().unwrap();
    assert!(hup.success());
    let logged = || async { p.stderr().contains("SIGHUP: nothing to reopen") };
    eventually("the SIGHUP logged", Duration::from_secs(5), logged).await;
    assert!(p.child.try_wait().unwrap().is_none(), "still running after SIGHUP");
    let r = client.should_rate_limit(request("gatehouse", vec![descriptor(&[("api_key", "k1")])])).await.unwrap();
    assert_eq!(r.into_inner().overall_code, 2, "still serving, the counter kept");
    p.sigterm();
    assert!(p.wait().success());
    let log = p.stderr();
    assert!(log.contains("counting in memory"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_a_redis_outage_once_and_its_end_once() {
    let mut redis = RedisServer::start();
    let config = ConfigDir::new(&[(
        "c.yaml",
        "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: hour, requests_per_unit: 1000}\n",
    )]);
    let settings = [("REDIS_TIMEOUT", "300ms"), ("LOG_LEVEL", "warn"), ("LOG_FORMAT", "json")];
    let mut p = Process::with_redis(&config, &redis.url(), &settings);
    let mut client = p.client().await;
    let call = || request("d", vec![descriptor(&[("k", "v")])]);
    client.should_rate_limit(call()).await.unwrap();
    redis.stop();
    for _ in 0..10 {
        assert_eq!(client.should_rate_limit(call()).await.unwrap_err().code(), tonic::Code::Unavailable);
    }
    redis.resume();
    shared::testing::eventually("recovery", Duration::from_secs(10), async || {
        client.should_rate_limit(call()).await.is_ok()
    })
    .await;
    p.sigterm();
    assert!(p.wait().success());
    let log = p.stderr();
    assert_eq!(log.matches("counter store unavailable").count(), 1, "{log}");
    assert_eq!(log.matches("counter store reachable again").count(), 1, "{log}");
    let first: serde_json::Value =
        serde_json::from_str(log.lines().find(|l| l.contains("unavailable")).unwrap()).unwrap();
    assert!(first["@timestamp"].is_string() && first["@message"].is_string() && first["level"] == "error", "{first}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flips_health_then_drains_in_flight_calls() {
    let redis = RedisServer::start();
    let config = ConfigDir::new(&[(
        "c.yaml",
        "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: hour, requests_per_unit: 10}\n",
    )]);
    let mut p = Process::with_redis(&config, &redis.url(), &[("SHUTDOWN_DELAY", "1s")]);
    let http_addr: std::net::SocketAddr = format!("127.0.0.1:{}", p.http).parse().unwrap();
    assert_eq!(http(http_addr, "GET", "/healthcheck", "").await.0, 200);
    let mut client = p.client().await;
    client.should_rate_limit(request("d", vec![descriptor(&[("k", "v")])])).await.unwrap();

    // Freeze Redis so a call is in flight when the signal arrives, and stays in flight.
    redis.freeze();
    let in_flight =
        tokio::spawn(async move { client.should_rate_limit(request("d", vec![descriptor(&[("k", "v")])])).await });
    p.sigterm();
    let health = || async { http(http_addr, "GET", "/healthcheck", "").await.0 == 500 };
    eventually("health flips to 500 at the signal", Duration::from_secs(5), health).await;
    // Once SHUTDOWN_DELAY (1 s) is over the listeners close; the call is still waiting.
    let grpc_port = p.grpc;
    let closed = || async move { tokio::net::TcpStream::connect(("127.0.0.1", grpc_port)).await.is_err() };
    eventually("the gRPC listener closes after the delay", Duration::from_secs(5), closed).await;
    assert!(!in_flight.is_finished(), "the call waits for the frozen Redis");
    redis.thaw();
    let answer = in_flight.await.unwrap().expect("the in-flight call completes");
    assert_eq!(answer.into_inner().statuses[0].limit_remaining, 8);
    assert!(p.wait().success(), "exit status 0");
}

/// `GRPC_MAX_CONNECTION_IDLE`: a connection that makes no call is sent a GOAWAY and closed;
/// a client calling again simply connects anew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_grpc_connection_is_closed() {
    let root = examples();
    let p = Process::start(&[
        ("RUNTIME_ROOT", root.to_str().unwrap()),
        ("RUNTIME_SUBDIRECTORY", "ratelimit"),
        ("RUNTIME_WATCH_ROOT", "false"),
        ("GRPC_MAX_CONNECTION_IDLE", "300ms"),
    ]);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], p.grpc));
    let seen = tokio::task::spawn_blocking(move || shared::testing::idle_http2_client(addr, true)).await.unwrap();
    assert!(seen.contains(&shared::testing::GOAWAY), "{seen:?}");
    let mut client = p.client().await;
    let r = client.should_rate_limit(request("gatehouse", vec![descriptor(&[("api_key", "k1")])])).await.unwrap();
    assert_eq!(r.into_inner().overall_code, 1);
}

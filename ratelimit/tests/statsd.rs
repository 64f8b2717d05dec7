//! Stats to a real statsd listener from the real binary, under the reference's names: plain
//! statsd over UDP and TCP with `EXTRA_TAGS`, DogStatsD with a mogrifier, and one sink at a time.

mod support;

use std::process::Command;
use std::time::Duration;

use shared::testing::{read_until, receive_until};
use support::process::{Process, BIN};
use support::*;

const WAIT: Duration = Duration::from_secs(10);

fn config() -> ConfigDir {
    ConfigDir::new(&[(
        "c.yaml",
        "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: hour, requests_per_unit: 1}\n",
    )])
}

fn settings<'a>(config: &'a ConfigDir, port: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("RUNTIME_ROOT", config.root().to_str().unwrap()),
        ("RUNTIME_SUBDIRECTORY", "ratelimit"),
        ("RUNTIME_WATCH_ROOT", "false"),
        ("STATSD_HOST", "127.0.0.1"),
        ("STATSD_PORT", port),
        ("STATS_FLUSH_INTERVAL", "100ms"),
        ("EXTRA_TAGS", "cluster:eu.1,az:b"),
    ];
    env.extend_from_slice(extra);
    env
}

/// Two calls on a limit of one per hour: one within, one over.
async fn two_calls(p: &Process) {
    let mut client = p.client().await;
    let call = || request("d", vec![descriptor(&[("k", "v")])]);
    assert_eq!(client.should_rate_limit(call()).await.unwrap().into_inner().overall_code, 1);
    assert_eq!(client.should_rate_limit(call()).await.unwrap().into_inner().overall_code, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_the_references_stat_names_over_udp() {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = socket.local_addr().unwrap().port().to_string();
    let config = config();
    let mut p = Process::start(&settings(&config, &port, &[("USE_STATSD", "true"), ("STATSD_PROTOCOL", "udp")]));
    two_calls(&p).await;
    // gostats: tags sorted by key, dots in values made underscores, after the whole name.
    let tags = ".__az=b.__cluster=eu_1";
    let received = receive_until(
        &socket,
        &[
            &format!("ratelimit.service.rate_limit.d.k.total_hits{tags}:2|c\n"),
            &format!("ratelimit.service.rate_limit.d.k.within_limit{tags}:1|c\n"),
            &format!("ratelimit.service.rate_limit.d.k.over_limit{tags}:1|c\n"),
            &format!("ratelimit_server.ShouldRateLimit.total_requests{tags}:2|c\n"),
            &format!("ratelimit.service.config_load_success{tags}:1|c\n"),
            "ratelimit_server.ShouldRateLimit.response_time.__az=b.__cluster=eu_1:",
        ],
        WAIT,
    )
    .await;
    assert!(received.lines().filter(|l| l.contains("response_time")).all(|l| l.ends_with("|ms")), "{received}");
    assert!(!received.contains("shadow_mode"), "unchanged counters are not sent: {received}");
    p.sigterm();
    assert!(p.wait().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_over_tcp_by_default() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let config = config();
    let mut p = Process::start(&settings(&config, &port, &[("USE_STATSD", "true")]));
    two_calls(&p).await;
    let (mut stream, _) = tokio::time::timeout(WAIT, listener.accept()).await.unwrap().unwrap();
    read_until(&mut stream, &["ratelimit.service.rate_limit.d.k.total_hits.__az=b.__cluster=eu_1:2|c\n"], WAIT).await;
    p.sigterm();
    assert!(p.wait().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dogstatsd_sends_tags_and_applies_mogrifiers() {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = socket.local_addr().unwrap().port().to_string();
    let config = config();
    let mut p = Process::start(&settings(
        &config,
        &port,
        &[
            ("USE_STATSD", "false"),
            ("USE_DOG_STATSD", "true"),
            ("USE_DOG_STATSD_MOGRIFIERS", "LIMITS"),
            ("DOG_STATSD_MOGRIFIER_LIMITS_PATTERN", r"^ratelimit\.service\.rate_limit\.(.*)\.(.*)\.(.*)$"),
            ("DOG_STATSD_MOGRIFIER_LIMITS_NAME", "ratelimit.service.rate_limit.$3"),
            ("DOG_STATSD_MOGRIFIER_LIMITS_TAGS", "domain:$1,descriptor:$2"),
        ],
    ));
    two_calls(&p).await;
    receive_until(
        &socket,
        &[
            "ratelimit.service.rate_limit.total_hits:2|c|#az:b,cluster:eu_1,domain:d,descriptor:k\n",
            "ratelimit.service.rate_limit.over_limit:1|c|#az:b,cluster:eu_1,domain:d,descriptor:k\n",
            "ratelimit_server.ShouldRateLimit.total_requests:2|c|#az:b,cluster:eu_1\n",
        ],
        WAIT,
    )
    .await;
    p.sigterm();
    assert!(p.wait().success());
}

#[test]
fn one_sink_at_a_time_and_bad_values_named() {
    // USE_STATSD is on unless turned off, as in the reference: Prometheus alone needs it off.
    let output = Command::new(BIN).env_clear().env("USE_PROMETHEUS", "true").output().unwrap();
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("USE_STATSD and USE_PROMETHEUS"), "{stderr}");

    let output = Command::new(BIN)
        .env_clear()
        .env("USE_DOG_STATSD", "true")
        .env("USE_STATSD", "false")
        .env("USE_DOG_STATSD_MOGRIFIERS", "A")
        .env("DOG_STATSD_MOGRIFIER_A_PATTERN", "(")
        .env("DOG_STATSD_MOGRIFIER_A_NAME", "n")
        .env("EXTRA_TAGS", "novalue")
        .env("STATSD_PROTOCOL", "quic")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8(output.stderr).unwrap();
    for name in ["DOG_STATSD_MOGRIFIER_A", "EXTRA_TAGS", "STATSD_PROTOCOL"] {
        assert!(stderr.contains(name), "{name}: {stderr}");
    }
}

/// A statsd server that is down: each failed send counts in
/// `ratelimit_service_statsd_send_failures_total` on `/stats` (the Prometheus sink is off with
/// statsd), and the log says so once per 30 s, not once a send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sends_show_on_the_debug_port_and_are_logged_once() {
    let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let config = config();
    let started = std::time::Instant::now();
    let mut p = Process::start(&settings(&config, &refused, &[("USE_STATSD", "true")]));
    let debug = p.debug;
    let failures = move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", debug)).unwrap();
        stream.write_all(b"GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        let line = text.lines().find(|l| l.starts_with("ratelimit_service_statsd_send_failures_total "));
        line.and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok()).unwrap_or(0)
    };
    // The flush every 100 ms sends the gauge each time, so failures come quickly.
    shared::testing::eventually("failed sends counted", WAIT, || async { failures() >= 3 }).await;
    p.sigterm();
    assert!(p.wait().success());
    // Once per 30 s while it lasts: once, unless this test ran that long.
    let logged = p.stderr().matches("statsd send failed").count();
    let windows = 1 + started.elapsed().as_secs() as usize / 30;
    assert!(logged >= 1 && logged <= windows, "{logged} lines:\n{}", p.stderr());
}

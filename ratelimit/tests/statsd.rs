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

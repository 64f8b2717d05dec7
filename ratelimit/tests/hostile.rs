//! Hostile files, requests and clients against the real `ratelimit` binary: each test
//! reproduces a finding of the hardening review, so none can come back.

mod support;

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use support::process::Process;
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_ratelimit");

const GOOD: &str = "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: hour, requests_per_unit: 1000}\n";

/// About 10^10 nodes once expanded, from under 600 bytes.
fn alias_bomb() -> String {
    let mut yaml = String::from("domain: bomb\nx0: &x0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        yaml.push_str(&format!("x{i}: &x{i} [{}]\n", vec![format!("*x{}", i - 1); 10].join(", ")));
    }
    yaml
}

/// One 768 KiB string anchored once and aliased 20,000 times: an 827 KiB file (a ConfigMap
/// holds 1 MiB) of few nodes that expands to 15 GiB.
fn string_bomb() -> String {
    format!("domain: strings\ns: &s {}\nx:\n{}", "x".repeat(768 << 10), "- *s\n".repeat(20_000))
}

fn memory_env(config: &ConfigDir) -> Vec<(&'static str, String)> {
    vec![
        ("RUNTIME_ROOT", config.root().to_str().unwrap().to_string()),
        ("RUNTIME_SUBDIRECTORY", "ratelimit".into()),
        ("RUNTIME_WATCH_ROOT", "false".into()),
        ("RUNTIME_POLL_INTERVAL", "100ms".into()),
        ("BACKEND_TYPE", "memory".into()),
        ("LOG_LEVEL", "info".into()),
    ]
}

fn start(env: &[(&'static str, String)], soft_open_files: Option<u64>) -> Process {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Process::start_with_open_files(&env, soft_open_files)
}

async fn remaining(p: &Process, key: &str) -> u32 {
    let mut client = p.client().await;
    let answer = client.should_rate_limit(request("d", vec![descriptor(&[("k", key)])])).await.unwrap().into_inner();
    answer.statuses[0].limit_remaining
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_bomb_is_refused_by_validate_and_by_a_running_service() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = dir.path().join("bomb.yaml");
    std::fs::write(&bomb, alias_bomb()).unwrap();
    let output = Command::new(BIN).arg("validate").arg(&bomb).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let report = String::from_utf8_lossy(&output.stderr);
    assert!(report.contains("bomb.yaml: error loading config file: yaml: line 6: aliases expand to more"), "{report}");
    let strings = dir.path().join("strings.yaml");
    std::fs::write(&strings, string_bomb()).unwrap();
    let output = Command::new(BIN).arg("validate").arg(&strings).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let report = String::from_utf8_lossy(&output.stderr);
    assert!(report.contains("line 9: aliases expand to more than 4194304 bytes of text"), "{report}");

    let config = ConfigDir::new(&[("good.yaml", GOOD)]);
    let mut p = start(&memory_env(&config), None);
    assert_eq!(remaining(&p, "a").await, 999);
    config.write("bomb.yaml", &alias_bomb());
    let logged = || std::future::ready(p.stderr().contains("aliases expand to more"));
    shared::testing::eventually("the refusal is logged", Duration::from_secs(10), logged).await;
    assert!(p.child.try_wait().unwrap().is_none(), "still running");
    assert_eq!(remaining(&p, "a").await, 998, "the last good config serves on");
    config.write("bomb.yaml", &string_bomb());
    let logged = || std::future::ready(p.stderr().contains("bytes of text (an alias bomb?)"));
    shared::testing::eventually("the string bomb's refusal is logged", Duration::from_secs(10), logged).await;
    assert!(p.child.try_wait().unwrap().is_none(), "still running");
    assert_eq!(remaining(&p, "a").await, 997, "the last good config still serves");
    p.sigterm();
    assert!(p.wait().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_beyond_the_default_descriptor_limit_starve_nothing() {
    // This test itself holds 1,100 sockets.
    rlimit::increase_nofile_limit(4096).unwrap();
    let config = ConfigDir::new(&[("good.yaml", GOOD)]);
    let p = start(&memory_env(&config), Some(1024));
    let http_addr = format!("127.0.0.1:{}", p.http);
    let idle: Vec<std::net::TcpStream> =
        (0..1100).map(|_| std::net::TcpStream::connect(&http_addr).expect("the HTTP port accepts")).collect();

    assert_eq!(remaining(&p, "a").await, 999, "gRPC answers");
    let (status, body) = http(http_addr.parse().unwrap(), "GET", "/healthcheck", "").await;
    assert_eq!((status, body.as_str()), (200, "OK"));
    // A config reload opens files too.
    config.write("good.yaml", &GOOD.replace("1000", "50"));
    let reloaded =
        shared::testing::poll(Duration::from_secs(5), async || (remaining(&p, "b").await < 50).then_some(()));
    assert!(reloaded.await.is_some(), "the changed config was loaded:\n{}", p.stderr());
    assert!(p.stderr().contains("open files limit (soft) raised to the hard limit"), "{}", p.stderr());
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_do_not_hold_shutdown() {
    let config = ConfigDir::new(&[("good.yaml", GOOD)]);
    let mut env = memory_env(&config);
    env.push(("SHUTDOWN_TIMEOUT", "60s".into()));
    let mut p = start(&env, None);
    // An HTTP client that was served once (so the server holds its connection), then stalls
    // halfway through its next request.
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", p.http)).unwrap();
    slow.write_all(b"GET /healthcheck HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut answer = [0u8; 12];
    slow.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    slow.write_all(b"GET /healthcheck HTTP/1.1\r\nHost: x\r\n").unwrap();
    // On the gRPC port: a connection that never starts HTTP/2, and one idle after its preface
    // (served: the server's SETTINGS frame came back).
    let _silent = std::net::TcpStream::connect(("127.0.0.1", p.grpc)).unwrap();
    let mut idle = std::net::TcpStream::connect(("127.0.0.1", p.grpc)).unwrap();
    idle.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0").unwrap();
    let mut frame_header = [0u8; 9];
    idle.read_exact(&mut frame_header).unwrap();
    assert_eq!(frame_header[3], 0x4, "the server's first frame is SETTINGS");
    // And a client that made a call and keeps its connection, as Envoy does.
    let _ = remaining(&p, "kept").await;
    p.sigterm();
    // `wait` gives up after 10 s, far below SHUTDOWN_TIMEOUT (60 s): an exit at all means no
    // connection held the shutdown.
    assert!(p.wait().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_made_from_request_values_are_bounded() {
    let config = ConfigDir::new(&[("good.yaml", GOOD)]);
    let metrics_port = free_port();
    let mut env = memory_env(&config);
    env.extend([("USE_PROMETHEUS", "true".into()), ("PROMETHEUS_ADDR", format!("127.0.0.1:{metrics_port}"))]);
    let p = start(&env, None);
    let mut client = p.client().await;
    // 12,000 distinct limit overrides and 12,000 unknown domains, 1,000 per request.
    for batch in 0..12 {
        let overrides =
            (0..1000).map(|i| with_override(descriptor(&[("k", &format!("v{batch}-{i}"))]), 10, 3)).collect::<Vec<_>>();
        client.should_rate_limit(request("d", overrides)).await.unwrap();
        for i in 0..1000 {
            let _ =
                client.should_rate_limit(request(&format!("nope{batch}-{i}"), vec![descriptor(&[("k", "v")])])).await;
        }
    }
    let (status, text) = http(format!("127.0.0.1:{metrics_port}").parse().unwrap(), "GET", "/metrics", "").await;
    assert_eq!(status, 200);
    let series = |name: &str| text.lines().filter(|l| l.starts_with(&format!("{name}{{"))).count();
    let bound = shared::metrics::MAX_SERIES_FROM_REQUESTS;
    assert_eq!(series("ratelimit_service_rate_limit_domain_not_found"), bound + 1);
    assert!(series("ratelimit_service_rate_limit_total_hits") <= bound + 2, "{}", series("total_hits"));
    assert!(text.contains("ratelimit_service_rate_limit_domain_not_found{domain=\"overflow\"} 2000\n"));
    assert!(text.contains("ratelimit_service_rate_limit_total_hits{domain=\"overflow\",key1=\"overflow\"}"));
}

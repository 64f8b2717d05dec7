//! Both services' `/metrics`, as a Prometheus server scrapes them, checked by Prometheus's own
//! `promtool check metrics` (installed by scripts/install-deps.sh): the exposition parses, the
//! standard `process_*` series are there, and the only lint findings are the names ratelimit
//! must keep to be a drop-in for envoyproxy/ratelimit (its statsd-exporter mapping names
//! counters without `_total`; dashboards and alerts query those exact names).

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;

/// Counters whose names come from the reference's mapping and so cannot end in `_total`.
const DROP_IN_COUNTERS: &[&str] = &[
    "ratelimit_service_rate_limit_total_hits",
    "ratelimit_service_rate_limit_within_limit",
    "ratelimit_service_rate_limit_near_limit",
    "ratelimit_service_rate_limit_over_limit",
    "ratelimit_service_rate_limit_over_limit_with_local_cache",
    "ratelimit_service_rate_limit_shadow_mode",
    "ratelimit_service_config_load_success",
    "ratelimit_service_config_load_error",
    "ratelimit_service_global_shadow_mode",
    "ratelimit_service_should_rate_limit_error",
    "ratelimit_service_total_requests",
];

const PROCESS_SERIES: &[&str] = &[
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
];

/// promtool's findings, one `(metric, problem)` per line; panics when the text does not parse.
fn promtool_findings(exposition: &str) -> Vec<(String, String)> {
    let promtool = shared::testing::promtool_binary();
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e} (scripts/install-deps.sh installs it)", promtool.display()));
    child.stdin.take().unwrap().write_all(exposition.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(!said.contains("error while linting"), "promtool cannot parse it: {said}\n{exposition}");
    assert!(output.status.success() || !said.trim().is_empty(), "promtool failed silently: {output:?}");
    said.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match l.split_once(' ') {
            Some((name, problem)) => (name.to_string(), problem.to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect()
}

fn assert_clean_but_for_drop_in_names(service: &str, exposition: &str) {
    for series in PROCESS_SERIES {
        assert!(exposition.contains(&format!("\n{series} ")), "{service}: no {series}\n{exposition}");
    }
    let findings = promtool_findings(exposition);
    let unexpected: Vec<_> = findings
        .iter()
        .filter(|(name, problem)| {
            !(DROP_IN_COUNTERS.contains(&name.as_str()) && problem == r#"counter metrics should have "_total" suffix"#)
        })
        .collect();
    assert!(unexpected.is_empty(), "{service}: promtool found {unexpected:?}");
}

async fn get(url: String) -> String {
    let response = reqwest::get(&url).await.unwrap();
    assert!(response.status().is_success(), "{url}: {}", response.status());
    response.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ratelimit_metrics_pass_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let config_dir = dir.path().join("ratelimit/config");
    std::fs::create_dir_all(&config_dir).unwrap();
    let config = "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: second, requests_per_unit: 1}\n";
    std::fs::write(config_dir.join("c.yaml"), config).unwrap();
    let mut env = ratelimit::settings::loopback_env(dir.path());
    for (name, value) in
        [("USE_PROMETHEUS", "true"), ("PROMETHEUS_ADDR", "127.0.0.1:0"), ("LOCAL_CACHE_SIZE_IN_BYTES", "1048576")]
    {
        env.insert(name.into(), value.into());
    }
    let settings = ratelimit::settings::Settings::from_env(&env).unwrap();
    let running = ratelimit::start(settings, ratelimit::service::system_clock()).await.unwrap();
    // Traffic, so the per-limit, request and latency series have values (one call over).
    let json = format!("http://{}/json", running.http_addr);
    let body = r#"{"domain":"d","descriptors":[{"entries":[{"key":"k","value":"v"}]}]}"#;
    let client = reqwest::Client::new();
    for _ in 0..3 {
        client.post(&json).body(body).send().await.unwrap();
    }
    let exposition = get(format!("http://{}/metrics", running.metrics_addr.unwrap())).await;
    assert!(exposition.contains("ratelimit_service_rate_limit_over_limit{domain=\"d\",key1=\"k\"}"), "{exposition}");
    assert_clean_but_for_drop_in_names("ratelimit", &exposition);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ext_authz_metrics_pass_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ext-authz.yaml");
    let config =
        "server: {grpc_addr: 127.0.0.1:0, http_addr: 127.0.0.1:0}\nroutes: {public: [/open/*], default: deny}\n";
    std::fs::write(&file, config).unwrap();
    let env = std::collections::HashMap::new();
    let config = ext_authz::config::load(&file, &env).unwrap();
    let running = ext_authz::app::start(config, Arc::new(env), ext_authz::service::system_clock()).await.unwrap();
    let base = format!("http://{}", running.http_addr);
    let client = reqwest::Client::new();
    assert_eq!(client.get(format!("{base}/authz/open/x")).send().await.unwrap().status(), 200);
    assert_eq!(client.get(format!("{base}/authz/closed")).send().await.unwrap().status(), 403);
    let exposition = get(format!("{base}/metrics")).await;
    assert!(exposition.contains("ext_authz_check_duration_seconds_bucket{mode=\"http\""), "{exposition}");
    assert_clean_but_for_drop_in_names("ext-authz", &exposition);
    running.shutdown().await;
}

/// The check finds what it is meant to find (so a clean result means something).
#[test]
fn promtool_reports_a_planted_problem() {
    let findings =
        promtool_findings("# HELP planted_requests x\n# TYPE planted_requests counter\nplanted_requests 1\n");
    assert_eq!(
        findings,
        [("planted_requests".to_string(), r#"counter metrics should have "_total" suffix"#.to_string())]
    );
}

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
    // The reference's per-domain `domain_not_found` stat, as one labelled family.
    "ratelimit_service_rate_limit_domain_not_found",
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

/// Every metric a dashboard's queries name is one the service exports (a family it registered,
/// or a series in its exposition: `process_*`, collectors), histograms by their `_bucket`,
/// `_sum` and `_count`; and every query is valid PromQL (promtool parses them as rules).
fn assert_dashboard_queries_only(dashboard: &str, exposition: &str, families: &[(String, &str)], job: &str) {
    let path = shared::testing::workspace_root().join(dashboard);
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut queries = Vec::new();
    collect_exprs(&json, &mut queries);
    assert!(queries.len() >= 10, "{dashboard}: {} queries", queries.len());
    let exported = |name: &str| {
        let registered = |n: &str, kind: Option<&str>| {
            families.iter().any(|(f, k)| f == n && kind.is_none_or(|kind| *k == kind))
                || exposition.contains(&format!("# TYPE {n} {}", kind.unwrap_or("")))
        };
        registered(name, None)
            || ["_bucket", "_sum", "_count"]
                .iter()
                .any(|suffix| name.strip_suffix(suffix).is_some_and(|base| registered(base, Some("histogram"))))
    };
    let mut named = 0;
    for query in &queries {
        for name in metric_names(query) {
            named += 1;
            assert!(exported(&name), "{dashboard}: {name} is not a metric the service exports (in {query})");
        }
    }
    assert!(named >= queries.len(), "{dashboard}: every query names a metric");
    // PromQL: each query as a recording rule, with Grafana's variables filled in.
    let rules: Vec<serde_json::Value> = queries
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let expr = q.replace("$__rate_interval", "5m").replace("$job", job);
            serde_json::json!({"record": format!("dashboard:query_{i}"), "expr": expr})
        })
        .collect();
    let file = tempfile::NamedTempFile::new().unwrap();
    let groups = serde_json::json!({"groups": [{"name": "dashboard", "rules": rules}]});
    std::fs::write(file.path(), groups.to_string()).unwrap();
    let output =
        Command::new(shared::testing::promtool_binary()).args(["check", "rules"]).arg(file.path()).output().unwrap();
    assert!(
        output.status.success(),
        "{dashboard}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn collect_exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr", serde_json::Value::String(expr)) => out.push(expr.clone()),
                    _ => collect_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

/// The identifiers of a query that are our services' metric names.
fn metric_names(query: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut word = String::new();
    for c in query.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
            continue;
        }
        // Label values sit in quotes and never start a name here.
        if ["ratelimit_", "ext_authz_", "process_"].iter().any(|p| word.starts_with(p)) {
            names.push(std::mem::take(&mut word));
        }
        word.clear();
    }
    names
}

/// The dashboard check finds a name the service does not export.
#[test]
fn a_dashboard_naming_an_unknown_metric_is_caught() {
    let names =
        metric_names(r#"sum(rate(ratelimit_service_rate_limit_over_limitz{job=~"$job"}[5m])) / process_open_fds"#);
    assert_eq!(names, ["ratelimit_service_rate_limit_over_limitz", "process_open_fds"]);
    let families = [("ratelimit_service_rate_limit_over_limit".to_string(), "counter")];
    let result = std::panic::catch_unwind(|| {
        assert_dashboard_queries_only("examples/grafana/ratelimit.json", "", &families, "ratelimit")
    });
    assert!(result.is_err(), "the real dashboard names more than this one family");
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
    let unknown = r#"{"domain":"nope","descriptors":[{"entries":[{"key":"k","value":"v"}]}]}"#;
    client.post(&json).body(unknown).send().await.unwrap();
    let exposition = get(format!("http://{}/metrics", running.metrics_addr.unwrap())).await;
    assert!(exposition.contains("ratelimit_service_rate_limit_over_limit{domain=\"d\",key1=\"k\"}"), "{exposition}");
    assert_clean_but_for_drop_in_names("ratelimit", &exposition);
    let families = running.limiter.metrics().registry.families();
    assert_dashboard_queries_only("examples/grafana/ratelimit.json", &exposition, &families, "ratelimit");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ext_authz_metrics_pass_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ext-authz.yaml");
    let config =
        "server: {grpc_addr: 127.0.0.1:0, http_addr: 127.0.0.1:0}\nroutes: {public: [/open/*], default: deny}\n...\n";
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
    let families = running.authorizer.metrics.registry.families();
    assert_dashboard_queries_only("examples/grafana/ext-authz.json", &exposition, &families, "ext-authz");
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

//! End to end through a real Envoy, driven by `wrk` (HTTP/1.1, a neutral generator): Envoy with
//! no filters in front of the demo backend (the floor), then with ext_authz (an API key), then
//! with ext_authz and the rate limit filter (a limit per injected `x-user-id`, never reached).

use std::process::Command;
use std::time::Duration;

use e2e::envoy::{render, Envoy};

use crate::load::LoadResult;
use crate::scenarios::Shape;
use crate::targets::api_key;

const TEMPLATE: &str = include_str!("../envoy.yaml");

const EXT_AUTHZ_FILTER: &str = r#"                  - name: envoy.filters.http.ext_authz
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
                      transport_api_version: V3
                      grpc_service: {envoy_grpc: {cluster_name: ext_authz}, timeout: 2s}"#;

const RATELIMIT_FILTER: &str = r#"                  - name: envoy.filters.http.ratelimit
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit
                      domain: bench
                      timeout: 2s
                      rate_limit_service:
                        transport_api_version: V3
                        grpc_service: {envoy_grpc: {cluster_name: ratelimit}}"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filters {
    None,
    ExtAuthz,
    ExtAuthzAndRateLimit,
}

/// Starts Envoy (on the calling thread, which must outlive it: Envoy dies with the thread that
/// spawned it) with `filters`; returns it and its listener port.
pub fn start_envoy(filters: Filters, backend: u16, ext_authz: u16, ratelimit: u16) -> (Envoy, u16) {
    let chain = match filters {
        Filters::None => String::new(),
        Filters::ExtAuthz => EXT_AUTHZ_FILTER.to_string(),
        Filters::ExtAuthzAndRateLimit => format!("{EXT_AUTHZ_FILTER}\n{RATELIMIT_FILTER}"),
    };
    Envoy::start_on_free_ports(None, |port, admin| {
        render(
            TEMPLATE,
            &[
                ("ADMIN_PORT", admin.to_string()),
                ("LISTEN_PORT", port.to_string()),
                ("HTTP_FILTERS", chain.clone()),
                ("BACKEND_PORT", backend.to_string()),
                ("EXT_AUTHZ_PORT", ext_authz.to_string()),
                ("RATELIMIT_PORT", ratelimit.to_string()),
            ],
        )
    })
}

/// One `wrk` run against `port`, with the API key every scenario presents.
pub async fn wrk(port: u16, shape: Shape) -> LoadResult {
    let output = tokio::task::spawn_blocking(move || {
        Command::new("wrk")
            .args(["-t", "2", "-c", &shape.concurrency.to_string(), "-d", &format!("{}s", shape.seconds)])
            .args(["--latency", "-H", &format!("x-api-key: {}", api_key(5))])
            .arg(format!("http://127.0.0.1:{port}/bench"))
            .output()
    })
    .await
    .expect("the wrk task")
    .expect("wrk must be installed (Debian package wrk)");
    parse_wrk(&String::from_utf8_lossy(&output.stdout), shape.seconds)
}

/// Requests, errors (socket errors and non-2xx answers) and the latency percentiles wrk prints.
pub fn parse_wrk(text: &str, seconds: u64) -> LoadResult {
    let mut result = LoadResult {
        requests: 0,
        errors: 0,
        elapsed: Duration::from_secs(seconds),
        latencies: Vec::new(),
        percentiles: Vec::new(),
    };
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [n, "requests", "in", elapsed, ..] => {
                result.requests = n.parse().unwrap_or(0);
                if let Some(secs) = elapsed.trim_end_matches(',').strip_suffix('s').and_then(|s| s.parse::<f64>().ok())
                {
                    result.elapsed = Duration::from_secs_f64(secs);
                }
            }
            ["Non-2xx", "or", "3xx", "responses:", n] => result.errors += n.parse::<u64>().unwrap_or(0),
            ["Socket", "errors:", rest @ ..] => {
                result.errors += rest.iter().filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok()).sum::<u64>();
            }
            [quantile, value] if quantile.ends_with('%') => {
                if let (Ok(q), Some(us)) = (quantile.trim_end_matches('%').parse::<f64>(), micros(value)) {
                    result.percentiles.push((q / 100.0, us));
                }
            }
            _ => {}
        }
    }
    result
}

/// wrk's `812.00us`, `1.23ms`, `2.01s` in microseconds.
fn micros(text: &str) -> Option<u32> {
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1_000.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1_000_000.0)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|v| (v * scale).round() as u32)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_wrk_output() {
        let text = "Running 3s test @ http://127.0.0.1:1/bench
  2 threads and 32 connections
  Latency Distribution
     50%  812.00us
     75%    1.02ms
     90%    1.50ms
     99%    3.20ms
  61234 requests in 3.01s, 20.11MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  20343.52";
        let r = super::parse_wrk(text, 3);
        assert_eq!((r.requests, r.errors), (61234, 7));
        assert_eq!(r.quantile(0.5), Some(812));
        assert_eq!(r.quantile(0.99), Some(3200));
        assert_eq!(r.quantile(0.999), None);
    }
}

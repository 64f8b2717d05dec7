//! The memory backend at its cap (`MEMORY_MAX_COUNTERS`): a client who can vary one descriptor
//! value (a path, here) floods ten times the cap with one-off keys, and cannot reset another
//! client's per-address counter — it stays over its limit throughout.

mod support;

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use ratelimit::core::{Entry, RateLimitRequest as Request, RequestDescriptor};
use support::*;

const CAP: usize = 1_000;

const CONFIG: &str = "domain: edge
descriptors:
  - key: remote_address
    rate_limit: {unit: hour, requests_per_unit: 5}
  - key: path
    rate_limit: {unit: hour, requests_per_unit: 100}
";

/// Envoy's usual pair of descriptors: the client's address, then the path.
fn from(address: &str, path: &str) -> Request {
    let one = |k: &str, v: &str| RequestDescriptor::new(vec![Entry::new(k, v)]);
    Request {
        domain: "edge".into(),
        descriptors: vec![one("remote_address", address), one("path", path)],
        hits_addend: 0,
    }
}

fn victim() -> RateLimitRequest {
    request("edge", vec![descriptor(&[("remote_address", "192.0.2.7")]), descriptor(&[("path", "/")])])
}

/// The victim spends its 5 an hour, asking every 50 new paths; then `10 × CAP` paths, each
/// asked `each` times, while the victim asks again every 500 paths and is refused every time.
async fn flood_while_the_victim_is_limited(each: usize) {
    let cap = CAP.to_string();
    let mut h = Harness::start(Backend::Memory, &[("edge.yaml", CONFIG)], &[("MEMORY_MAX_COUNTERS", &cap)]).await;
    // The flood goes in-process (tens of thousands of gRPC calls would only make the test slower).
    let limiter = h.running().limiter.clone();
    let mut paths = (0..).map(|i| from("198.51.100.9", &format!("/once/{i}")));
    for _ in 0..2 * CAP {
        limiter.should_rate_limit(&paths.next().unwrap()).await.unwrap();
    }
    // At the cap. The old cache's probation queue (3% of it) let a new counter go before its
    // next hit, 50 keys later: this client was never limited.
    for left in (0..5).rev() {
        let r = h.call(victim()).await.unwrap();
        assert_eq!((r.overall_code, r.statuses[0].limit_remaining), (Code::Ok as i32, left));
        for _ in 0..50 {
            limiter.should_rate_limit(&paths.next().unwrap()).await.unwrap();
        }
    }
    for i in 0..10 * CAP {
        let path = paths.next().unwrap();
        for _ in 0..each {
            limiter.should_rate_limit(&path).await.unwrap();
        }
        if i % 500 == 499 {
            let r = h.call(victim()).await.unwrap();
            assert_eq!(r.statuses[0].code, Code::OverLimit as i32, "after {} paths", i + 1);
        }
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_one_off_paths_does_not_reset_anothers_address_limit() {
    flood_while_the_victim_is_limited(1).await;
}

/// Paths asked twice each cycled the main queue of the S3-FIFO cache alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nor_does_a_flood_of_paths_asked_twice() {
    flood_while_the_victim_is_limited(2).await;
}

//! The measured scenarios: each is run `runs` times, each time right after its floor, so the
//! ratio compares two measurements taken moments apart on the same machine.

use std::net::SocketAddr;
use std::time::Duration;

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request as AttrRequest};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use tonic::transport::Channel;

use crate::load::{self, LoadResult};

#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub concurrency: usize,
    pub seconds: u64,
    pub runs: usize,
}

pub async fn channel(addr: SocketAddr) -> Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("an endpoint")
        .tcp_nodelay(true)
        .connect()
        .await
        .expect("connecting")
}

/// `ShouldRateLimit` with one descriptor `key=value(worker, n)`; OK expected.
pub async fn rls_load(
    addr: SocketAddr,
    shape: Shape,
    key: &'static str,
    value: fn(usize, u64) -> String,
) -> LoadResult {
    let client = RateLimitServiceClient::new(channel(addr).await);
    load::run(shape.concurrency, Duration::from_secs(shape.seconds), move |worker, n| {
        let mut client = client.clone();
        let request = RateLimitRequest {
            domain: "bench".into(),
            descriptors: vec![RateLimitDescriptor {
                entries: vec![Entry { key: key.into(), value: value(worker, n) }],
                ..Default::default()
            }],
            hits_addend: 0,
        };
        async move { matches!(client.should_rate_limit(request).await, Ok(r) if r.get_ref().overall_code == 1) }
    })
    .await
}

/// `Check` with one header whose value is `value(worker, n)`; allow expected.
pub async fn authz_load(
    addr: SocketAddr,
    shape: Shape,
    header: &'static str,
    value: impl Fn(usize, u64) -> String + Send + Sync + 'static,
) -> LoadResult {
    let client = AuthorizationClient::new(channel(addr).await);
    load::run(shape.concurrency, Duration::from_secs(shape.seconds), move |worker, n| {
        let mut client = client.clone();
        let mut headers = std::collections::HashMap::new();
        headers.insert(header.to_string(), value(worker, n));
        headers.insert(":path".into(), "/api".into());
        let request = CheckRequest {
            attributes: Some(AttributeContext {
                request: Some(AttrRequest {
                    http: Some(HttpRequest {
                        method: "GET".into(),
                        path: "/api".into(),
                        host: "bench".into(),
                        headers,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        };
        async move {
            matches!(client.check(request).await, Ok(r) if r.get_ref().status.as_ref().is_some_and(|s| s.code == 0))
        }
    })
    .await
}

//! The measured scenarios: each is run `runs` times, each time right after its floor, so the
//! ratio compares two measurements taken moments apart on the same machine.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request as AttrRequest};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use tonic::transport::Channel;

use crate::lean_client::{AuthzClient, RlsClient};
use crate::load::{self, LoadResult, Pace, Until};

#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub concurrency: usize,
    pub seconds: u64,
    pub runs: usize,
    /// Requests a second for a fixed-rate run; `None` for closed-loop callers.
    pub rate: Option<u64>,
}

impl Shape {
    pub fn pace(&self) -> Pace {
        let duration = Duration::from_secs(self.seconds);
        match self.rate {
            None => Pace::Closed { concurrency: self.concurrency, until: Until::Elapsed(duration) },
            // Up to 16 requests per caller outstanding before requests are shed.
            Some(per_second) => Pace::Rate { per_second, duration, max_in_flight: self.concurrency * 16 },
        }
    }
}

pub async fn channel(addr: SocketAddr) -> Channel {
    channel_with(addr, None).await
}

/// A channel to `addr`, over TLS with `tls` when given (mutual TLS when it carries an identity).
pub async fn channel_with(addr: SocketAddr, tls: Option<&tonic::transport::ClientTlsConfig>) -> Channel {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint =
        tonic::transport::Endpoint::from_shared(format!("{scheme}://{addr}")).expect("an endpoint").tcp_nodelay(true);
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls.clone()).expect("the client TLS settings");
    }
    endpoint.connect().await.expect("connecting")
}

/// The values callers cycle through: one value makes a hot key, many make distinct keys.
pub type Values = Arc<Vec<String>>;

pub fn values(items: impl IntoIterator<Item = String>) -> Values {
    Arc::new(items.into_iter().collect())
}

/// Spreads workers over the values so concurrent callers rarely send the same one.
fn pick(values: &Values, worker: usize, n: u64) -> String {
    values[(n as usize * 64 + worker) % values.len()].clone()
}

/// `ShouldRateLimit` for domain `bench` with one descriptor `key=value`.
pub fn rls_request(key: &str, value: String) -> RateLimitRequest {
    RateLimitRequest {
        domain: "bench".into(),
        descriptors: vec![RateLimitDescriptor {
            entries: vec![Entry { key: key.into(), value }],
            ..Default::default()
        }],
        hits_addend: 0,
    }
}

/// `Check` of `GET /api` carrying one header, and the `x-request-id` Envoy always adds (without
/// it ext-authz makes one per check, a cost a check from Envoy never has).
pub fn check_request(header: &str, value: String) -> CheckRequest {
    let mut headers = std::collections::HashMap::new();
    headers.insert(header.to_string(), value);
    headers.insert(":path".into(), "/api".into());
    headers.insert("x-request-id".into(), "3f1b7c52-9d0e-4a8b-b6f1-2c7e5d9a0b41".into());
    CheckRequest {
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
    }
}

/// Load of `ShouldRateLimit` calls; OK expected.
pub async fn rls_load(addr: SocketAddr, pace: Pace, key: &'static str, values: Values) -> LoadResult {
    rls_load_expecting(addr, pace, key, values, 1).await
}

/// Load of `ShouldRateLimit` calls, each expected to answer `overall_code` (1 OK, 2 OVER_LIMIT).
pub async fn rls_load_expecting(
    addr: SocketAddr,
    pace: Pace,
    key: &'static str,
    values: Values,
    overall_code: i32,
) -> LoadResult {
    rls_load_on(channel(addr).await, pace, key, values, overall_code).await
}

/// [`rls_load_expecting`] on a channel already made (e.g. over TLS).
pub async fn rls_load_on(
    channel: Channel,
    pace: Pace,
    key: &'static str,
    values: Values,
    overall_code: i32,
) -> LoadResult {
    let client = RlsClient::new(channel);
    load::drive(pace, move |worker, n| {
        let mut client = client.clone();
        let request = rls_request(key, pick(&values, worker, n));
        async move { client.should_rate_limit(request).await.is_ok_and(|code| code == overall_code) }
    })
    .await
}

/// How much of each answer the generator decodes (see `lean_client`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decode {
    /// Only the field checked: the generator's work per request does not grow with the answer.
    Checked,
    /// The whole answer, as the generated client does.
    Whole,
}

/// Load of `Check` calls; allow expected.
pub async fn authz_load(addr: SocketAddr, pace: Pace, header: &'static str, values: Values) -> LoadResult {
    authz_load_decoding(Decode::Checked, addr, pace, header, values).await
}

/// [`authz_load`], decoding as much of each answer as `decode` says.
pub async fn authz_load_decoding(
    decode: Decode,
    addr: SocketAddr,
    pace: Pace,
    header: &'static str,
    values: Values,
) -> LoadResult {
    match decode {
        Decode::Checked => authz_load_on(channel(addr).await, pace, header, values).await,
        Decode::Whole => authz_load_whole(addr, pace, header, values).await,
    }
}

/// Load of `Check` calls, each carrying the value after the last one `next` handed out — over
/// every run sharing `next`, so no value is sent twice until all have been (then they start
/// again from the first). For a cache row whose every request must be new to the cache.
pub async fn authz_load_each_once(
    addr: SocketAddr,
    pace: Pace,
    header: &'static str,
    values: Values,
    next: Arc<AtomicUsize>,
) -> LoadResult {
    let value = move |_, _| values[next.fetch_add(1, Ordering::Relaxed) % values.len()].clone();
    authz_checks(channel(addr).await, pace, header, value).await
}

/// [`authz_load`] on a channel already made (e.g. over TLS).
pub async fn authz_load_on(channel: Channel, pace: Pace, header: &'static str, values: Values) -> LoadResult {
    authz_checks(channel, pace, header, move |worker, n| pick(&values, worker, n)).await
}

/// `Check` calls carrying `header: value(worker, n)`, allow expected; the lean client.
async fn authz_checks(
    channel: Channel,
    pace: Pace,
    header: &'static str,
    value: impl Fn(usize, u64) -> String + Send + Sync + 'static,
) -> LoadResult {
    let client = AuthzClient::new(channel);
    load::drive(pace, move |worker, n| {
        let mut client = client.clone();
        let request = check_request(header, value(worker, n));
        async move { client.check(request).await.is_ok_and(|code| code == Some(0)) }
    })
    .await
}

/// [`authz_load`] with a client that decodes each answer whole (every header, the dynamic
/// metadata's map), as the generated client does: the generator then works more per request the
/// richer the answer is (see `lean_client`).
async fn authz_load_whole(addr: SocketAddr, pace: Pace, header: &'static str, values: Values) -> LoadResult {
    let client = AuthorizationClient::new(channel(addr).await);
    load::drive(pace, move |worker, n| {
        let mut client = client.clone();
        let request = check_request(header, pick(&values, worker, n));
        async move {
            matches!(client.check(request).await, Ok(r) if r.get_ref().status.as_ref().is_some_and(|s| s.code == 0))
        }
    })
    .await
}

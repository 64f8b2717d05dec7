//! Caches at capacity against the same caches with room to spare, in the same run: the local
//! over-limit cache (ratelimit) and the verified-token cache (ext-authz). Every request inserts
//! a new entry, so the full cache evicts on every request; the warm one never does. The ratio
//! is full ÷ warm (target ≥ 90%): what a cache at capacity, churning, costs over the same
//! traffic with room to spare.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use ext_authz::testing::{jwks, SigningKey};
use jsonwebtoken::Algorithm;
use serde_json::json;

use crate::report::Row;
use crate::scenarios::{authz_load_each_once, rls_load_expecting, values, Shape};
use crate::targets::{AuthzTarget, RateLimitTarget, HMAC_SECRET, RSA_KEY};
use crate::{measure, Load};

/// Every `client` value is over its limit (0 a second): each request misses the cache (its
/// entry from an earlier second has expired), is counted, and inserts its key.
const ALWAYS_OVER: &str =
    "domain: bench\ndescriptors:\n  - key: client\n    rate_limit: {unit: second, requests_per_unit: 0}\n";

/// Distinct values: more than a run sends, so no request finds a live entry.
const DISTINCT: usize = 1_000_000;

pub async fn rows(shape: Shape) -> Vec<Row> {
    let mut rows = Vec::new();

    let keys = values((0..DISTINCT).map(|i| format!("c{i}")));
    // 1 GiB: never full. 2 MiB: about 25k entries, full after the warm-up.
    let warm = RateLimitTarget::start_with(ALWAYS_OVER, None, &[("LOCAL_CACHE_SIZE_IN_BYTES", "1073741824")]).await;
    let full = RateLimitTarget::start_with(ALWAYS_OVER, None, &[("LOCAL_CACHE_SIZE_IN_BYTES", "2097152")]).await;
    let (warm_addr, full_addr) = (warm.addr(), full.addr());
    let (k1, k2) = (keys.clone(), keys);
    let warm_load =
        move || -> Load<'static> { Box::pin(rls_load_expecting(warm_addr, shape.pace(), "client", k1.clone(), 2)) };
    let full_load =
        move || -> Load<'static> { Box::pin(rls_load_expecting(full_addr, shape.pace(), "client", k2.clone(), 2)) };
    let name = "ratelimit, local over-limit cache full (2 MiB, evicting on every request)";
    rows.push(measure(name, shape, Some(("the same cache warm (1 GiB)", &warm_load)), &full_load).await);
    for target in [warm, full] {
        target.running.shutdown().await;
    }

    // HS256 tokens (a microsecond to verify), each sent once to each service: every request is
    // a miss that verifies a token and inserts it, in both; only the full cache also evicts.
    // (Until 2026-12-03 the callers cycled through the same tokens in every run, so the warm
    // cache answered hits from its second run on and the row compared misses with hits.)
    let hs = SigningKey::hmac(Algorithm::HS256, HMAC_SECRET.as_bytes());
    let exp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) + 3600;
    let tokens = values(
        (0..DISTINCT).map(|i| format!("Bearer {}", hs.sign(&json!({"iss": "hs", "sub": format!("u{i}"), "exp": exp})))),
    );
    let rs = SigningKey::rsa("rs", Algorithm::RS256, RSA_KEY);
    let set = jwks(&[&rs]);
    let warm = AuthzTarget::start_with(10, &set, 100_000_000, true).await;
    let full = AuthzTarget::start_with(10, &set, 10_000, true).await;
    let (warm_addr, full_addr) = (warm.running.grpc_addr, full.running.grpc_addr);
    let (t1, t2) = (tokens.clone(), tokens);
    let (warm_next, full_next) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let warm_load = move || -> Load<'static> {
        Box::pin(authz_load_each_once(warm_addr, shape.pace(), "authorization", t1.clone(), warm_next.clone()))
    };
    let full_load = move || -> Load<'static> {
        Box::pin(authz_load_each_once(full_addr, shape.pace(), "authorization", t2.clone(), full_next.clone()))
    };
    let name = "ext-authz, token cache full (10k tokens, evicting on every request)";
    rows.push(measure(name, shape, Some(("the same cache warm (room for all)", &warm_load)), &full_load).await);
    for target in [warm, full] {
        target.running.shutdown().await;
    }
    rows
}

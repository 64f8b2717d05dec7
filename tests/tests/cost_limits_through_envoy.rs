//! Cost-based limits through a real Envoy, as LLM gateways run them: a per-user token budget
//! checked before each request and charged, when the answer ends, with the tokens the backend
//! reported; and a per-client limit taken from ext-authz's dynamic metadata (Envoy's descriptor
//! `limit` override). The Envoy config is the shipped one with `with_cost_routes`.

use std::time::Duration;

use e2e::stack::PLAN_API_KEY;
use e2e::{Stack, StackOptions};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_budget_is_charged_from_the_response_and_enforced_on_the_next_request() {
    let stack = Stack::start(StackOptions { cost_routes: true, memory_backend: true, ..StackOptions::default() }).await;
    let alice = format!("Bearer {}", stack.token(json!({"sub": "alice"})));
    let bob = format!("Bearer {}", stack.token(json!({"sub": "bob"})));
    let complete = |tokens: u64| format!("/llm/complete?tokens={tokens}");
    let limiter = stack.ratelimit.as_ref().expect("running").limiter.clone();
    let charged = |calls: u64| {
        let limiter = limiter.clone();
        async move {
            // The charge is fire-and-forget after the answer: wait until ratelimit has seen it.
            let seen = limiter.metrics().total_requests.get();
            seen >= calls
        }
    };

    // 100 tokens an hour: 60, then 35 (95 spent, both fitted when they started)…
    let first = stack.get(&complete(60), &[("authorization", &alice)]).await;
    assert_eq!(first.status, 200, "{first:?}");
    assert!(first.header("x-llm-tokens").is_none(), "the usage header is consumed by the gateway");
    shared::testing::eventually("the first charge", Duration::from_secs(10), || charged(2)).await;
    let second = stack.get(&complete(35), &[("authorization", &alice)]).await;
    assert_eq!(second.status, 200, "{second:?}");
    assert_eq!(second.header("x-ratelimit-remaining"), Some("40"), "checked before the charge: 100 - 60");
    shared::testing::eventually("the second charge", Duration::from_secs(10), || charged(4)).await;
    // …then a large answer still fits the 5 left when it starts: it is never cut off, and the
    // budget goes over.
    let third = stack.get(&complete(50), &[("authorization", &alice)]).await;
    assert_eq!((third.status, third.header("x-ratelimit-remaining")), (200, Some("5")));
    shared::testing::eventually("the third charge", Duration::from_secs(10), || charged(6)).await;
    // Spent: refused before reaching the backend, with the JSON body.
    let refused = stack.get(&complete(1), &[("authorization", &alice)]).await;
    assert_eq!(refused.status, 429, "{refused:?}");
    assert_eq!(refused.json()["error"]["code"], "RATE_LIMITED");
    // Another user's budget is untouched.
    let other = stack.get(&complete(10), &[("authorization", &bob)]).await;
    assert_eq!((other.status, other.header("x-ratelimit-remaining")), (200, Some("100")));
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_own_limit_comes_from_ext_authz_metadata() {
    let stack = Stack::start(StackOptions { cost_routes: true, memory_backend: true, ..StackOptions::default() }).await;
    // The plan key's attribute says 2 a minute; the ratelimit config has no limit for `plan`.
    for left in ["1", "0"] {
        let r = stack.get("/plan/report", &[("x-api-key", PLAN_API_KEY)]).await;
        assert_eq!((r.status, r.header("x-ratelimit-remaining")), (200, Some(left)), "{r:?}");
        assert_eq!(r.header("x-ratelimit-limit").map(|l| l.split(',').next().unwrap().trim()), Some("2"));
    }
    let refused = stack.get("/plan/report", &[("x-api-key", PLAN_API_KEY)]).await;
    assert_eq!(refused.status, 429, "{refused:?}");
    stack.shutdown().await;
}

//! The gateway's route chooses ext-authz's policy, and a rule's address lists read the client
//! Envoy settled on — both through the real Envoy, as the gateways configure it.
//!
//! - Policy selection: Envoy routes carrying `ExtAuthzPerRoute` `context_extensions`
//!   (`policy: a` / `policy: b`) are answered by those named policies, differently for the same
//!   token; a route without one by `routes`; a name no policy has is refused
//!   (`UNKNOWN_POLICY`); Envoy Gateway's route metadata (`includeRouteMetadata`: the
//!   `envoy-gateway` namespace, the HTTPRoute's annotation in `resources[0].annotations`)
//!   selects when there is no extension, and the extension wins when both are there; of that
//!   metadata only the policy annotation is read (a huge other annotation changes nothing), and
//!   an annotation that cannot be read (too long, `resources` not a list) is `UNKNOWN_POLICY`.
//! - Client addresses: behind one trusted load balancer (Envoy's `use_remote_address: true` with
//!   `xff_num_trusted_hops: 1`, and Envoy Gateway's rendering of `numTrustedHops: 1`), the client
//!   is the address the balancer appended; what a client writes to the left of it in
//!   `X-Forwarded-For` never changes the answer. The peer address is Envoy's TCP peer.
//!
//! What Envoy 1.40 passes ext_authz, seen while writing these (and relied on by
//! `ext_authz::core::client_address`): `attributes.source.address` is the TCP peer
//! (`127.0.0.1:<port>`) in every mode; with `use_remote_address: true` the `x-forwarded-for`
//! header ends with what Envoy appended — for a loopback peer, Envoy's own address (the host's
//! first non-loopback one), not `127.0.0.1` — joined with `,` and no space; with `false` the
//! header is as the client sent it. `context_extensions` merge the virtual host's and the
//! route's (the route's win), and `route_metadata_context` holds only the namespaces listed in
//! the filter's `route_metadata_context_namespaces`.

use e2e::http::Reply;
use e2e::stack::ClientDetection;
use e2e::{Stack, StackOptions};
use serde_json::json;

/// Two named policies that answer the same token differently, and the selector reading Envoy
/// Gateway's route metadata the way Envoy Gateway writes it: an HTTPRoute annotation
/// `gateway.envoyproxy.io/gatehouse-policy` arrives as `gatehouse-policy` (Envoy Gateway copies
/// only annotations with its prefix, and removes the prefix).
const POLICIES: &str = r#"policies:
  a:
    rules:
      - {name: a-readers, path: /*, accept: [jwt], scopes: ["orders:read"]}
    default: deny
  b:
    rules:
      - {name: b-writers, path: /*, accept: [jwt], scopes: ["orders:write"]}
    default: deny
policy_selector:
  context_extension: policy
  route_metadata: {namespace: envoy-gateway, annotation: gatehouse-policy}
"#;

async fn policy_stack() -> Stack {
    Stack::start(StackOptions {
        memory_backend: true,
        policy_routes: true,
        ext_authz_sections: POLICIES.into(),
        ..StackOptions::default()
    })
    .await
}

fn code(reply: &Reply) -> String {
    reply.json()["error"]["code"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_route_chooses_the_policy() {
    let stack = policy_stack().await;
    // Fewer allowed requests than the shipped limits' 4 an hour per user.
    let bearer = format!("Bearer {}", stack.token(json!({"scope": "orders:read"})));
    let token = [("authorization", bearer.as_str())];

    // The same token: policy a lets it in, policy b wants a scope it lacks.
    let a = stack.get("/a/orders/1", &token).await;
    assert_eq!(a.status, 200, "{a:?}");
    let b = stack.get("/b/orders/1", &token).await;
    assert_eq!((b.status, code(&b).as_str()), (403, "INSUFFICIENT_SCOPE"), "{b:?}");

    // No extension, no metadata: `routes` answers (its `orders` rule; its default denies).
    assert_eq!(stack.get("/orders/1", &token).await.status, 200);
    let unrouted = stack.get("/elsewhere", &token).await;
    assert_eq!(unrouted.status, 403, "{unrouted:?}");

    // A policy name the config does not have: refused, never answered by a looser table.
    let unknown = stack.get("/unknown/orders/1", &token).await;
    assert_eq!((unknown.status, code(&unknown).as_str()), (403, "UNKNOWN_POLICY"), "{unknown:?}");

    // Envoy Gateway's route metadata names policy a: allowed where `routes` would deny.
    let eg = stack.get("/eg/orders/1", &token).await;
    assert_eq!(eg.status, 200, "{eg:?}");
    // Both there: the extension (b) wins over the metadata (a).
    let both = stack.get("/eg-and-b/orders/1", &token).await;
    assert_eq!((both.status, code(&both).as_str()), (403, "INSUFFICIENT_SCOPE"), "{both:?}");

    // Without a credential every policy asks for one: nothing is let through by selection.
    for path in ["/a/orders/1", "/b/orders/1", "/eg/orders/1"] {
        assert_eq!(stack.get(path, &[]).await.status, 401, "{path}");
    }

    // Only the policy annotation is read of the route metadata: the route's other, huge
    // annotation and namespace do not keep policy a from answering (`routes` would deny).
    // Another user: the first one's allowed requests are counted against the shipped limits.
    let other = format!("Bearer {}", stack.token(json!({"scope": "orders:read", "sub": "user-2"})));
    let crowded = stack.get("/eg-crowded/orders/1", &[("authorization", other.as_str())]).await;
    assert_eq!(crowded.status, 200, "{crowded:?}");
    // The annotation there but unreadable (too long; `resources` not a list): refused as an
    // unknown policy, never answered by `routes`.
    for path in ["/eg-long/orders/1", "/eg-malformed/orders/1"] {
        let refused = stack.get(path, &token).await;
        assert_eq!((refused.status, code(&refused).as_str()), (403, "UNKNOWN_POLICY"), "{path}: {refused:?}");
    }
    stack.shutdown().await;
}

/// Office paths only from 10.0.0.0/8: a deny rule for everyone else (`not_client_ips`), and an
/// allow rule that matches only inside (`client_ips`, else the default denies). `/peer/` reads
/// the peer address, which is Envoy's TCP peer (loopback here) whatever the header says.
const ADDRESS_RULES: &str = r#"    - name: office-only
      action: deny
      path: /office/*
      not_client_ips: [10.0.0.0/8]
    - name: office
      path: /office/*
      accept: [jwt]
    - name: intranet
      path: /intranet/*
      accept: [jwt]
      client_ips: [10.0.0.0/8, "fd00::/8"]
    - name: via-loopback
      path: /peer/*
      accept: [jwt]
      peer_ips: [127.0.0.0/8]
"#;

/// A balancer in front of Envoy appends the address it saw to what the client sent.
fn through_balancer(client_sent: Option<&str>, balancer_saw: &str) -> String {
    match client_sent {
        Some(sent) => format!("{sent}, {balancer_saw}"),
        None => balancer_saw.to_string(),
    }
}

async fn assert_the_balancers_entry_decides(detection: ClientDetection, client_address: &str) {
    let stack = Stack::start(StackOptions {
        memory_backend: true,
        client_detection: Some(detection),
        ext_authz_rules: ADDRESS_RULES.into(),
        ext_authz_sections: client_address.into(),
        ..StackOptions::default()
    })
    .await;
    // A user of its own per request: the shipped limits allow each user 4 requests an hour.
    let users = std::sync::atomic::AtomicUsize::new(0);
    let get = |path: &'static str, xff: Option<String>| {
        let user = users.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let bearer = format!("Bearer {}", stack.token(json!({"sub": format!("user-{user}")})));
        let stack = &stack;
        async move {
            let mut headers = vec![("authorization", bearer.as_str())];
            if let Some(xff) = xff.as_deref() {
                headers.push(("x-forwarded-for", xff));
            }
            stack.get(path, &headers).await
        }
    };
    let at = format!("{detection:?} with {client_address:?}");

    // The balancer saw a client inside: allowed, with or without what the client wrote.
    for sent in [None, Some("203.0.113.66"), Some("garbage, 198.51.100.1")] {
        let xff = through_balancer(sent, "10.1.2.3");
        for path in ["/office/1", "/intranet/1"] {
            let reply = get(path, Some(xff.clone())).await;
            assert_eq!(reply.status, 200, "{at}: {path} via {xff}: {reply:?}");
        }
    }
    // A client outside claiming 10.x (and fd00::) to the left of the balancer's entry: denied.
    for sent in [Some("10.9.9.9"), Some("10.9.9.9, 10.8.8.8"), Some("fd00::1"), None] {
        let xff = through_balancer(sent, "203.0.113.7");
        let office = get("/office/1", Some(xff.clone())).await;
        assert_eq!((office.status, code(&office).as_str()), (403, "DENIED"), "{at}: via {xff}: {office:?}");
        let intranet = get("/intranet/1", Some(xff.clone())).await;
        assert_eq!(intranet.status, 403, "{at}: via {xff}: {intranet:?}");
    }
    // Straight to Envoy, past the balancer (no header): the client is the peer, 127.0.0.1.
    let direct = get("/office/1", None).await;
    assert_eq!((direct.status, code(&direct).as_str()), (403, "DENIED"), "{at}: {direct:?}");
    // The trusted position holds no address: no client address, so outside every list.
    let broken = get("/office/1", Some(through_balancer(Some("10.1.2.3"), "not-an-address"))).await;
    assert_eq!((broken.status, code(&broken).as_str()), (403, "DENIED"), "{at}: {broken:?}");
    // The peer is Envoy's TCP peer, whatever the header claims.
    let peer = get("/peer/1", Some(through_balancer(Some("10.1.2.3"), "203.0.113.7"))).await;
    assert_eq!(peer.status, 200, "{at}: {peer:?}");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_one_balancer_a_spoofed_forwarded_for_never_changes_the_answer() {
    // Envoy's own settings (the shipped config behind one balancer; kgateway, Istio).
    assert_the_balancers_entry_decides(ClientDetection::TrustedHops(1), "client_address: {trusted_hops: 1}\n").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_envoy_gateways_client_ip_detection_too() {
    // Envoy Gateway's `numTrustedHops: 1`: Envoy appends nothing, so ext-authz is told so.
    assert_the_balancers_entry_decides(
        ClientDetection::EnvoyGateway { num_trusted_hops: 1 },
        "client_address: {trusted_hops: 1, envoy_appends: false}\n",
    )
    .await;
}

/// Envoy at the edge (the shipped config: no trusted hop): the client is the peer, and no
/// header a client writes makes it anything else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_edge_the_client_is_the_peer() {
    let stack = Stack::start(StackOptions {
        memory_backend: true,
        ext_authz_rules: ADDRESS_RULES.into(),
        ..StackOptions::default()
    })
    .await;
    let bearer = format!("Bearer {}", stack.token(json!({})));
    for xff in ["10.1.2.3", "10.9.9.9, 10.1.2.3"] {
        let reply = stack.get("/office/1", &[("authorization", &bearer), ("x-forwarded-for", xff)]).await;
        assert_eq!((reply.status, code(&reply).as_str()), (403, "DENIED"), "{xff}: {reply:?}");
    }
    stack.shutdown().await;
}

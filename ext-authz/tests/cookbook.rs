//! The policy cookbook (`docs/policy-cookbook.md`) as tests: each recipe's ext-authz block is
//! read from the page, appended to the page's shared part, loaded as one config file and
//! started; the requests the recipe must allow and refuse go through gRPC `Check`. The page's
//! recipes and the tested ones are the same set, so the page and the tests cannot drift apart.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::{address, socket_address::PortSpecifier, Address, SocketAddress};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request as AttrRequest};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use ext_authz::core::apikeys::{format_hash, hash_key};
use ext_authz::testing::{jwks, SigningKey};
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};
use shared::testing::TestClock;
use support::{denial, ended, status, RSA_A};

const PAGE: &str = "../docs/policy-cookbook.md";
const NOW: u64 = support::NOW;
const ISSUER: &str = "https://idp.example.com";

/// Every recipe a test below runs; the page must have exactly these (and `shared`).
const TESTED: [&str; 10] = [
    "istio-jwt-claims",
    "istio-methods-per-path",
    "istio-deny-delete",
    "istio-not-paths",
    "istio-ip-blocks",
    "authorino-claim-matches-path",
    "authorino-api-key-selector",
    "authorino-when",
    "oauth2-proxy-who-gets-in",
    "oauth2-proxy-skip-auth-route",
];

/// The API keys of the recipes: (key, client id, attributes).
const PARTNER_PRO: &str = "ghk_cookbook-partner-pro-00000000000000000000";
const PARTNER_FREE: &str = "ghk_cookbook-partner-free-0000000000000000000";
const PARTNER_NO_PLAN: &str = "ghk_cookbook-partner-none-0000000000000000000";
const OTHER_GROUP: &str = "ghk_cookbook-reseller-pro-00000000000000000000";

fn api_keys() -> String {
    let keys = [
        (PARTNER_PRO, "acme", json!({"group": "partners", "plan": "pro"})),
        (PARTNER_FREE, "tiny", json!({"group": "partners", "plan": "free"})),
        (PARTNER_NO_PLAN, "old", json!({"group": "partners"})),
        (OTHER_GROUP, "resale", json!({"group": "resellers", "plan": "pro"})),
    ];
    let entries: Vec<Value> = keys
        .iter()
        .map(|(key, client, attributes)| {
            json!({"hash": format_hash(&hash_key(key)), "client_id": client, "scopes": ["orders:read"], "attributes": attributes})
        })
        .collect();
    json!({ "keys": entries }).to_string()
}

/// The blocks marked `<!-- cookbook: NAME -->` on the page, in page order: (name, YAML).
fn recipes() -> Vec<(String, String)> {
    let page = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(PAGE)).expect("the cookbook page");
    let mut recipes = Vec::new();
    let mut lines = page.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line.trim().strip_prefix("<!-- cookbook:").and_then(|l| l.strip_suffix("-->")) else {
            continue;
        };
        let name = name.trim().to_string();
        assert_eq!(lines.next(), Some("```yaml"), "the mark of recipe {name} is not right above a ```yaml block");
        let block: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
        recipes.push((name, block.join("\n") + "\n"));
    }
    recipes
}

fn recipe(name: &str) -> String {
    let found = recipes().into_iter().find(|(n, _)| n == name);
    found.unwrap_or_else(|| panic!("no recipe {name:?} on {PAGE}")).1
}

#[test]
fn every_recipe_on_the_page_is_tested_and_every_test_is_on_the_page() {
    let names: Vec<String> = recipes().into_iter().map(|(name, _)| name).collect();
    let mut on_page: Vec<&str> = names.iter().map(String::as_str).filter(|n| *n != "shared").collect();
    assert!(names.iter().any(|n| n == "shared"), "the page has no shared part");
    let mut tested = TESTED.to_vec();
    let count = on_page.len();
    on_page.sort_unstable();
    on_page.dedup();
    assert_eq!(on_page.len(), count, "a recipe name is used twice on the page");
    tested.sort_unstable();
    assert_eq!(on_page, tested);
}

/// A request of a case: Envoy's view of it.
#[derive(Clone)]
struct Req {
    method: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, String)>,
    peer: Option<&'static str>,
}

fn req(method: &'static str, path: &'static str) -> Req {
    Req { method, path, headers: Vec::new(), peer: Some("10.1.2.3") }
}

fn get(path: &'static str) -> Req {
    req("GET", path)
}

impl Req {
    /// A valid token of the shared part's provider, with `claims` added.
    fn token(self, claims: Value) -> Req {
        let mut all = json!({"iss": ISSUER, "aud": "orders-api", "sub": "user-1", "exp": NOW + 600});
        for (name, value) in claims.as_object().expect("claims are an object") {
            all[name] = value.clone();
        }
        let token = SigningKey::rsa("key-a", Algorithm::RS256, RSA_A).sign(&all);
        self.header("authorization", format!("Bearer {token}"))
    }

    fn api_key(self, key: &str) -> Req {
        self.header("x-api-key", key.to_string())
    }

    fn header(mut self, name: &'static str, value: String) -> Req {
        self.headers.push((name, value));
        self
    }

    /// The address that connected to Envoy (`None`: Envoy gave none).
    fn peer(mut self, peer: Option<&'static str>) -> Req {
        self.peer = peer;
        self
    }

    fn xff(self, chain: &str) -> Req {
        self.header("x-forwarded-for", chain.to_string())
    }

    fn check_request(&self) -> CheckRequest {
        let mut headers: HashMap<String, String> =
            self.headers.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        headers.insert(":method".into(), self.method.into());
        headers.insert(":path".into(), self.path.into());
        headers.insert(":authority".into(), "api.example.com".into());
        headers.insert("x-request-id".into(), "cookbook-1".into());
        let source = self.peer.map(|ip| Peer {
            address: Some(Address {
                address: Some(address::Address::SocketAddress(SocketAddress {
                    address: ip.into(),
                    port_specifier: Some(PortSpecifier::PortValue(40_000)),
                    ..Default::default()
                })),
            }),
            ..Default::default()
        });
        CheckRequest {
            attributes: Some(AttributeContext {
                source,
                request: Some(AttrRequest {
                    http: Some(HttpRequest {
                        method: self.method.into(),
                        path: self.path.into(),
                        host: "api.example.com".into(),
                        headers,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }
    }
}

/// What a case expects: an allow, or a deny with its HTTP status and error code.
enum Expect {
    Allow,
    Deny(i32, &'static str),
}

struct Case {
    what: &'static str,
    request: Req,
    expect: Expect,
}

fn allows(what: &'static str, request: Req) -> Case {
    Case { what, request, expect: Expect::Allow }
}

fn denies(what: &'static str, request: Req, status: i32, code: &'static str) -> Case {
    Case { what, request, expect: Expect::Deny(status, code) }
}

/// Loads recipe `name` after the shared part, as one config file beside its key files, starts
/// ext-authz on it and checks every case.
async fn run(name: &str, cases: &[Case]) {
    assert!(TESTED.contains(&name), "{name} is not listed in TESTED");
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::rsa("key-a", Algorithm::RS256, RSA_A);
    std::fs::write(dir.path().join("jwks.json"), jwks(&[&key])).unwrap();
    std::fs::write(dir.path().join("api-keys.yaml"), api_keys()).unwrap();
    let file = dir.path().join("ext-authz.yaml");
    std::fs::write(&file, ended(&format!("{}{}", recipe("shared"), recipe(name)))).unwrap();
    // The page's configs as they are; only the ports are the test's (any free one).
    let env = HashMap::from([
        ("EXT_AUTHZ__SERVER__GRPC_ADDR".to_string(), "127.0.0.1:0".to_string()),
        ("EXT_AUTHZ__SERVER__HTTP_ADDR".to_string(), "127.0.0.1:0".to_string()),
    ]);
    let config = ext_authz::config::load(&file, &env).unwrap_or_else(|e| panic!("recipe {name} does not load: {e}"));
    let clock = TestClock::at(NOW);
    let running = ext_authz::app::start(config, Arc::new(env), clock.as_clock()).await.expect("ext-authz starts");
    let authorizer = running.authorizer.clone();
    shared::testing::eventually("the recipe's JWT keys loaded", Duration::from_secs(10), async || authorizer.ready())
        .await;
    let mut grpc = AuthorizationClient::connect(format!("http://{}", running.grpc_addr)).await.unwrap();
    let mut failures = Vec::new();
    for case in cases {
        let answer = grpc.check(case.request.check_request()).await.expect("Check answers").into_inner();
        let got = match status(&answer) {
            0 => "allow".to_string(),
            _ => {
                let (http, _, body) = denial(&answer);
                format!("deny {http} {}", body["error"]["code"].as_str().unwrap_or("?"))
            }
        };
        let want = match case.expect {
            Expect::Allow => "allow".to_string(),
            Expect::Deny(http, code) => format!("deny {http} {code}"),
        };
        if got != want {
            failures
                .push(format!("{}: {} {}: want {want}, got {got}", case.what, case.request.method, case.request.path));
        }
    }
    running.shutdown().await;
    assert!(failures.is_empty(), "recipe {name}:\n  {}", failures.join("\n  "));
}

#[tokio::test]
async fn istio_jwt_claims() {
    let admins = json!({"groups": ["admins"]});
    run(
        "istio-jwt-claims",
        &[
            allows("an admin's token", get("/admin/users").token(admins.clone())),
            denies("another group's token", get("/admin/users").token(json!({"groups": ["staff"]})), 403, "FORBIDDEN"),
            denies("a token without groups", get("/admin/users").token(json!({})), 403, "FORBIDDEN"),
            denies("no token", get("/admin/users"), 401, "UNAUTHORIZED"),
            denies("an admin elsewhere", get("/orders/1").token(admins), 403, "FORBIDDEN"),
        ],
    )
    .await;
}

#[tokio::test]
async fn istio_methods_per_path() {
    let writer = json!({"roles": ["order-writer"]});
    run(
        "istio-methods-per-path",
        &[
            allows("listing", get("/orders").token(json!({}))),
            allows("reading one", get("/orders/7").token(json!({}))),
            allows("a HEAD", req("HEAD", "/orders/7").token(json!({}))),
            allows("a writer creating", req("POST", "/orders").token(writer.clone())),
            denies("a reader creating", req("POST", "/orders").token(json!({"roles": ["reader"]})), 403, "FORBIDDEN"),
            denies("a writer deleting", req("DELETE", "/orders/7").token(writer), 403, "FORBIDDEN"),
            denies("no token", get("/orders"), 401, "UNAUTHORIZED"),
        ],
    )
    .await;
}

#[tokio::test]
async fn istio_deny_delete() {
    let contractor = json!({"groups": ["staff", "contractors"]});
    run(
        "istio-deny-delete",
        &[
            allows("an employee deleting", req("DELETE", "/orders/7").token(json!({"groups": ["staff"]}))),
            allows("a token without groups deleting", req("DELETE", "/orders/7").token(json!({}))),
            allows("a contractor reading", get("/orders/7").token(contractor.clone())),
            denies("a contractor deleting", req("DELETE", "/orders/7").token(contractor), 403, "CONTRACTOR_READ_ONLY"),
            denies(
                "groups as a string",
                req("DELETE", "/orders/7").token(json!({"groups": "contractors"})),
                403,
                "CONDITION_ERROR",
            ),
            denies("no token", req("DELETE", "/orders/7"), 401, "UNAUTHORIZED"),
        ],
    )
    .await;
}

#[tokio::test]
async fn istio_not_paths() {
    run(
        "istio-not-paths",
        &[
            allows("the health check", get("/healthz")),
            allows("the metrics", get("/metrics")),
            allows("a token anywhere", req("POST", "/orders").token(json!({}))),
            denies("no token", get("/orders"), 401, "UNAUTHORIZED"),
            denies("no token, through a dot segment", get("/healthz/../orders"), 401, "UNAUTHORIZED"),
            denies("an API key (jwt only)", get("/orders").api_key(PARTNER_PRO), 401, "UNAUTHORIZED"),
        ],
    )
    .await;
}

#[tokio::test]
async fn istio_ip_blocks() {
    // One trusted hop, the load balancer (Envoy's peer): the header ends with what the
    // balancer saw, then what Envoy appended (the balancer).
    let office = get("/admin/users").token(json!({})).peer(Some("192.0.2.1"));
    run(
        "istio-ip-blocks",
        &[
            allows("metrics from the cluster", get("/metrics").peer(Some("10.4.0.9"))),
            denies("metrics from outside", get("/metrics").peer(Some("192.0.2.1")), 403, "DENIED"),
            denies("metrics without a peer (HTTP mode)", get("/metrics").peer(None), 403, "DENIED"),
            allows("admin from the office", office.clone().xff("203.0.113.7,192.0.2.1")),
            allows("admin from the office over IPv6", office.clone().xff("2001:db8:1::5,192.0.2.1")),
            allows("a spoofed entry before the office's", office.clone().xff("198.51.100.1, 203.0.113.7,192.0.2.1")),
            denies("admin from elsewhere", office.clone().xff("198.51.100.1,192.0.2.1"), 403, "FORBIDDEN"),
            denies(
                "a spoofed office entry before another's",
                office.clone().xff("203.0.113.7, 198.51.100.1,192.0.2.1"),
                403,
                "FORBIDDEN",
            ),
            denies(
                "admin from the office without a token",
                get("/admin/users").peer(Some("192.0.2.1")).xff("203.0.113.7,192.0.2.1"),
                401,
                "UNAUTHORIZED",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn authorino_claim_matches_path() {
    let acme = json!({"org": "acme"});
    run(
        "authorino-claim-matches-path",
        &[
            allows("the token's org", get("/orgs/acme/orders").token(acme.clone())),
            allows("an order of the token's org", get("/orgs/acme/orders/7").token(acme.clone())),
            denies("another org", get("/orgs/globex/orders").token(acme.clone()), 403, "FORBIDDEN"),
            denies("another org's order", get("/orgs/globex/orders/7").token(acme.clone()), 403, "FORBIDDEN"),
            allows("any other path with a token", get("/profile").token(acme)),
            denies("no token", get("/orgs/acme/orders"), 401, "UNAUTHORIZED"),
        ],
    )
    .await;
}

#[tokio::test]
async fn authorino_api_key_selector() {
    run(
        "authorino-api-key-selector",
        &[
            allows("a partner on a paid plan", get("/partner/orders").api_key(PARTNER_PRO)),
            denies("a partner on the free plan", get("/partner/orders").api_key(PARTNER_FREE), 403, "FORBIDDEN"),
            denies("a partner without a plan", get("/partner/orders").api_key(PARTNER_NO_PLAN), 403, "FORBIDDEN"),
            denies("another group's key", get("/partner/orders").api_key(OTHER_GROUP), 403, "FORBIDDEN"),
            denies("an unknown key", get("/partner/orders").api_key("ghk_nobody"), 401, "UNAUTHORIZED"),
            denies("a token (API keys only)", get("/partner/orders").token(json!({})), 401, "UNAUTHORIZED"),
        ],
    )
    .await;
}

#[tokio::test]
async fn authorino_when() {
    let member = json!({"realm_access": {"roles": ["member"]}});
    let admin = json!({"realm_access": {"roles": ["member", "admin"]}});
    run(
        "authorino-when",
        &[
            allows("a member listing", get("/resources").token(member.clone())),
            allows("a member reading", get("/resources/7").token(member.clone())),
            allows("an admin deleting", req("DELETE", "/resources/7").token(admin)),
            denies("a member deleting", req("DELETE", "/resources/7").token(member.clone()), 403, "ADMINS_ONLY"),
            // Not a numbered resource: the admin check does not apply, as Authorino skips it.
            allows("a member deleting a named resource", req("DELETE", "/resources/drafts").token(member.clone())),
            denies("a non-member", get("/resources/7").token(json!({"realm_access": {"roles": []}})), 403, "FORBIDDEN"),
            denies("no realm_access", get("/resources/7").token(json!({})), 403, "CONDITION_ERROR"),
            allows("elsewhere, any token", get("/profile").token(json!({}))),
            denies("no token", get("/resources"), 401, "UNAUTHORIZED"),
        ],
    )
    .await;
}

#[tokio::test]
async fn oauth2_proxy_who_gets_in() {
    let person = |email: &str, extra: Value| {
        let mut claims = json!({"email": email, "email_verified": true});
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        get("/dashboard").token(claims)
    };
    let ops = json!({"groups": ["/ops"]});
    run(
        "oauth2-proxy-who-gets-in",
        &[
            allows("an ops member", person("ana@example.com", ops.clone())),
            allows("a support member, domain in capitals", person("bo@EXAMPLE.COM", json!({"groups": ["/support"]}))),
            allows("a realm admin", person("cy@example.com", json!({"realm_access": {"roles": ["admin"]}}))),
            allows(
                "the client role",
                person("di@example.com", json!({"resource_access": {"orders-api": {"roles": ["operator"]}}})),
            ),
            allows(
                "no email_verified claim",
                get("/dashboard").token(json!({"email": "ed@example.com", "groups": ["/ops"]})),
            ),
            denies(
                "an unverified email",
                get("/dashboard")
                    .token(json!({"email": "fay@example.com", "email_verified": false, "groups": ["/ops"]})),
                403,
                "FORBIDDEN",
            ),
            denies("another domain", person("gil@example.org", ops.clone()), 403, "FORBIDDEN"),
            denies("a second @", person("mallory@evil.test@example.com", ops.clone()), 403, "FORBIDDEN"),
            denies("a subdomain", person("hal@mail.example.com", ops), 403, "FORBIDDEN"),
            denies("no group or role", person("ivy@example.com", json!({"groups": ["/sales"]})), 403, "FORBIDDEN"),
            denies(
                "another client's role",
                person("jo@example.com", json!({"resource_access": {"billing": {"roles": ["operator"]}}})),
                403,
                "FORBIDDEN",
            ),
            denies("no token", get("/dashboard"), 401, "UNAUTHORIZED"),
        ],
    )
    .await;
}

#[tokio::test]
async fn oauth2_proxy_skip_auth_route() {
    run(
        "oauth2-proxy-skip-auth-route",
        &[
            allows("the health check", get("/healthz")),
            allows("a public page", get("/public/about")),
            allows("a static file, any method", req("HEAD", "/static/app.js")),
            denies("a public page posted to", req("POST", "/public/form"), 403, "READ_ONLY"),
            denies("posted to with a token", req("POST", "/public/form").token(json!({})), 403, "READ_ONLY"),
            allows("elsewhere with a token", get("/orders").token(json!({}))),
            denies("elsewhere without", get("/orders"), 401, "UNAUTHORIZED"),
            denies("out of public through a dot segment", get("/public/../orders"), 401, "UNAUTHORIZED"),
        ],
    )
    .await;
}

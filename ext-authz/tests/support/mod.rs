//! Test support: a real JWKS / OIDC discovery server on loopback whose keys the test rotates
//! (and which counts its hits), ext-authz started in-process on port 0, and clients.
#![allow(dead_code)]

pub mod process;
pub mod token_server;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use envoy_types::pb::envoy::config::core::v3::{header_value_option::HeaderAppendAction, HeaderValueOption};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request as AttrRequest};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest, CheckResponse};
use ext_authz::core::apikeys::{format_hash, hash_key};
use ext_authz::testing::{jwks, SigningKey};
use jsonwebtoken::Algorithm;
use parking_lot::Mutex;
use serde_json::{json, Value};
use shared::testing::TestClock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::Channel;

pub const RSA_A: &str = include_str!("../fixtures/rsa-a.pem");
pub const RSA_B: &str = include_str!("../fixtures/rsa-b.pem");
pub const API_KEY: &str = "ghk_integration-test-key-00000000000000000000";
pub const HMAC_SECRET: &str = "integration-test-hmac-secret-0123456789";

/// The identity provider: discovery document and JWKS, with switchable keys and failures.
#[derive(Clone)]
pub struct JwksServer {
    pub url: String,
    pub jwks: Arc<Mutex<String>>,
    pub hits: Arc<AtomicUsize>,
    pub failing: Arc<AtomicBool>,
    /// While set, key set requests get no answer (a hanging identity provider); cleared, the
    /// held requests are answered (after a minute at most).
    pub hanging: Arc<AtomicBool>,
    /// While set, key set requests get an endless body.
    pub endless: Arc<AtomicBool>,
    pub max_age: Arc<AtomicU64>,
    /// The `traceparent` of each key set request (empty when it had none).
    pub traceparents: Arc<Mutex<Vec<String>>>,
}

impl JwksServer {
    pub async fn start(keys: &[&SigningKey]) -> JwksServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = JwksServer {
            url,
            jwks: Arc::new(Mutex::new(jwks(keys))),
            hits: Arc::default(),
            failing: Arc::default(),
            hanging: Arc::default(),
            endless: Arc::default(),
            max_age: Arc::default(),
            traceparents: Arc::default(),
        };
        let app = axum::Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(serve_jwks))
            .with_state(server.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        server
    }

    pub fn publish(&self, keys: &[&SigningKey]) {
        *self.jwks.lock() = jwks(keys);
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn discovery(State(s): State<JwksServer>) -> Response {
    let document = json!({"issuer": s.url, "jwks_uri": format!("{}/jwks", s.url)}).to_string();
    ([(header::CONTENT_TYPE, "application/json")], document).into_response()
}

async fn serve_jwks(State(s): State<JwksServer>, headers: axum::http::HeaderMap) -> Response {
    s.hits.fetch_add(1, Ordering::SeqCst);
    let traceparent = headers.get("traceparent").and_then(|v| v.to_str().ok()).unwrap_or_default();
    s.traceparents.lock().push(traceparent.to_string());
    // Held until `hanging` is cleared, a minute at most.
    let hanging = s.hanging.clone();
    let released = move || std::future::ready((!hanging.load(Ordering::SeqCst)).then_some(()));
    shared::testing::poll(Duration::from_secs(60), released).await;
    if s.endless.load(Ordering::SeqCst) {
        let spaces = axum::body::Bytes::from(vec![b' '; 64 << 10]);
        let stream = futures_util::stream::repeat_with(move || Ok::<_, std::io::Error>(spaces.clone()));
        return ([(header::CONTENT_TYPE, "application/json")], axum::body::Body::from_stream(stream)).into_response();
    }
    if s.failing.load(Ordering::SeqCst) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "down").into_response();
    }
    let body = s.jwks.lock().clone();
    let mut response = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    let max_age = s.max_age.load(Ordering::SeqCst);
    if max_age > 0 {
        response.headers_mut().insert(header::CACHE_CONTROL, format!("public, max-age={max_age}").parse().unwrap());
    }
    response
}

/// The config used by most tests, pointing at `issuer`'s discovery.
pub fn config_yaml(issuer: &str, extra_rules: &str) -> String {
    format!(
        r#"
server:
  grpc_addr: 127.0.0.1:0
  http_addr: 127.0.0.1:0
  http_check_prefix: /authz
reload_interval: 100ms
jwt_providers:
  - name: corp
    issuer: {issuer}
    audiences: [orders-api]
    algorithms: [RS256, PS256, ES256, ES384, EdDSA]
    keys: {{discovery: true}}
    from:
      - header: authorization
        prefix: "Bearer "
      - query: access_token
      - cookie: token
    jwks_refresh:
      interval: 1h
      min_interval: 200ms
      unknown_kid_min_interval: 10s
      timeout: 2s
  - name: jobs
    issuer: jobs
    algorithms: [HS256]
    keys: {{hmac_secret_env: JOBS_SECRET}}
    from: [{{header: x-job-token}}]
api_keys:
  from: [{{header: x-api-key}}]
  file: api-keys.yaml
routes:
  public: [/healthz, /public/*]
  default: deny
  rules:
{extra_rules}    - name: orders-read
      methods: [GET]
      path: /orders/{{id}}
      accept: [jwt, api_key]
      scopes: [orders:read]
    - name: admin
      path: /admin/*
      accept: [jwt:corp]
      claims:
        - claim: https://example.com/roles
          contains: admin
    - name: jobs
      path: /jobs/*
      accept: [jwt:jobs]
identity:
  headers:
    X-User-ID: [user_id, sub]
    X-Org-ID: org_id
    X-User-Email: email
    X-User-Role: role
    X-User-Scopes: scopes
    X-Tenant: [["https://example.com/claims", "tenant"]]
"#
    )
}

/// `config` with the end-of-document line every ext-authz config ends with (a file without it
/// is refused as possibly cut short).
pub fn ended(config: &str) -> String {
    format!("{}\n...\n", config.trim_end())
}

pub fn api_keys_yaml(keys: &[(&str, &str, &[&str])]) -> String {
    let entries: Vec<Value> = keys
        .iter()
        .map(|(key, client, scopes)| json!({"hash": format_hash(&hash_key(key)), "client_id": client, "scopes": scopes, "org_id": "acme"}))
        .collect();
    serde_json::to_string(&json!({"keys": entries})).unwrap()
}

pub struct Harness {
    pub idp: JwksServer,
    pub key: SigningKey,
    pub dir: tempfile::TempDir,
    pub running: Option<ext_authz::app::Running>,
    pub grpc: AuthorizationClient<Channel>,
    pub clock: TestClock,
}

pub const NOW: u64 = shared::testing::START;

pub fn env() -> HashMap<String, String> {
    HashMap::from([("JOBS_SECRET".to_string(), HMAC_SECRET.to_string())])
}

impl Harness {
    pub async fn start() -> Harness {
        let key = SigningKey::rsa("key-a", Algorithm::RS256, RSA_A);
        let idp = JwksServer::start(&[&key]).await;
        Harness::start_with(idp, key, "").await
    }

    pub async fn start_with(idp: JwksServer, key: SigningKey, extra_rules: &str) -> Harness {
        Harness::start_with_sections(idp, key, extra_rules, "").await
    }

    /// As `start_with`, with more top-level sections appended to the config.
    pub async fn start_with_sections(idp: JwksServer, key: SigningKey, extra_rules: &str, sections: &str) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let config = ended(&(config_yaml(&idp.url, extra_rules) + sections));
        std::fs::write(dir.path().join("ext-authz.yaml"), config).unwrap();
        std::fs::write(dir.path().join("api-keys.yaml"), api_keys_yaml(&[(API_KEY, "billing", &["orders:read"])]))
            .unwrap();
        let config = ext_authz::config::load(&dir.path().join("ext-authz.yaml"), &env()).expect("valid test config");
        let clock = TestClock::at(NOW);
        let running = ext_authz::app::start(config, Arc::new(env()), clock.as_clock()).await.expect("ext-authz starts");
        let grpc = AuthorizationClient::connect(format!("http://{}", running.grpc_addr)).await.unwrap();
        let harness = Harness { idp, key, dir, running: Some(running), grpc, clock };
        // Keys load in the background once the ports are open; start from a ready service, as
        // Envoy does (it sends traffic once the readiness probe passes), unless the test made
        // its provider fail on purpose.
        let provider_down = harness.idp.failing.load(Ordering::SeqCst) || harness.idp.hanging.load(Ordering::SeqCst);
        if !provider_down {
            let authorizer = harness.running().authorizer.clone();
            harness.eventually(|| authorizer.ready()).await;
        }
        harness
    }

    pub fn running(&self) -> &ext_authz::app::Running {
        self.running.as_ref().unwrap()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("ext-authz.yaml")
    }

    /// Claims of a valid token for this harness's provider, patched.
    pub fn claims(&self, patch: Value) -> Value {
        let mut claims = json!({"iss": self.idp.url, "aud": "orders-api", "sub": "user-1", "exp": NOW + 600,
            "scope": "orders:read profile", "email": "u1@example.com"});
        for (k, v) in patch.as_object().unwrap() {
            claims[k] = v.clone();
        }
        claims
    }

    pub fn token(&self, patch: Value) -> String {
        self.key.sign(&self.claims(patch))
    }

    pub async fn check(&mut self, method: &str, path: &str, headers: &[(&str, &str)]) -> CheckResponse {
        self.grpc.check(check_request(method, path, headers)).await.expect("Check answers").into_inner()
    }

    pub async fn metrics(&self) -> String {
        http(self.running().http_addr, "GET", "/metrics", &[]).await.2
    }

    pub async fn eventually<F: FnMut() -> bool>(&self, mut check: F) {
        shared::testing::eventually("the condition", Duration::from_secs(5), async || check()).await;
    }

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }
}

/// A CheckRequest as Envoy builds it: lower-case headers including pseudo-headers, the full
/// target in `path`.
pub fn check_request(method: &str, path: &str, headers: &[(&str, &str)]) -> CheckRequest {
    let mut map: HashMap<String, String> =
        headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.to_string())).collect();
    map.insert(":method".into(), method.into());
    map.insert(":path".into(), path.into());
    map.insert(":authority".into(), "api.example.com".into());
    map.entry("x-request-id".into()).or_insert_with(|| "req-42".into());
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(AttrRequest {
                http: Some(HttpRequest {
                    method: method.into(),
                    path: path.into(),
                    host: "api.example.com".into(),
                    headers: map,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// gRPC status code of a CheckResponse (0 = allow).
pub fn status(response: &CheckResponse) -> i32 {
    response.status.as_ref().expect("status is always set").code
}

/// The headers an allow sets, each checked to overwrite.
pub fn allowed_headers(response: &CheckResponse) -> (HashMap<String, String>, Vec<String>) {
    let Some(HttpResponse::OkResponse(ok)) = &response.http_response else { panic!("not an allow: {response:?}") };
    let headers = ok
        .headers
        .iter()
        .map(|h: &HeaderValueOption| {
            assert_eq!(h.append_action, HeaderAppendAction::OverwriteIfExistsOrAdd as i32);
            let header = h.header.as_ref().unwrap();
            (header.key.clone(), header.value.clone())
        })
        .collect();
    (headers, ok.headers_to_remove.clone())
}

/// HTTP status, selected headers and JSON body of a deny.
pub fn denial(response: &CheckResponse) -> (i32, HashMap<String, String>, Value) {
    let Some(HttpResponse::DeniedResponse(denied)) = &response.http_response else {
        panic!("not a deny: {response:?}")
    };
    let headers =
        denied.headers.iter().filter_map(|h| h.header.as_ref()).map(|h| (h.key.clone(), h.value.clone())).collect();
    (denied.status.as_ref().unwrap().code, headers, serde_json::from_str(&denied.body).unwrap())
}

/// A minimal HTTP/1.1 client: status, lower-case headers, body.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> (u16, HashMap<String, String>, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut message =
        format!("{method} {target} HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 0\r\nConnection: close\r\n");
    for (k, v) in headers {
        message.push_str(&format!("{k}: {v}\r\n"));
    }
    message.push_str("\r\n");
    stream.write_all(message.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers =
        lines.filter_map(|l| l.split_once(": ")).map(|(k, v)| (k.to_ascii_lowercase(), v.to_string())).collect();
    (status, headers, body.to_string())
}

pub fn write_file(path: &Path, content: &str) {
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

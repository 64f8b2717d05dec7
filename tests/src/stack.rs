//! The whole request path on loopback: client → Envoy (ext_authz + ratelimit filters) →
//! demo backend, with ext-authz and ratelimit running in-process and Redis as a real server.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use ext_authz::core::apikeys::{format_hash, hash_key};
use ext_authz::testing::{jwks, SigningKey};
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};
use shared::testing::{OidcClient, OidcProvider, RedisServer};

use crate::envoy::{render, workspace_root, Envoy};
use crate::http::{send, Reply};

/// The demo key of the README and examples/ext-authz/api-keys.yaml: one demo key everywhere.
pub const API_KEY: &str = "ghk_demo-key-do-not-use-in-production-000000";
/// A key whose client has its own limit (2 a minute) in an attribute ext-authz passes to Envoy
/// as dynamic metadata, with `cost_routes`.
pub const PLAN_API_KEY: &str = "ghk_plan-key-for-the-limit-override-test-0000";
const RSA_KEY: &str = include_str!("../../ext-authz/tests/fixtures/rsa-a.pem");

#[derive(Debug, Clone, Default)]
pub struct StackOptions {
    /// Extra ratelimit settings (e.g. `REDIS_FAILURE_MODE`).
    pub ratelimit_env: Vec<(&'static str, String)>,
    /// Envoy's rate limit `failure_mode_deny`.
    pub failure_mode_deny: bool,
    /// The Envoy config under `examples/envoy/` (default `envoy.yaml`, gRPC ext_authz).
    pub envoy_config: Option<&'static str>,
    /// Count in memory instead of starting a Redis.
    pub memory_backend: bool,
    /// Envoy's listener port (default: a free one).
    pub listen_port: Option<u16>,
    /// Browser logins against a real OpenID Provider, on `/app/*`.
    pub login: Option<LoginOptions>,
    /// ratelimit's RUNTIME_ROOT under the workspace (default `examples/envoy`, the limits the
    /// tests expect; the demo uses `examples/demo`).
    pub ratelimit_root: Option<&'static str>,
    /// Envoy traces every request with its OpenTelemetry tracer, sending spans to this OTLP
    /// gRPC collector (see [`with_envoy_tracing`]).
    pub trace_collector: Option<std::net::SocketAddr>,
    /// ext-authz's gRPC port takes mutual TLS allowing only [`GATEWAY_SPIFFE_ID`]; Envoy
    /// connects with a client certificate carrying this SPIFFE ID (see [`with_ext_authz_mtls`]).
    pub envoy_spiffe_id: Option<&'static str>,
    /// Envoy's listener takes HTTPS with mutual TLS (see [`with_downstream_mtls`]): the stack's
    /// directory holds `edge-ca.pem` and client certificates `<name>.pem` / `.key` for each
    /// of [`WORKLOADS`].
    pub downstream_mtls: bool,
    /// Two-layer auth: ext-authz sets upstream credentials on `/third-party/vendor/*` (a key
    /// file, `vendor.key` in the stack's directory) and `/third-party/partner/*` (a
    /// client-credentials token from the real OpenID Provider, started for it).
    pub upstream_credentials: bool,
    /// Cost-based limits (see [`with_cost_routes`]): `/llm/*` charges the tokens the backend
    /// reports, `/plan/*` takes each API client's limit from ext-authz's dynamic metadata.
    pub cost_routes: bool,
    /// Envoy's ext_authz `failure_mode_allow: true` (the shipped configs have false).
    pub ext_authz_fail_open: bool,
    /// Envoy lets header names with underscores through (`headers_with_underscores_action:
    /// ALLOW`, Envoy's default; the shipped configs drop them), so ext-authz's own removal of
    /// their spellings is what a test sees.
    pub allow_underscore_headers: bool,
    /// With `upstream_credentials`: a token endpoint that accepts connections and never
    /// answers, behind `/third-party/stalled/*` (the default token timeout) and
    /// `/third-party/hung/*` (a 3 s timeout, past Envoy's 2 s ext_authz timeout).
    pub hung_token_endpoint: Option<std::net::SocketAddr>,
    /// More ext-authz rules, appended to `routes.rules` (list items indented by 4 spaces).
    pub ext_authz_rules: String,
    /// More top-level ext-authz sections (`policies`, `policy_selector`, `client_address`).
    pub ext_authz_sections: String,
    /// Envoy routes that name a policy (see [`with_policy_routes`]).
    pub policy_routes: bool,
    /// How Envoy finds the client address (default: the shipped config's, Envoy at the edge).
    pub client_detection: Option<ClientDetection>,
}

/// How the stack's Envoy settles on the client address, as the gateways render it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientDetection {
    /// `use_remote_address: true` with `xff_num_trusted_hops: N` (the shipped config with N
    /// load balancers in front; kgateway's `xffNumTrustedHops`, Istio's `numTrustedProxies`).
    TrustedHops(u32),
    /// Envoy Gateway's `ClientTrafficPolicy` `clientIPDetection.xForwardedFor.numTrustedHops: N`
    /// (v1.9.0, `internal/xds/translator/listener.go`): `use_remote_address: false` and the
    /// XFF original IP detection extension with N−1 trusted hops.
    EnvoyGateway { num_trusted_hops: u32 },
}

/// The OpenID Provider's service client, whose tokens ext-authz injects upstream.
pub const SERVICE_CLIENT_ID: &str = "gatehouse-service";
const SERVICE_CLIENT_SECRET: &str = "e2e-service-secret-not-for-production";
/// The API the service client's tokens are for (their audience).
pub const PARTNER_RESOURCE: &str = "https://partner-api.test";
/// The key file's first content, with `upstream_credentials`.
pub const VENDOR_KEY: &str = "vendor-key-e2e-0001";

/// ext-authz's routes for the cost-based limits (see [`with_cost_routes`]), and its metadata
/// claim: an API key's `rate_limit` attribute goes to Envoy as dynamic metadata.
const COST_RULES: &str = r#"    - name: llm
      path: /llm/*
      accept: [jwt, api_key]
    - name: plan
      path: /plan/*
      accept: [api_key]
"#;

const UPSTREAM_RULES: &str = r#"    - name: vendor
      path: /third-party/vendor/*
      accept: [api_key, jwt]
      upstream_credential: vendor
    - name: partner
      path: /third-party/partner/*
      accept: [api_key, jwt]
      upstream_credential: partner
"#;

/// Rules and credentials whose token endpoint never answers (see `hung_token_endpoint`).
const HUNG_RULES: &str = r#"    - name: stalled
      path: /third-party/stalled/*
      accept: [api_key, jwt]
      upstream_credential: stalled
    - name: hung
      path: /third-party/hung/*
      accept: [api_key, jwt]
      upstream_credential: hung
"#;

fn hung_credentials(endpoint: std::net::SocketAddr) -> String {
    let oauth2 =
        format!("token_endpoint: http://{endpoint}/token, client_id: c, client_secret_env: GATEHOUSE_SERVICE_SECRET");
    format!(
        "  - {{name: stalled, header: authorization, oauth2: {{{oauth2}}}}}\n\
         \x20 - {{name: hung, header: authorization, oauth2: {{{oauth2}, timeout: 3s}}}}\n"
    )
}

fn upstream_section(issuer: &str) -> String {
    format!(
        r#"upstream_credentials:
  - name: vendor
    header: x-api-key
    file: vendor.key
  - name: partner
    header: authorization
    oauth2:
      issuer: {issuer}
      client_id: {SERVICE_CLIENT_ID}
      client_secret_env: GATEHOUSE_SERVICE_SECRET
      scopes: [orders.read]
      resource: {PARTNER_RESOURCE}
"#
    )
}

/// The workloads whose client certificates a `downstream_mtls` stack makes: (file name,
/// SPIFFE ID). ext-authz's `internal` route allows the first only.
pub const WORKLOADS: [(&str, &str); 2] = [
    ("checkout", "spiffe://cluster.local/ns/shop/sa/checkout"),
    ("reviews", "spiffe://cluster.local/ns/shop/sa/reviews"),
];

/// The workload identity ext-authz allows when `envoy_spiffe_id` is set.
pub const GATEWAY_SPIFFE_ID: &str = "spiffe://cluster.local/ns/gateway/sa/envoy";

/// Browser logins for a stack: a real OpenID Provider is started with it.
#[derive(Debug, Clone)]
pub struct LoginOptions {
    /// Sessions in the stack's Redis instead of in the cookie.
    pub redis_sessions: bool,
    pub refresh_before: &'static str,
    pub forward_access_token: bool,
    /// The provider's access token lifetime in seconds.
    pub access_token_ttl: u64,
    /// `oidc.timeout`: below the shipped Envoy config's 2 s ext_authz timeout.
    pub provider_timeout: &'static str,
    /// `oidc.provider_check_interval`: how long a new login trusts the last discovery.
    pub provider_check_interval: &'static str,
}

impl Default for LoginOptions {
    fn default() -> Self {
        LoginOptions {
            redis_sessions: false,
            refresh_before: "60s",
            forward_access_token: false,
            access_token_ttl: 3600,
            provider_timeout: "1s",
            provider_check_interval: "1s",
        }
    }
}

pub const CLIENT_ID: &str = "gatehouse-e2e";
const CLIENT_SECRET: &str = "e2e-client-secret-not-for-production";
/// Where the gateway sends a browser after logout (a public path, so it lands on the backend).
pub const SIGNED_OUT_PATH: &str = "/public/signed-out";

pub const SESSION_KEY: &str = "c2Vzc2lvbi1rZXktZm9yLXRoZS1lMmUtc3VpdGUtMzI=";

pub struct Stack {
    pub envoy: Envoy,
    /// Envoy's listener.
    pub port: u16,
    /// `None` with the memory backend.
    pub redis: Option<RedisServer>,
    pub ext_authz: Option<ext_authz::app::Running>,
    pub ratelimit: Option<ratelimit::Running>,
    pub key: SigningKey,
    /// The OpenID Provider, with `StackOptions::login`.
    pub provider: Option<OidcProvider>,
    /// ext-authz's clock (the system clock, moved on by hand): `advance` it to reach a
    /// session's refresh window without waiting.
    pub clock: shared::testing::TestClock,
    backend_port: u16,
    options: StackOptions,
    backend: tokio::task::JoinHandle<()>,
    /// What reached the backend.
    pub upstream: crate::backend::Seen,
    /// Where ext-authz's and Envoy's certificates are, with `envoy_spiffe_id`.
    authz_tls: Option<std::path::PathBuf>,
    _dir: tempfile::TempDir,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

const EXT_AUTHZ_CONFIG: &str = r#"
jwt_providers:
  - name: demo
    issuer: https://idp.gatehouse.test
    audiences: [gatehouse-demo]
    algorithms: [RS256]
    keys: {jwks_file: jwks.json}
api_keys:
  file: api-keys.json
  from: [{header: x-api-key}]
routes:
  public: [/public/*]
  default: deny
  rules:
    - name: internal
      path: /internal/*
      principals: [spiffe://cluster.local/ns/shop/sa/checkout]
      accept: []
    - name: orders
      path: /orders/*
      accept: [jwt, api_key]
      scopes: [orders:read]
    - name: admin
      path: /admin/*
      accept: [jwt]
      claims: [{claim: role, equals: admin}]
"#;

/// Routes and the `oidc` section for browser logins.
fn login_config(login: &LoginOptions, issuer: &str, gateway: &str) -> String {
    let store = if login.redis_sessions { "redis" } else { "cookie" };
    format!(
        r#"
    - name: app-admin
      path: /app/admin/*
      accept: [session]
      claims: [{{claim: groups, contains: admins}}]
    - name: app
      path: /app/*
      accept: [session, jwt]
oidc:
  name: test-op
  issuer: {issuer}
  client_id: {CLIENT_ID}
  client_secret_env: GATEHOUSE_OIDC_CLIENT_SECRET
  origins: ["{gateway}"]
  csrf_guard: true
  scopes: [openid, email, profile, groups]
  backchannel_logout_path: /oidc/backchannel-logout
  post_logout_redirect: {SIGNED_OUT_PATH}
  forward_access_token: {forward}
  refresh_before: {refresh_before}
  provider_check_interval: {check_interval}
  timeout: {timeout}
  cookie: {{secure: false}}
  session:
    lifetime: 1h
    store: {store}
    keys: [{{env: GATEHOUSE_SESSION_KEY}}]
{redis}{revocations}"#,
        forward = login.forward_access_token,
        refresh_before = login.refresh_before,
        check_interval = login.provider_check_interval,
        redis = "    redis: {url: \"REDIS_URL\"}\n",
        timeout = login.provider_timeout,
        revocations = if login.redis_sessions { "" } else { "    revocations_file: revocations.jsonl\n" },
    )
}

impl Stack {
    pub async fn start(options: StackOptions) -> Stack {
        Stack::try_start(options).await.unwrap_or_else(|log| panic!("{log}"))
    }

    /// [`Stack::start`], answering Envoy's log when Envoy does not start (its fixed
    /// `listen_port` taken, say) after everything else of the stack is stopped again.
    pub async fn try_start(options: StackOptions) -> Result<Stack, String> {
        let dir = tempfile::tempdir().expect("a scratch directory");
        let redis = (!options.memory_backend).then(RedisServer::start);

        // ext-authz, with a local JWKS and one API key.
        let key = SigningKey::rsa("demo-key", Algorithm::RS256, RSA_KEY);
        std::fs::write(dir.path().join("jwks.json"), jwks(&[&key])).unwrap();
        let keys = json!({"keys": [
            {"hash": format_hash(&hash_key(API_KEY)), "client_id": "demo-client", "scopes": ["orders:read"], "org_id": "demo-org"},
            {"hash": format_hash(&hash_key(PLAN_API_KEY)), "client_id": "plan-client", "scopes": [],
             "attributes": {"rate_limit": {"requests_per_unit": 2, "unit": "MINUTE"}}},
        ]});
        std::fs::write(dir.path().join("api-keys.json"), keys.to_string()).unwrap();
        // With logins, the provider must know the gateway's and ext-authz's ports up front. They
        // stay reserved (bound) while the provider starts — seconds in which other tests and the
        // provider itself open connections from ephemeral ports — and are let go just before
        // ext-authz and Envoy bind them.
        let mut options = options;
        let mut reserved = Vec::new();
        let mut reserve = || {
            let listener = shared::testing::reserve_port();
            let port = listener.local_addr().expect("bound").port();
            reserved.push(listener);
            port
        };
        let service_client =
            options.upstream_credentials.then(|| (SERVICE_CLIENT_ID.to_string(), SERVICE_CLIENT_SECRET.to_string()));
        let (http_port, provider) = match &options.login {
            Some(login) => {
                let listen_port = match options.listen_port {
                    Some(port) => port,
                    None => *options.listen_port.insert(reserve()),
                };
                let http_port = reserve();
                let gateway = format!("http://127.0.0.1:{listen_port}");
                let provider = OidcProvider::start(OidcClient {
                    client_id: CLIENT_ID.into(),
                    client_secret: CLIENT_SECRET.into(),
                    redirect_uris: vec![format!("{gateway}/oauth2/callback")],
                    post_logout_redirect_uris: vec![format!("{gateway}{SIGNED_OUT_PATH}")],
                    backchannel_logout_uri: Some(format!("http://127.0.0.1:{http_port}/oidc/backchannel-logout")),
                    access_token_ttl: Some(login.access_token_ttl),
                    service_client,
                });
                (http_port, Some(provider))
            }
            None if service_client.is_some() => {
                let provider = OidcProvider::start(OidcClient {
                    client_id: CLIENT_ID.into(),
                    client_secret: CLIENT_SECRET.into(),
                    redirect_uris: vec!["http://127.0.0.1/oauth2/callback".into()],
                    service_client,
                    ..OidcClient::default()
                });
                (0, Some(provider))
            }
            None => (0, None),
        };
        let mut text = format!("server: {{grpc_addr: \"127.0.0.1:0\", http_addr: \"127.0.0.1:{http_port}\"");
        if let Some(envoy_id) = options.envoy_spiffe_id {
            let d = dir.path();
            shared::testing::make_ca(d, "ca");
            shared::testing::make_cert(d, "ca", "ext-authz", "DNS:localhost,IP:127.0.0.1");
            shared::testing::make_cert(d, "ca", "envoy", &format!("URI:{envoy_id}"));
            text.push_str(&format!(
                ", grpc_tls: {{cert_file: ext-authz.pem, key_file: ext-authz.key, client_ca_file: ca.pem, \
                 allowed_clients: [\"{GATEWAY_SPIFFE_ID}\"]}}"
            ));
        }
        text.push_str("}\n");
        text.push_str(EXT_AUTHZ_CONFIG);
        let mut env = HashMap::new();
        if options.cost_routes {
            text.push_str(COST_RULES);
        }
        text.push_str(&options.ext_authz_rules);
        if options.upstream_credentials {
            text.push_str(UPSTREAM_RULES);
            if options.hung_token_endpoint.is_some() {
                text.push_str(HUNG_RULES);
            }
            std::fs::write(dir.path().join("vendor.key"), format!("{VENDOR_KEY}\n")).unwrap();
            env.insert("GATEHOUSE_SERVICE_SECRET".to_string(), SERVICE_CLIENT_SECRET.to_string());
        }
        if let Some(login) = &options.login {
            let issuer = provider.as_ref().expect("started with the login").issuer();
            let gateway = format!("http://127.0.0.1:{}", options.listen_port.expect("chosen with the provider"));
            let mut section = login_config(login, &issuer, &gateway);
            match (&redis, login.redis_sessions) {
                (Some(redis), true) => section = section.replace("REDIS_URL", &redis.url()),
                (None, true) => panic!("Redis sessions need the Redis backend"),
                _ => section = section.lines().filter(|l| !l.contains("redis:")).collect::<Vec<_>>().join("\n"),
            }
            text.push_str(&section);
            env.insert("GATEHOUSE_OIDC_CLIENT_SECRET".to_string(), CLIENT_SECRET.to_string());
            env.insert("GATEHOUSE_SESSION_KEY".to_string(), SESSION_KEY.to_string());
        }
        if !text.ends_with('\n') {
            text.push('\n');
        }
        if options.upstream_credentials {
            let issuer = provider.as_ref().expect("started for the service client").issuer();
            text.push_str(&upstream_section(&issuer));
            if let Some(endpoint) = options.hung_token_endpoint {
                text.push_str(&hung_credentials(endpoint));
            }
        }
        if options.cost_routes {
            text.push_str("identity:\n  metadata_claims: [rate_limit]\n");
        }
        text.push_str(&options.ext_authz_sections);
        text.push_str("...\n");
        std::fs::write(dir.path().join("ext-authz.yaml"), text).unwrap();
        let config = ext_authz::config::load(&dir.path().join("ext-authz.yaml"), &env).expect("e2e ext-authz config");
        let clock = shared::testing::TestClock::following_system();
        drop(reserved);
        let ext_authz = ext_authz::app::start(config, Arc::new(env), clock.as_clock()).await.expect("ext-authz starts");

        // ratelimit, with the limits that go with the shared Envoy config.
        let env = ratelimit_env(redis.as_ref(), &options);
        let settings = ratelimit::settings::Settings::from_env(&env).expect("e2e ratelimit settings");
        let ratelimit = ratelimit::start(settings, ratelimit::service::system_clock()).await.expect("ratelimit starts");

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backend_port = listener.local_addr().unwrap().port();
        let upstream = crate::backend::Seen::default();
        let seen = upstream.clone();
        let backend = tokio::spawn(async move {
            let _ = crate::backend::serve_recording(listener, seen).await;
        });

        let ext_authz_ports = (ext_authz.grpc_addr.port(), ext_authz.http_addr.port());
        let ratelimit_port = ratelimit.grpc_addr.expect("TCP gRPC").port();
        let authz_tls = options.envoy_spiffe_id.map(|_| dir.path().to_path_buf());
        if options.downstream_mtls {
            let d = dir.path();
            shared::testing::make_ca(d, "edge-ca");
            shared::testing::make_cert(d, "edge-ca", "gateway", "DNS:localhost");
            for (name, id) in WORKLOADS {
                shared::testing::make_cert(d, "edge-ca", name, &format!("URI:{id}"));
            }
        }
        let edge_tls = options.downstream_mtls.then(|| dir.path().to_path_buf());
        let started = start_envoy(
            &options,
            Tls { authz: authz_tls.as_deref(), edge: edge_tls.as_deref() },
            ext_authz_ports,
            ratelimit_port,
            backend_port,
        );
        let (envoy, port) = match started {
            Ok(started) => started,
            Err(log) => {
                // The demo carries on to exit: nothing of the stack may outlive this (Redis and
                // the provider stop when dropped).
                ext_authz.shutdown().await;
                ratelimit.shutdown().await;
                backend.abort();
                return Err(log);
            }
        };
        Ok(Stack {
            envoy,
            port,
            redis,
            ext_authz: Some(ext_authz),
            ratelimit: Some(ratelimit),
            key,
            provider,
            clock,
            backend_port,
            options,
            backend,
            upstream,
            authz_tls,
            _dir: dir,
        })
    }

    /// A valid token for the demo provider, with `patch` merged into its claims.
    pub fn token(&self, patch: Value) -> String {
        let mut claims = json!({"iss": "https://idp.gatehouse.test", "aud": "gatehouse-demo", "sub": "user-1",
            "org_id": "org-1", "scope": "orders:read", "exp": now() + 600});
        for (k, v) in patch.as_object().expect("an object") {
            claims[k] = v.clone();
        }
        self.key.sign(&claims)
    }

    /// The gateway's base URL, for browsers.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        send(self.port, "GET", path, headers).await
    }

    /// A second Envoy with the same ext-authz and backend, calling another rate limit service.
    pub fn second_envoy(&self, ratelimit_port: u16) -> (Envoy, u16) {
        let authz = self.ext_authz.as_ref().expect("ext-authz running");
        let ports = (authz.grpc_addr.port(), authz.http_addr.port());
        let edge = self.options.downstream_mtls.then(|| self._dir.path());
        start_envoy(
            &self.options,
            Tls { authz: self.authz_tls.as_deref(), edge },
            ports,
            ratelimit_port,
            self.backend_port,
        )
        .unwrap_or_else(|log| panic!("{log}"))
    }

    /// The stack's scratch directory (certificates, configs).
    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// ratelimit's settings as this stack started it, for more instances on the same Redis.
    pub fn ratelimit_env(&self) -> HashMap<String, String> {
        ratelimit_env(self.redis.as_ref(), &self.options)
    }

    pub async fn stop_ext_authz(&mut self) {
        if let Some(running) = self.ext_authz.take() {
            running.shutdown().await;
        }
    }

    pub async fn shutdown(mut self) {
        self.stop_ext_authz().await;
        if let Some(running) = self.ratelimit.take() {
            running.shutdown().await;
        }
        self.backend.abort();
    }
}

fn ratelimit_env(redis: Option<&RedisServer>, options: &StackOptions) -> HashMap<String, String> {
    let root = options.ratelimit_root.unwrap_or("examples/envoy");
    let mut env = ratelimit::settings::loopback_env(&workspace_root().join(root));
    match redis {
        Some(redis) => {
            env.insert("REDIS_SOCKET_TYPE".into(), "tcp".into());
            env.insert("REDIS_URL".into(), redis.url());
            env.insert("REDIS_TIMEOUT".into(), "500ms".into());
            env.insert("REDIS_STARTUP_MAX_ELAPSED_TIME".into(), "10s".into());
        }
        None => {
            env.insert("BACKEND_TYPE".into(), "memory".into());
        }
    }
    for (k, v) in &options.ratelimit_env {
        env.insert(k.to_string(), v.clone());
    }
    env
}

/// Where Envoy's certificates are: for mutual TLS to ext-authz, and on its own listener.
#[derive(Clone, Copy)]
struct Tls<'a> {
    authz: Option<&'a std::path::Path>,
    edge: Option<&'a std::path::Path>,
}

/// Envoy from the shipped config, its placeholders filled with loopback ports; Envoy's log
/// when it does not start.
fn start_envoy(
    options: &StackOptions,
    tls: Tls<'_>,
    ext_authz: (u16, u16),
    ratelimit: u16,
    backend: u16,
) -> Result<(Envoy, u16), String> {
    let file = options.envoy_config.unwrap_or("envoy.yaml");
    let template =
        std::fs::read_to_string(workspace_root().join("examples/envoy").join(file)).expect("the Envoy config");
    Envoy::try_start_on_free_ports(options.listen_port, |port, admin_port| {
        configure(options, tls, &template, (port, admin_port), ext_authz, ratelimit, backend)
    })
}

/// The shipped config for these ports, with the options' additions.
fn configure(
    options: &StackOptions,
    tls: Tls<'_>,
    template: &str,
    (port, admin_port): (u16, u16),
    ext_authz: (u16, u16),
    ratelimit: u16,
    backend: u16,
) -> String {
    let config = render(
        template,
        &[
            ("LISTEN_BIND", "127.0.0.1".into()),
            ("LISTEN_PORT", port.to_string()),
            ("ADMIN_BIND", "127.0.0.1".into()),
            ("ADMIN_PORT", admin_port.to_string()),
            ("EXT_AUTHZ_HOST", "127.0.0.1".into()),
            ("EXT_AUTHZ_PORT", ext_authz.0.to_string()),
            ("EXT_AUTHZ_HTTP_PORT", ext_authz.1.to_string()),
            ("RATELIMIT_HOST", "127.0.0.1".into()),
            ("RATELIMIT_PORT", ratelimit.to_string()),
            ("BACKEND_HOST", "127.0.0.1".into()),
            ("BACKEND_PORT", backend.to_string()),
            ("FAILURE_MODE_DENY", options.failure_mode_deny.to_string()),
        ],
    );
    let config = match options.ext_authz_fail_open {
        true => config.replace("failure_mode_allow: false", "failure_mode_allow: true"),
        false => config,
    };
    let config = match options.allow_underscore_headers {
        true => {
            config.replace("headers_with_underscores_action: DROP_HEADER", "headers_with_underscores_action: ALLOW")
        }
        false => config,
    };
    let config = match options.trace_collector {
        Some(collector) => with_envoy_tracing(&config, collector),
        None => config,
    };
    let config = match tls.authz {
        Some(dir) => with_ext_authz_mtls(&config, dir),
        None => config,
    };
    let config = match tls.edge {
        Some(dir) => with_downstream_mtls(&config, dir),
        None => config,
    };
    let config = match options.client_detection {
        Some(detection) => with_client_detection(&config, detection),
        None => config,
    };
    let config = match options.policy_routes {
        true => with_policy_routes(&config),
        false => config,
    };
    if options.cost_routes {
        with_cost_routes(&config)
    } else {
        config
    }
}

/// The shipped Envoy config with another way to the client address (see [`ClientDetection`]).
pub fn with_client_detection(config: &str, detection: ClientDetection) -> String {
    const SHIPPED: &str = "                use_remote_address: true\n                xff_num_trusted_hops: 0\n";
    assert!(config.contains(SHIPPED), "not the shipped Envoy config");
    let rendered = match detection {
        ClientDetection::TrustedHops(hops) => {
            format!("                use_remote_address: true\n                xff_num_trusted_hops: {hops}\n")
        }
        ClientDetection::EnvoyGateway { num_trusted_hops } => format!(
            r#"                use_remote_address: false
                original_ip_detection_extensions:
                  - name: envoy.extensions.http.original_ip_detection.xff
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.http.original_ip_detection.xff.v3.XffConfig
                      xff_num_trusted_hops: {}
"#,
            num_trusted_hops.saturating_sub(1)
        ),
    };
    config.replacen(SHIPPED, &rendered, 1)
}

/// The shipped Envoy config with routes that name ext-authz's policy, each as a gateway sets it
/// (all to the backend):
///
/// - `/a/`, `/b/`, `/unknown/`: an `ExtAuthzPerRoute` with `context_extensions`
///   `{policy: a}`, `{policy: b}`, `{policy: unknown}` — what Envoy Gateway's
///   `extAuth.contextExtensions` and kgateway's `extAuth.contextExtensions` render;
/// - `/eg/`: no extension, but Envoy Gateway's route metadata (`includeRouteMetadata`): the
///   `envoy-gateway` namespace with the HTTPRoute as `resources[0]`, its annotation
///   `gateway.envoyproxy.io/gatehouse-policy: a` as Envoy Gateway copies it (prefix removed);
///   the ext_authz filter sends that namespace (`route_metadata_context_namespaces`);
/// - `/eg-and-b/`: that metadata and the extension `{policy: b}`: the extension wins;
/// - `/eg-crowded/`: that metadata, the HTTPRoute also carrying a 96 KiB annotation and a
///   second namespace as large: ext-authz reads the policy annotation alone, so `a` answers;
/// - `/eg-long/`: the policy annotation itself 96 KiB long; `/eg-malformed/`: `resources` a
///   struct rather than a list — the annotation cannot be read, so `UNKNOWN_POLICY`.
pub fn with_policy_routes(config: &str) -> String {
    const ROUTE_ANCHOR: &str = "                        - match: {prefix: \"/\"}\n";
    const FILTER_ANCHOR: &str =
        "                      \"@type\": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz\n";
    assert!(config.contains(ROUTE_ANCHOR) && config.contains(FILTER_ANCHOR), "not the shipped Envoy config");
    let extension = |policy: &str| {
        format!(
            r#"                          typed_per_filter_config:
                            envoy.filters.http.ext_authz:
                              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute
                              check_settings: {{context_extensions: {{policy: {policy}}}}}
"#
        )
    };
    let metadata = r#"                          metadata:
                            filter_metadata:
                              envoy-gateway:
                                resources:
                                  - kind: HTTPRoute
                                    name: orders
                                    namespace: apps
                                    annotations: {gatehouse-policy: a}
"#;
    // The HTTPRoute as Envoy Gateway writes it, with `annotations` as given.
    let eg_route = |annotations: &str| {
        format!(
            r#"                          metadata:
                            filter_metadata:
                              envoy-gateway:
                                resources:
                                  - kind: HTTPRoute
                                    name: orders
                                    namespace: apps
                                    annotations: {annotations}
"#
        )
    };
    let blob = "x".repeat(96 * 1024);
    let crowded = format!(
        "{}                              other: {{blob: {blob}}}\n",
        eg_route(&format!("{{gatehouse-policy: a, blob: {blob}}}"))
    );
    let malformed = r#"                          metadata:
                            filter_metadata:
                              envoy-gateway:
                                resources: {kind: HTTPRoute, annotations: {gatehouse-policy: a}}
"#;
    let route = |prefix: &str, extras: &str| {
        format!("                        - match: {{prefix: \"{prefix}\"}}\n                          route: {{cluster: backend}}\n{extras}")
    };
    let routes = [
        route("/a/", &extension("a")),
        route("/b/", &extension("b")),
        route("/unknown/", &extension("unknown")),
        route("/eg/", metadata),
        route("/eg-and-b/", &format!("{metadata}{}", extension("b"))),
        route("/eg-crowded/", &crowded),
        route("/eg-long/", &eg_route(&format!("{{gatehouse-policy: {blob}}}"))),
        route("/eg-malformed/", malformed),
    ]
    .concat();
    let namespaces = "                      route_metadata_context_namespaces: [envoy-gateway]\n";
    let config = config.replacen(ROUTE_ANCHOR, &format!("{routes}{ROUTE_ANCHOR}"), 1);
    config.replacen(FILTER_ANCHOR, &format!("{FILTER_ANCHOR}{namespaces}"), 1)
}

/// The shipped Envoy config with mutual TLS to ext-authz: the `ext_authz` cluster presents
/// `envoy.pem` / `envoy.key` from `dir` and trusts only a `localhost` certificate from `ca.pem`
/// (as docs/ext-authz.md shows).
pub fn with_ext_authz_mtls(config: &str, dir: &std::path::Path) -> String {
    const CLUSTER_ANCHOR: &str = "    - name: ext_authz\n";
    assert!(config.contains(CLUSTER_ANCHOR), "not the shipped Envoy config");
    let file = |name: &str| dir.join(name).display().to_string();
    let tls = format!(
        r#"      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
          sni: localhost
          common_tls_context:
            alpn_protocols: [h2]
            tls_certificates:
              - certificate_chain: {{filename: {}}}
                private_key: {{filename: {}}}
            validation_context:
              trusted_ca: {{filename: {}}}
              match_typed_subject_alt_names: [{{san_type: DNS, matcher: {{exact: localhost}}}}]
"#,
        file("envoy.pem"),
        file("envoy.key"),
        file("ca.pem")
    );
    config.replacen(CLUSTER_ANCHOR, &format!("{CLUSTER_ANCHOR}{tls}"), 1)
}

/// The shipped Envoy config with HTTPS and mutual TLS on its listener, as a mesh's ingress or a
/// zero-trust edge runs it: clients must present a certificate from `edge-ca.pem`, Envoy
/// presents `gateway.pem` (for `localhost`). Envoy hands ext_authz the client certificate's
/// SPIFFE ID as `source.principal`. `x-forwarded-client-cert` is passed on as the client sent
/// it (`FORWARD_ONLY`) — a forged one reaches ext-authz, which must not believe it.
pub fn with_downstream_mtls(config: &str, dir: &std::path::Path) -> String {
    const CHAIN_ANCHOR: &str = "      filter_chains:\n        - filters:\n";
    const HCM_ANCHOR: &str = "                stat_prefix: ingress\n";
    assert!(config.contains(CHAIN_ANCHOR) && config.contains(HCM_ANCHOR), "not the shipped Envoy config");
    let file = |name: &str| dir.join(name).display().to_string();
    let tls = format!(
        r#"      filter_chains:
        - transport_socket:
            name: envoy.transport_sockets.tls
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
              require_client_certificate: true
              common_tls_context:
                tls_certificates:
                  - certificate_chain: {{filename: {}}}
                    private_key: {{filename: {}}}
                validation_context:
                  trusted_ca: {{filename: {}}}
          filters:
"#,
        file("gateway.pem"),
        file("gateway.key"),
        file("edge-ca.pem")
    );
    let config = config.replacen(CHAIN_ANCHOR, &tls, 1);
    config.replacen(HCM_ANCHOR, &format!("{HCM_ANCHOR}                forward_client_cert_details: FORWARD_ONLY\n"), 1)
}

/// The shipped Envoy config with cost-based limits, as an LLM gateway runs them (and as Envoy
/// Gateway's `BackendTrafficPolicy` `cost` and `limit.fromMetadata` generate them):
///
/// - `/llm/*`: the user's token budget is checked before the request (`hits_addend: 0`) and
///   charged when the stream ends (`apply_on_stream_done`) with the tokens the backend reported
///   in `x-llm-tokens`, moved into dynamic metadata by `header_to_metadata`;
/// - `/plan/*`: the limit itself comes from ext-authz's dynamic metadata (`rate_limit`, an API
///   key's attribute copied by `identity.metadata_claims`), as the descriptor's `limit` override.
pub fn with_cost_routes(config: &str) -> String {
    const ROUTE_ANCHOR: &str = "                        - match: {prefix: \"/\"}\n";
    const FILTER_ANCHOR: &str = "                  - name: envoy.filters.http.ratelimit\n";
    assert!(config.contains(ROUTE_ANCHOR) && config.contains(FILTER_ANCHOR), "not the shipped Envoy config");
    let per_user = |value: &str| {
        format!(
            "- generic_key: {{descriptor_value: {value}, descriptor_key: generic_key}}\n\
             \x20                                   - request_headers: {{header_name: x-user-id, descriptor_key: user_id}}"
        )
    };
    // A route to the backend whose rate limits are its own (`RateLimitPerRoute`).
    let route = |prefix: &str, rate_limits: String| {
        format!(
            r#"                        - match: {{prefix: "{prefix}"}}
                          route: {{cluster: backend}}
                          typed_per_filter_config:
                            envoy.filters.http.ratelimit:
                              "@type": type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimitPerRoute
                              rate_limits:
{rate_limits}"#
        )
    };
    let llm = format!(
        r#"                                - actions:
                                    {llm}
                                  hits_addend: {{number: 0}}
                                - actions:
                                    {llm}
                                  hits_addend: {{format: "%DYNAMIC_METADATA(gatehouse.llm:tokens)%"}}
                                  apply_on_stream_done: true
"#,
        llm = per_user("llm")
    );
    let plan = format!(
        r#"                                - actions:
                                    {plan}
                                  limit:
                                    dynamic_metadata:
                                      metadata_key: {{key: envoy.filters.http.ext_authz, path: [{{key: rate_limit}}]}}
"#,
        plan = per_user("plan")
    );
    let routes = route("/llm/", llm) + &route("/plan/", plan);
    let usage = r#"                  - name: envoy.filters.http.header_to_metadata
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.header_to_metadata.v3.Config
                      response_rules:
                        - header: x-llm-tokens
                          on_header_present: {metadata_namespace: gatehouse.llm, key: tokens, type: NUMBER}
                          remove: true
"#;
    let config = config.replacen(ROUTE_ANCHOR, &format!("{routes}{ROUTE_ANCHOR}"), 1);
    config.replacen(FILTER_ANCHOR, &format!("{usage}{FILTER_ANCHOR}"), 1)
}

/// The shipped Envoy config with Envoy's OpenTelemetry tracer on every request (as
/// docs/observability.md shows): the HTTP connection manager's `tracing`, an `otlp` cluster,
/// and spans flushed one at a time every 100 ms instead of Envoy's 5 s batches.
pub fn with_envoy_tracing(config: &str, collector: std::net::SocketAddr) -> String {
    const HCM_ANCHOR: &str = "                stat_prefix: ingress\n";
    const CLUSTERS_ANCHOR: &str = "  clusters:\n";
    assert!(config.contains(HCM_ANCHOR) && config.contains(CLUSTERS_ANCHOR), "not the shipped Envoy config");
    let tracing = r#"                tracing:
                  random_sampling: {value: 100}
                  provider:
                    name: envoy.tracers.opentelemetry
                    typed_config:
                      "@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig
                      grpc_service: {envoy_grpc: {cluster_name: otlp}, timeout: 2s}
                      service_name: envoy
"#;
    let cluster = format!(
        r#"    - name: otlp
      type: STATIC
      connect_timeout: 1s
      typed_extension_protocol_options:
        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
          "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
          explicit_http_config: {{http2_protocol_options: {{}}}}
      load_assignment:
        cluster_name: otlp
        endpoints:
          - lb_endpoints:
              - endpoint: {{address: {{socket_address: {{address: {}, port_value: {}}}}}}}
"#,
        collector.ip(),
        collector.port()
    );
    let runtime = "layered_runtime:\n  layers:\n    - name: tracing\n      static_layer:\n        \
                   tracing.opentelemetry.min_flush_spans: 1\n        tracing.opentelemetry.flush_interval_ms: 100\n";
    let config = config.replacen(HCM_ANCHOR, &format!("{HCM_ANCHOR}{tracing}"), 1);
    let config = config.replacen(CLUSTERS_ANCHOR, &format!("{CLUSTERS_ANCHOR}{cluster}"), 1);
    format!("{}\n{runtime}", config.trim_end())
}

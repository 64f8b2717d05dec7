//! The whole request path on loopback: client → Envoy (ext_authz + ratelimit filters) →
//! demo backend, with ext-authz and ratelimit running in-process and Redis as a real server.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use ext_authz::core::apikeys::{format_hash, hash_key};
use ext_authz::testing::{jwks, SigningKey};
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};
use shared::testing::{free_port, RedisServer};

use crate::envoy::{render, workspace_root, Envoy};
use crate::http::{send, Reply};

pub const API_KEY: &str = "ghk_e2e-demo-key-000000000000000000000000000";
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
}

pub struct Stack {
    pub envoy: Envoy,
    /// Envoy's listener.
    pub port: u16,
    /// `None` with the memory backend.
    pub redis: Option<RedisServer>,
    pub ext_authz: Option<ext_authz::app::Running>,
    pub ratelimit: Option<ratelimit::Running>,
    pub key: SigningKey,
    backend_port: u16,
    options: StackOptions,
    backend: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

const EXT_AUTHZ_CONFIG: &str = r#"
server: {grpc_addr: "127.0.0.1:0", http_addr: "127.0.0.1:0"}
jwt_providers:
  - name: demo
    issuer: https://idp.gatehouse.test
    audiences: [gatehouse-demo]
    algorithms: [RS256]
    keys: {jwks_file: jwks.json}
api_keys:
  file: api-keys.json
  from: [{header: x-api-key}]
  # The e2e config limits per API-key header, after ext_authz: the header must survive it.
  forward: true
routes:
  public: [/public/*]
  default: deny
  rules:
    - name: orders
      path: /orders/*
      accept: [jwt, api_key]
      scopes: [orders:read]
    - name: admin
      path: /admin/*
      accept: [jwt]
      claims: [{claim: role, equals: admin}]
"#;

impl Stack {
    pub async fn start(options: StackOptions) -> Stack {
        let dir = tempfile::tempdir().expect("a scratch directory");
        let redis = (!options.memory_backend).then(RedisServer::start);

        // ext-authz, with a local JWKS and one API key.
        let key = SigningKey::rsa("demo-key", Algorithm::RS256, RSA_KEY);
        std::fs::write(dir.path().join("jwks.json"), jwks(&[&key])).unwrap();
        let keys = json!({"keys": [{"hash": format_hash(&hash_key(API_KEY)), "client_id": "demo-client", "scopes": ["orders:read"], "org_id": "demo-org"}]});
        std::fs::write(dir.path().join("api-keys.json"), keys.to_string()).unwrap();
        std::fs::write(dir.path().join("ext-authz.yaml"), EXT_AUTHZ_CONFIG).unwrap();
        let config =
            ext_authz::config::load(&dir.path().join("ext-authz.yaml"), &HashMap::new()).expect("e2e ext-authz config");
        let ext_authz = ext_authz::app::start(config, Arc::default(), ext_authz::service::system_clock())
            .await
            .expect("ext-authz starts");

        // ratelimit, with the limits that go with the shared Envoy config.
        let env = ratelimit_env(redis.as_ref(), &options);
        let settings = ratelimit::settings::Settings::from_env(&env).expect("e2e ratelimit settings");
        let ratelimit = ratelimit::start(settings, Arc::new(env), ratelimit::service::system_clock())
            .await
            .expect("ratelimit starts");

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backend_port = listener.local_addr().unwrap().port();
        let backend = tokio::spawn(async move {
            let _ = crate::backend::serve(listener).await;
        });

        let ext_authz_ports = (ext_authz.grpc_addr.port(), ext_authz.http_addr.port());
        let ratelimit_port = ratelimit.grpc_addr.expect("TCP gRPC").port();
        let (envoy, port) = start_envoy(&options, ext_authz_ports, ratelimit_port, backend_port);
        Stack {
            envoy,
            port,
            redis,
            ext_authz: Some(ext_authz),
            ratelimit: Some(ratelimit),
            key,
            backend_port,
            options,
            backend,
            _dir: dir,
        }
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

    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        send(self.port, "GET", path, headers).await
    }

    /// A second Envoy with the same ext-authz and backend, calling another rate limit service.
    pub fn second_envoy(&self, ratelimit_port: u16) -> (Envoy, u16) {
        let authz = self.ext_authz.as_ref().expect("ext-authz running");
        start_envoy(&self.options, (authz.grpc_addr.port(), authz.http_addr.port()), ratelimit_port, self.backend_port)
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
    let mut env = ratelimit::settings::loopback_env(&workspace_root().join("examples/envoy"));
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

/// Envoy from the shipped config, its placeholders filled with loopback ports.
fn start_envoy(options: &StackOptions, ext_authz: (u16, u16), ratelimit: u16, backend: u16) -> (Envoy, u16) {
    let (port, admin_port) = (options.listen_port.unwrap_or_else(free_port), free_port());
    let file = options.envoy_config.unwrap_or("envoy.yaml");
    let template =
        std::fs::read_to_string(workspace_root().join("examples/envoy").join(file)).expect("the Envoy config");
    let config = render(
        &template,
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
    (Envoy::start(&config, admin_port), port)
}

//! The services under test, started in-process exactly as their binaries start them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use ext_authz::core::apikeys::{hash_key, ApiKeyEntry, ApiKeyStore};
use shared::testing::RedisServer;

/// A rate limit config with `rules` exact-value rules under `route`, and one key-only rule.
pub fn ratelimit_config(rules: usize) -> String {
    let mut yaml = String::from(
        "domain: bench\ndescriptors:\n  - key: client\n    rate_limit: {unit: second, requests_per_unit: 4000000000}\n  \
         - key: sliding\n    rate_limit: {unit: second, requests_per_unit: 4000000000, algorithm: sliding_window}\n  \
         - key: bucket\n    rate_limit: {unit: second, requests_per_unit: 4000000000, algorithm: token_bucket}\n",
    );
    for i in 0..rules {
        yaml.push_str(&format!(
            "  - key: route\n    value: r{i}\n    rate_limit: {{unit: second, requests_per_unit: 4000000000}}\n"
        ));
    }
    yaml
}

pub struct RateLimitTarget {
    pub running: ratelimit::Running,
    _config: tempfile::TempDir,
}

impl RateLimitTarget {
    pub async fn start(rules: usize, redis: Option<&RedisServer>) -> RateLimitTarget {
        RateLimitTarget::start_with(&ratelimit_config(rules), redis, &[]).await
    }

    /// The service on `config`, with `extra` settings.
    pub async fn start_with(config: &str, redis: Option<&RedisServer>, extra: &[(&str, &str)]) -> RateLimitTarget {
        let dir = tempfile::tempdir().expect("a scratch directory");
        std::fs::create_dir_all(dir.path().join("ratelimit/config")).unwrap();
        std::fs::write(dir.path().join("ratelimit/config/bench.yaml"), config).unwrap();
        let mut env = ratelimit::settings::loopback_env(dir.path());
        env.insert("LOG_LEVEL".into(), "error".into());
        // `--redis-pool-size N`: how many multiplexed connections share the calls (issue 18's
        // experiment: fewer connections, more commands per write).
        let pool = crate::arg("--redis-pool-size", "");
        if !pool.is_empty() {
            env.insert("REDIS_POOL_SIZE".into(), pool);
        }
        for (k, v) in extra {
            env.insert(k.to_string(), v.to_string());
        }
        match redis {
            Some(redis) => {
                env.insert("REDIS_SOCKET_TYPE".into(), "tcp".into());
                env.insert("REDIS_URL".into(), redis.url());
            }
            None => {
                env.insert("BACKEND_TYPE".into(), "memory".into());
            }
        }
        let settings = ratelimit::settings::Settings::from_env(&env).expect("bench settings");
        let clocks = ratelimit::service::Clocks::system();
        let running = ratelimit::start_with_clocks(settings, clocks).await.expect("ratelimit starts");
        RateLimitTarget { running, _config: dir }
    }

    pub fn addr(&self) -> SocketAddr {
        self.running.grpc_addr.expect("TCP gRPC")
    }
}

pub const RSA_KEY: &str = include_str!("../../ext-authz/tests/fixtures/rsa-a.pem");

pub struct AuthzTarget {
    pub running: ext_authz::app::Running,
    _dir: tempfile::TempDir,
}

/// The HMAC secret of the `hs` provider (HS256 tokens, cheap to verify: the cache rows).
pub const HMAC_SECRET: &str = "bench-hmac-secret-0123456789abcdef";

/// The API key the scenarios present.
pub fn api_key(i: usize) -> String {
    format!("ghk_bench-key-{i:012}")
}

impl AuthzTarget {
    /// ext-authz with `keys` API keys, the JWKS in `jwks`, and the token cache on (10,000
    /// tokens) or off.
    pub async fn start(keys: usize, jwks: &str, cache: bool) -> AuthzTarget {
        AuthzTarget::start_with(keys, jwks, if cache { 10_000 } else { 0 }, true).await
    }

    /// The same, choosing the token cache's size and whether allowed answers carry the identity
    /// as dynamic metadata.
    pub async fn start_with(keys: usize, jwks: &str, max_tokens: usize, dynamic_metadata: bool) -> AuthzTarget {
        let routes = "routes:\n  default: authenticated\n";
        AuthzTarget::start_with_routes(keys, jwks, max_tokens, dynamic_metadata, routes).await
    }

    /// ext-authz with 10 API keys and `routes` (a whole `routes:` section), the token cache on.
    pub async fn start_routes(jwks: &str, routes: &str) -> AuthzTarget {
        AuthzTarget::start_with_routes(10, jwks, 10_000, true, routes).await
    }

    async fn start_with_routes(
        keys: usize,
        jwks: &str,
        max_tokens: usize,
        dynamic_metadata: bool,
        routes: &str,
    ) -> AuthzTarget {
        let dir = tempfile::tempdir().expect("a scratch directory");
        std::fs::write(dir.path().join("jwks.json"), jwks).unwrap();
        std::fs::write(dir.path().join("keys.json"), r#"{"keys": []}"#).unwrap();
        let config = format!(
            r#"
server: {{grpc_addr: "127.0.0.1:0", http_addr: "127.0.0.1:0"}}
log: {{level: error}}
cache: {{max_tokens: {}}}
jwt_providers:
  - {{name: bench, issuer: bench, algorithms: [RS256, ES256], keys: {{jwks_file: jwks.json}}}}
  - {{name: hs, issuer: hs, algorithms: [HS256], keys: {{hmac_secret_env: BENCH_HMAC}}}}
api_keys: {{file: keys.json}}
identity: {{dynamic_metadata: {}}}
{}...
"#,
            max_tokens, dynamic_metadata, routes
        );
        std::fs::write(dir.path().join("ext-authz.yaml"), config).unwrap();
        let env = HashMap::from([("BENCH_HMAC".to_string(), HMAC_SECRET.to_string())]);
        let config = ext_authz::config::load(&dir.path().join("ext-authz.yaml"), &env).expect("bench config");
        let running = ext_authz::app::start(config, Arc::default(), ext_authz::service::system_clock())
            .await
            .expect("ext-authz starts");
        let mut store = ApiKeyStore::default();
        for i in 0..keys {
            let key = api_key(i);
            store.insert(ApiKeyEntry {
                hash: hash_key(&key),
                client_id: format!("client-{i}"),
                scopes: vec!["read".into()],
                org_id: None,
                attributes: Default::default(),
            });
        }
        running.authorizer.replace_api_keys(store);
        // Keys load in the background once the ports are open; like Envoy behind a readiness
        // probe, send nothing until they are in (under callgrind that takes a while).
        let ready = async || running.authorizer.ready();
        shared::testing::eventually("the bench's JWT keys loaded", std::time::Duration::from_secs(120), ready).await;
        AuthzTarget { running, _dir: dir }
    }
}

/// The rule the condition rows measure: what `check_request` sends (`GET /api` with API key 5,
/// scope `read`), answered by a rule rather than the default. `when` is the rule's conditions,
/// if any (YAML lines at the rule's indentation).
fn one_rule(when: &str) -> String {
    format!(
        "routes:\n  default: deny\n  rules:\n    - name: api\n      methods: [GET]\n      path: /api\n      \
         accept: [api_key]\n      scopes: [read]\n{when}"
    )
}

/// [`one_rule`] without conditions: the floor of the row with three.
pub fn rule_without_conditions() -> String {
    one_rule("")
}

/// [`one_rule`] with three CEL conditions that hold for the bench's request, reading the
/// request, the identity's claims and its scopes (what a policy typically checks).
pub fn rule_with_three_conditions() -> String {
    one_rule(
        "      when:\n        - request.method == 'GET'\n        - identity.claims.client_id.startsWith('client-')\n        \
         - \"'read' in identity.scopes\"\n",
    )
}

//! Test support: a real `redis-server` on a free loopback port, the service started in-process
//! on port 0 with a controllable clock, and small gRPC and HTTP clients.
#![allow(dead_code)]

pub mod ads;
pub mod process;

/// Declares each scenario `fn(Backend)` as two tests, `memory::<name>` and `redis::<name>`: one
/// behaviour suite for both backends.
#[allow(unused_macros)]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Backend::Memory).await })*
        }
        mod redis {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Backend::Redis).await })*
        }
    };
}

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::{Entry, RateLimitOverride};
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::google::protobuf::UInt64Value;
use ratelimit::settings::Settings;
use ratelimit::Running;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::Channel;

#[allow(unused_imports)]
pub use shared::testing::{free_port, RedisServer, TestClock};

/// Redis commands from tests.
pub trait RedisCommands {
    fn client(&self) -> redis::Client;
    async fn command<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> T;
}

impl RedisCommands for RedisServer {
    fn client(&self) -> redis::Client {
        redis::Client::open(format!("redis://127.0.0.1:{}", self.port)).unwrap()
    }

    async fn command<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> T {
        let mut connection = self.client().get_multiplexed_async_connection().await.unwrap();
        cmd.query_async(&mut connection).await.unwrap()
    }
}

/// The limiter's clocks read from the test's clock, to the microsecond.
pub fn clocks(clock: &TestClock) -> ratelimit::service::Clocks {
    ratelimit::service::Clocks::from_micros(clock.as_micros_clock())
}

/// A config directory laid out as the reference expects (`<root>/ratelimit/config/*.yaml`).
pub struct ConfigDir {
    pub dir: tempfile::TempDir,
}

impl ConfigDir {
    pub fn new(files: &[(&str, &str)]) -> ConfigDir {
        let dir = ConfigDir { dir: tempfile::tempdir().unwrap() };
        for (name, content) in files {
            dir.write(name, content);
        }
        dir
    }
    pub fn root(&self) -> &Path {
        self.dir.path()
    }
    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().join("ratelimit/config")
    }
    pub fn write(&self, name: &str, content: &str) {
        let path = self.config_dir().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        // Write then rename, as deploy tools do, so a reload never sees half a file.
        let tmp = path.with_extension("tmp-write");
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Redis,
}

/// A running service with its surroundings.
pub struct Harness {
    pub running: Option<Running>,
    pub redis: Option<RedisServer>,
    pub config: ConfigDir,
    pub clock: TestClock,
    pub grpc: RateLimitServiceClient<Channel>,
}

pub fn base_env(config: &ConfigDir) -> HashMap<String, String> {
    let mut env = ratelimit::settings::loopback_env(config.root());
    for (k, v) in [
        ("RUNTIME_POLL_INTERVAL", "50ms"),
        ("EXPIRATION_JITTER_MAX_SECONDS", "0"),
        ("USE_PROMETHEUS", "true"),
        ("PROMETHEUS_ADDR", "127.0.0.1:0"),
        ("REDIS_TIMEOUT", "500ms"),
        // A test must fail, not hang, when its Redis is not there.
        ("REDIS_STARTUP_MAX_ELAPSED_TIME", "10s"),
        ("SHUTDOWN_TIMEOUT", "5s"),
    ] {
        env.insert(k.to_string(), v.to_string());
    }
    env
}

impl Harness {
    pub async fn start(backend: Backend, files: &[(&str, &str)], extra: &[(&str, &str)]) -> Harness {
        let config = ConfigDir::new(files);
        let mut env = base_env(&config);
        let redis = match backend {
            Backend::Memory => {
                env.insert("BACKEND_TYPE".into(), "memory".into());
                None
            }
            Backend::Redis => {
                let redis = RedisServer::start();
                env.insert("BACKEND_TYPE".into(), "redis".into());
                env.insert("REDIS_SOCKET_TYPE".into(), "tcp".into());
                env.insert("REDIS_URL".into(), redis.url());
                Some(redis)
            }
        };
        for (k, v) in extra {
            env.insert(k.to_string(), v.to_string());
        }
        let clock = TestClock::new();
        let settings = Settings::from_env(&env).expect("valid test settings");
        let running = ratelimit::start_with_clocks(settings, clocks(&clock)).await.expect("service starts");
        let grpc = RateLimitServiceClient::connect(format!("http://{}", running.grpc_addr.unwrap())).await.unwrap();
        Harness { running: Some(running), redis, config, clock, grpc }
    }

    pub fn running(&self) -> &Running {
        self.running.as_ref().unwrap()
    }

    pub async fn call(&mut self, request: RateLimitRequest) -> Result<RateLimitResponse, tonic::Status> {
        self.grpc.should_rate_limit(request).await.map(|r| r.into_inner())
    }

    /// Waits (bounded) until `check` holds, polling; for hot reloads.
    pub async fn eventually<F: FnMut(&Running) -> bool>(&self, mut check: F) {
        let running = self.running();
        shared::testing::eventually("the condition", Duration::from_secs(5), async || check(running)).await;
    }

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }
}

pub fn entry(key: &str, value: &str) -> Entry {
    Entry { key: key.into(), value: value.into() }
}

pub fn descriptor(entries: &[(&str, &str)]) -> RateLimitDescriptor {
    RateLimitDescriptor { entries: entries.iter().map(|(k, v)| entry(k, v)).collect(), ..Default::default() }
}

pub fn with_addend(mut d: RateLimitDescriptor, hits: u64) -> RateLimitDescriptor {
    d.hits_addend = Some(UInt64Value { value: hits });
    d
}

pub fn with_override(mut d: RateLimitDescriptor, requests_per_unit: u32, unit: i32) -> RateLimitDescriptor {
    d.limit = Some(RateLimitOverride { requests_per_unit, unit });
    d
}

pub fn request(domain: &str, descriptors: Vec<RateLimitDescriptor>) -> RateLimitRequest {
    RateLimitRequest { domain: domain.into(), descriptors, hits_addend: 0 }
}

/// A minimal HTTP/1.1 client: returns the status code and the body.
pub async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let (status, _head, body) = http_with_head(addr, method, path, body).await;
    (status, body)
}

/// [`http`], with the response's status line and headers (`head`) too.
pub async fn http_with_head(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let message = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(message.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_string() };
    (status, head.to_string(), body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}

#[allow(unused_imports)] // not every test binary makes certificates
pub use shared::testing::{make_ca, make_cert};

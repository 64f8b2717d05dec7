//! The `ext-authz` binary run as a child process, for tests of what only the real process
//! shows (signals, exit codes, its logs, starting against a hanging provider).

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use tonic::transport::Channel;

pub const BIN: &str = env!("CARGO_BIN_EXE_ext-authz");

pub use shared::testing::free_port;

/// `config` with its listeners moved to free loopback ports; returns (config, gRPC, HTTP).
pub fn on_free_ports(config: &str) -> (String, u16, u16) {
    let (grpc, http) = (free_port(), free_port());
    let config = config
        .replace("grpc_addr: 127.0.0.1:0", &format!("grpc_addr: 127.0.0.1:{grpc}"))
        .replace("http_addr: 127.0.0.1:0", &format!("http_addr: 127.0.0.1:{http}"));
    (config, grpc, http)
}

pub struct AuthzProcess {
    pub child: Child,
    pub grpc: u16,
    pub http: u16,
    log: PathBuf,
}

impl AuthzProcess {
    /// Starts the binary on `config_file` (whose listeners are on `grpc` and `http`) with
    /// `env`, and waits until the HTTP port accepts connections.
    pub fn start(config_file: &Path, grpc: u16, http: u16, env: &[(&str, &str)]) -> AuthzProcess {
        let log = config_file.with_extension("stderr.log");
        let mut command = Command::new(BIN);
        command.arg("--config").arg(config_file).stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            command.env(k, v);
        }
        let process = AuthzProcess { child: command.spawn().unwrap(), grpc, http, log };
        let listening = shared::testing::wait_until_listening(http, Duration::from_secs(10));
        assert!(listening, "ext-authz did not open its ports:\n{}", process.stderr());
        process
    }

    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.http))
    }

    pub async fn grpc_client(&self) -> AuthorizationClient<Channel> {
        AuthorizationClient::connect(format!("http://127.0.0.1:{}", self.grpc)).await.unwrap()
    }

    pub fn stderr(&self) -> String {
        let mut text = String::new();
        std::fs::File::open(&self.log).unwrap().read_to_string(&mut text).unwrap();
        text
    }

    /// SIGTERM, then the exit status (within 10 s).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(exit) = self.child.try_wait().unwrap() {
                return exit;
            }
            assert!(Instant::now() < deadline, "ext-authz did not stop:\n{}", self.stderr());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for AuthzProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

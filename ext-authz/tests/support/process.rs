//! The `ext-authz` binary run as a child process, for tests of what only the real process
//! shows (signals, exit codes, its logs, starting against a hanging provider).

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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
    /// Writes `config` (listeners on `127.0.0.1:0`) to `config_file` with free ports in their
    /// place, starts the binary on it with `env`, and waits until the HTTP port accepts
    /// connections. A port taken between choosing and binding it makes it start again on others.
    pub fn start(config_file: &Path, config: &str, env: &[(&str, &str)]) -> AuthzProcess {
        for _ in 0..5 {
            let (text, grpc, http) = on_free_ports(&super::ended(config));
            std::fs::write(config_file, text).unwrap();
            let log = config_file.with_extension("stderr.log");
            let mut command = Command::new(BIN);
            command.arg("--config").arg(config_file).stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap());
            for (k, v) in env {
                command.env(k, v);
            }
            let mut process = AuthzProcess { child: command.spawn().unwrap(), grpc, http, log };
            match shared::testing::wait_for_child(&mut process.child, http, Duration::from_secs(10)) {
                shared::testing::Started::Listening => return process,
                _ if process.stderr().contains("Address already in use") => continue,
                _ => panic!("ext-authz did not open its ports:\n{}", process.stderr()),
            }
        }
        panic!("ext-authz found no free ports in 5 attempts");
    }

    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.http))
    }

    /// Waits until `/readyz` answers 200 (every JWT provider's keys loaded), as a gateway's
    /// readiness probe would before sending traffic.
    pub async fn wait_ready(&self) {
        let addr = format!("127.0.0.1:{}", self.http);
        let ready = async || shared::serve::probe(&addr, "/readyz").is_ok();
        shared::testing::eventually("ext-authz ready (keys loaded)", Duration::from_secs(10), ready).await;
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
        let exit = shared::testing::poll_blocking(Duration::from_secs(10), || self.child.try_wait().unwrap());
        exit.unwrap_or_else(|| panic!("ext-authz did not stop:\n{}", self.stderr()))
    }
}

impl Drop for AuthzProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

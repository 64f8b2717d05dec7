//! The `ratelimit` binary run as a child process, for tests of what only the real process
//! shows (signals, exit codes, file descriptor limits).

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;

use super::{free_port, ConfigDir};

pub const BIN: &str = env!("CARGO_BIN_EXE_ratelimit");

pub struct Process {
    pub child: Child,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
    pub grpc: u16,
    pub http: u16,
    pub debug: u16,
}

impl Process {
    /// Starts the binary with a clean environment plus `env`, and waits for the HTTP port.
    pub fn start(env: &[(&str, &str)]) -> Process {
        Process::start_with_open_files(env, None)
    }

    /// The same, with the soft open-file limit set to `soft_limit` (as a default systemd or
    /// container runtime would leave it) before the binary starts.
    /// A port taken between choosing it and binding it makes it start again on others.
    pub fn start_with_open_files(env: &[(&str, &str)], soft_limit: Option<u64>) -> Process {
        Process::start_binary(Path::new(BIN), env, soft_limit)
    }

    /// The same with the binary at `binary` (e.g. a copy where a deployment expects it).
    pub fn start_binary(binary: &Path, env: &[(&str, &str)], soft_limit: Option<u64>) -> Process {
        for _ in 0..5 {
            match Process::try_start(binary, env, soft_limit) {
                Ok(process) => return process,
                Err(stderr) if stderr.contains("Address already in use") => continue,
                Err(stderr) => panic!("ratelimit did not start:\n{stderr}"),
            }
        }
        panic!("ratelimit found no free ports in 5 attempts");
    }

    fn try_start(binary: &Path, env: &[(&str, &str)], soft_limit: Option<u64>) -> Result<Process, String> {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("stderr.log");
        let (grpc, http, debug) = (free_port(), free_port(), free_port());
        let mut command = match soft_limit {
            None => Command::new(binary),
            Some(limit) => {
                let mut shell = Command::new("/bin/sh");
                shell.arg("-c").arg(format!("ulimit -Sn {limit} && exec \"$0\"")).arg(binary);
                shell
            }
        };
        command
            .env_clear()
            .env("GRPC_HOST", "127.0.0.1")
            .env("GRPC_PORT", grpc.to_string())
            .env("HOST", "127.0.0.1")
            .env("PORT", http.to_string())
            .env("DEBUG_HOST", "127.0.0.1")
            .env("DEBUG_PORT", debug.to_string())
            // No statsd server here; tests that want one say so.
            .env("USE_STATSD", "false")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command.spawn().unwrap();
        let mut process = Process { child, log, _dir: dir, grpc, http, debug };
        match shared::testing::wait_for_child(&mut process.child, http, Duration::from_secs(10)) {
            shared::testing::Started::Listening => Ok(process),
            _ => Err(process.stderr()),
        }
    }

    pub fn stderr(&self) -> String {
        let mut text = String::new();
        std::fs::File::open(&self.log).unwrap().read_to_string(&mut text).unwrap();
        text
    }

    pub fn sigterm(&self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    pub fn wait(&mut self) -> std::process::ExitStatus {
        let status = shared::testing::poll_blocking(Duration::from_secs(10), || self.child.try_wait().unwrap());
        status.unwrap_or_else(|| panic!("ratelimit did not exit:\n{}", self.stderr()))
    }

    /// Starts the binary on a Redis at `redis_url` with one config file.
    pub fn with_redis(config: &ConfigDir, redis_url: &str, extra: &[(&str, &str)]) -> Process {
        let mut env = vec![
            ("RUNTIME_ROOT", config.root().to_str().unwrap()),
            ("RUNTIME_SUBDIRECTORY", "ratelimit"),
            ("RUNTIME_WATCH_ROOT", "false"),
            ("REDIS_SOCKET_TYPE", "tcp"),
            ("REDIS_URL", redis_url),
        ];
        env.extend_from_slice(extra);
        Process::start(&env)
    }

    pub async fn client(&self) -> RateLimitServiceClient<tonic::transport::Channel> {
        RateLimitServiceClient::connect(format!("http://127.0.0.1:{}", self.grpc)).await.unwrap()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

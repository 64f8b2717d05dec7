//! Support for tests of every crate (and the end-to-end suite): free loopback ports and a real
//! `redis-server` of the test's own. Not used by the services.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("a free loopback port").local_addr().expect("bound").port()
}

/// A `redis-server` on a free loopback port, stopped when dropped. `stop` and `resume` keep the
/// port, so a service can be shown losing and regaining it.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    dir: PathBuf,
    config_file: Option<PathBuf>,
    extra_args: Vec<String>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        RedisServer::start_with(None, &[])
    }

    /// Starts with a config file (sentinels need one) and extra arguments; `{port}` in an
    /// argument stands for the server's port.
    pub fn start_with(config: Option<&str>, extra_args: &[&str]) -> RedisServer {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("gatehouse-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        let config_file = config.map(|content| {
            let path = dir.join("redis.conf");
            std::fs::write(&path, content).expect("writing redis.conf");
            path
        });
        let extra_args = extra_args.iter().map(|a| a.replace("{port}", &port.to_string())).collect();
        let mut server = RedisServer { port, child: None, dir, config_file, extra_args };
        server.resume();
        server
    }

    pub fn url(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Starts (again) on the same port and waits until it accepts connections.
    pub fn resume(&mut self) {
        let mut command = Command::new("redis-server");
        if let Some(config) = &self.config_file {
            command.arg(config);
        }
        let port = self.port.to_string();
        let child = command
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            // Tests stall Redis with DEBUG SLEEP to hold a call in flight.
            .args(["--enable-debug-command", "local"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/install-deps.sh installs it)");
        self.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

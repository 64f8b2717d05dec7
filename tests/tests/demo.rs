//! The demo binary as a user meets it on a busy machine: a port another program holds, a
//! second demo on a running one's port, a `DEMO_PORT` that is not a port. Each is one line on
//! stderr and an exit code, with nothing left running — and the shipped Envoy config refuses a
//! second Envoy on the port rather than sharing it (Envoy's SO_REUSEPORT default would).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use e2e::demo::{DemoError, EXIT_UNAVAILABLE, EXIT_USAGE};
use e2e::{Stack, StackOptions};
use shared::testing::{free_port, poll_blocking};

const DEMO: &str = env!("CARGO_BIN_EXE_demo");

/// The demo binary with `DEMO_PORT`, its output in files; killed if the test ends first.
struct Demo {
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

impl Demo {
    fn start(dir: &Path, name: &str, port: &str) -> Demo {
        let (out, err) = (dir.join(format!("{name}.out")), dir.join(format!("{name}.err")));
        let child = Command::new(DEMO)
            .env("DEMO_PORT", port)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .expect("the demo binary");
        Demo { child, out, err }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap()
    }

    /// Its exit status; panics if it still runs after `within`.
    fn wait(&mut self, within: Duration) -> ExitStatus {
        let status = poll_blocking(within, || self.child.try_wait().unwrap());
        status.unwrap_or_else(|| panic!("the demo still runs after {within:?}:\n{}", self.stderr()))
    }

    /// Waits until it says it is up; panics if it exits first or takes longer than `within`.
    fn wait_up(&mut self, within: Duration) {
        let up = poll_blocking(within, || match self.child.try_wait().unwrap() {
            Some(status) => panic!("the demo exited ({status}):\n{}", self.stderr()),
            None => self.stdout().contains("Gatehouse demo is up").then_some(()),
        });
        up.unwrap_or_else(|| panic!("the demo not up within {within:?}:\n{}", self.stderr()));
    }

    /// Ctrl-C, by its PID.
    fn interrupt(&self) {
        let status = Command::new("kill").arg("-INT").arg(self.pid().to_string()).status().expect("kill runs");
        assert!(status.success(), "kill -INT {}", self.pid());
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Envoys still running for the process `pid` (the launcher names their scratch directories
/// `gatehouse-envoy-<pid>-<n>`, and their command line holds the config path there).
fn envoys_of(pid: u32) -> Vec<String> {
    let marker = format!("gatehouse-envoy-{pid}-");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| std::fs::read(entry.ok()?.path().join("cmdline")).ok())
        .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
        .filter(|command| command.contains(&marker))
        .collect()
}

/// The one line a refused demo writes, for `port`.
fn assert_port_in_use_line(said: &str, port: u16) {
    assert_eq!(said.lines().count(), 1, "{said}");
    let prefix = format!("demo: port {port} is already in use (another demo?); pick another with DEMO_PORT=");
    let rest = said.trim_end().strip_prefix(&prefix).unwrap_or_else(|| panic!("{said}"));
    let (suggested, command) = rest.split_once(' ').unwrap();
    assert!(suggested.parse::<u16>().is_ok_and(|p| p != port), "{said}");
    assert_eq!(command, "scripts/demo.sh");
}

#[test]
fn a_port_another_program_holds_is_one_line_and_nothing_starts() {
    let dir = tempfile::tempdir().unwrap();
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let mut demo = Demo::start(dir.path(), "demo", &port.to_string());
    let status = demo.wait(Duration::from_secs(30));
    assert_eq!(status.code(), Some(i32::from(EXIT_UNAVAILABLE)), "{}", demo.stderr());
    assert_port_in_use_line(&demo.stderr(), port);
    assert_eq!(demo.stdout(), "");
    assert_eq!(envoys_of(demo.pid()), Vec::<String>::new());
}

#[test]
fn a_demo_port_that_is_not_a_port_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["ten-thousand", "0", "65536"] {
        let mut demo = Demo::start(dir.path(), "demo", bad);
        let status = demo.wait(Duration::from_secs(30));
        assert_eq!(status.code(), Some(i32::from(EXIT_USAGE)), "{}", demo.stderr());
        assert_eq!(
            demo.stderr(),
            format!("demo: DEMO_PORT={bad:?} is not a port: give one from 1 to 65535 (default 10000)\n")
        );
        assert_eq!(envoys_of(demo.pid()), Vec::<String>::new());
    }
}

/// A second demo on a running one's port is refused before it starts anything. So is a second
/// Envoy from the shipped config on that port — what a demo starting at the same moment would
/// reach past its check — and the demo reads Envoy's failure as the same line. The first demo
/// serves on, and stops on Ctrl-C leaving nothing behind.
#[tokio::test]
async fn a_second_demo_or_envoy_on_a_running_demos_port_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut first = Demo::start(dir.path(), "first", &port.to_string());
    first.wait_up(Duration::from_secs(120));

    let mut second = Demo::start(dir.path(), "second", &port.to_string());
    let status = second.wait(Duration::from_secs(30));
    assert_eq!(status.code(), Some(i32::from(EXIT_UNAVAILABLE)), "{}", second.stderr());
    assert_port_in_use_line(&second.stderr(), port);
    assert_eq!(envoys_of(second.pid()), Vec::<String>::new());

    let options = StackOptions {
        memory_backend: true,
        listen_port: Some(port),
        ratelimit_root: Some("examples/demo"),
        ..StackOptions::default()
    };
    let log = Stack::try_start(options).await.err().expect("a second Envoy started on the demo's port");
    assert!(log.contains(&format!("cannot bind '127.0.0.1:{port}': Address already in use")), "{log}");
    assert!(matches!(e2e::demo::envoy_failed(port, &[], &log), DemoError::PortInUse { .. }), "{log}");
    assert_eq!(envoys_of(std::process::id()), Vec::<String>::new());

    let reply = e2e::http::send(port, "GET", "/public/hello", &[]).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    first.interrupt();
    let status = first.wait(Duration::from_secs(30));
    assert!(status.success(), "{status}: {}", first.stderr());
    assert_eq!(envoys_of(first.pid()), Vec::<String>::new());
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(), "port {port} still held");
}

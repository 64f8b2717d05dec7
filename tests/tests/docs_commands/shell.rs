//! Running the docs' blocks as a new user would: bash, from a copy of the tree as a fresh clone
//! holds it (tracked and new files, nothing ignored: no target/, .venv/ or node_modules/), with
//! a scratch HOME and a clean environment (PATH only), so that a variable the test happens to
//! have cannot stand in for one the docs forget to set.
//!
//! `cargo run -p NAME [-- ARGS]` is the one substitution: a `cargo` placed first on PATH runs
//! the binary `cargo test` already built (target/debug/NAME, checked to be newer than every
//! source file it was built from) instead of building it again inside a block, where the build
//! would count against the block's deadline. Any other `cargo` use is refused.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use e2e::envoy::workspace_root;
use shared::testing::{poll_blocking, wait_for_child, Started};

/// The longest a `run` block may take: each is a validate or a few curl calls.
pub const RUN_WITHIN: Duration = Duration::from_secs(60);
/// The longest a server may take to open its ports (debug binaries start in well under that).
const START_WITHIN: Duration = Duration::from_secs(60);
const STOP_WITHIN: Duration = Duration::from_secs(20);
/// A stale binary's rebuild: one crate and its binary, from cached dependencies.
const BUILD_WITHIN: Duration = Duration::from_secs(900);

const CARGO_SHIM: &str = r#"#!/bin/sh
# tests/tests/docs_commands: `cargo run -p NAME [-- ARGS]` runs the binary cargo test built.
if [ "$1" = run ] && [ "$2" = -p ] && [ -n "$3" ]; then
  name=$3
  shift 3
  if [ "$#" -eq 0 ] || [ "$1" = -- ]; then
    [ "$#" -gt 0 ] && shift
    exec "$(dirname "$0")/built/$name" "$@"
  fi
fi
echo "docs_commands: no stand-in for: cargo $*" >&2
exit 97
"#;

pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    /// A copy of the tree and a HOME, and `cargo run -p` standing in for each of `binaries`.
    pub fn new(binaries: &[String]) -> Scratch {
        let dir = tempfile::tempdir().expect("a scratch directory");
        let scratch = Scratch { dir };
        copy_tree(&workspace_root(), &scratch.tree());
        std::fs::create_dir_all(scratch.home()).unwrap();
        let built = scratch.bin().join("built");
        std::fs::create_dir_all(&built).unwrap();
        for name in binaries {
            std::os::unix::fs::symlink(fresh_binary(name), built.join(name)).unwrap();
        }
        let shim = scratch.bin().join("cargo");
        std::fs::write(&shim, CARGO_SHIM).unwrap();
        std::fs::set_permissions(&shim, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        scratch
    }

    pub fn tree(&self) -> PathBuf {
        self.dir.path().join("tree")
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    /// bash, in its own process group (so that stopping it stops what it started), running
    /// `script` from the tree's root, with errexit: a block whose middle command fails fails.
    fn bash(&self, script: &str, log: &Path) -> Child {
        let path = shared::env::Env::var(&shared::env::ProcessEnv, "PATH").unwrap_or_default();
        let out = File::create(log).unwrap();
        Command::new("bash")
            .args(["-e", "-c", script])
            .current_dir(self.tree())
            .env_clear()
            .env("PATH", format!("{}:{path}", self.bin().display()))
            .env("HOME", self.home())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .expect("bash")
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    /// Runs `script` to its end (at most [`RUN_WITHIN`]): its exit code and what it printed.
    pub fn run(&self, name: &str, script: &str) -> (i32, String) {
        let log = self.log(name);
        let mut child = self.bash(script, &log);
        let status = poll_blocking(RUN_WITHIN, || child.try_wait().unwrap());
        // What the block started in the background (`redis-server … &`) is still in bash's
        // group when bash has ended: it stops with the block, whether the block ended or not.
        stop_group(&mut child);
        let printed = std::fs::read_to_string(&log).unwrap_or_default();
        let Some(status) = status else {
            panic!("{name}: still running after {RUN_WITHIN:?}; it printed:\n{printed}");
        };
        (code(status), printed)
    }

    /// Starts `script` in the background and waits until every one of `ports` accepts.
    pub fn serve(&self, name: &str, script: &str, ports: &[u16]) -> Server {
        for port in ports {
            assert!(
                std::net::TcpStream::connect(("127.0.0.1", *port)).is_err(),
                "{name}: port {port} is taken by another program, and the docs' command uses it as written: \
                 stop that program and run the test again"
            );
        }
        let log = self.log(name);
        let mut server = Server { name: name.to_string(), child: self.bash(script, &log), log, ports: ports.to_vec() };
        let deadline = Instant::now() + START_WITHIN;
        for port in ports {
            let within = deadline.saturating_duration_since(Instant::now());
            match wait_for_child(&mut server.child, *port, within) {
                Started::Listening => {}
                Started::Exited(status) => {
                    panic!("{name} exited ({status}) before port {port} opened:\n{}", server.printed())
                }
                Started::TimedOut => {
                    panic!("{name}: port {port} not open within {START_WITHIN:?}:\n{}", server.printed())
                }
            }
        }
        server
    }
}

/// A server a `serve` block started; stopped (its whole process group) when dropped.
pub struct Server {
    pub name: String,
    child: Child,
    log: PathBuf,
    pub ports: Vec<u16>,
}

impl Server {
    pub fn printed(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        stop_group(&mut self.child);
        // Its ports are free again before the next server, which may document the same ones.
        for port in &self.ports {
            let freed = poll_blocking(STOP_WITHIN, || {
                std::net::TcpStream::connect(("127.0.0.1", *port)).is_err().then_some(())
            });
            if freed.is_none() && !std::thread::panicking() {
                panic!("{}: port {port} still open after it stopped", self.name);
            }
        }
    }
}

/// SIGTERM to the process group `child` leads (bash and everything the block started), then
/// SIGKILL if a member is left after [`STOP_WITHIN`]. Also after bash has ended: the group
/// lives on while any member does (a `cmd &` of the block), and its id names no other group
/// meanwhile.
fn stop_group(child: &mut Child) {
    let group = format!("-{}", child.id());
    let signal = |signal: &str| {
        let sent = Command::new("kill").args([signal, "--", &group]).stderr(Stdio::null()).status();
        sent.is_ok_and(|status| status.success())
    };
    signal("-TERM");
    // `kill -0` finds a member while one is left; bash is reaped first, so it is not one.
    let ended = poll_blocking(STOP_WITHIN, || {
        let _ = child.try_wait();
        (!signal("-0")).then_some(())
    });
    if ended.is_none() {
        signal("-KILL");
        let _ = child.wait();
    }
}

fn code(status: ExitStatus) -> i32 {
    status.code().unwrap_or_else(|| panic!("ended by a signal: {status}"))
}

/// What a fresh clone holds: the files git tracks or would (not ignored), as they are now.
fn copy_tree(root: &Path, to: &Path) {
    let listed = Command::new("git")
        .args(["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
        .current_dir(root)
        .output()
        .expect("git");
    assert!(listed.status.success(), "git ls-files: {}", String::from_utf8_lossy(&listed.stderr));
    for name in listed.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = std::str::from_utf8(name).unwrap();
        let from = root.join(name);
        // A file deleted in the work tree but not yet in the index is not in a clone either.
        if !from.is_file() {
            continue;
        }
        let target = to.join(name);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&from, &target).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// target/debug/NAME, newer than every file its dep-info lists: a binary older than the sources
/// would prove the docs against code that is gone. `cargo test --workspace` has just built it
/// (the crate's own tests need it); a narrower run (`cargo test -p e2e`) may find it stale, and
/// then builds it (cargo holds no lock while tests run).
pub fn fresh_binary(name: &str) -> PathBuf {
    // This test runs as target/debug/deps/docs_commands-…; the binaries sit in target/debug.
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let binary = dir.join(name);
    if let Err(stale) = up_to_date(dir, name) {
        eprintln!("{stale}: building it");
        let mut build = Command::new(env!("CARGO"))
            .args(["build", "-p", name, "--bin", name])
            .current_dir(workspace_root())
            .spawn()
            .expect("cargo");
        let built = poll_blocking(BUILD_WITHIN, || build.try_wait().unwrap());
        assert!(built.is_some_and(|status| status.success()), "cargo build -p {name}: {built:?}");
        up_to_date(dir, name).unwrap_or_else(|stale| panic!("{stale}, even after cargo build"));
    }
    binary
}

/// Whether `dir/name` is newer than each source its dep-info (`dir/name.d`) lists; if not, why.
fn up_to_date(dir: &Path, name: &str) -> Result<(), String> {
    let binary = dir.join(name);
    let built =
        std::fs::metadata(&binary).and_then(|m| m.modified()).map_err(|e| format!("{}: {e}", binary.display()))?;
    let info = std::fs::read_to_string(dir.join(format!("{name}.d"))).map_err(|e| format!("{name}.d: {e}"))?;
    let sources = info.split_once(": ").map(|(_, deps)| deps).unwrap_or_default();
    // Paths in dep-info escape their spaces with a backslash.
    let sources = sources.replace("\\ ", "\u{0}");
    for source in sources.split_whitespace().map(|s| s.replace('\u{0}', " ")) {
        let changed = std::fs::metadata(&source).and_then(|m| m.modified());
        if !changed.is_ok_and(|changed| changed <= built) {
            return Err(format!("{} is older than {source} (or that file is gone)", binary.display()));
        }
    }
    Ok(())
}

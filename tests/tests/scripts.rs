//! The install scripts as a new user's machine runs them: the demo's needs nothing of Node.js,
//! and a machine whose Node.js is Debian 12's 18 gets a Node 20 from the npm registry.

use std::path::Path;
use std::process::Command;

use e2e::envoy::workspace_root;

/// A `node` that claims to be Debian 12's 18 (and delegates anything else to the real one,
/// since npm itself runs on it), recording every call in `calls`.
fn node_18_shim(dir: &Path) {
    let real = String::from_utf8(Command::new("sh").args(["-c", "command -v node"]).output().unwrap().stdout).unwrap();
    let script = format!(
        "#!/bin/sh\necho \"$*\" >> {calls}\ncase \"$*\" in\n  *process.versions.node*) echo 18; exit 0;;\n  --version) echo v18.19.0; exit 0;;\nesac\nexec {real} \"$@\"\n",
        calls = dir.join("calls").display(),
        real = real.trim()
    );
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    let shim = dir.join("bin/node");
    std::fs::write(&shim, script).unwrap();
    Command::new("chmod").arg("+x").arg(&shim).status().unwrap();
}

fn path_with(dir: &Path) -> String {
    format!(
        "{}:{}",
        dir.join("bin").display(),
        shared::env::Env::var(&shared::env::ProcessEnv, "PATH").unwrap_or_default()
    )
}

#[test]
fn a_machine_with_node_18_gets_node_20_from_the_npm_registry() {
    let dir = tempfile::tempdir().unwrap();
    node_18_shim(dir.path());
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(repo.join("scripts")).unwrap();
    std::fs::copy(workspace_root().join("scripts/ensure-node.sh"), repo.join("scripts/ensure-node.sh")).unwrap();
    let run = || {
        Command::new("bash")
            .arg(repo.join("scripts/ensure-node.sh"))
            .env("PATH", path_with(dir.path()))
            .output()
            .unwrap()
    };
    let first = run();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let node = String::from_utf8(first.stdout).unwrap().trim().to_string();
    assert_eq!(Path::new(&node), repo.join(".tools/node/node_modules/.bin/node"));
    let version = Command::new(&node).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("v20."), "{version:?}");
    // Idempotent: the second run installs nothing and names the same Node.
    let second = run();
    assert_eq!(String::from_utf8(second.stdout).unwrap().trim(), node);
    assert!(second.stderr.is_empty(), "{}", String::from_utf8_lossy(&second.stderr));
}

#[test]
fn the_demo_needs_no_node_and_no_schema_tools() {
    let dir = tempfile::tempdir().unwrap();
    node_18_shim(dir.path());
    let output = Command::new("bash")
        .arg(workspace_root().join("scripts/install-deps.sh"))
        .arg("--demo")
        .env("GATEHOUSE_SKIP_REDIS", "1")
        .env("PATH", path_with(dir.path()))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!dir.path().join("calls").exists(), "the demo's install ran node");
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(!said.contains("oidc-provider") && !said.contains("check-jsonschema"), "{said}");
}

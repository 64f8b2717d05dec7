//! The shipped deployment files, checked without a Docker engine: every Envoy config renders
//! (with docker-compose's values, through the same render.sh compose runs) and passes
//! `envoy --mode validate`; the compose file resolves.

use std::process::Command;

use e2e::envoy::{envoy_binary, workspace_root};

fn compose_values() -> Vec<(&'static str, &'static str)> {
    vec![
        ("LISTEN_BIND", "0.0.0.0"),
        ("LISTEN_PORT", "10000"),
        ("ADMIN_BIND", "0.0.0.0"),
        ("ADMIN_PORT", "9901"),
        ("EXT_AUTHZ_HOST", "ext-authz"),
        ("EXT_AUTHZ_PORT", "9001"),
        ("EXT_AUTHZ_HTTP_PORT", "8080"),
        ("RATELIMIT_HOST", "ratelimit"),
        ("RATELIMIT_PORT", "8081"),
        ("BACKEND_HOST", "backend"),
        ("BACKEND_PORT", "8000"),
        ("FAILURE_MODE_DENY", "false"),
    ]
}

fn render(file: &str, values: &[(&str, &str)]) -> std::process::Output {
    let dir = workspace_root().join("examples/envoy");
    let mut command = Command::new("sh");
    command
        .arg(dir.join("render.sh"))
        .arg(dir.join(file))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in values {
        command.env(k, v);
    }
    command.output().expect("running render.sh")
}

#[test]
fn every_envoy_config_renders_and_validates() {
    for file in ["envoy.yaml", "envoy-http-authz.yaml"] {
        let rendered = render(file, &compose_values());
        assert!(rendered.status.success(), "{file}: {}", String::from_utf8_lossy(&rendered.stderr));
        let text = String::from_utf8(rendered.stdout).unwrap();
        assert!(
            !text.lines().filter(|l| !l.trim_start().starts_with('#')).any(|l| l.contains("${")),
            "{file}: unfilled placeholders"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file);
        std::fs::write(&path, &text).unwrap();
        let validate = Command::new(envoy_binary()).args(["--mode", "validate", "-c"]).arg(&path).output().unwrap();
        assert!(
            validate.status.success(),
            "envoy --mode validate {file}:\n{}{}",
            String::from_utf8_lossy(&validate.stdout),
            String::from_utf8_lossy(&validate.stderr)
        );
    }
}

#[test]
fn render_refuses_a_missing_value() {
    let mut values = compose_values();
    values.retain(|(k, _)| *k != "RATELIMIT_PORT");
    let rendered = render("envoy.yaml", &values);
    assert!(!rendered.status.success());
    assert!(String::from_utf8_lossy(&rendered.stderr).contains("RATELIMIT_PORT is not set"));
}

#[test]
fn the_compose_file_follows_the_compose_spec() {
    let checker = workspace_root().join(".venv/bin/check-jsonschema");
    let output = Command::new(&checker)
        .args(["--builtin-schema", "vendor.compose-spec"])
        .arg(workspace_root().join("docker-compose.yml"))
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (scripts/install-deps.sh installs it)", checker.display()));
    assert!(output.status.success(), "docker-compose.yml: {}", String::from_utf8_lossy(&output.stdout));
    // Every file the compose file mounts exists in the repository.
    let compose = std::fs::read_to_string(workspace_root().join("docker-compose.yml")).unwrap();
    for mount in compose.split(['"', ' ', '[', ']', ',']).filter(|s| s.starts_with("./")) {
        let local = mount.split(':').next().unwrap();
        assert!(workspace_root().join(local).exists(), "docker-compose.yml mounts {local}, which does not exist");
    }
}

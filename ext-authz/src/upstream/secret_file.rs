//! A credential kept in a file — typically one key of a mounted Kubernetes Secret, which the
//! kubelet replaces by swapping a symlink — read within bounds and re-read when it changes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use shared::reload::{Reloadable, Watched};
use tokio::sync::watch;

use super::CredentialSettings;
use crate::metrics::Metrics;

/// Far above any API key or token; a larger file is a mistake (a whole bundle mounted).
pub const MAX_SECRET_BYTES: u64 = 16 * 1024;

/// Why a credential file cannot be used. The messages never quote the content.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error("cannot read it: {0}")]
    Unreadable(#[from] std::io::Error),
    #[error("{0} bytes is more than the {MAX_SECRET_BYTES} a credential may have")]
    TooLarge(u64),
    #[error("it is not UTF-8 text")]
    NotUtf8,
    #[error("it is empty")]
    Empty,
    // Bytes a header cannot carry would be dropped by Envoy or split the header.
    #[error("it holds characters a header value cannot carry (control or non-ASCII)")]
    NotAHeaderValue,
}

/// The file's content without surrounding whitespace (editors and `echo` add a newline).
pub fn read(path: &Path) -> Result<String, SecretFileError> {
    let length = std::fs::metadata(path)?.len();
    if length > MAX_SECRET_BYTES {
        return Err(SecretFileError::TooLarge(length));
    }
    let bytes = std::fs::read(path)?;
    let text = String::from_utf8(bytes).map_err(|_| SecretFileError::NotUtf8)?;
    let value = text.trim();
    if value.is_empty() {
        return Err(SecretFileError::Empty);
    }
    if !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(SecretFileError::NotAHeaderValue);
    }
    Ok(value.to_string())
}

/// Re-reads `path` when it changes, as a shared reloadable value: a change that cannot be read
/// keeps the current value (logged, and counted as `ext_authz_reloads_total{what="upstream_credentials"}`).
pub async fn watch(
    credential: CredentialSettings,
    path: PathBuf,
    current: Arc<ArcSwap<String>>,
    every: Duration,
    metrics: Metrics,
    stop: watch::Receiver<bool>,
) {
    let watched = Watched::files(every, [path.clone()]);
    let load = move || read(&path).map(|value| format!("{}{value}", credential.prefix));
    Reloadable::swapping("upstream_credentials", metrics, current).watch_blocking(watched, load, stop).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_trimmed_and_fit_for_a_header() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, content: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, content).unwrap();
            path
        };
        let problem = |path: PathBuf| read(&path).unwrap_err().to_string();
        assert_eq!(read(&file("ok", b"sk-test-123\n")).unwrap(), "sk-test-123");
        assert_eq!(problem(file("empty", b" \n")), "it is empty");
        let control = problem(file("control", b"sk-1\r\nx-evil: 1"));
        assert!(control.contains("cannot carry") && !control.contains("sk-1"), "{control}");
        assert!(problem(file("binary", &[0xff, 0xfe])).contains("UTF-8"));
        let huge = vec![b'a'; MAX_SECRET_BYTES as usize + 1];
        assert!(problem(file("huge", &huge)).contains("more than"));
        assert_eq!(read(&file("at-bound", &huge[1..])).unwrap().len(), MAX_SECRET_BYTES as usize);
        assert!(problem(dir.path().join("missing")).starts_with("cannot read it"));
    }
}

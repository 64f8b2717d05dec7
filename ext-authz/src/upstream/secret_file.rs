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

/// The file's content without surrounding whitespace (editors and `echo` add a newline). The
/// problem, when there is one, never quotes the content.
pub fn read(path: &Path) -> Result<String, String> {
    let length = std::fs::metadata(path).map_err(|e| format!("cannot read it: {e}"))?.len();
    if length > MAX_SECRET_BYTES {
        return Err(format!("{length} bytes is more than the {MAX_SECRET_BYTES} a credential may have"));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|_| "it is not UTF-8 text".to_string())?;
    let value = text.trim();
    if value.is_empty() {
        return Err("it is empty".into());
    }
    // Bytes a header cannot carry would be dropped by Envoy or split the header.
    if !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err("it holds characters a header value cannot carry (control or non-ASCII)".into());
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
        assert_eq!(read(&file("ok", b"sk-test-123\n")).unwrap(), "sk-test-123");
        assert_eq!(read(&file("empty", b" \n")).unwrap_err(), "it is empty");
        let control = read(&file("control", b"sk-1\r\nx-evil: 1")).unwrap_err();
        assert!(control.contains("cannot carry") && !control.contains("sk-1"), "{control}");
        assert!(read(&file("binary", &[0xff, 0xfe])).unwrap_err().contains("UTF-8"));
        let huge = vec![b'a'; MAX_SECRET_BYTES as usize + 1];
        assert!(read(&file("huge", &huge)).unwrap_err().contains("more than"));
        assert_eq!(read(&file("at-bound", &huge[1..])).unwrap().len(), MAX_SECRET_BYTES as usize);
        assert!(read(&dir.path().join("missing")).unwrap_err().starts_with("cannot read it"));
    }
}

//! The one way a reloadable file (rate limit configs, the ext-authz config, API key files, key
//! files, upstream credentials, TLS certificates) is watched and put in service: poll a
//! fingerprint, wait until a change holds still, then read, build and validate it off the
//! serving threads; a good value is swapped in atomically, a bad one leaves the last good one in
//! service; either is logged and counted once ([`Reloadable`]). A service declares a reloadable
//! value with its name and its load, and makes one call to keep it in service.
//!
//! Why a change must hold still: a file written in place is empty, then half-written, for a
//! moment, and a poll that lands in that moment would install it (an empty ext-authz config
//! denies everything). A change is only read once two polls, `settle` apart, agree on it.
//!
//! Why polling: it catches every way files get replaced in practice — edits in place, a root
//! symlink swapped on deploy, and Kubernetes ConfigMap and Secret volumes, whose updates are
//! symlink swaps that inotify-based watchers are known to miss.

mod reloadable;
pub use reloadable::{LoadError, Outcome, ReloadCounter, Reloadable, Watched};

use std::collections::hash_map::DefaultHasher;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::time::Duration;

use tokio::sync::watch;

/// Feeds what a file looks like now into `hasher`: where its path resolves to (symlink swaps),
/// its size and its modification time, or the error that stops it being read.
pub fn hash_file(path: &Path, hasher: &mut impl Hasher) {
    path.hash(hasher);
    match std::fs::metadata(path) {
        Ok(meta) => {
            std::fs::canonicalize(path).ok().hash(hasher);
            meta.len().hash(hasher);
            meta.modified().ok().hash(hasher);
        }
        Err(e) => e.kind().hash(hasher),
    }
}

/// The fingerprint of a set of files (in order).
pub fn fingerprint<'a>(paths: impl IntoIterator<Item = &'a Path>) -> u64 {
    let mut hasher = DefaultHasher::new();
    for path in paths {
        hash_file(path, &mut hasher);
    }
    hasher.finish()
}

/// Decides, poll by poll, when a change is ready to be read: when the fingerprint differs
/// from the one last read and two consecutive polls saw the same one.
#[derive(Debug, Clone)]
pub struct ChangeGate {
    read: u64,
    pending: Option<u64>,
}

/// What to do after a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    /// Nothing changed.
    Unchanged,
    /// Something is changing: look again after the settle time.
    Settling,
    /// The change held still: read it now.
    Read,
}

impl ChangeGate {
    /// `read` is the fingerprint taken just before the files in service were read.
    pub fn new(read: u64) -> ChangeGate {
        ChangeGate { read, pending: None }
    }

    pub fn poll(&mut self, fingerprint: u64) -> Poll {
        if fingerprint == self.read {
            self.pending = None;
            return Poll::Unchanged;
        }
        if self.pending == Some(fingerprint) {
            // Read once, good or bad: a broken file is retried when it changes again.
            self.read = fingerprint;
            self.pending = None;
            return Poll::Read;
        }
        self.pending = Some(fingerprint);
        Poll::Settling
    }
}

/// How often to look.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub every: Duration,
    /// The wait between seeing a change and making sure it held still.
    pub settle: Duration,
}

impl Pace {
    /// Settling takes a fifth of the interval, at most 200 ms: long enough for a writer to
    /// finish a file, short enough that a reload still lands within about one interval.
    pub fn every(every: Duration) -> Pace {
        Pace { every, settle: (every / 5).min(Duration::from_millis(200)) }
    }
}

/// Polls `fingerprint` (on a blocking thread: it touches the file system) and calls `reload`
/// when a change held still, until `stop`. `initial` is the fingerprint taken before the
/// state in service was read. The watching half of [`Reloadable::watch`], which the services
/// use; `reload` there reads and builds on a blocking thread and installs the outcome.
pub async fn watch<F, R, Fut>(pace: Pace, initial: u64, fingerprint: F, mut reload: R, mut stop: watch::Receiver<bool>)
where
    F: Fn() -> u64 + Clone + Send + 'static,
    R: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut gate = ChangeGate::new(initial);
    let mut wait = pace.every;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        let now = match blocking(fingerprint.clone()).await {
            Ok(now) => now,
            Err(e) => {
                tracing::error!("cannot take a reload fingerprint: {e}");
                continue;
            }
        };
        wait = match gate.poll(now) {
            Poll::Unchanged => pace.every,
            Poll::Settling => pace.settle,
            Poll::Read => {
                reload().await;
                pace.every
            }
        };
    }
}

/// Runs file reading and parsing on tokio's blocking pool, so a large or slow file never holds
/// up a thread that serves requests.
pub async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, Interrupted> {
    tokio::task::spawn_blocking(work).await.map_err(Interrupted)
}

/// Work handed to [`blocking`] that did not finish (it panicked): a load that fails.
#[derive(Debug, thiserror::Error)]
#[error("the reload task did not finish: {0}")]
pub struct Interrupted(#[source] tokio::task::JoinError);

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn a_change_is_read_once_it_held_still() {
        let mut gate = ChangeGate::new(1);
        assert_eq!(gate.poll(1), Poll::Unchanged);
        // Written in place: an empty file, then a half-written one, then the whole.
        assert_eq!(gate.poll(2), Poll::Settling);
        assert_eq!(gate.poll(3), Poll::Settling);
        assert_eq!(gate.poll(4), Poll::Settling);
        assert_eq!(gate.poll(4), Poll::Read);
        assert_eq!(gate.poll(4), Poll::Unchanged);
        // Changed and changed back before it settled: nothing to read.
        assert_eq!(gate.poll(5), Poll::Settling);
        assert_eq!(gate.poll(4), Poll::Unchanged);
    }

    #[test]
    fn fingerprints_follow_size_time_and_symlink_swaps() {
        let dir = std::env::temp_dir().join(format!("reload-fp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b, link) = (dir.join("a"), dir.join("b"), dir.join("link"));
        std::fs::write(&a, "one").unwrap();
        std::fs::write(&b, "one").unwrap();
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&a, &link).unwrap();
        let first = fingerprint([link.as_path()]);
        assert_eq!(first, fingerprint([link.as_path()]));
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(&b, &link).unwrap();
        let swapped = fingerprint([link.as_path()]);
        assert_ne!(first, swapped);
        std::fs::write(&b, "longer").unwrap();
        assert_ne!(swapped, fingerprint([link.as_path()]));
        std::fs::remove_file(&b).unwrap();
        assert_ne!(swapped, fingerprint([link.as_path()]));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn watch_reads_each_settled_change_once() {
        let state = Arc::new(AtomicU64::new(1));
        let reloads = Arc::new(AtomicUsize::new(0));
        let (stop_tx, stop) = watch::channel(false);
        let pace = Pace { every: Duration::from_secs(1), settle: Duration::from_millis(100) };
        let watched = state.clone();
        let counted = reloads.clone();
        let task = tokio::spawn(watch(
            pace,
            1,
            move || watched.load(Ordering::SeqCst),
            move || {
                counted.fetch_add(1, Ordering::SeqCst);
                std::future::ready(())
            },
            stop,
        ));
        let advance = |d: u64| async move {
            tokio::time::sleep(Duration::from_millis(d)).await;
            // Let the blocking fingerprint finish (paused time does not wait for it).
            for _ in 0..50 {
                tokio::task::yield_now().await;
            }
        };
        advance(1050).await;
        assert_eq!(reloads.load(Ordering::SeqCst), 0);
        state.store(2, Ordering::SeqCst);
        advance(1000).await;
        assert_eq!(reloads.load(Ordering::SeqCst), 0, "seen once, still settling");
        advance(100).await;
        assert_eq!(reloads.load(Ordering::SeqCst), 1);
        advance(3000).await;
        assert_eq!(reloads.load(Ordering::SeqCst), 1);
        stop_tx.send_replace(true);
        task.await.unwrap();
    }
}

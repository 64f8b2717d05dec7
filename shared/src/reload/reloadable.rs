//! The install half of a reload, written once: a value declared with a name (`what`) and a load
//! goes into service when the load succeeds and the last good one stays when it fails. Each
//! outcome is logged once — `info` when loaded, `error` when refused (a refusal always needs an
//! operator: the file they changed is not in service) — and counted once through the service's
//! [`ReloadCounter`], which the services back with one family, `<service>_reloads_total{what,result}`.

use std::fmt::Display;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use super::{blocking, fingerprint, Interrupted, Pace};

/// How a load ended: the `result` label of `<service>_reloads_total{what,result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The new value is in service.
    Loaded,
    /// The load failed; the last good value, if there is one, stays in service.
    Refused,
}

impl Outcome {
    /// `ok` or `error`, the label values both services have always used.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Loaded => "ok",
            Outcome::Refused => "error",
        }
    }
}

/// Hears every load's outcome. `shared` knows no metric names: each service implements this
/// on its metrics, as its `<service>_reloads_total{what,result}` family. A closure
/// `Fn(&'static str, Outcome)` is one too.
pub trait ReloadCounter: Send + Sync {
    fn count(&self, what: &'static str, outcome: Outcome);
}

impl<F: Fn(&'static str, Outcome) + Send + Sync> ReloadCounter for F {
    fn count(&self, what: &'static str, outcome: Outcome) {
        self(what, outcome)
    }
}

impl<C: ReloadCounter + ?Sized> ReloadCounter for Arc<C> {
    fn count(&self, what: &'static str, outcome: Outcome) {
        (**self).count(what, outcome)
    }
}

/// What a reloadable value is read from, as the watcher sees it: how often to look, the
/// fingerprint of what is in service, and how to take a fingerprint now.
pub struct Watched {
    pace: Pace,
    initial: u64,
    /// Named in the log lines.
    source: String,
    fingerprint: Arc<dyn Fn() -> u64 + Send + Sync>,
}

impl Watched {
    /// Fixed files, looked at every `every`. Their fingerprint is taken now: build this before
    /// (or as) the files in service are read, or give the earlier one with [`Watched::since`].
    pub fn files(every: Duration, paths: impl IntoIterator<Item = PathBuf>) -> Watched {
        let paths: Vec<PathBuf> = paths.into_iter().collect();
        let source = paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
        let print = move || fingerprint(paths.iter().map(PathBuf::as_path));
        Watched { pace: Pace::every(every), initial: print(), source, fingerprint: Arc::new(print) }
    }

    /// Anything with a fingerprint (a directory tree; files whose place follows a config).
    /// `initial` is the fingerprint taken before the value in service was read.
    pub fn new(
        pace: Pace,
        initial: u64,
        source: impl Into<String>,
        fingerprint: impl Fn() -> u64 + Send + Sync + 'static,
    ) -> Watched {
        Watched { pace, initial, source: source.into(), fingerprint: Arc::new(fingerprint) }
    }

    /// The fingerprint taken before the value in service was read, when that was earlier.
    pub fn since(mut self, initial: u64) -> Watched {
        self.initial = initial;
        self
    }
}

/// What the success line says about a loaded value.
type Summary<T> = Box<dyn Fn(&T) -> String + Send + Sync>;

/// A value kept in service across reloads. Declared once, with its name (the `what` label) and
/// where a loaded value goes; [`Reloadable::watch_blocking`] (or [`Reloadable::watch`], for a
/// load that also awaits) then runs the whole cycle.
pub struct Reloadable<T> {
    what: &'static str,
    put: Box<dyn Fn(T) + Send + Sync>,
    counter: Box<dyn ReloadCounter>,
    summary: Option<Summary<T>>,
    /// Whether a good value is in service, for the refusal's log line.
    serving: AtomicBool,
}

impl<T> Reloadable<T> {
    /// A value that `put` puts in service: for one whose installation does more than a swap
    /// (it stops what the old value ran, say). Nothing counts as in service until a load
    /// succeeds, or [`Reloadable::serving`] says the start put one there.
    pub fn new(
        what: &'static str,
        counter: impl ReloadCounter + 'static,
        put: impl Fn(T) + Send + Sync + 'static,
    ) -> Reloadable<T> {
        Reloadable {
            what,
            put: Box::new(put),
            counter: Box::new(counter),
            summary: None,
            serving: AtomicBool::new(false),
        }
    }

    /// A value its readers `load()` from `current`, swapped atomically on each good load
    /// (readers in the middle of a call keep the value they loaded).
    pub fn swapping(
        what: &'static str,
        counter: impl ReloadCounter + 'static,
        current: Arc<ArcSwap<T>>,
    ) -> Reloadable<T>
    where
        T: Send + Sync + 'static,
    {
        Reloadable::new(what, counter, move |value| current.store(Arc::new(value))).serving()
    }

    /// Says a good value is already in service (read at start).
    pub fn serving(self) -> Reloadable<T> {
        self.serving.store(true, Ordering::Relaxed);
        self
    }

    /// Adds what the success line says about a loaded value (`3 domains, 12 limits`).
    pub fn summarized(mut self, summary: impl Fn(&T) -> String + Send + Sync + 'static) -> Reloadable<T> {
        self.summary = Some(Box::new(summary));
        self
    }

    /// The install step: a loaded value goes into service, an error keeps the last good one;
    /// either is logged and counted once. The error is handed back for callers that report it
    /// further (an xDS NACK). `source` names where the load came from, for the log.
    pub fn install<E: Display>(&self, source: &str, loaded: Result<T, E>) -> Result<(), E> {
        let what = self.what;
        match loaded {
            Ok(value) => {
                let summary = self.summary.as_ref().map(|summary| format!(" ({})", summary(&value)));
                (self.put)(value);
                self.serving.store(true, Ordering::Relaxed);
                self.counter.count(what, Outcome::Loaded);
                tracing::info!(what, source, "{what} loaded from {source}{}", summary.unwrap_or_default());
                Ok(())
            }
            Err(error) => {
                self.counter.count(what, Outcome::Refused);
                let kept = match self.serving.load(Ordering::Relaxed) {
                    true => "keeping the last good one",
                    false => "none is in service yet",
                };
                // Worded as the reference rate limit service words a refused config, which operators
                // of the drop-in may alert on.
                tracing::error!(what, source, "error loading new {what} from {source} ({kept}): {error}");
                Err(error)
            }
        }
    }

    /// Runs the whole cycle until `stop`: whenever what `watched` fingerprints changed and the
    /// change held still, `load` reads, builds and validates a new value on a blocking thread
    /// (never on a thread that serves requests), and the outcome is installed.
    pub async fn watch_blocking<L, E>(&self, watched: Watched, load: L, stop: watch::Receiver<bool>)
    where
        L: Fn() -> Result<T, E> + Clone + Send + 'static,
        T: Send + 'static,
        E: Display + Send + 'static,
    {
        let load = || off_thread(load.clone());
        self.watch(watched, load, stop).await;
    }

    /// One load now, on a blocking thread, installed as a reload's would be (a first load
    /// that counts like the others: ratelimit's `config_load_success` counts it).
    pub async fn load_blocking<L, E>(&self, source: &str, load: L) -> Result<(), LoadError<E>>
    where
        L: FnOnce() -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Display + Send + 'static,
    {
        self.install(source, off_thread(load).await)
    }

    /// [`Reloadable::watch_blocking`] for a load that also awaits (a config whose policy
    /// fetches keys before it goes into service). The load must keep its file reading and
    /// parsing off the serving threads itself, through [`blocking`].
    pub async fn watch<L, Fut, E>(&self, watched: Watched, mut load: L, stop: watch::Receiver<bool>)
    where
        L: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Display,
    {
        let Watched { pace, initial, source, fingerprint } = watched;
        let print = move || fingerprint();
        let reload = || {
            let loading = load();
            let source = source.as_str();
            async move {
                let _ = self.install(source, loading.await);
            }
        };
        super::watch(pace, initial, print, reload, stop).await;
    }
}

/// Why a load on the blocking pool failed: its own error, or it did not finish.
#[derive(Debug, thiserror::Error)]
pub enum LoadError<E> {
    #[error("{0}")]
    Load(E),
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
}

/// Runs `load` on the blocking pool; a load that did not finish is a failed one.
async fn off_thread<T, E>(load: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, LoadError<E>>
where
    T: Send + 'static,
    E: Display + Send + 'static,
{
    blocking(load).await?.map_err(LoadError::Load)
}

#[cfg(test)]
mod tests;

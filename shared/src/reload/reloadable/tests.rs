use parking_lot::Mutex;
use std::sync::atomic::AtomicUsize;

use tracing::Level;
use tracing_subscriber::layer::SubscriberExt;

use super::*;

/// Counts by (what, result), as a service's `<service>_reloads_total` would.
#[derive(Clone, Default)]
struct Counts(Arc<Mutex<Vec<(&'static str, &'static str)>>>);

impl ReloadCounter for Counts {
    fn count(&self, what: &'static str, outcome: Outcome) {
        self.0.lock().push((what, outcome.label()));
    }
}

impl Counts {
    fn of(&self, result: &str) -> usize {
        self.0.lock().iter().filter(|(_, r)| *r == result).count()
    }
}

/// Every event logged while the guard lives, with its level and message (events on this
/// thread: a current-thread runtime runs every task here).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<(Level, String)>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Logs {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        self.0.lock().push((*event.metadata().level(), message.0));
    }
}

impl Logs {
    fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(logs.clone()));
        (logs, guard)
    }

    fn at(&self, level: Level) -> Vec<String> {
        self.0.lock().iter().filter(|(l, _)| *l == level).map(|(_, m)| m.clone()).collect()
    }
}

#[test]
fn a_good_load_is_swapped_in_and_a_bad_one_keeps_the_last_good_value() {
    let (logs, _guard) = Logs::capture();
    let current = Arc::new(ArcSwap::from_pointee("one".to_string()));
    let counts = Counts::default();
    let value = Reloadable::swapping("greeting", counts.clone(), current.clone()).summarized(|v| format!("{v:?}"));

    assert!(value.install::<String>("a.txt", Ok("two".into())).is_ok());
    assert_eq!(**current.load(), "two");
    assert_eq!((counts.of("ok"), counts.of("error")), (1, 0));
    assert_eq!(logs.at(Level::INFO), vec![r#"greeting loaded from a.txt ("two")"#]);

    assert_eq!(value.install("a.txt", Err("line 3: not a greeting")), Err("line 3: not a greeting"));
    assert_eq!(**current.load(), "two", "the last good value stays");
    assert_eq!((counts.of("ok"), counts.of("error")), (1, 1));
    assert_eq!(
        logs.at(Level::ERROR),
        vec!["error loading new greeting from a.txt (keeping the last good one): line 3: not a greeting"]
    );
    assert_eq!(logs.at(Level::INFO).len(), 1, "one line per outcome");
    assert!(logs.at(Level::WARN).is_empty());
}

#[test]
fn a_refusal_says_when_nothing_is_in_service_yet() {
    let (logs, _guard) = Logs::capture();
    let put = Arc::new(AtomicUsize::new(0));
    let counted = put.clone();
    let value = Reloadable::new(
        "keys",
        |_: &'static str, _: Outcome| {},
        move |_: u32| {
            counted.fetch_add(1, Ordering::SeqCst);
        },
    );
    let _ = value.install("keys.json", Err("empty"));
    assert_eq!(logs.at(Level::ERROR), vec!["error loading new keys from keys.json (none is in service yet): empty"]);
    let _ = value.install::<&str>("keys.json", Ok(7));
    let _ = value.install("keys.json", Err("empty"));
    assert!(logs.at(Level::ERROR)[1].contains("keeping the last good one"));
    assert_eq!(put.load(Ordering::SeqCst), 1);
}

/// The whole cycle on paused time: a settled change is read once and swapped in; a change
/// that keeps changing is never read; a bad one is refused and the last good value stays. The
/// test's sleeps are virtual: tokio does not move paused time while blocking work (the
/// watcher's fingerprints and loads) is in flight.
#[tokio::test(start_paused = true)]
async fn the_cycle_reads_settled_changes_only_and_keeps_the_last_good_value() {
    let (logs, _guard) = Logs::capture();
    let current = Arc::new(ArcSwap::from_pointee("one".to_string()));
    let counts = Counts::default();
    // What the "file" looks like (its fingerprint) and what reading it gives.
    let file = Arc::new(Mutex::new((1u64, Ok::<_, String>("one".to_string()))));
    let reads = Arc::new(AtomicUsize::new(0));
    let write = |print: u64, content: Result<&str, &str>| {
        *file.lock() = (print, content.map(str::to_string).map_err(str::to_string));
    };

    let value = Arc::new(Reloadable::swapping("greeting", counts.clone(), current.clone()));
    let pace = Pace { every: Duration::from_secs(1), settle: Duration::from_millis(100) };
    let printed = file.clone();
    let watched = Watched::new(pace, 1, "greeting.txt", move || printed.lock().0);
    let (read_file, counted_reads) = (file.clone(), reads.clone());
    let load = move || {
        counted_reads.fetch_add(1, Ordering::SeqCst);
        read_file.lock().1.clone()
    };
    let (stop_tx, stop) = watch::channel(false);
    let watching = value.clone();
    let task = tokio::spawn(async move { watching.watch_blocking(watched, load, stop).await });
    let start = tokio::time::Instant::now();
    let at = |millis: u64| tokio::time::sleep_until(start + Duration::from_millis(millis));

    // Polls at 1.0 s (the change seen) and 1.1 s (held still: read).
    at(500).await;
    write(2, Ok("two"));
    at(1500).await;
    assert_eq!(**current.load(), "two");
    assert_eq!((reads.load(Ordering::SeqCst), counts.of("ok")), (1, 1));

    // Polls every 100 ms from 2.1 s, each seeing a new fingerprint: never read.
    at(2050).await;
    for i in 0..5 {
        write(10 + i, Ok("churning"));
        at(2150 + 100 * i).await;
    }
    assert_eq!(reads.load(Ordering::SeqCst), 1, "a change that does not hold still is not read");
    assert_eq!(**current.load(), "two");

    // Settles (polls at 2.6 s and 2.7 s) but does not load: refused, the last good one kept.
    write(20, Err("line 1: half written"));
    at(3000).await;
    assert_eq!(reads.load(Ordering::SeqCst), 2);
    assert_eq!(**current.load(), "two");
    assert_eq!((counts.of("ok"), counts.of("error")), (1, 1));
    assert_eq!(logs.at(Level::INFO), vec!["greeting loaded from greeting.txt"]);
    assert_eq!(
        logs.at(Level::ERROR),
        vec!["error loading new greeting from greeting.txt (keeping the last good one): line 1: half written"]
    );

    stop_tx.send_replace(true);
    task.await.unwrap();
}

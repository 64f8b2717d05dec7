//! The one way tests wait for something to happen: poll a check every 20 ms up to a bound,
//! never a fixed sleep before an assertion. `eventually` panics naming what did not happen;
//! `poll` answers `None` instead, for callers that say more (a log, the last answer) or that
//! merely give up. The `_blocking` twins are for plain threads (process helpers, `Drop`).
//!
//! The bound is wall-clock time (`std::time::Instant`), not tokio's: a test with paused time
//! still waits for real processes and blocking threads as long as the bound says.

use std::time::{Duration, Instant};

/// How often a check runs: often enough that a test is not slowed down, seldom enough that a
/// check reading a port or a file is no load.
const EVERY: Duration = Duration::from_millis(20);

/// Runs `check` every 20 ms until it answers `Some`, up to `within`; its answer, or `None` once
/// `within` has passed (the check runs at least once).
pub async fn poll<T>(within: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(EVERY).await;
    }
}

/// Polls `check` until it holds; panics naming `what` after `within`.
pub async fn eventually(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    if poll(within, async || check().await.then_some(())).await.is_none() {
        panic!("{what}: not within {within:?}");
    }
}

/// Polls `check` until it answers `Some`, and returns that; panics naming `what` after `within`.
pub async fn eventually_some<T>(what: &str, within: Duration, check: impl AsyncFnMut() -> Option<T>) -> T {
    poll(within, check).await.unwrap_or_else(|| panic!("{what}: not within {within:?}"))
}

/// [`poll`] on the current thread, sleeping between checks.
pub fn poll_blocking<T>(within: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(EVERY);
    }
}

/// [`eventually`] on the current thread.
pub fn eventually_blocking(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    if poll_blocking(within, || check().then_some(())).is_none() {
        panic!("{what}: not within {within:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_the_first_value_and_gives_up_after_the_bound() {
        let mut calls = 0;
        let third = poll(Duration::from_secs(5), async || {
            calls += 1;
            (calls == 3).then_some(calls)
        })
        .await;
        assert_eq!(third, Some(3));
        assert_eq!(poll(Duration::ZERO, async || None::<()>).await, None, "checked once, then gave up");
        assert_eq!(poll_blocking(Duration::from_millis(50), || None::<()>), None);
        assert_eq!(poll_blocking(Duration::ZERO, || Some(1)), Some(1));
    }

    #[tokio::test]
    #[should_panic(expected = "the flag: not within")]
    async fn eventually_names_what_did_not_happen() {
        eventually("the flag", Duration::from_millis(50), async || false).await;
    }

    #[test]
    #[should_panic(expected = "the file: not within")]
    fn eventually_blocking_names_what_did_not_happen() {
        eventually_blocking("the file", Duration::from_millis(50), || false);
    }
}

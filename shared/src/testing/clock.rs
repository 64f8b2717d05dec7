//! The one clock tests hand to the services in place of the system clock ([`crate::clock`]):
//! it moves only when the test moves it, so "a minute later" is one call, not a minute's sleep.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::clock::Clock;

/// 2027-01-15T08:00:00Z, in Unix seconds: the start of an hour, so windows are predictable.
pub const START: u64 = 1_800_000_000;

const MICROS: u64 = 1_000_000;

/// A clock the test moves by hand, in microseconds (token buckets refill within a second).
///
/// [`TestClock::new`] stands still at [`START`]. [`TestClock::following_system`] is the system
/// clock plus whatever the test moved it on: services that talk to real peers (whose tokens
/// carry real timestamps) see time pass as it does, and "four seconds later" is still a call.
/// Clones share one time.
#[derive(Clone)]
pub struct TestClock {
    /// Microseconds the test moved it on; with `base` 0, the time itself.
    moved: Arc<AtomicU64>,
    /// What `moved` is added to: nothing, or the system clock in microseconds.
    base: Option<Clock>,
}

impl Default for TestClock {
    fn default() -> TestClock {
        TestClock::new()
    }
}

impl TestClock {
    /// At [`START`], moving only when told.
    pub fn new() -> TestClock {
        TestClock::at(START)
    }

    /// At `seconds` (Unix), moving only when told.
    pub fn at(seconds: u64) -> TestClock {
        TestClock { moved: Arc::new(AtomicU64::new(seconds * MICROS)), base: None }
    }

    /// The system clock, plus whatever the test moves it on.
    pub fn following_system() -> TestClock {
        TestClock { moved: Arc::default(), base: Some(crate::clock::system_micros_clock()) }
    }

    /// Unix microseconds.
    pub fn now_micros(&self) -> u64 {
        self.base.as_ref().map_or(0, |base| base()) + self.moved.load(Ordering::SeqCst)
    }

    /// Unix seconds.
    pub fn now(&self) -> u64 {
        self.now_micros() / MICROS
    }

    pub fn advance(&self, seconds: u64) {
        self.advance_micros(seconds * MICROS);
    }

    pub fn advance_micros(&self, micros: u64) {
        self.moved.fetch_add(micros, Ordering::SeqCst);
    }

    /// As the services read it: whole Unix seconds.
    pub fn as_clock(&self) -> Clock {
        let clock = self.clone();
        Arc::new(move || clock.now())
    }

    /// Unix microseconds, for clocks finer than a second (ratelimit's `Clocks::from_micros`).
    pub fn as_micros_clock(&self) -> Clock {
        let clock = self.clone();
        Arc::new(move || clock.now_micros())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_only_when_told_and_clones_share_the_time() {
        let clock = TestClock::new();
        let (seconds, micros) = (clock.as_clock(), clock.as_micros_clock());
        assert_eq!((seconds(), micros()), (START, START * MICROS));
        clock.clone().advance(61);
        clock.advance_micros(500_000);
        assert_eq!((seconds(), micros()), (START + 61, (START + 61) * MICROS + 500_000));
        assert_eq!(TestClock::at(1_000).now(), 1_000);
    }

    #[test]
    fn following_the_system_clock_adds_what_was_skipped() {
        let clock = TestClock::following_system();
        let system = crate::clock::system_clock();
        let before = system();
        clock.advance(3600);
        let now = clock.now();
        assert!(now >= before + 3600 && now <= system() + 3600, "{now} vs {before}");
    }
}

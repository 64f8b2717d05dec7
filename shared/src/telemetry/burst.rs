//! One log line per burst of a repeating failure (a collector or statsd server that is down
//! fails every send): the first failure is logged at once, later ones at most once a window,
//! each line saying how many went unsaid since the one before. The failures are still counted
//! in full elsewhere (a metric); this only keeps the log readable.

use std::time::{Duration, Instant};

/// How often a failure that keeps happening is logged again.
pub const BURST_WINDOW: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct LogBurst {
    window: Duration,
    /// When the last line was logged.
    logged_at: Option<Instant>,
    /// Failures since then that were not logged.
    unsaid: u64,
}

impl LogBurst {
    pub fn new(window: Duration) -> LogBurst {
        LogBurst { window, logged_at: None, unsaid: 0 }
    }

    /// One failure at `now` (time is an argument, so tests need no clock): `Some(n)` when it
    /// is to be logged, `n` being the failures left unsaid since the last line; else `None`.
    pub fn failed(&mut self, now: Instant) -> Option<u64> {
        match self.logged_at {
            Some(at) if now.saturating_duration_since(at) < self.window => {
                self.unsaid += 1;
                None
            }
            _ => {
                self.logged_at = Some(now);
                Some(std::mem::take(&mut self.unsaid))
            }
        }
    }
}

impl Default for LogBurst {
    fn default() -> Self {
        LogBurst::new(BURST_WINDOW)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_the_first_then_once_a_window_with_the_count_unsaid() {
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        let mut burst = LogBurst::new(Duration::from_secs(30));
        assert_eq!(burst.failed(at(0)), Some(0), "the first failure is logged at once");
        for s in 1..30 {
            assert_eq!(burst.failed(at(s)), None, "within the window: counted, not logged");
        }
        assert_eq!(burst.failed(at(30)), Some(29), "a window later: logged, with the 29 unsaid");
        assert_eq!(burst.failed(at(31)), None);
        // A quiet spell, then a new burst: logged at once, the one unsaid carried.
        assert_eq!(burst.failed(at(500)), Some(1));
        assert_eq!(burst.failed(at(500)), None);
    }

    #[test]
    fn a_clock_that_goes_back_logs_nothing_early() {
        let start = Instant::now() + Duration::from_secs(60);
        let mut burst = LogBurst::new(Duration::from_secs(30));
        assert_eq!(burst.failed(start), Some(0));
        assert_eq!(burst.failed(start - Duration::from_secs(10)), None);
    }
}

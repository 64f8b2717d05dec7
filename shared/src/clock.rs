//! The one clock both services read "now" from, as Unix seconds. Injected (tests pass a clock
//! they move by hand), so nothing in a decision or a counter window reads the wall clock itself.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock; 0 before 1970 (a broken clock counts as the epoch, not a panic).
pub fn system_clock() -> Clock {
    Arc::new(|| SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
}

/// The system clock in Unix microseconds (for rates finer than a second).
pub fn system_micros_clock() -> Clock {
    Arc::new(|| SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64))
}

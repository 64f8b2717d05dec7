//! Time units of a limit and the fixed, epoch-aligned windows they define.

use std::fmt;

/// A limit's unit. Windows are fixed and aligned to the Unix epoch, not to calendar boundaries:
/// a "month" is 30 days and a "year" 365 days, exactly as the reference counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Unit {
    /// Parses a unit as written in a config file (case-insensitive). `UNKNOWN` is not a unit.
    pub fn from_config_name(name: &str) -> Option<Unit> {
        Some(match name.to_ascii_uppercase().as_str() {
            "SECOND" => Unit::Second,
            "MINUTE" => Unit::Minute,
            "HOUR" => Unit::Hour,
            "DAY" => Unit::Day,
            "WEEK" => Unit::Week,
            "MONTH" => Unit::Month,
            "YEAR" => Unit::Year,
            _ => return None,
        })
    }

    /// The unit for Envoy's `RateLimitUnit` / `RateLimitResponse.RateLimit.Unit` number
    /// (both enums share numbering; note WEEK is 7). 0 (UNKNOWN) and unknown numbers are `None`.
    pub fn from_proto(number: i32) -> Option<Unit> {
        Some(match number {
            1 => Unit::Second,
            2 => Unit::Minute,
            3 => Unit::Hour,
            4 => Unit::Day,
            5 => Unit::Month,
            6 => Unit::Year,
            7 => Unit::Week,
            _ => return None,
        })
    }

    pub fn to_proto(self) -> i32 {
        match self {
            Unit::Second => 1,
            Unit::Minute => 2,
            Unit::Hour => 3,
            Unit::Day => 4,
            Unit::Month => 5,
            Unit::Year => 6,
            Unit::Week => 7,
        }
    }

    /// The window length in seconds.
    pub fn seconds(self) -> u64 {
        match self {
            Unit::Second => 1,
            Unit::Minute => 60,
            Unit::Hour => 3_600,
            Unit::Day => 86_400,
            Unit::Week => 604_800,
            Unit::Month => 2_592_000,
            Unit::Year => 31_536_000,
        }
    }

    /// Start of the window containing `now` (Unix seconds).
    pub fn window_start(self, now: u64) -> u64 {
        now - now % self.seconds()
    }

    /// Seconds until the window containing `now` ends, in `[1, len]`.
    pub fn until_reset(self, now: u64) -> u64 {
        self.seconds() - now % self.seconds()
    }

    /// Upper-case name, as Envoy's enum spells it.
    pub fn name(self) -> &'static str {
        match self {
            Unit::Second => "SECOND",
            Unit::Minute => "MINUTE",
            Unit::Hour => "HOUR",
            Unit::Day => "DAY",
            Unit::Week => "WEEK",
            Unit::Month => "MONTH",
            Unit::Year => "YEAR",
        }
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_epoch_aligned() {
        assert_eq!(Unit::Minute.window_start(1234), 1200);
        assert_eq!(Unit::Minute.until_reset(1234), 26);
        assert_eq!(Unit::Second.until_reset(1234), 1);
        assert_eq!(Unit::Minute.until_reset(1200), 60);
        assert_eq!(Unit::Week.window_start(604_801), 604_800);
    }

    #[test]
    fn names_and_numbers_round_trip() {
        for unit in [Unit::Second, Unit::Minute, Unit::Hour, Unit::Day, Unit::Week, Unit::Month, Unit::Year] {
            assert_eq!(Unit::from_config_name(&unit.name().to_lowercase()), Some(unit));
            assert_eq!(Unit::from_proto(unit.to_proto()), Some(unit));
        }
        assert_eq!(Unit::from_config_name("unknown"), None);
        assert_eq!(Unit::from_proto(0), None);
    }
}

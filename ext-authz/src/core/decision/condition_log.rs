//! The log of conditions that could not be evaluated, rate-limited per rule: a client can make
//! every request fail a condition (leave out a header a condition indexes), and one warning
//! per request would flood the log. The first failure of a rule is logged at once; after it, at
//! most one line per rule per interval, saying how many were left out. The metric
//! (`ext_authz_condition_errors_total`) still counts every one. Time is an argument (the
//! authorizer's clock), so tests drive it.

use std::collections::HashMap;
use std::sync::Mutex;

use super::ConditionFailure;

/// One line per rule per this many seconds, after the first.
pub const CONDITION_LOG_INTERVAL_SECS: u64 = 60;

/// Rules remembered at most. Keys are config names (policy, rule), so a config has fewer; a
/// long run of reloads renaming rules could add more, and then the memory starts over (at worst
/// one more line per rule).
const MAX_RULES: usize = 4096;

#[derive(Debug, Default)]
pub struct ConditionLog {
    seen: Mutex<HashMap<(String, String), Seen>>,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    /// When its last line was written.
    logged_at: u64,
    /// Failures left out since.
    left_out: u64,
}

impl ConditionLog {
    /// Logs `failure` (rule, condition index, error text: never a request's or a claim's value)
    /// unless its rule was logged less than the interval before `now`. Whether it was logged.
    pub fn record(&self, failure: &ConditionFailure<'_>, request_id: &str, now: u64) -> bool {
        let left_out = {
            let mut seen = self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let key = (failure.policy.to_string(), failure.rule.to_string());
            match seen.get_mut(&key) {
                Some(last) if now < last.logged_at.saturating_add(CONDITION_LOG_INTERVAL_SECS) => {
                    last.left_out += 1;
                    return false;
                }
                Some(last) => std::mem::replace(last, Seen { logged_at: now, left_out: 0 }).left_out,
                None => {
                    if seen.len() >= MAX_RULES {
                        seen.clear();
                    }
                    seen.insert(key, Seen { logged_at: now, left_out: 0 });
                    0
                }
            }
        };
        let (rule, index, error) = (failure.rule, failure.index, &failure.error);
        let would = if failure.shadow { " (shadow: a would-be answer)" } else { "" };
        tracing::warn!(
            policy = failure.policy,
            rule,
            condition = index,
            request_id,
            left_out,
            "condition when[{index}] of rule {rule:?} cannot be evaluated{would}: {error} \
             ({left_out} more of this rule left out of the log since its last line)"
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure<'a>(rule: &'a str) -> ConditionFailure<'a> {
        ConditionFailure { policy: "routes", rule, index: 0, shadow: false, error: "no such key: x-tenant".into() }
    }

    #[test]
    fn one_line_per_rule_per_interval_after_the_first() {
        let log = ConditionLog::default();
        let t0 = 1_000;
        assert!(log.record(&failure("tenant"), "r1", t0), "the first is logged");
        assert!(log.record(&failure("other"), "r2", t0), "each rule has its own limit");
        for i in 0..1000 {
            assert!(!log.record(&failure("tenant"), "r", t0 + i % CONDITION_LOG_INTERVAL_SECS), "within the interval");
        }
        assert!(log.record(&failure("tenant"), "r3", t0 + CONDITION_LOG_INTERVAL_SECS), "once the interval is over");
        assert!(!log.record(&failure("tenant"), "r4", t0 + CONDITION_LOG_INTERVAL_SECS + 1));
        assert_eq!(log.seen.lock().unwrap().len(), 2, "bounded by the rules, not the requests");
    }

    #[test]
    fn the_memory_is_bounded() {
        let log = ConditionLog::default();
        let names: Vec<String> = (0..MAX_RULES + 10).map(|i| format!("rule-{i}")).collect();
        for name in &names {
            log.record(&failure(name), "r", 0);
        }
        assert!(log.seen.lock().unwrap().len() <= MAX_RULES);
    }
}

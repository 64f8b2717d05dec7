//! The `decision_log:` section.

use super::check::{Check, Checked};
use super::raw::RawDecisionLog;
use crate::decision_log::{DecisionLogSettings, LogSink};

pub fn decision_log(raw: &RawDecisionLog, c: &Check<'_>) -> Checked<Option<DecisionLogSettings>> {
    if !raw.enabled {
        return Ok(None);
    }
    if !(0.0..=1.0).contains(&raw.sample_rate) {
        return c.fail("decision_log.sample_rate", format!("{} is not between 0 and 1", raw.sample_rate));
    }
    let to = match raw.to.as_str() {
        "stdout" => LogSink::Stdout,
        "" => return c.fail("decision_log.to", "stdout or a file path"),
        path => LogSink::File(c.path(path)),
    };
    Ok(Some(DecisionLogSettings { sample_rate: raw.sample_rate, allows: raw.allows, to }))
}

//! The `decision_log:` section.

use super::check::{Check, Checked};
use super::raw::RawDecisionLog;
use crate::decision_log::{DecisionLogSettings, LogSink, SizeRotation};

/// The smallest `max_size`: a few dozen lines (each under 3 KiB), so a file is never rotated
/// for every line.
pub const MIN_MAX_SIZE: u64 = 64 * 1024;

/// The most rotated files kept: rotating renames each of them, so the count stays small.
pub const MAX_MAX_FILES: u32 = 100;

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
    let rotation = rotation(raw, &to, c)?;
    Ok(Some(DecisionLogSettings { sample_rate: raw.sample_rate, allows: raw.allows, to, rotation }))
}

fn rotation(raw: &RawDecisionLog, to: &LogSink, c: &Check<'_>) -> Checked<Option<SizeRotation>> {
    let Some(text) = &raw.max_size else {
        return match raw.max_files {
            Some(_) => c.fail("decision_log.max_files", "needs max_size (rotation is by size)"),
            None => Ok(None),
        };
    };
    if *to == LogSink::Stdout {
        return c.fail("decision_log.max_size", "only a file is rotated (to: stdout)");
    }
    let max_size = match parse_size(text) {
        Some(size) if size >= MIN_MAX_SIZE => size,
        Some(_) => return c.fail("decision_log.max_size", format!("{text} is below the minimum, 64KiB")),
        None => return c.fail("decision_log.max_size", format!("{text:?} is not a size like 100MiB")),
    };
    let max_files = raw.max_files.unwrap_or_else(|| super::keys::DECISION_LOG_MAX_FILES.default_value());
    if max_files > MAX_MAX_FILES {
        return c.fail("decision_log.max_files", format!("{max_files} is above {MAX_MAX_FILES}"));
    }
    Ok(Some(SizeRotation { max_size, max_files }))
}

/// `1048576`, `512KiB`, `100MiB`, `1GiB` (binary units; `B` for bytes) in bytes.
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return None,
    };
    number.parse::<u64>().ok()?.checked_mul(factor)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use super::*;

    /// The settings, or the problems, for `decision_log: {enabled: true, to, max_size, max_files}`.
    fn checked(to: &str, max_size: Option<&str>, max_files: Option<u32>) -> Result<Option<SizeRotation>, Vec<String>> {
        let raw = RawDecisionLog {
            enabled: true,
            to: to.into(),
            max_size: max_size.map(Into::into),
            max_files,
            ..RawDecisionLog::default()
        };
        let env = HashMap::new();
        let c = Check::new(Path::new("/etc/ext-authz"), &env);
        let settings = decision_log(&raw, &c);
        let problems = c.into_problems().0.into_iter().map(|p| format!("{}: {}", p.key, p.problem)).collect();
        settings.map(|s| s.unwrap().rotation).map_err(|_| problems)
    }

    #[test]
    fn rotation_is_by_size_for_a_file() {
        let rotation = |max_size, max_files| Ok(Some(SizeRotation { max_size, max_files }));
        assert_eq!(checked("d.jsonl", None, None), Ok(None), "off unless max_size is set");
        assert_eq!(
            checked("d.jsonl", Some("100MiB"), None),
            rotation(100 << 20, super::super::keys::DECISION_LOG_MAX_FILES.default_value())
        );
        assert_eq!(checked("d.jsonl", Some("64KiB"), Some(0)), rotation(64 << 10, 0));
        let refused = [
            (("d.jsonl", None, Some(3)), "decision_log.max_files: needs max_size (rotation is by size)"),
            (("stdout", Some("100MiB"), None), "decision_log.max_size: only a file is rotated (to: stdout)"),
            (("d.jsonl", Some("1000"), None), "decision_log.max_size: 1000 is below the minimum, 64KiB"),
            (("d.jsonl", Some("100MB"), None), "decision_log.max_size: \"100MB\" is not a size like 100MiB"),
            (("d.jsonl", Some("1GiB"), Some(101)), "decision_log.max_files: 101 is above 100"),
        ];
        for ((to, max_size, max_files), problem) in refused {
            assert_eq!(checked(to, max_size, max_files), Err(vec![problem.to_string()]));
        }
    }

    #[test]
    fn sizes_in_binary_units() {
        assert_eq!(parse_size("100MiB"), Some(100 << 20));
        assert_eq!(parse_size("512 KiB"), Some(512 << 10));
        assert_eq!(parse_size("2GiB"), Some(2 << 30));
        assert_eq!(parse_size("65536"), Some(65536));
        for bad in ["", "MiB", "10MB", "1.5GiB", "-1MiB", "99999999999999GiB"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }
}

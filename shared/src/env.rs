//! Settings from environment variables, read through the [`Env`] seam so tests never touch the
//! process environment. A reader parses every value and collects every error, so a user fixes
//! all of them in one go instead of one per restart.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Where settings come from.
pub trait Env: Send + Sync {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Env for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// One bad setting. Secret settings never show their value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    pub name: String,
    pub value: Option<String>,
    pub reason: String,
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(f, "{}={:?} is not valid: {}", self.name, value, self.reason),
            None => write!(f, "{} is not valid: {}", self.name, self.reason),
        }
    }
}

/// Every bad setting found in one pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SettingsError(pub Vec<SettingError>);

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        write!(f, "invalid settings:\n  {}", lines.join("\n  "))
    }
}

/// Reads typed settings, remembering every failure. An empty variable counts as unset.
pub struct EnvReader<'a> {
    env: &'a dyn Env,
    errors: Vec<SettingError>,
}

impl<'a> EnvReader<'a> {
    pub fn new(env: &'a dyn Env) -> EnvReader<'a> {
        EnvReader { env, errors: Vec::new() }
    }

    /// The raw value, `None` when unset or empty.
    pub fn raw(&self, name: &str) -> Option<String> {
        self.env.var(name).filter(|v| !v.is_empty())
    }

    pub fn string(&mut self, name: &str, default: &str) -> String {
        self.raw(name).unwrap_or_else(|| default.to_string())
    }

    /// Booleans spelled as Go's `strconv.ParseBool` accepts them, which is what users of the
    /// reference write: `1 t T TRUE true True 0 f F FALSE false False`.
    pub fn boolean(&mut self, name: &str, default: bool) -> bool {
        let Some(value) = self.raw(name) else {
            return default;
        };
        match parse_go_bool(&value) {
            Some(b) => b,
            None => {
                self.fail(name, Some(value), "expected true or false");
                default
            }
        }
    }

    pub fn parse<T>(&mut self, name: &str, default: T) -> T
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        let Some(value) = self.raw(name) else {
            return default;
        };
        match value.trim().parse() {
            Ok(parsed) => parsed,
            Err(e) => {
                let reason = e.to_string();
                self.fail(name, Some(value), &reason);
                default
            }
        }
    }

    /// A duration in Go's syntax (`10s`, `1m30s`, `250ms`, `24h`).
    pub fn duration(&mut self, name: &str, default: Duration) -> Duration {
        let Some(value) = self.raw(name) else {
            return default;
        };
        match parse_go_duration(&value) {
            Ok(d) => d,
            Err(reason) => {
                self.fail(name, Some(value), &reason);
                default
            }
        }
    }

    /// A value from a fixed set, compared case-insensitively; returns the canonical spelling.
    pub fn one_of(&mut self, name: &str, default: &'static str, allowed: &[&'static str]) -> &'static str {
        let Some(value) = self.raw(name) else {
            return default;
        };
        match allowed.iter().find(|a| a.eq_ignore_ascii_case(value.trim())) {
            Some(found) => found,
            None => {
                let reason = format!("expected one of {}", allowed.join(", "));
                self.fail(name, Some(value), &reason);
                default
            }
        }
    }

    /// Records a failure found by the caller. `value` is `None` for secrets.
    pub fn fail(&mut self, name: &str, value: Option<String>, reason: &str) {
        self.errors.push(SettingError { name: name.to_string(), value, reason: reason.to_string() });
    }

    pub fn finish(self) -> Result<(), SettingsError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(SettingsError(self.errors))
        }
    }
}

pub fn parse_go_bool(value: &str) -> Option<bool> {
    match value.trim() {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Parses Go's duration syntax: a sequence of decimal numbers with units `ns us µs ms s m h`.
pub fn parse_go_duration(value: &str) -> Result<Duration, String> {
    let text = value.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() || text.starts_with('-') {
        return Err("expected a duration such as 500ms, 10s or 1m30s".into());
    }
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().map_err(|_| format!("bad number in duration {text:?}"))?;
        rest = &rest[number_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(format!("missing unit in duration {text:?}")),
            other => return Err(format!("unknown unit {other:?} in duration {text:?}")),
        };
        total += number * seconds_per_unit;
        rest = &rest[unit_len..];
    }
    // Go's limit (an i64 of nanoseconds, about 292 years); past it, or for a number too big to
    // be finite, an error instead of a panic in `Duration::from_secs_f64`.
    if !total.is_finite() || total > i64::MAX as f64 / 1e9 {
        return Err(format!("duration {text:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn huge_durations_are_errors_not_panics() {
        assert_eq!(
            parse_go_duration("518446744073709551616s"),
            Err("duration \"518446744073709551616s\" is out of range".into())
        );
        assert!(parse_go_duration(&format!("{}h", "9".repeat(400))).is_err());
        assert!(parse_go_duration("2562047h").is_ok(), "just under Go's limit");
        assert!(parse_go_duration("2562048h").is_err());
    }

    #[test]
    fn collects_every_error() {
        let env = env(&[("A", "maybe"), ("B", "x"), ("C", "10q"), ("D", "")]);
        let mut reader = EnvReader::new(&env);
        assert!(reader.boolean("A", true));
        assert_eq!(reader.parse::<u32>("B", 7), 7);
        assert_eq!(reader.duration("C", Duration::from_secs(1)), Duration::from_secs(1));
        assert_eq!(reader.string("D", "default"), "default");
        let errors = reader.finish().unwrap_err();
        assert_eq!(errors.0.len(), 3);
        assert!(errors.to_string().contains("A=\"maybe\" is not valid"));
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_go_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_go_duration("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_go_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_go_duration("10").is_err());
        assert!(parse_go_duration("-1s").is_err());
    }
}

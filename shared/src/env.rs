//! Settings from environment variables, read through the [`Env`] seam so tests never touch the
//! process environment. A reader parses every value and collects every error, so a user fixes
//! all of them in one go instead of one per restart.
//!
//! Each setting is declared once, as a [`Setting`]: its name, its default (written as a user
//! would write it, and parsed by the same parser as the user's value), its parser and its help
//! line. The reader takes declarations, and `--help` is printed from the same declarations
//! (see [`help_table`]), so the documented default is the default.

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
    // The one place the process environment is read (see .clippy.toml).
    #[allow(clippy::disallowed_methods)]
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

/// One environment variable: name, default, parser, help. Declared as a `const`; see the
/// constructors for the kinds of value.
pub struct Setting<T: 'static> {
    pub name: &'static str,
    /// The default as text, parsed by `parse` like a user's value; `""` means unset.
    pub default: &'static str,
    pub help: &'static str,
    /// For a choice, the accepted spellings (compared case-insensitively).
    pub choices: &'static [&'static str],
    parse: fn(&'static [&'static str], &str) -> Result<T, String>,
}

impl<T> Setting<T> {
    pub const fn new(
        name: &'static str,
        default: &'static str,
        help: &'static str,
        parse: fn(&'static [&'static str], &str) -> Result<T, String>,
    ) -> Setting<T> {
        Setting { name, default, help, choices: &[], parse }
    }

    /// The value `text` stands for, as this setting reads it.
    pub fn parse(&self, text: &str) -> Result<T, String> {
        (self.parse)(self.choices, text)
    }
}

impl Setting<bool> {
    /// Go's `strconv.ParseBool` spellings (see [`parse_go_bool`]).
    pub const fn boolean(name: &'static str, default: &'static str, help: &'static str) -> Setting<bool> {
        Setting::new(name, default, help, |_, v| parse_go_bool(v).ok_or_else(|| "expected true or false".into()))
    }
}

impl Setting<Duration> {
    /// Go's duration syntax (see [`parse_go_duration`]).
    pub const fn duration(name: &'static str, default: &'static str, help: &'static str) -> Setting<Duration> {
        Setting::new(name, default, help, |_, v| parse_go_duration(v).map_err(|e| e.to_string()))
    }
}

impl Setting<String> {
    /// Any text; `""` as default means unset (read it with [`EnvReader::optional`]).
    pub const fn text(name: &'static str, default: &'static str, help: &'static str) -> Setting<String> {
        Setting::new(name, default, help, |_, v| Ok(v.to_string()))
    }
}

impl Setting<&'static str> {
    /// One of `choices`, returned in its canonical spelling.
    pub const fn choice(
        name: &'static str,
        default: &'static str,
        choices: &'static [&'static str],
        help: &'static str,
    ) -> Setting<&'static str> {
        Setting {
            name,
            default,
            help,
            choices,
            parse: |choices, v| {
                choices
                    .iter()
                    .find(|c| c.eq_ignore_ascii_case(v.trim()))
                    .copied()
                    .ok_or_else(|| format!("expected one of {}", choices.join(", ")))
            },
        }
    }
}

impl<T: FromStr> Setting<T>
where
    T::Err: fmt::Display,
{
    /// A number (or anything else with `FromStr`), surrounding spaces allowed.
    pub const fn number(name: &'static str, default: &'static str, help: &'static str) -> Setting<T> {
        Setting::new(name, default, help, |_, v| v.trim().parse().map_err(|e: T::Err| e.to_string()))
    }
}

/// What `--help` needs of a setting, whatever its type.
pub trait Documented: Sync {
    fn name(&self) -> &'static str;
    fn default_text(&self) -> &'static str;
    fn help(&self) -> &'static str;
    /// Whether the declared default parses (a test runs this over every declaration).
    fn default_parses(&self) -> Result<(), String>;
}

impl<T: 'static> Documented for Setting<T> {
    fn name(&self) -> &'static str {
        self.name
    }
    fn default_text(&self) -> &'static str {
        self.default
    }
    fn help(&self) -> &'static str {
        self.help
    }
    fn default_parses(&self) -> Result<(), String> {
        if self.default.is_empty() {
            return Ok(());
        }
        self.parse(self.default).map(drop).map_err(|e| format!("{}: default {:?}: {e}", self.name, self.default))
    }
}

/// The `--help` lines of `settings`, in order: name, help, default.
pub fn help_table(settings: &[&dyn Documented]) -> String {
    let mut out = String::new();
    for setting in settings {
        let default = match setting.default_text() {
            "" => "\"\"",
            text => text,
        };
        out.push_str(&format!("    {}\n        {}\n        default: {default}\n", setting.name(), setting.help()));
    }
    out
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

    /// A declared setting: the user's value, or the declared default when unset. A bad value
    /// is recorded and the default used, so parsing goes on and every error is reported.
    pub fn get<T>(&mut self, setting: &Setting<T>) -> T {
        if let Some(value) = self.raw(setting.name) {
            match setting.parse(&value) {
                Ok(parsed) => return parsed,
                Err(reason) => self.fail(setting.name, Some(value), &reason),
            }
        }
        setting.parse(setting.default).unwrap_or_else(|e| panic!("declared default of {}: {e}", setting.name))
    }

    /// A declared setting whose default is "unset": `None` unless the user gave a good value.
    pub fn optional<T>(&mut self, setting: &Setting<T>) -> Option<T> {
        let value = self.raw(setting.name)?;
        match setting.parse(&value) {
            Ok(parsed) => Some(parsed),
            Err(reason) => {
                self.fail(setting.name, Some(value), &reason);
                None
            }
        }
    }

    /// A declared secret: like [`EnvReader::optional`], never echoing the value in an error.
    pub fn secret(&mut self, setting: &Setting<String>) -> Option<String> {
        self.raw(setting.name)
    }

    /// The raw value, `None` when unset or empty.
    pub fn raw(&self, name: &str) -> Option<String> {
        self.env.var(name).filter(|v| !v.is_empty())
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

/// Why a duration does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("expected a duration such as 500ms, 10s or 1m30s")]
    Empty,
    #[error("bad number in duration {0:?}")]
    BadNumber(String),
    #[error("missing unit in duration {0:?}")]
    MissingUnit(String),
    #[error("unknown unit {unit:?} in duration {text:?}")]
    UnknownUnit { unit: String, text: String },
    #[error("duration {0:?} is out of range")]
    OutOfRange(String),
}

/// Parses Go's duration syntax: a sequence of decimal numbers with units `ns us µs ms s m h`.
pub fn parse_go_duration(value: &str) -> Result<Duration, DurationError> {
    let text = value.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() || text.starts_with('-') {
        return Err(DurationError::Empty);
    }
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().map_err(|_| DurationError::BadNumber(text.into()))?;
        rest = &rest[number_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(DurationError::MissingUnit(text.into())),
            other => return Err(DurationError::UnknownUnit { unit: other.into(), text: text.into() }),
        };
        total += number * seconds_per_unit;
        rest = &rest[unit_len..];
    }
    // Go's limit (an i64 of nanoseconds, about 292 years); past it, or for a number too big to
    // be finite, an error instead of a panic in `Duration::from_secs_f64`.
    if !total.is_finite() || total > i64::MAX as f64 / 1e9 {
        return Err(DurationError::OutOfRange(text.into()));
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
            Err(DurationError::OutOfRange("518446744073709551616s".into()))
        );
        assert!(parse_go_duration(&format!("{}h", "9".repeat(400))).is_err());
        assert!(parse_go_duration("2562047h").is_ok(), "just under Go's limit");
        assert!(parse_go_duration("2562048h").is_err());
    }

    const PORT: Setting<u16> = Setting::number("PORT", "8080", "port");
    const MODE: Setting<&str> = Setting::choice("MODE", "error", &["error", "allow"], "mode");
    const WAIT: Setting<Duration> = Setting::duration("WAIT", "1s", "wait");
    const FILE: Setting<String> = Setting::text("FILE", "", "file");

    #[test]
    fn declared_settings_read_their_defaults_through_the_same_parser() {
        let values = env(&[("MODE", "ALLOW"), ("WAIT", "soon"), ("FILE", "/x")]);
        let mut reader = EnvReader::new(&values);
        assert_eq!(reader.get(&PORT), 8080);
        assert_eq!(reader.get(&MODE), "allow");
        assert_eq!(reader.get(&WAIT), Duration::from_secs(1), "a bad value falls back to the default");
        assert_eq!(reader.optional(&FILE).as_deref(), Some("/x"));
        let errors = reader.finish().unwrap_err();
        assert_eq!(errors.0.len(), 1);
        assert!(errors.0[0].to_string().starts_with("WAIT=\"soon\" is not valid"), "{errors}");
        let all: [&dyn Documented; 4] = [&PORT, &MODE, &WAIT, &FILE];
        assert!(all.iter().all(|s| s.default_parses().is_ok()));
        let wrong: Setting<u16> = Setting::number("P", "eighty", "");
        assert!(wrong.default_parses().unwrap_err().contains("P: default \"eighty\""));
        assert_eq!(help_table(&all[..1]), "    PORT\n        port\n        default: 8080\n");
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

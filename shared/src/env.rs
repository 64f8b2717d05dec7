//! Settings from environment variables, read through the [`Env`] seam so tests never touch the
//! process environment. A reader parses every value and collects every error, so a user fixes
//! all of them in one go instead of one per restart.
//!
//! Each setting is declared once, as a [`Setting`]: its name, its default (written as a user
//! would write it, and parsed by the same parser as the user's value), its parser and its help
//! line. A choice names, at its declaration, each accepted spelling and the value (an enum) it
//! stands for, so parsing yields the enum. The reader takes declarations, and `--help` is
//! printed from the same declarations, under section headings (see [`help_sections`]), so the
//! documented default is the default.

mod doc_tables;

pub use doc_tables::{documented_defaults, DocumentedDefaults};

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

/// A choice's accepted spellings, each with the value it stands for.
pub type Choices<T> = &'static [(&'static str, T)];

/// How a setting reads a value: given the choices (empty unless a choice) and the text.
pub type Parser<T> = fn(Choices<T>, &str) -> Result<T, String>;

/// One environment variable: name, default, parser, help. Declared as a `const`; see the
/// constructors for the kinds of value.
pub struct Setting<T: 'static> {
    pub name: &'static str,
    /// The default as text, parsed by `parse` like a user's value; `""` means unset.
    pub default: &'static str,
    pub help: &'static str,
    /// For a choice, each accepted spelling (compared case-insensitively) and the value it
    /// stands for; `--help` lists every spelling, in this order.
    pub choices: Choices<T>,
    parse: Parser<T>,
}

impl<T> Setting<T> {
    pub const fn new(name: &'static str, default: &'static str, help: &'static str, parse: Parser<T>) -> Setting<T> {
        Setting { name, default, help, choices: &[], parse }
    }

    /// The value `text` stands for, as this setting reads it.
    pub fn parse(&self, text: &str) -> Result<T, String> {
        (self.parse)(self.choices, text)
    }

    /// The declared default, parsed. Panics when it does not parse: `default_parses` is run
    /// over every declaration by the services' tests.
    pub fn default_value(&self) -> T {
        self.parse(self.default).unwrap_or_else(|e| panic!("declared default of {}: {e}", self.name))
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

impl<T: Copy> Setting<T> {
    /// One of `choices`: each spelling with the value it stands for, so the parsed setting is
    /// that value (an enum, matched exhaustively by its users) and an unknown spelling is an
    /// error listing the accepted ones.
    pub const fn choice(
        name: &'static str,
        default: &'static str,
        choices: Choices<T>,
        help: &'static str,
    ) -> Setting<T> {
        Setting { name, default, help, choices, parse: parse_choice }
    }
}

fn parse_choice<T: Copy>(choices: Choices<T>, text: &str) -> Result<T, String> {
    match choices.iter().find(|(spelling, _)| spelling.eq_ignore_ascii_case(text.trim())) {
        Some((_, value)) => Ok(*value),
        None => {
            let spellings: Vec<&str> = choices.iter().map(|(spelling, _)| *spelling).collect();
            Err(format!("expected one of {}", spellings.join(", ")))
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
    /// A choice's accepted spellings, in declaration order; empty for other settings.
    fn spellings(&self) -> Vec<&'static str>;
    /// Whether the declared default parses (a test runs this over every declaration).
    fn default_parses(&self) -> Result<(), String>;
}

impl<T: Sync + 'static> Documented for Setting<T> {
    fn name(&self) -> &'static str {
        self.name
    }
    fn default_text(&self) -> &'static str {
        self.default
    }
    fn help(&self) -> &'static str {
        self.help
    }
    fn spellings(&self) -> Vec<&'static str> {
        self.choices.iter().map(|(spelling, _)| *spelling).collect()
    }
    fn default_parses(&self) -> Result<(), String> {
        if self.default.is_empty() {
            return Ok(());
        }
        self.parse(self.default).map(drop).map_err(|e| format!("{}: default {:?}: {e}", self.name, self.default))
    }
}

/// `a` then `b`, as one array: a service's own declarations and a shared table (such as
/// `shared::traces::OTLP_SETTINGS`) listed once each. `N` must be `a.len() + b.len()`.
pub const fn join<const N: usize>(
    a: &[&'static dyn Documented],
    b: &[&'static dyn Documented],
) -> [&'static dyn Documented; N] {
    assert!(N == a.len() + b.len(), "join: N must be the sum of the lengths");
    let mut out: [&'static dyn Documented; N] = [if a.is_empty() { b[0] } else { a[0] }; N];
    let mut i = 0;
    while i < a.len() {
        out[i] = a[i];
        i += 1;
    }
    while i < N {
        out[i] = b[i - a.len()];
        i += 1;
    }
    out
}

/// A heading of `--help`: the settings from `first` up to the next section's first belong to
/// it. Sections are headings over one ordered list of declarations rather than lists of their
/// own, so a setting cannot be left out of one list or put in two.
#[derive(Debug, Clone, Copy)]
pub struct Section {
    pub title: &'static str,
    /// The name of the section's first setting.
    pub first: &'static str,
}

/// The `--help` lines of `settings`, in order: name, help, accepted values, default.
pub fn help_table(settings: &[&dyn Documented]) -> String {
    let mut out = String::new();
    for setting in settings {
        let default = match setting.default_text() {
            "" => "\"\"",
            text => text,
        };
        out.push_str(&format!("    {}\n        {}\n", setting.name(), setting.help()));
        let spellings = setting.spellings();
        if !spellings.is_empty() {
            out.push_str(&format!("        values: {}\n", spellings.join(", ")));
        }
        out.push_str(&format!("        default: {default}\n"));
    }
    out
}

/// [`help_table`] under section headings. Panics when a section names a setting that is not in
/// `settings`, or the sections are out of order (a test prints every service's help).
pub fn help_sections(settings: &[&dyn Documented], sections: &[Section]) -> String {
    let start = |section: &Section| {
        settings
            .iter()
            .position(|s| s.name() == section.first)
            .unwrap_or_else(|| panic!("section {:?} starts at undeclared {}", section.title, section.first))
    };
    let starts: Vec<usize> = sections.iter().map(start).collect();
    assert!(starts.first() == Some(&0) || settings.is_empty(), "the first section must start at the first setting");
    assert!(starts.windows(2).all(|w| w[0] < w[1]), "sections out of order");
    let mut out = String::new();
    for (i, section) in sections.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(settings.len());
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!("  {}:\n", section.title));
        out.push_str(&help_table(&settings[starts[i]..end]));
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
        setting.default_value()
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
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Mode {
        Error,
        Allow,
    }

    const MODE: Setting<Mode> = Setting::choice(
        "MODE",
        "error",
        &[("error", Mode::Error), ("allow", Mode::Allow), ("ok", Mode::Allow)],
        "mode",
    );
    const WAIT: Setting<Duration> = Setting::duration("WAIT", "1s", "wait");
    const FILE: Setting<String> = Setting::text("FILE", "", "file");

    #[test]
    fn declared_settings_read_their_defaults_through_the_same_parser() {
        let values = env(&[("MODE", "ALLOW"), ("WAIT", "soon"), ("FILE", "/x")]);
        let mut reader = EnvReader::new(&values);
        assert_eq!(reader.get(&PORT), 8080);
        assert_eq!(reader.get(&MODE), Mode::Allow, "spellings compare case-insensitively");
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
    fn a_choice_yields_its_value_and_an_unknown_spelling_lists_the_accepted_ones() {
        assert_eq!(MODE.parse(" ok "), Ok(Mode::Allow));
        assert_eq!(MODE.default_value(), Mode::Error);
        let values = env(&[("MODE", "maybe")]);
        let mut reader = EnvReader::new(&values);
        assert_eq!(reader.get(&MODE), Mode::Error);
        assert_eq!(
            reader.finish().unwrap_err().0[0].to_string(),
            "MODE=\"maybe\" is not valid: expected one of error, allow, ok"
        );
        assert_eq!(
            help_table(&[&MODE]),
            "    MODE\n        mode\n        values: error, allow, ok\n        default: error\n"
        );
    }

    #[test]
    fn help_sections_put_each_heading_before_its_first_setting() {
        let all: [&dyn Documented; 3] = [&PORT, &WAIT, &FILE];
        let sections = [Section { title: "Server", first: "PORT" }, Section { title: "Files", first: "FILE" }];
        let help = help_sections(&all, &sections);
        assert!(help.starts_with("  Server:\n    PORT\n"), "{help}");
        assert!(help.contains("default: 1s\n\n  Files:\n    FILE\n"), "{help}");
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

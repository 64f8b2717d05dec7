//! The command line. Settings are environment variables, so arguments only choose a command;
//! every refusal names the argument and what would have been accepted.

/// What `ratelimit <args>` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// No arguments: run the service.
    Run,
    Help,
    Version,
    /// Exit 0 when the local service answers `/healthcheck`.
    Healthcheck,
    /// Check config files or directories; with `reference`, also as envoyproxy/ratelimit loads them.
    Validate {
        reference: bool,
        paths: Vec<String>,
    },
}

/// A command line that asks for nothing we do (exit 64).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    #[error("unexpected argument {0:?}: settings are environment variables, as in `{0} ratelimit`")]
    Setting(String),
    #[error("unexpected argument {0:?}: expected validate, healthcheck, --help or --version (settings are environment variables, listed by ratelimit --help)")]
    Unknown(String),
    #[error("unexpected argument {extra:?} after {command}, which takes none")]
    Extra { command: &'static str, extra: String },
    #[error(
        "validate: name the config files or directories to check, as in `ratelimit validate examples/ratelimit/config`"
    )]
    NoPaths,
    #[error("validate: unknown option {0:?}; the only option is --reference")]
    UnknownOption(String),
}

/// Reads the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Command, UsageError> {
    let Some((first, rest)) = args.split_first() else {
        return Ok(Command::Run);
    };
    let alone = |command: &'static str, then: Command| match rest.first() {
        Some(extra) => Err(UsageError::Extra { command, extra: extra.clone() }),
        None => Ok(then),
    };
    match first.as_str() {
        "--help" | "-h" | "help" => alone("--help", Command::Help),
        "--version" | "-V" => alone("--version", Command::Version),
        "healthcheck" => alone("healthcheck", Command::Healthcheck),
        "validate" => validate(rest),
        other if looks_like_a_setting(other) => Err(UsageError::Setting(other.to_string())),
        other => Err(UsageError::Unknown(other.to_string())),
    }
}

fn validate(args: &[String]) -> Result<Command, UsageError> {
    let mut reference = false;
    let mut paths = Vec::new();
    for arg in args {
        match arg.as_str() {
            "--reference" => reference = true,
            option if option.starts_with("--") => return Err(UsageError::UnknownOption(option.to_string())),
            path => paths.push(path.to_string()),
        }
    }
    if paths.is_empty() {
        return Err(UsageError::NoPaths);
    }
    Ok(Command::Validate { reference, paths })
}

/// `NAME=value` with an upper-case name: an environment setting written as an argument.
fn looks_like_a_setting(arg: &str) -> bool {
    arg.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(args: &[&str]) -> Result<Command, String> {
        parse(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>()).map_err(|e| e.to_string())
    }

    #[test]
    fn each_command_and_its_arguments() {
        assert_eq!(parsed(&[]), Ok(Command::Run));
        assert_eq!(parsed(&["-h"]), Ok(Command::Help));
        assert_eq!(parsed(&["--version"]), Ok(Command::Version));
        assert_eq!(parsed(&["healthcheck"]), Ok(Command::Healthcheck));
        let both = Command::Validate { reference: true, paths: vec!["a".into(), "b".into()] };
        assert_eq!(parsed(&["validate", "a", "--reference", "b"]), Ok(both));
    }

    #[test]
    fn a_refusal_names_the_argument_and_what_is_accepted() {
        assert_eq!(
            parsed(&["serve"]).unwrap_err(),
            "unexpected argument \"serve\": expected validate, healthcheck, --help or --version \
             (settings are environment variables, listed by ratelimit --help)"
        );
        assert_eq!(
            parsed(&["PORT=8080"]).unwrap_err(),
            "unexpected argument \"PORT=8080\": settings are environment variables, as in `PORT=8080 ratelimit`"
        );
        assert_eq!(
            parsed(&["healthcheck", "8080"]).unwrap_err(),
            "unexpected argument \"8080\" after healthcheck, which takes none"
        );
        assert_eq!(
            parsed(&["--help", "validate"]).unwrap_err(),
            "unexpected argument \"validate\" after --help, which takes none"
        );
    }

    #[test]
    fn validate_needs_a_path_and_knows_one_option() {
        let no_path = "validate: name the config files or directories to check, as in `ratelimit validate examples/ratelimit/config`";
        assert_eq!(parsed(&["validate"]).unwrap_err(), no_path);
        assert_eq!(parsed(&["validate", "--reference"]).unwrap_err(), no_path);
        assert_eq!(
            parsed(&["validate", "--refrence", "a"]).unwrap_err(),
            "validate: unknown option \"--refrence\"; the only option is --reference"
        );
    }
}

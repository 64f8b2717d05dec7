//! The command line: which command, or one line saying which argument is wrong and what was
//! probably meant (a bare "unexpected arguments" left the user to guess which).

use std::path::PathBuf;

use crate::explain::options::{Options as ExplainOptions, EXPLAIN_USAGE};

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// Serve; `None`: the file `$EXT_AUTHZ_CONFIG` names, or the default path.
    Run(Option<PathBuf>),
    Validate {
        file: PathBuf,
        no_secrets: bool,
    },
    /// `api-key new` and its options (read by `api_key_new`).
    ApiKeyNew(&'a [&'a str]),
    SessionKeyNew,
    Healthcheck(Option<&'a str>),
    /// `explain FILE --url URL …`: the decision on one request, offline.
    Explain(Box<ExplainOptions>),
    Help,
    Version,
}

const COMMANDS: &str = "validate, explain, api-key new, session-key new and healthcheck";
const VALIDATE_USAGE: &str = "ext-authz validate FILE [--no-secrets]";

/// A wrong command line, said on one line (`ext-authz: ` is added by the caller).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    #[error("--config needs a file: ext-authz --config FILE")]
    ConfigWithoutFile,
    #[error(
        "unexpected argument {0:?} after --config FILE (settings go in the file, or in EXT_AUTHZ__… \
         environment variables); see ext-authz --help"
    )]
    AfterConfig(String),
    #[error(
        "api-key {0}: the command is `ext-authz api-key new [--client-id ID] [--scopes a,b] [--org-id ORG] \
         [--format file|secret]`"
    )]
    ApiKey(String),
    #[error("the command is `ext-authz session-key new` (it takes no options)")]
    SessionKey,
    #[error("healthcheck: unexpected argument {0:?}; usage: ext-authz healthcheck [HOST:PORT]")]
    Healthcheck(String),
    #[error("unknown option {typed:?}{}; see ext-authz --help", did_you_mean(*.meant))]
    UnknownOption { typed: String, meant: Option<&'static str> },
    #[error("unknown command {typed:?}{}; the commands are {COMMANDS}{}", did_you_mean(*.meant),
            if .meant.is_some() { "" } else { " (see ext-authz --help)" })]
    UnknownCommand { typed: String, meant: Option<&'static str> },
    #[error("validate: unknown option {0:?}; usage: {VALIDATE_USAGE}")]
    ValidateOption(String),
    #[error("validate: unexpected argument {0:?} (one config file at a time); usage: {VALIDATE_USAGE}")]
    ValidateExtra(String),
    #[error("validate needs the config file: {VALIDATE_USAGE}")]
    ValidateWithoutFile,
    #[error("explain needs the config file: {EXPLAIN_USAGE}")]
    ExplainWithoutFile,
    #[error("explain needs the request's --url (http(s)://HOST/PATH?QUERY, or /PATH); usage: {EXPLAIN_USAGE}")]
    ExplainWithoutUrl,
    #[error("explain: unknown option {typed:?}{}; see ext-authz --help", did_you_mean(*.meant))]
    ExplainOption { typed: String, meant: Option<&'static str> },
    #[error("explain: {flag} {problem}; see ext-authz --help")]
    ExplainValue { flag: String, problem: String },
    #[error("explain: unexpected argument {0:?} (one config file at a time); see ext-authz --help")]
    ExplainExtra(String),
}

fn did_you_mean(meant: Option<&str>) -> String {
    meant.map(|meant| format!(" (did you mean {meant}?)")).unwrap_or_default()
}

/// The command, or what is wrong with the command line.
pub fn parse<'a>(args: &'a [&'a str]) -> Result<Command<'a>, UsageError> {
    match args {
        [] => Ok(Command::Run(None)),
        ["--help" | "-h" | "help"] => Ok(Command::Help),
        ["--version" | "-V"] => Ok(Command::Version),
        ["--config"] => Err(UsageError::ConfigWithoutFile),
        ["--config", file] => Ok(Command::Run(Some(PathBuf::from(file)))),
        ["--config", _, extra, ..] => Err(UsageError::AfterConfig(extra.to_string())),
        ["validate", rest @ ..] => validate(rest),
        ["explain", rest @ ..] => crate::explain::options::parse(rest).map(|o| Command::Explain(Box::new(o))),
        ["api-key", "new", rest @ ..] => Ok(Command::ApiKeyNew(rest)),
        ["api-key", rest @ ..] => Err(UsageError::ApiKey(rest.join(" "))),
        ["session-key", "new"] => Ok(Command::SessionKeyNew),
        ["session-key", ..] => Err(UsageError::SessionKey),
        ["healthcheck"] => Ok(Command::Healthcheck(None)),
        ["healthcheck", addr] if !addr.starts_with('-') => Ok(Command::Healthcheck(Some(addr))),
        ["healthcheck", rest @ ..] => Err(UsageError::Healthcheck(
            rest.iter().find(|a| a.starts_with('-')).unwrap_or(&rest[rest.len() - 1]).to_string(),
        )),
        [first, ..] if first.starts_with('-') => Err(UsageError::UnknownOption {
            typed: first.to_string(),
            meant: closest(first, &["--config", "--help", "--version"]),
        }),
        [first, ..] => Err(UsageError::UnknownCommand {
            typed: first.to_string(),
            meant: closest(first, &["validate", "explain", "api-key", "session-key", "healthcheck"]),
        }),
    }
}

fn validate<'a>(args: &'a [&'a str]) -> Result<Command<'a>, UsageError> {
    let mut file = None;
    let mut no_secrets = false;
    for arg in args {
        match *arg {
            "--no-secrets" => no_secrets = true,
            option if option.starts_with('-') => return Err(UsageError::ValidateOption(option.to_string())),
            path if file.is_none() => file = Some(PathBuf::from(path)),
            extra => return Err(UsageError::ValidateExtra(extra.to_string())),
        }
    }
    match file {
        Some(file) => Ok(Command::Validate { file, no_secrets }),
        None => Err(UsageError::ValidateWithoutFile),
    }
}

/// The word `typed` was probably meant to be: within two edits of it.
pub fn closest<'a>(typed: &str, words: &[&'a str]) -> Option<&'a str> {
    words.iter().map(|w| (edits(typed, w), *w)).filter(|(d, _)| *d <= 2).min().map(|(_, w)| w)
}

/// Levenshtein distance, for the few short words above.
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substituted = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substituted.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        assert_eq!(parse(&[]), Ok(Command::Run(None)));
        assert_eq!(parse(&["--config", "a.yaml"]), Ok(Command::Run(Some("a.yaml".into()))));
        assert_eq!(parse(&["validate", "a.yaml"]), Ok(Command::Validate { file: "a.yaml".into(), no_secrets: false }));
        assert_eq!(
            parse(&["validate", "--no-secrets", "a.yaml"]),
            Ok(Command::Validate { file: "a.yaml".into(), no_secrets: true })
        );
        assert_eq!(parse(&["api-key", "new", "--client-id", "c"]), Ok(Command::ApiKeyNew(&["--client-id", "c"])));
        assert_eq!(parse(&["healthcheck", "127.0.0.1:8080"]), Ok(Command::Healthcheck(Some("127.0.0.1:8080"))));
    }

    /// Each wrong command line is one line naming the argument and what was probably meant.
    #[test]
    fn errors_name_the_argument_and_the_fix() {
        for (args, said) in [
            (&["--confg", "a.yaml"][..], "unknown option \"--confg\" (did you mean --config?); see ext-authz --help"),
            (&["--port", "1"], "unknown option \"--port\"; see ext-authz --help"),
            (&["--config"], "--config needs a file: ext-authz --config FILE"),
            (&["--config", "a.yaml", "--debug"], "unexpected argument \"--debug\" after --config FILE"),
            (&["validate"], "validate needs the config file: ext-authz validate FILE [--no-secrets]"),
            (&["validate", "a.yaml", "b.yaml"], "validate: unexpected argument \"b.yaml\" (one config file at a time)"),
            (
                &["validate", "--no-secret", "a.yaml"],
                "validate: unknown option \"--no-secret\"; usage: ext-authz validate",
            ),
            (&["valdate", "a.yaml"], "unknown command \"valdate\" (did you mean validate?)"),
            (&["serve"], "unknown command \"serve\"; the commands are validate, explain, api-key new"),
            (&["explian", "a.yaml"], "unknown command \"explian\" (did you mean explain?)"),
            (&["api-key", "create"], "api-key create: the command is `ext-authz api-key new"),
            (&["session-key"], "the command is `ext-authz session-key new`"),
            (&["healthcheck", "a", "b"], "healthcheck: unexpected argument \"b\"; usage: ext-authz healthcheck"),
        ] {
            let error = parse(args).unwrap_err().to_string();
            assert!(error.starts_with(said), "{args:?}: {error}");
            assert!(!error.contains('\n'), "one line: {error}");
        }
    }
}

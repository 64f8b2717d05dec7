//! Collecting config problems: every section is checked, and every problem found is reported
//! with its key, so a user fixes them all in one go instead of one per attempt.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use shared::env::{parse_go_duration, Setting};

/// The most problems listed: a file of thousands of bad rules gets a readable answer (and a
/// bounded one) — the first ones, and how many more.
pub const MAX_PROBLEMS: usize = 100;

/// A problem was found and recorded in the [`Check`]; the part being built is left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reported;

/// A part of the config, or the note that its problems were recorded.
pub type Checked<T> = Result<T, Reported>;

/// One problem: where (`routes.rules[2].path`) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub problem: String,
    /// The `EXT_AUTHZ__…` variable that set the value, described (it is named instead of the file).
    pub env: Option<String>,
}

/// A secret a start reads, as `validate --no-secrets` lists it instead of reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretNeed {
    /// The key that names it (`jwt_providers[1].keys.hmac_secret_env`).
    pub key: String,
    pub from: SecretFrom,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretFrom {
    Env(String),
    File(PathBuf),
    /// A directory (a mounted Secret, a volume).
    Dir(PathBuf),
}

impl std::fmt::Display for SecretNeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.from {
            SecretFrom::Env(name) => write!(f, "{name} (environment variable; {})", self.key),
            SecretFrom::File(path) => write!(f, "{} (file; {})", path.display(), self.key),
            SecretFrom::Dir(path) => write!(f, "{} (directory; {})", path.display(), self.key),
        }
    }
}

/// What the sections are checked with: the file (for relative paths), the environment (for
/// secrets named by `*_env` keys), and the problems found so far.
pub struct Check<'a> {
    pub base: &'a Path,
    pub env: &'a HashMap<String, String>,
    problems: RefCell<Vec<Problem>>,
    /// Problems past [`MAX_PROBLEMS`], counted only.
    more: Cell<usize>,
    /// `Some` when secrets are listed here, not read (`validate --no-secrets`).
    needs: Option<RefCell<Vec<SecretNeed>>>,
}

impl<'a> Check<'a> {
    pub fn new(base: &'a Path, env: &'a HashMap<String, String>) -> Check<'a> {
        Check { base, env, problems: RefCell::default(), more: Cell::new(0), needs: None }
    }

    /// A check that reads no secret: each is listed, and stands in as a placeholder that
    /// passes every check of its value (32 bytes, in base64, one per reference: two keys that
    /// name the same variable or file are the same secret, as they are at a start).
    pub fn without_secrets(base: &'a Path, env: &'a HashMap<String, String>) -> Check<'a> {
        Check { needs: Some(RefCell::default()), ..Check::new(base, env) }
    }

    /// Records a problem at `key`.
    pub fn fail<T>(&self, key: impl Into<String>, problem: impl Into<String>) -> Checked<T> {
        let mut problems = self.problems.borrow_mut();
        if problems.len() < MAX_PROBLEMS {
            problems.push(Problem { key: key.into(), problem: problem.into(), env: None });
        } else {
            self.more.set(self.more.get() + 1);
        }
        Err(Reported)
    }

    pub fn duration(&self, key: &str, text: &str) -> Checked<Duration> {
        parse_go_duration(text).or_else(|e| self.fail(key, e.to_string()))
    }

    /// A choice key's value: the enum its declaration maps `text` to. `key` is where it is in
    /// this file (`upstream_credentials[2].oauth2.auth_method` for a declared
    /// `upstream_credentials[].oauth2.auth_method`); the problem lists the declared spellings.
    pub fn choice<T: Copy>(&self, key: &str, setting: &Setting<T>, text: &str) -> Checked<T> {
        setting.parse(text).or_else(|_| self.fail(key, format!("{text:?} is not {}", or_list(setting))))
    }

    pub fn addr(&self, key: &str, text: &str) -> Checked<SocketAddr> {
        text.parse().or_else(|_| self.fail(key, format!("{text:?} is not an ip:port address")))
    }

    /// A secret from a file (its trailing newline removed) or an environment variable:
    /// exactly one of the two.
    pub fn secret(&self, key: &str, file: Option<&str>, env: Option<&str>) -> Checked<Vec<u8>> {
        if let Some(name) = env.filter(|name| !is_variable_name(name)) {
            return self.fail(key, format!("{name:?} cannot be an environment variable name (empty, or has = or NUL)"));
        }
        if let Some(needs) = &self.needs {
            let from = match (file, env) {
                (Some(file), None) => SecretFrom::File(self.path(file)),
                (None, Some(name)) => SecretFrom::Env(name.to_string()),
                _ => return self.fail(key, "set exactly one of file and env"),
            };
            let placeholder = placeholder(&from);
            needs.borrow_mut().push(SecretNeed { key: key.to_string(), from });
            return Ok(placeholder);
        }
        match (file, env) {
            (Some(file), None) => std::fs::read(self.path(file))
                .map(trim_newline)
                .or_else(|e| self.fail(key, format!("cannot read {file}: {e}"))),
            (None, Some(name)) => match self.env.get(name) {
                Some(value) if !value.is_empty() => Ok(value.as_bytes().to_vec()),
                _ => self.fail(key, format!("the environment variable {name} is not set")),
            },
            _ => self.fail(key, "set exactly one of file and env"),
        }
    }

    /// A file a start reads that a deployment mounts beside the secrets (a TLS key and its
    /// certificates): it must be there, except without secrets, where a missing one is listed.
    pub fn mounted_file(&self, key: &str, text: &str) -> Checked<PathBuf> {
        let path = self.path(text);
        if path.is_file() {
            return Ok(path);
        }
        match &self.needs {
            Some(needs) => {
                needs.borrow_mut().push(SecretNeed { key: key.to_string(), from: SecretFrom::File(path.clone()) });
                Ok(path)
            }
            None => self.fail(key, format!("{} is not a readable file", path.display())),
        }
    }

    /// Relative paths are relative to the config file.
    pub fn path(&self, text: &str) -> PathBuf {
        let path = Path::new(text);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base.join(path)
        }
    }

    /// The problems listed, how many more were found, and the secrets listed unread.
    pub fn into_problems(self) -> (Vec<Problem>, usize, Vec<SecretNeed>) {
        (self.problems.into_inner(), self.more.get(), self.needs.map(RefCell::into_inner).unwrap_or_default())
    }
}

/// A choice's spellings as a sentence ends a list: `a, b or c`.
fn or_list<T>(setting: &Setting<T>) -> String {
    match setting.choices.split_last() {
        Some(((last, _), [])) => last.to_string(),
        Some(((last, _), rest)) => {
            let rest: Vec<&str> = rest.iter().map(|(spelling, _)| *spelling).collect();
            format!("{} or {last}", rest.join(", "))
        }
        None => String::new(),
    }
}

/// What a process environment can hold as a name. Not only what a shell exports: Kubernetes
/// sets names with `-` and `.` (`my-secret.key`), and configs name them.
fn is_variable_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['=', '\0'])
}

/// A secret's stand-in without secrets: derived from where it is read, so the same variable or
/// file is the same value (as at a start: two session keys naming one are refused) and
/// different ones differ.
fn placeholder(from: &SecretFrom) -> Vec<u8> {
    let reference = match from {
        SecretFrom::Env(name) => format!("env\0{name}"),
        // `./k` and `k` are one file.
        SecretFrom::File(path) | SecretFrom::Dir(path) => {
            format!("file\0{}", path.components().collect::<PathBuf>().display())
        }
    };
    let digest = ring::digest::digest(&ring::digest::SHA256, reference.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref()).into_bytes()
}

/// A secret file's content without its trailing newline (editors and `echo` add one).
pub fn trim_newline(mut secret: Vec<u8>) -> Vec<u8> {
    while secret.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        secret.pop();
    }
    secret
}

/// Builds every item (none is skipped after a bad one, so each one's problems are reported);
/// the list when all were good.
pub fn each<T, I>(
    items: impl IntoIterator<Item = I>,
    mut build: impl FnMut(usize, I) -> Checked<T>,
) -> Checked<Vec<T>> {
    let mut out = Vec::new();
    let mut failed = false;
    for (i, item) in items.into_iter().enumerate() {
        match build(i, item) {
            Ok(built) => out.push(built),
            Err(Reported) => failed = true,
        }
    }
    if failed {
        Err(Reported)
    } else {
        Ok(out)
    }
}

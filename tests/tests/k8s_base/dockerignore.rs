//! `.dockerignore` as `docker build` applies it (moby/patternmatcher, which the Docker CLI and
//! BuildKit use), to measure the build context without a Docker engine. Each line is a path
//! pattern relative to the context's root (cleaned: a leading or trailing `/` and `./` dropped);
//! `*` and `?` stay within one path segment, `**/` spans any number of them; a pattern that
//! matches a directory matches everything below it; `!` re-includes; the last pattern that
//! matches decides. Character classes and `\` escapes are not implemented: a file using them is
//! refused, so a size measured here is the size Docker sends.

use std::path::Path;

pub struct Rules(Vec<Rule>);

struct Rule {
    /// A `!` line: what it matches goes back in.
    exception: bool,
    tokens: Vec<Token>,
}

#[derive(Clone, Copy)]
enum Token {
    Byte(u8),
    /// `*`: any run of characters but `/`.
    Star,
    /// `?`: one character but `/`.
    Question,
    /// `**/` (Docker's `(.*/)?`): nothing, or any path ending in `/`.
    AnyDirs,
    /// A trailing `**`: anything.
    Rest,
}

impl Rules {
    pub fn parse(text: &str) -> Result<Rules, String> {
        let mut rules = Vec::new();
        // Docker drops a comment only when `#` is the line's first character, before trimming.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (exception, pattern) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            rules.push(Rule { exception, tokens: compile(&clean(pattern)?).map_err(|e| format!("{line}: {e}"))? });
        }
        Ok(Rules(rules))
    }

    /// Whether `path` (relative, `/`-separated) stays out of the context: the last rule that
    /// matches it or one of its parent directories decides.
    pub fn excludes(&self, path: &str) -> bool {
        let mut excluded = false;
        for rule in &self.0 {
            let mut candidates = std::iter::once(path).chain(parents(path));
            if candidates.any(|p| matches(&rule.tokens, p.as_bytes())) {
                excluded = !rule.exception;
            }
        }
        excluded
    }

    fn has_exceptions(&self) -> bool {
        self.0.iter().any(|r| r.exception)
    }
}

/// The files `docker build` would send from `root`: (path, bytes), sorted. A symbolic link is
/// sent as a link, with no content.
pub fn context(root: &Path, rules: &Rules) -> Vec<(String, u64)> {
    let mut files = Vec::new();
    walk(root, "", rules, &mut files);
    files.sort();
    files
}

fn walk(root: &Path, dir: &str, rules: &Rules, files: &mut Vec<(String, u64)>) {
    let entries = std::fs::read_dir(root.join(dir)).unwrap_or_else(|e| panic!("{dir}: {e}"));
    for entry in entries {
        let entry = entry.expect("a directory entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = if dir.is_empty() { name } else { format!("{dir}/{name}") };
        let meta = entry.path().symlink_metadata().unwrap_or_else(|e| panic!("{path}: {e}"));
        let excluded = rules.excludes(&path);
        if meta.is_dir() {
            // Like Docker's walker: an excluded directory is skipped unless an exception could
            // bring something below it back (and `target/` is far too big to walk for nothing).
            if !excluded || rules.has_exceptions() {
                walk(root, &path, rules, files);
            }
        } else if !excluded {
            files.push((path, if meta.file_type().is_symlink() { 0 } else { meta.len() }));
        }
    }
}

/// `filepath.Clean`, then a leading `/` dropped, as Docker reads each line.
fn clean(pattern: &str) -> Result<String, String> {
    let mut segments = Vec::new();
    for segment in pattern.split('/') {
        match segment {
            "" | "." => {}
            ".." => return Err(format!("{pattern}: `..` is not handled here")),
            s => segments.push(s),
        }
    }
    if segments.is_empty() {
        return Err(format!("{pattern:?}: an empty pattern"));
    }
    Ok(segments.join("/"))
}

fn compile(pattern: &str) -> Result<Vec<Token>, String> {
    let bytes = pattern.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'*' if bytes.get(i + 1) == Some(&b'*') => {
                // Only whole segments: Docker's shortcuts for `**` elsewhere differ from its regex.
                if i > 0 && bytes[i - 1] != b'/' {
                    return Err("`**` must start a path segment".into());
                }
                match bytes.get(i + 2) {
                    None => tokens.push(Token::Rest),
                    Some(b'/') => tokens.push(Token::AnyDirs),
                    Some(_) => return Err("`**` must be a whole path segment".into()),
                }
                i += 3;
            }
            b'*' => {
                tokens.push(Token::Star);
                i += 1;
            }
            b'?' => {
                tokens.push(Token::Question);
                i += 1;
            }
            b'[' | b']' | b'\\' => return Err("character classes and escapes are not handled here".into()),
            b => {
                tokens.push(Token::Byte(b));
                i += 1;
            }
        }
    }
    Ok(tokens)
}

/// Whether the whole of `path` matches `tokens`.
fn matches(tokens: &[Token], path: &[u8]) -> bool {
    let Some((&first, rest)) = tokens.split_first() else { return path.is_empty() };
    match first {
        Token::Byte(b) => path.first() == Some(&b) && matches(rest, &path[1..]),
        Token::Question => path.first().is_some_and(|&c| c != b'/') && matches(rest, &path[1..]),
        Token::Star => {
            let run = path.iter().take_while(|&&c| c != b'/').count();
            (0..=run).any(|n| matches(rest, &path[n..]))
        }
        Token::AnyDirs => {
            matches(rest, path)
                || path.iter().enumerate().filter(|(_, &c)| c == b'/').any(|(n, _)| matches(rest, &path[n + 1..]))
        }
        Token::Rest => true,
    }
}

/// `a`, `a/b` for `a/b/c`: the parent directories, outermost first.
fn parents(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(n, _)| &path[..n])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn excluded(rules: &str, path: &str) -> bool {
        Rules::parse(rules).unwrap().excludes(path)
    }

    /// Docker's documented examples (docs.docker.com, "Dockerignore files") and the rules ours uses.
    #[test]
    fn matches_as_docker_does() {
        assert!(excluded("node_modules", "node_modules/x/index.js"));
        assert!(!excluded("node_modules", "tests/node_modules/x.js"), "a bare name is at the root only");
        assert!(excluded("**/node_modules", "tests/k8s-schemas/node_modules/a/b.json"));
        assert!(excluded("**/node_modules", "node_modules"));
        assert!(excluded("/target/", "target/debug/ext-authz"));
        assert!(excluded("*/temp*", "somedir/temporary.txt") && !excluded("*/temp*", "temp.txt"));
        assert!(excluded("*/*/temp*", "a/b/temp") && !excluded("*/*/temp*", "a/temp"));
        assert!(excluded("temp?", "tempa") && !excluded("temp?", "temp/a/b") && !excluded("temp?", "tempab"));
        assert!(excluded("**/*.go", "main.go") && excluded("**/*.go", "a/b/c.go"));
        assert!(excluded("docs/**", "docs/a/b.md") && !excluded("docs/**", "docsx"));
        let readme = "*.md\n!README*.md\nREADME-secret.md\n";
        assert!(excluded(readme, "CHANGES.md") && !excluded(readme, "README.md"));
        assert!(excluded(readme, "README-secret.md"), "the last match decides");
        assert!(!excluded(readme, "docs/a.md"), "*.md is at the root only");
        assert!(!excluded("# target\n", "target/x"), "a comment");
        assert!(Rules::parse("[a-z]*").is_err() && Rules::parse("a**").is_err());
    }
}

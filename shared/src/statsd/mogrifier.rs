//! DogStatsD name rewriting, as the reference's `DOG_STATSD_MOGRIFIER_<ID>_{PATTERN,NAME,TAGS}`:
//! the first mogrifier whose pattern matches a name replaces it with `NAME` and adds `TAGS`
//! (`key:value,…`), where `$0`, `$1`, … stand for the match and its groups.

use regex::Regex;

#[derive(Debug, Clone)]
pub struct Mogrifier {
    pattern: Regex,
    name: String,
    tags: Vec<(String, String)>,
}

impl PartialEq for Mogrifier {
    fn eq(&self, other: &Mogrifier) -> bool {
        self.pattern.as_str() == other.pattern.as_str() && self.name == other.name && self.tags == other.tags
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MogrifierError {
    #[error("no PATTERN")]
    NoPattern,
    #[error("PATTERN does not compile: {0}")]
    BadPattern(String),
    #[error("no NAME")]
    NoName,
    #[error("TAGS entry {0:?} is not key:value with both parts")]
    BadTag(String),
}

impl Mogrifier {
    pub fn new(pattern: Option<&str>, name: Option<&str>, tags: Option<&str>) -> Result<Mogrifier, MogrifierError> {
        let pattern = pattern.filter(|p| !p.is_empty()).ok_or(MogrifierError::NoPattern)?;
        let pattern = Regex::new(pattern).map_err(|e| MogrifierError::BadPattern(e.to_string()))?;
        let name = name.filter(|n| !n.is_empty()).ok_or(MogrifierError::NoName)?.to_string();
        let tags = tags
            .unwrap_or("")
            .split(',')
            .filter(|entry| !entry.trim().is_empty())
            .map(|entry| match entry.split_once(':') {
                Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => {
                    Ok((k.trim().to_string(), v.trim().to_string()))
                }
                _ => Err(MogrifierError::BadTag(entry.to_string())),
            })
            .collect::<Result<_, _>>()?;
        Ok(Mogrifier { pattern, name, tags })
    }

    /// The new name and the tags (`key:value`) when the pattern matches `name`.
    pub fn apply(&self, name: &str) -> Option<(String, Vec<String>)> {
        let captures = self.pattern.captures(name)?;
        let groups: Vec<&str> = captures.iter().map(|g| g.map_or("", |m| m.as_str())).collect();
        let fill = |template: &str| substitute(template, &groups);
        Some((fill(&self.name), self.tags.iter().map(|(k, v)| format!("{k}:{}", fill(v))).collect()))
    }
}

/// Replaces `$<digits>` with that group (left as written when there is no such group).
fn substitute(template: &str, groups: &[&str]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        match after[..digits].parse::<usize>().ok().and_then(|i| groups.get(i)) {
            Some(group) => out.push_str(group),
            None => out.push_str(&rest[at..at + 1 + digits]),
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_names_and_adds_tags_like_the_reference() {
        // The reference's README example.
        let m = Mogrifier::new(
            Some(r"^ratelimit\.service\.rate_limit\.(.*)\.(.*)\.(.*)$"),
            Some("ratelimit.service.rate_limit.$3"),
            Some("domain:$1,descriptor:$2"),
        )
        .unwrap();
        let (name, tags) = m.apply("ratelimit.service.rate_limit.mongo_cps.database_users.total_hits").unwrap();
        assert_eq!(name, "ratelimit.service.rate_limit.total_hits");
        assert_eq!(tags, ["domain:mongo_cps", "descriptor:database_users"]);
        assert!(m.apply("ratelimit_server.ShouldRateLimit.total_requests").is_none());
    }

    #[test]
    fn keeps_unknown_group_references_and_refuses_bad_definitions() {
        assert_eq!(substitute("a$1b$9$x$", &["all", "one"]), "aoneb$9$x$");
        assert_eq!(Mogrifier::new(None, Some("n"), None).unwrap_err(), MogrifierError::NoPattern);
        assert_eq!(Mogrifier::new(Some("x"), None, None).unwrap_err(), MogrifierError::NoName);
        assert!(matches!(Mogrifier::new(Some("("), Some("n"), None), Err(MogrifierError::BadPattern(_))));
        assert_eq!(Mogrifier::new(Some("x"), Some("n"), Some("k")).unwrap_err(), MogrifierError::BadTag("k".into()));
    }
}

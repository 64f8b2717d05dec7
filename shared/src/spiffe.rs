//! SPIFFE IDs (`spiffe://<trust domain>/<path>`, the workload identities a mesh puts in its
//! certificates' URI SAN) and the patterns that allow them: exact IDs, `*` for exactly one path
//! segment, and a final `**` for any number of further segments (so `spiffe://td/**` is "any
//! workload of trust domain td"). Pure: used by the TLS client check and by route rules.
//!
//! Parsing follows the SPIFFE ID specification: scheme `spiffe`, a trust domain of lower-case
//! letters, digits, `.`, `-` and `_`, path segments of letters, digits, `.`, `-` and `_` that are
//! neither empty nor `.` / `..`, no query, fragment, port or user info, at most 2048 bytes.

use std::fmt;

const SCHEME: &str = "spiffe://";
const MAX_LEN: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpiffeId {
    trust_domain: String,
    /// The path segments (empty for the trust domain's own ID).
    segments: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpiffeError {
    #[error("longer than {MAX_LEN} bytes")]
    TooLong,
    #[error("does not start with spiffe://")]
    Scheme,
    #[error("the trust domain is empty")]
    EmptyTrustDomain,
    #[error("the trust domain may hold only lower-case letters, digits, '.', '-' and '_'")]
    TrustDomainCharacter,
    #[error("a path segment is empty (a doubled or trailing '/')")]
    EmptySegment,
    #[error("a path segment is '.' or '..'")]
    DotSegment,
    #[error("a path segment may hold only letters, digits, '.', '-' and '_'")]
    SegmentCharacter,
}

impl SpiffeId {
    pub fn parse(text: &str) -> Result<SpiffeId, SpiffeError> {
        if text.len() > MAX_LEN {
            return Err(SpiffeError::TooLong);
        }
        let rest = text.strip_prefix(SCHEME).ok_or(SpiffeError::Scheme)?;
        let (trust_domain, path) = match rest.find('/') {
            Some(at) => (&rest[..at], Some(&rest[at + 1..])),
            None => (rest, None),
        };
        check_trust_domain(trust_domain)?;
        let segments = match path {
            None => Vec::new(),
            Some(path) => {
                path.split('/').map(|s| check_segment(s).map(|()| s.to_string())).collect::<Result<_, _>>()?
            }
        };
        Ok(SpiffeId { trust_domain: trust_domain.to_string(), segments })
    }

    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    pub fn segments(&self) -> &[String] {
        &self.segments
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}", self.trust_domain)?;
        for segment in &self.segments {
            write!(f, "/{segment}")?;
        }
        Ok(())
    }
}

fn check_trust_domain(text: &str) -> Result<(), SpiffeError> {
    if text.is_empty() {
        return Err(SpiffeError::EmptyTrustDomain);
    }
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_');
    if text.bytes().all(allowed) {
        Ok(())
    } else {
        Err(SpiffeError::TrustDomainCharacter)
    }
}

fn check_segment(text: &str) -> Result<(), SpiffeError> {
    match text {
        "" => Err(SpiffeError::EmptySegment),
        "." | ".." => Err(SpiffeError::DotSegment),
        _ if text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')) => Ok(()),
        _ => Err(SpiffeError::SegmentCharacter),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Exact(String),
    /// `*`: exactly one segment, whatever it is.
    Any,
}

/// An allowed set of SPIFFE IDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdPattern {
    trust_domain: String,
    segments: Vec<Segment>,
    /// A final `**`: one or more further segments.
    rest: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("{0}")]
    Id(#[from] SpiffeError),
    #[error("'**' may only end a pattern")]
    InnerDoubleStar,
    #[error("'*' stands for a whole segment; write it between slashes")]
    PartialStar,
}

impl IdPattern {
    pub fn parse(text: &str) -> Result<IdPattern, PatternError> {
        if text.len() > MAX_LEN {
            return Err(SpiffeError::TooLong.into());
        }
        let rest = text.strip_prefix(SCHEME).ok_or(SpiffeError::Scheme)?;
        let (trust_domain, path) = match rest.find('/') {
            Some(at) => (&rest[..at], Some(&rest[at + 1..])),
            None => (rest, None),
        };
        check_trust_domain(trust_domain)?;
        let mut segments = Vec::new();
        let mut any_rest = false;
        if let Some(path) = path {
            let parts: Vec<&str> = path.split('/').collect();
            for (i, part) in parts.iter().enumerate() {
                match *part {
                    "**" if i + 1 == parts.len() => any_rest = true,
                    "**" => return Err(PatternError::InnerDoubleStar),
                    "*" => segments.push(Segment::Any),
                    _ if part.contains('*') => return Err(PatternError::PartialStar),
                    _ => {
                        check_segment(part)?;
                        segments.push(Segment::Exact(part.to_string()));
                    }
                }
            }
        }
        Ok(IdPattern { trust_domain: trust_domain.to_string(), segments, rest: any_rest })
    }

    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    pub fn matches(&self, id: &SpiffeId) -> bool {
        if id.trust_domain != self.trust_domain {
            return false;
        }
        let fixed = self.segments.len();
        let length_fits = if self.rest { id.segments.len() > fixed } else { id.segments.len() == fixed };
        length_fits
            && self.segments.iter().zip(&id.segments).all(|(pattern, segment)| match pattern {
                Segment::Any => true,
                Segment::Exact(exact) => exact == segment,
            })
    }
}

impl fmt::Display for IdPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}", self.trust_domain)?;
        for segment in &self.segments {
            match segment {
                Segment::Any => write!(f, "/*")?,
                Segment::Exact(s) => write!(f, "/{s}")?,
            }
        }
        if self.rest {
            write!(f, "/**")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

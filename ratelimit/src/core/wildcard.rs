//! Wildcard patterns of descriptor values (`foo*`, `bar*b`, `foo*bar*baz`).

/// A compiled pattern: the config composite key (`key_value`) split on `*`. Every `*` matches any,
/// possibly empty, substring; matching is anchored at both ends and middle pieces are found
/// left to right (first occurrence), as the reference does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WildcardPattern {
    pieces: Vec<String>,
}

impl WildcardPattern {
    /// `None` when `composite` has no `*`.
    pub fn compile(composite: &str) -> Option<WildcardPattern> {
        composite.contains('*').then(|| WildcardPattern { pieces: composite.split('*').map(str::to_owned).collect() })
    }

    pub fn matches(&self, candidate: &str) -> bool {
        let (first, rest) = match self.pieces.split_first() {
            Some(split) => split,
            None => return false,
        };
        let (last, middle) = match rest.split_last() {
            Some(split) => split,
            None => return candidate == first,
        };
        let Some(mut remaining) = candidate.strip_prefix(first.as_str()) else {
            return false;
        };
        for piece in middle {
            match remaining.find(piece.as_str()) {
                Some(at) => remaining = &remaining[at + piece.len()..],
                None => return false,
            }
        }
        remaining.ends_with(last.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, candidate: &str) -> bool {
        WildcardPattern::compile(pattern).unwrap().matches(candidate)
    }

    #[test]
    fn matches_like_the_reference() {
        assert!(matches("foo*", "foo"));
        assert!(matches("foo*", "foo1"));
        assert!(matches("bar*b", "barb"));
        assert!(matches("bar*b", "barab"));
        assert!(!matches("bar*b", "bara"));
        assert!(!matches("bar*b", "xbarb"));
        assert!(matches("foo*bar*baz", "foobarbaz"));
        assert!(matches("foo*bar*baz", "foo123bar456baz"));
        assert!(!matches("foo*bar*baz", "foo123baz"));
        assert!(matches("*", ""));
        // The trailing piece must not overlap the leading one.
        assert!(!matches("ab*ba", "aba"));
    }

    #[test]
    fn plain_values_are_not_patterns() {
        assert_eq!(WildcardPattern::compile("key_value"), None);
    }
}

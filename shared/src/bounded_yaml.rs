//! Bounds on every YAML file a service reads, checked before anything builds a tree from it.
//!
//! Why: YAML aliases let a few hundred bytes describe billions of nodes ("billion laughs":
//! each anchor refers to ten copies of the one before). Every YAML library that builds a value
//! tree — ours for rate limit configs, the `config` crate's for ext-authz — expands aliases by
//! copying, so such a file exhausts memory and aborts the process; dropped into a watched config
//! directory it takes down every replica on its next reload. Deep nesting is the other way to
//! exhaust a recursive builder. So each file is first read with a size bound, then walked as a
//! stream of parser events (nothing is expanded or stored) that counts what the expanded
//! document would hold, and refused with a clear error past any bound.
//!
//! Aliases are bounded twice: by the nodes they add and by the bytes of text they add. Counting
//! nodes alone lets one large string through: a 768 KiB scalar anchored once and aliased 20,000
//! times is an 827 KiB file of 20,000 alias nodes that expands to 15 GiB of copies. So a
//! checked file expands to at most `max_bytes + max_alias_bytes` bytes of scalar text in at
//! most its own nodes plus `max_alias_nodes`, whatever its aliases.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use yaml_rust2::parser::{Event, Parser};

/// What one file may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YamlLimits {
    /// Bytes in the file.
    pub max_bytes: u64,
    /// Nested collections, aliases included.
    pub max_depth: usize,
    /// Nodes that aliases may add to the document once expanded, over all aliases.
    pub max_alias_nodes: u64,
    /// Bytes of scalar text (keys and values) that aliases may add once expanded, over all
    /// aliases.
    pub max_alias_bytes: u64,
}

impl YamlLimits {
    /// For config and key files: far above any real config (a 100,000-rule rate limit config
    /// is ~8 MiB; a Kubernetes ConfigMap or Secret holds at most 1 MiB), far below what hurts:
    /// aliases add at most 100,000 nodes and 4 MiB of text (a shared block of limits or claims
    /// reused a few hundred times is a few KiB).
    pub const FILES: YamlLimits =
        YamlLimits { max_bytes: 32 << 20, max_depth: 64, max_alias_nodes: 100_000, max_alias_bytes: 4 << 20 };
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum YamlLimitError {
    #[error("the file is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("yaml: line {line}: nested deeper than the limit of {limit} levels")]
    TooDeep { line: usize, limit: usize },
    #[error("yaml: line {line}: aliases expand to more than {limit} nodes (an alias bomb?)")]
    TooManyAliasNodes { line: usize, limit: u64 },
    #[error("yaml: line {line}: aliases expand to more than {limit} bytes of text (an alias bomb?)")]
    TooManyAliasBytes { line: usize, limit: u64 },
    #[error("yaml: line {line}: {problem}")]
    Syntax { line: usize, problem: String },
}

#[derive(Debug, thiserror::Error)]
pub enum ReadYamlError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Limit(#[from] YamlLimitError),
    #[error("the file is not UTF-8 text")]
    NotText,
}

/// Reads a YAML file, reading no more than the size bound allows, and checks it against the
/// limits. A file that grows while it is read is cut at the bound and refused, not read on.
pub fn read_file(path: &Path, limits: YamlLimits) -> Result<String, ReadYamlError> {
    let text = read_text(path, limits)?;
    check(&text, limits)?;
    Ok(text)
}

/// Reads a file as text within the size bound only, for callers whose parser runs [`check`].
pub fn read_text(path: &Path, limits: YamlLimits) -> Result<String, ReadYamlError> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(limits.max_bytes + 1).read_to_end(&mut bytes)?;
    check_size(bytes.len() as u64, limits)?;
    String::from_utf8(bytes).map_err(|_| ReadYamlError::NotText)
}

fn check_size(size: u64, limits: YamlLimits) -> Result<(), YamlLimitError> {
    if size > limits.max_bytes {
        return Err(YamlLimitError::TooLarge { limit: limits.max_bytes });
    }
    Ok(())
}

/// The expanded size and depth of an anchored node, as an alias to it would add them.
#[derive(Clone, Copy)]
struct Extent {
    nodes: u64,
    depth: usize,
    /// Bytes of scalar text below it, itself included.
    bytes: u64,
}

/// An open collection.
struct Open {
    anchor: usize,
    nodes: u64,
    /// The deepest nesting below this collection, itself counted.
    depth: usize,
    bytes: u64,
}

/// What aliases may still add, shared by the files of one load: a directory of many files
/// (a ConfigMap of a hundred small files, say), each within the bounds alone, must not expand
/// to a hundred times the bound together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AliasBudget {
    pub nodes: u64,
    pub bytes: u64,
}

impl AliasBudget {
    /// The whole of what `limits` allow aliases to add.
    pub fn of(limits: YamlLimits) -> AliasBudget {
        AliasBudget { nodes: limits.max_alias_nodes, bytes: limits.max_alias_bytes }
    }
}

/// Walks every document of `source` and checks it against the limits. Syntax errors are
/// reported too, so a caller may rely on a checked text being well-formed YAML.
pub fn check(source: &str, limits: YamlLimits) -> Result<(), YamlLimitError> {
    check_sharing(source, limits, &mut AliasBudget::of(limits))
}

/// [`check`], with what aliases add taken from `budget` (shared with the other files of the
/// load) instead of a budget of the file's own. The errors name the budget's whole bound.
pub fn check_sharing(source: &str, limits: YamlLimits, budget: &mut AliasBudget) -> Result<(), YamlLimitError> {
    check_size(source.len() as u64, limits)?;
    let mut parser = Parser::new_from_str(source);
    let mut anchors: HashMap<usize, Extent> = HashMap::new();
    let mut open: Vec<Open> = Vec::new();
    let mut alias_nodes: u64 = 0;
    let mut alias_bytes: u64 = 0;
    loop {
        let (event, mark) = parser
            .next_token()
            .map_err(|e| YamlLimitError::Syntax { line: e.marker().line(), problem: e.info().into() })?;
        let line = mark.line().max(1);
        let finished = match event {
            Event::StreamEnd => {
                budget.nodes -= alias_nodes;
                budget.bytes -= alias_bytes;
                return Ok(());
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if open.len() >= limits.max_depth {
                    return Err(YamlLimitError::TooDeep { line, limit: limits.max_depth });
                }
                open.push(Open { anchor, nodes: 1, depth: 1, bytes: 0 });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => {
                open.pop().map(|c| (c.anchor, Extent { nodes: c.nodes, depth: c.depth, bytes: c.bytes }))
            }
            Event::Scalar(value, _, anchor, _) => {
                Some((anchor, Extent { nodes: 1, depth: 0, bytes: value.len() as u64 }))
            }
            Event::Alias(id) => {
                // An unknown anchor is the tree builder's error to report, with its own words.
                let extent = anchors.get(&id).copied().unwrap_or(Extent { nodes: 1, depth: 0, bytes: 0 });
                alias_nodes = alias_nodes.saturating_add(extent.nodes);
                if alias_nodes > budget.nodes {
                    return Err(YamlLimitError::TooManyAliasNodes { line, limit: limits.max_alias_nodes });
                }
                alias_bytes = alias_bytes.saturating_add(extent.bytes);
                if alias_bytes > budget.bytes {
                    return Err(YamlLimitError::TooManyAliasBytes { line, limit: limits.max_alias_bytes });
                }
                if open.len() + extent.depth > limits.max_depth {
                    return Err(YamlLimitError::TooDeep { line, limit: limits.max_depth });
                }
                Some((0, extent))
            }
            Event::Nothing | Event::StreamStart | Event::DocumentStart | Event::DocumentEnd => None,
        };
        if let Some((anchor, extent)) = finished {
            if anchor > 0 {
                anchors.insert(anchor, extent);
            }
            if let Some(parent) = open.last_mut() {
                parent.nodes = parent.nodes.saturating_add(extent.nodes);
                parent.depth = parent.depth.max(extent.depth + 1);
                parent.bytes = parent.bytes.saturating_add(extent.bytes);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: YamlLimits =
        YamlLimits { max_bytes: 1 << 20, max_depth: 8, max_alias_nodes: 1000, max_alias_bytes: 1000 };

    /// Ten levels of ten aliases each: about 10^10 nodes from under 600 bytes.
    fn billion_laughs() -> String {
        let mut yaml = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            yaml.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        yaml
    }

    #[test]
    fn refuses_an_alias_bomb_without_expanding_it() {
        let yaml = billion_laughs();
        assert!(yaml.len() < 600, "{}", yaml.len());
        let err = check(&yaml, YamlLimits::FILES).unwrap_err();
        assert!(matches!(err, YamlLimitError::TooManyAliasNodes { limit: 100_000, .. }), "{err}");
        assert!(err.to_string().contains("aliases expand to more than 100000 nodes"), "{err}");
    }

    /// One long string anchored once and aliased `copies` times: few nodes, many bytes.
    fn string_bomb(string_bytes: usize, copies: usize) -> String {
        let mut yaml = format!("s: &s {}\nx:\n", "x".repeat(string_bytes));
        yaml.push_str(&"- *s\n".repeat(copies));
        yaml
    }

    #[test]
    fn refuses_a_long_string_aliased_many_times() {
        // The finding: 827 KiB on disk, 20,000 alias nodes (below the node bound), 15 GiB expanded.
        // The second variant is an 8 MiB file refused at its first alias.
        for (string_bytes, copies, line) in [(768 << 10, 20_000, 8), (8 << 20, 1_000, 3)] {
            let yaml = string_bomb(string_bytes, copies);
            let err = check(&yaml, YamlLimits::FILES).unwrap_err();
            assert_eq!(err, YamlLimitError::TooManyAliasBytes { line, limit: 4 << 20 }, "{string_bytes}");
            assert!(err.to_string().contains("aliases expand to more than 4194304 bytes of text"), "{err}");
        }
        // Up to the bound it is fine: 4 KiB × 1,024 = 4 MiB exactly.
        assert_eq!(check(&string_bomb(4 << 10, 1024), YamlLimits::FILES), Ok(()));
        assert!(check(&string_bomb(4 << 10, 1025), YamlLimits::FILES).is_err());
    }

    #[test]
    fn the_files_of_one_load_share_one_budget() {
        // 3 MiB of aliased text each: one alone is within the 4 MiB bound, two together are not.
        let file = string_bomb(3 << 20, 1);
        let mut budget = AliasBudget::of(YamlLimits::FILES);
        assert_eq!(check_sharing(&file, YamlLimits::FILES, &mut budget), Ok(()));
        assert_eq!(budget, AliasBudget { nodes: 100_000 - 1, bytes: (4 << 20) - (3 << 20) });
        let err = check_sharing(&file, YamlLimits::FILES, &mut budget).unwrap_err();
        assert_eq!(err, YamlLimitError::TooManyAliasBytes { line: 3, limit: 4 << 20 });
        assert_eq!(budget.bytes, 1 << 20, "a refused file takes nothing");
        assert_eq!(check(&file, YamlLimits::FILES), Ok(()), "each file alone is fine");
    }

    #[test]
    fn counts_what_aliases_add() {
        let ok = "base: &b {unit: second, requests_per_unit: 5}\nx: *b\ny: *b\n";
        assert_eq!(check(ok, SMALL), Ok(()));
        // Each alias to `b` adds 5 nodes (the map, two keys, two values).
        let limits = YamlLimits { max_alias_nodes: 9, ..SMALL };
        assert!(matches!(check(ok, limits), Err(YamlLimitError::TooManyAliasNodes { line: 3, .. })));
    }

    #[test]
    fn refuses_deep_nesting_written_or_aliased() {
        let deep = format!("{}{}", "[".repeat(9), "]".repeat(9));
        assert_eq!(check(&deep, SMALL), Err(YamlLimitError::TooDeep { line: 1, limit: 8 }));
        assert_eq!(check(&format!("{}{}", "[".repeat(8), "]".repeat(8)), SMALL), Ok(()));
        // Six levels under an anchor, used three levels down: nine in all.
        let aliased = "a: &x [[[[[[1]]]]]]\nb: [[*x]]\n";
        assert!(matches!(check(aliased, SMALL), Err(YamlLimitError::TooDeep { line: 2, .. })));
    }

    #[test]
    fn refuses_large_files_and_reports_syntax_errors() {
        let limits = YamlLimits { max_bytes: 10, ..SMALL };
        assert_eq!(check("a: 123456789\n", limits), Err(YamlLimitError::TooLarge { limit: 10 }));
        let err = check("a: [1, 2\n", SMALL).unwrap_err();
        assert!(matches!(err, YamlLimitError::Syntax { .. }), "{err}");
    }

    #[test]
    fn reads_files_no_further_than_the_bound() {
        let dir = std::env::temp_dir().join(format!("bounded-yaml-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("big.yaml");
        std::fs::write(&path, "k: v\n".repeat(1000)).unwrap();
        let err = read_file(&path, YamlLimits { max_bytes: 100, ..SMALL }).unwrap_err();
        assert_eq!(err.to_string(), "the file is larger than the limit of 100 bytes");
        assert_eq!(read_file(&path, SMALL).unwrap().len(), 5000);
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(matches!(read_file(&path, SMALL), Err(ReadYamlError::NotText)));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! The checked-in list (`tests/docs-commands.yaml`): for every shell block of the docs, how
//! the test proves it runs as written.

use std::collections::BTreeSet;

use yaml_rust2::{Yaml, YamlLoader};

use super::blocks::Block;

pub const LIST: &str = "tests/docs-commands.yaml";

/// Why a block is not run here. The kinds are fixed, so that "skip" cannot become a habit.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    /// It builds or runs containers; no Docker engine runs in CI.
    Docker,
    /// It talks to a Kubernetes cluster; none runs in CI.
    Kubernetes,
    /// It runs until Ctrl-C, for a person to try; `by` names the tests that run its parts.
    Interactive,
    /// It takes too long for CI (a benchmark, a long fuzz); `cheap` is its cheapest real form
    /// when one exists, and that is run instead.
    Slow { cheap: Option<String> },
    /// Another test runs what it does; `by` names it.
    Covered,
}

/// How a block is proven.
#[derive(Debug, Clone, PartialEq)]
pub enum How {
    /// bash runs it from a scratch copy of the tree; it exits with `exit`, and prints `expect`.
    Run,
    /// It starts a server: bash runs it in the background until every one of `ports` accepts,
    /// then the blocks named in `then` run against it, then it is stopped.
    Serve {
        ports: Vec<u16>,
        then: Vec<String>,
    },
    /// It runs against a server a `serve` block started (and names in its `then`).
    Follow,
    Skip(Reason),
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub id: String,
    pub file: String,
    pub block: String,
    pub first: String,
    pub how: How,
    /// The exit code of `run` and `follow` blocks.
    pub exit: i32,
    /// Stable parts of what the block's comments say it prints; each must be in the block's
    /// text and in what it printed.
    pub expect: Vec<String>,
    /// Tests that run what a skipped block does: `path/to/file.rs::name`, the function must exist.
    pub by: Vec<String>,
    /// Why a block is skipped, for the reader of the list.
    pub why: String,
}

fn text(entry: &Yaml, key: &str, id: &str) -> Option<String> {
    match &entry[key] {
        Yaml::BadValue => None,
        Yaml::String(s) => Some(s.clone()),
        other => panic!("{LIST}: entry {id}: {key} must be a quoted string, not {other:?}"),
    }
}

fn texts(entry: &Yaml, key: &str, id: &str) -> Vec<String> {
    match &entry[key] {
        Yaml::BadValue => Vec::new(),
        Yaml::Array(items) => items
            .iter()
            .map(|item| item.as_str().unwrap_or_else(|| panic!("{LIST}: entry {id}: {key} holds strings")).to_string())
            .collect(),
        other => panic!("{LIST}: entry {id}: {key} must be a list, not {other:?}"),
    }
}

pub fn load(content: &str) -> Vec<Entry> {
    let docs = YamlLoader::load_from_str(content).unwrap_or_else(|e| panic!("{LIST}: {e}"));
    let items = docs[0]["blocks"].as_vec().unwrap_or_else(|| panic!("{LIST}: a `blocks:` list"));
    let entries: Vec<Entry> = items.iter().map(entry).collect();
    let mut ids = BTreeSet::new();
    for entry in &entries {
        assert!(ids.insert(entry.id.as_str()), "{LIST}: two entries are called {}", entry.id);
    }
    entries
}

fn entry(item: &Yaml) -> Entry {
    let id = text(item, "id", "?").unwrap_or_else(|| panic!("{LIST}: an entry without id: {item:?}"));
    let required = |key: &str| text(item, key, &id).unwrap_or_else(|| panic!("{LIST}: entry {id} needs `{key}`"));
    let ports = match &item["ports"] {
        Yaml::Array(ports) => ports.iter().map(|p| p.as_i64().and_then(|p| u16::try_from(p).ok()).unwrap()).collect(),
        _ => Vec::new(),
    };
    let how = match required("how").as_str() {
        "run" => How::Run,
        "serve" => How::Serve { ports, then: texts(item, "then", &id) },
        "follow" => How::Follow,
        "skip" => How::Skip(match required("reason").as_str() {
            "docker" => Reason::Docker,
            "kubernetes" => Reason::Kubernetes,
            "interactive" => Reason::Interactive,
            "slow" => Reason::Slow { cheap: text(item, "cheap", &id) },
            "covered" => Reason::Covered,
            other => {
                panic!("{LIST}: entry {id}: reason {other:?} is none of docker, kubernetes, interactive, slow, covered")
            }
        }),
        other => panic!("{LIST}: entry {id}: how {other:?} is none of run, serve, follow, skip"),
    };
    let exit = item["exit"].as_i64().map_or(0, |code| i32::try_from(code).unwrap());
    Entry {
        file: required("file"),
        block: required("block"),
        first: text(item, "first", &id).unwrap_or_default(),
        exit,
        expect: texts(item, "expect", &id),
        by: texts(item, "by", &id),
        why: text(item, "why", &id).unwrap_or_default(),
        how,
        id,
    }
}

/// A YAML single-quoted scalar (quotes doubled), so any command line reads back unchanged.
pub fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The entry to paste into the list for a block it lacks, with a `how` to choose.
pub fn template(block: &Block) -> String {
    let stem = block.file.trim_end_matches(".md").replace(['/', '.'], "-").to_lowercase();
    format!(
        "  - id: {stem}-{line}   # any unique name\n    file: {file}\n    block: '{hash}'\n    first: {first}\n    how: run   # or serve (ports, then), follow, skip (reason, why)\n",
        line = block.line,
        file = block.file,
        hash = block.hash(),
        first = quoted(block.first_line()),
    )
}

#[test]
fn a_template_reads_back_as_the_entry_it_describes() {
    let block = Block {
        file: "docs/x.md".into(),
        line: 7,
        script: String::new(),
        text: "FOO='a b' cargo run -p x -- \\\n  --flag".into(),
    };
    let entries = load(&format!("blocks:\n{}", template(&block)));
    assert_eq!((entries[0].id.as_str(), entries[0].how.clone()), ("docs-x-7", How::Run));
    assert_eq!((entries[0].block.clone(), entries[0].first.as_str()), (block.hash(), block.first_line()));
}

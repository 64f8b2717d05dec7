//! The checks on one entry of the list against its block: what it expects the block shows, the
//! tests it names run, and its `how` holds together with the other entries.

use super::blocks::{collapse, Block};
use super::list::{self, Entry, How, Reason};
use e2e::envoy::workspace_root;

/// What is wrong with an entry whose block exists.
pub fn problems(entry: &Entry, block: &Block, entries: &[Entry]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut problem =
        |what: String| problems.push(format!("entry `{}` ({}:{}): {what}", entry.id, block.file, block.line));
    if entry.first != block.first_line() {
        problem(format!("`first` should be {}", list::quoted(block.first_line())));
    }
    for want in &entry.expect {
        if !block.shown().contains(&collapse(want)) {
            problem(format!("expects {want:?}, which the block does not show"));
        }
    }
    for by in &entry.by {
        if let Err(why) = runs_as_a_test(by) {
            problem(format!("`by: {by}` {why}"));
        }
    }
    match &entry.how {
        How::Serve { ports, then } => {
            if ports.is_empty() {
                problem("a server needs the `ports` it opens".into());
            }
            for id in then {
                if !entries.iter().any(|e| e.id == *id && e.how == How::Follow) {
                    problem(format!("`then` names {id}, which is no `follow` entry"));
                }
            }
        }
        How::Follow => {
            let started_by = |e: &&Entry| matches!(&e.how, How::Serve { then, .. } if then.contains(&entry.id));
            if !entries.iter().any(|e| started_by(&e)) {
                problem("no `serve` entry names it in `then`".into());
            }
        }
        How::Skip(reason) => {
            if entry.why.is_empty() {
                problem("a skipped block says `why`".into());
            }
            let needs = match reason {
                Reason::Docker => Some("docker"),
                Reason::Kubernetes => Some("kubectl"),
                Reason::Interactive | Reason::Covered if entry.by.is_empty() => {
                    problem("name the tests that run it (`by`)".into());
                    None
                }
                _ => None,
            };
            if let Some(tool) = needs.filter(|tool| !block.script.contains(tool)) {
                problem(format!("skipped as needing {tool}, which it does not run"));
            }
        }
        How::Run => {}
    }
    problems
}

/// Whether `path::name` (`tests/tests/scripts.rs::a_test`) names a function that the test run
/// runs: marked `#[test]` or `#[tokio::test]`, and not `#[ignore]`d (an ignored test would vouch
/// for a block without running it). If not, why.
fn runs_as_a_test(by: &str) -> Result<(), String> {
    let (path, name) = by.split_once("::").ok_or("is not path::name")?;
    let name = name.rsplit("::").next().unwrap();
    let source = std::fs::read_to_string(workspace_root().join(path)).map_err(|e| format!("names {path}: {e}"))?;
    let signature = format!("fn {name}(");
    let mut found = source.match_indices(&signature).map(|(at, _)| attributes(&source[..at]));
    let first = found.next().ok_or_else(|| format!("names no function `{name}` in {path}"))?;
    let check = |attributes: &[&str]| {
        let is_test = attributes.iter().any(|a| *a == "#[test]" || a.starts_with("#[tokio::test"));
        match attributes.iter().find(|a| a.contains("ignore")) {
            _ if !is_test => Err(format!("names `{name}`, which is not a #[test] or #[tokio::test]")),
            Some(ignored) => Err(format!("names `{name}`, which the test run skips ({ignored})")),
            None => Ok(()),
        }
    };
    // A helper of the same name elsewhere in the file does not hide the test.
    let result = check(&first);
    if result.is_ok() || found.any(|other| check(&other).is_ok()) {
        return Ok(());
    }
    result
}

/// The attributes (`#[…]` lines) just above the function whose signature starts where `before`
/// ends, read upward across doc comments and comments.
fn attributes(before: &str) -> Vec<&str> {
    // The signature's own line up to `fn` (`pub async `, or an attribute on the same line),
    // then the lines above it.
    let (above, own) = before.rsplit_once('\n').unwrap_or(("", before));
    let own = own.trim();
    let above = above.lines().rev().map(str::trim).take_while(|l| l.starts_with("#[") || l.starts_with("//"));
    above.chain(own.starts_with("#[").then_some(own)).filter(|l| l.starts_with("#[")).collect()
}

#[test]
fn a_named_test_must_run() {
    let source = "/// Docs.\n#[test]\nfn plain() {}\n\n#[tokio::test(flavor = \"multi_thread\")]\n// Why.\nasync fn on_tokio() {}\n\
        #[test]\n#[ignore = \"slow\"]\nfn ignored() {}\nfn helper() {}\n";
    let attributes_of = |name: &str| attributes(&source[..source.find(&format!("fn {name}(")).unwrap()]);
    assert_eq!(attributes_of("plain"), ["#[test]"]);
    assert_eq!(attributes_of("on_tokio"), ["#[tokio::test(flavor = \"multi_thread\")]"]);
    assert_eq!(attributes_of("ignored"), ["#[ignore = \"slow\"]", "#[test]"]);
    assert!(attributes_of("helper").is_empty());
    // Against the files themselves: this test, and a function that is not one.
    assert_eq!(runs_as_a_test("tests/tests/docs_commands/entries.rs::a_named_test_must_run"), Ok(()));
    let helper = runs_as_a_test("tests/tests/docs_commands/entries.rs::attributes").unwrap_err();
    assert!(helper.contains("not a #[test]"), "{helper}");
}

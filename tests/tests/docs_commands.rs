//! Every command of the docs runs as written. Each shell block of the README, `docs/*.md`,
//! `bench/README.md` and the `k8s/` READMEs must be in `tests/docs-commands.yaml`, which says how
//! it is proven: run here (bash, from a scratch copy of the tree, with a clean environment), run
//! as a server whose follower blocks (the curl lines) then run against it, or skipped for one of
//! a few fixed reasons that this test checks as far as it can (a test named as covering it
//! exists). A block the list lacks, or an entry whose block is gone, fails with the entry to
//! write. `cargo run -p NAME` is answered by the binary cargo test built (see `shell.rs`).
//!
//! The servers run on the ports the docs give (no other test binds fixed ports: they all take
//! free ephemeral ones), one after another in the list's order; a server keeps running while
//! the next ones start, unless one of the same program needs its ports: so the quick starts of
//! different services are shown to run side by side.

#[path = "docs_commands/blocks.rs"]
mod blocks;
#[path = "docs_commands/entries.rs"]
mod entries;
#[path = "docs_commands/list.rs"]
mod list;
#[path = "docs_commands/shell.rs"]
mod shell;

use std::collections::BTreeMap;
use std::process::Command;

use blocks::{collapse, Block};
use e2e::envoy::workspace_root;
use list::{Entry, How, Reason, LIST};
use shell::{fresh_binary, Scratch, Server};

/// The list and the blocks, each entry with its block (the first test reports any mismatch).
fn classified() -> Vec<(Entry, Block)> {
    let root = workspace_root();
    let entries = list::load(&std::fs::read_to_string(root.join(LIST)).unwrap());
    let blocks = blocks::all(&root);
    let find = |entry: &Entry| blocks.iter().find(|b| b.file == entry.file && b.hash() == entry.block).cloned();
    entries.into_iter().filter_map(|entry| find(&entry).map(|block| (entry, block))).collect()
}

/// The programs a script runs through `cargo run -p NAME`, in order.
fn programs(script: &str) -> Vec<String> {
    let words: Vec<&str> = script.split_whitespace().collect();
    let runs = words.windows(4).filter(|w| w[0] == "cargo" && w[1] == "run" && w[2] == "-p");
    runs.map(|w| w[3].to_string()).collect()
}

/// Each of `expect` in `printed`, whitespace collapsed.
fn assert_printed(id: &str, expect: &[String], printed: &str) {
    let printed_collapsed = collapse(printed);
    for want in expect {
        assert!(printed_collapsed.contains(&collapse(want)), "{id}: the docs show {want:?}, it printed:\n{printed}");
    }
}

#[test]
fn every_shell_block_is_in_the_list() {
    let root = workspace_root();
    let entries = list::load(&std::fs::read_to_string(root.join(LIST)).unwrap());
    let blocks = blocks::all(&root);
    let mut problems = Vec::new();
    let listed = |b: &Block| entries.iter().any(|e| e.file == b.file && e.block == b.hash());
    for block in blocks.iter().filter(|b| !listed(b)) {
        let changed = entries.iter().find(|e| {
            e.file == block.file && e.first == block.first_line() && !blocks.iter().any(|b| b.hash() == e.block)
        });
        problems.push(match changed {
            Some(entry) => format!(
                "{}:{}: the block of entry `{}` changed: check its `how` still holds, then set `block: '{}'`",
                block.file,
                block.line,
                entry.id,
                block.hash()
            ),
            None => {
                format!("{}:{}: a shell block the list lacks; add:\n{}", block.file, block.line, list::template(block))
            }
        });
    }
    for entry in &entries {
        match blocks.iter().find(|b| b.file == entry.file && b.hash() == entry.block) {
            None if !blocks.iter().any(|b| b.file == entry.file && b.first_line() == entry.first) => {
                problems.push(format!("entry `{}`: no block of {} is its any more; remove it", entry.id, entry.file))
            }
            None => {}
            Some(block) => problems.extend(entries::problems(entry, block, &entries)),
        }
    }
    assert!(problems.is_empty(), "{LIST} does not match the docs:\n\n{}\n", problems.join("\n\n"));
}

/// The quick starts of different services can run at once: no two servers of different
/// programs document the same port.
#[test]
fn the_servers_of_different_programs_use_distinct_ports() {
    let servers: Vec<(Entry, Block)> =
        classified().into_iter().filter(|(e, _)| matches!(e.how, How::Serve { .. })).collect();
    for (a, a_block) in &servers {
        for (b, b_block) in &servers {
            let (How::Serve { ports: a_ports, .. }, How::Serve { ports: b_ports, .. }) = (&a.how, &b.how) else {
                continue;
            };
            if programs(&a_block.script) != programs(&b_block.script) {
                let shared: Vec<&u16> = a_ports.iter().filter(|p| b_ports.contains(p)).collect();
                assert!(shared.is_empty(), "`{}` and `{}` both use port(s) {shared:?}", a.id, b.id);
            }
        }
    }
}

/// The binaries every block runs through `cargo run -p`.
fn binaries(classified: &[(Entry, Block)]) -> Vec<String> {
    let mut names: Vec<String> = classified
        .iter()
        .flat_map(|(entry, block)| match &entry.how {
            How::Skip(Reason::Slow { cheap: Some(cheap) }) => programs(cheap),
            How::Skip(_) => Vec::new(),
            _ => programs(&block.script),
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn the_run_blocks_run_as_written() {
    let classified = classified();
    let scratch = Scratch::new(&binaries(&classified));
    let mut ran = 0;
    for (entry, block) in &classified {
        let (script, exit) = match &entry.how {
            How::Run => (block.script.clone(), entry.exit),
            How::Skip(Reason::Slow { cheap: Some(cheap) }) => (cheap.clone(), 0),
            _ => continue,
        };
        let (code, printed) = scratch.run(&entry.id, &script);
        assert_eq!(code, exit, "{} ({}:{}) exited {code}, not {exit}:\n{printed}", entry.id, block.file, block.line);
        assert_printed(&entry.id, &entry.expect, &printed);
        eprintln!("ran `{}` ({}:{}): exit {code}", entry.id, block.file, block.line);
        ran += 1;
    }
    assert!(ran > 0, "no block ran");
}

#[test]
fn the_servers_start_and_their_followers_answer() {
    let classified = classified();
    let scratch = Scratch::new(&binaries(&classified));
    // The servers still running, by program.
    let mut running: BTreeMap<String, Server> = BTreeMap::new();
    let mut started = 0;
    for (entry, block) in &classified {
        let How::Serve { ports, then } = &entry.how else { continue };
        let program = programs(&block.script).join(" ");
        running.retain(|other, server| {
            let shared = server.ports.iter().any(|p| ports.contains(p));
            assert!(!shared || *other == program, "`{}` and `{}` share a port", entry.id, server.name);
            !shared
        });
        let server = scratch.serve(&entry.id, &block.script, ports);
        for id in then {
            let (follower, follower_block) = classified.iter().find(|(e, _)| e.id == *id).expect("a listed follower");
            let (code, printed) = scratch.run(&format!("{}-after-{}", follower.id, entry.id), &follower_block.script);
            assert_eq!(
                code,
                follower.exit,
                "{id} after {}: exit {code}:\n{printed}\n{}:\n{}",
                entry.id,
                entry.id,
                server.printed()
            );
            assert_printed(id, &follower.expect, &printed);
            eprintln!("ran `{id}` against `{}` (ports {ports:?})", entry.id);
        }
        running.insert(program, server);
        started += 1;
    }
    assert!(started > 0, "no server started");
}

/// The names an example config's header lists under "Environment variables this file needs"
/// (after the sentence, which may run on: one indented `#   NAME  what it is` line each).
fn needed_variables(text: &str, file: &str) -> Vec<String> {
    let mut lines = text.lines().skip_while(|l| !l.starts_with("# Environment variables this file needs"));
    let header = lines.next().unwrap_or_else(|| panic!("{file}: no \"# Environment variables this file needs\" line"));
    if header.ends_with("none.") {
        return Vec::new();
    }
    let sentence_over = lines.skip_while(|l| l.starts_with("# ") && !l.starts_with("#   "));
    let listed = sentence_over.map_while(|l| l.strip_prefix("#   ")).filter_map(|l| l.split_whitespace().next());
    let names: Vec<String> =
        listed.filter(|w| w.chars().all(|c| c.is_ascii_uppercase() || c == '_')).map(String::from).collect();
    assert!(!names.is_empty(), "{file}: the header lists no variable (say `none.` when it needs none)");
    names
}

/// Each example under examples/ext-authz/ says which environment variables it needs, and those
/// are exactly what `ext-authz validate` wants: with them (and nothing else) it passes, without
/// any one of them it fails naming it.
#[test]
fn the_ext_authz_examples_name_every_variable_they_need() {
    let dir = workspace_root().join("examples/ext-authz");
    let binary = fresh_binary("ext-authz");
    let scratch = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        let needed = needed_variables(&text, &file);
        if !text.contains("\nroutes:") {
            assert!(needed.is_empty(), "{file}: not a config, yet it needs {needed:?}");
            continue;
        }
        // 32 bytes, base64: fits an HMAC secret and a session key alike.
        let value = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
        let validate = |without: Option<&str>| {
            let mut command = Command::new(&binary);
            command.arg("validate").arg(&path).env_clear();
            // The login example keeps revoked sessions under /var/lib/gatehouse, which a
            // development machine lacks: a scratch file instead (an environment override).
            if text.contains("revocations_file:") {
                let revocations = scratch.path().join("revocations.jsonl");
                command.env("EXT_AUTHZ__OIDC__SESSION__REVOCATIONS_FILE", revocations);
            }
            for name in needed.iter().filter(|n| Some(n.as_str()) != without) {
                command.env(name, value);
            }
            command.output().unwrap()
        };
        let all = validate(None);
        assert!(all.status.success(), "{file} with {needed:?}: {}", String::from_utf8_lossy(&all.stderr));
        for name in &needed {
            let output = validate(Some(name));
            let said = String::from_utf8_lossy(&output.stderr);
            assert!(!output.status.success() && said.contains(name.as_str()), "{file} without {name}: {said}");
        }
        checked += 1;
    }
    assert!(checked >= 2, "the two example configs");
}

//! The images' build context as `.dockerignore` shapes it (Docker's rules, in `dockerignore.rs`):
//! small, and holding every file the Dockerfile's build stage reads.

use std::path::Path;

use e2e::envoy::workspace_root;

use super::dockerignore;

/// Docker sends this much with each build; what it sent before `.dockerignore` kept out the
/// tools and packages was 72 MB here, and more on a machine with Node in `.tools/`.
const CONTEXT_LIMIT: u64 = 20_000_000;

#[test]
fn the_build_context_is_small_and_holds_what_the_build_reads() {
    let root = workspace_root();
    let rules = std::fs::read_to_string(root.join(".dockerignore")).unwrap();
    let rules = dockerignore::Rules::parse(&rules).unwrap_or_else(|e| panic!(".dockerignore: {e}"));
    let files = dockerignore::context(&root, &rules);
    let bytes: u64 = files.iter().map(|(_, size)| size).sum();
    println!("build context: {} files, {bytes} bytes", files.len());
    let mut biggest = files.clone();
    biggest.sort_by_key(|(_, size)| std::cmp::Reverse(*size));
    let biggest: Vec<_> = biggest.iter().take(5).collect();
    assert!(bytes < CONTEXT_LIMIT, "the build context is {bytes} bytes; the biggest files: {biggest:?}");

    // What cargo reads in the Dockerfile's build stage: the workspace's manifests, each member's
    // sources, and the files those include.
    let sent: std::collections::HashSet<&str> = files.iter().map(|(path, _)| path.as_str()).collect();
    let mut needed = vec!["Cargo.toml".to_string(), "Cargo.lock".to_string()];
    for member in workspace_members(&root) {
        needed.push(format!("{member}/Cargo.toml"));
        for source in files_below(&root, &format!("{member}/src")) {
            needed.extend(included_files(&root, &source));
            needed.push(source);
        }
    }
    needed.sort();
    needed.dedup();
    let missing: Vec<&String> = needed.iter().filter(|n| !sent.contains(n.as_str())).collect();
    assert!(missing.is_empty(), ".dockerignore keeps out what the build reads: {missing:?}");
}

/// `members = [...]` of the workspace's Cargo.toml.
fn workspace_members(root: &Path) -> Vec<String> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let list = manifest.split("members = [").nth(1).and_then(|r| r.split(']').next()).expect("workspace members");
    list.split(',').map(|m| m.trim().trim_matches('"').to_string()).filter(|m| !m.is_empty()).collect()
}

/// The `.rs` files below `dir` (relative to `root`).
fn files_below(root: &Path, dir: &str) -> Vec<String> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(root.join(dir)).unwrap() {
        let entry = entry.unwrap();
        let path = format!("{dir}/{}", entry.file_name().to_string_lossy());
        if entry.file_type().unwrap().is_dir() {
            files.extend(files_below(root, &path));
        } else if path.ends_with(".rs") {
            files.push(path);
        }
    }
    files
}

/// The files a source includes at compile time (`include_str!`, `include_bytes!`), relative to
/// the root.
fn included_files(root: &Path, source: &str) -> Vec<String> {
    let text = std::fs::read_to_string(root.join(source)).unwrap();
    let dir = Path::new(source).parent().unwrap();
    let mut found = Vec::new();
    let after = |marker| text.split(marker).skip(1);
    for part in after("include_str!(\"").chain(after("include_bytes!(\"")) {
        let relative = part.split('"').next().unwrap_or_default();
        let mut path = dir.to_path_buf();
        for segment in relative.split('/') {
            match segment {
                ".." => {
                    path.pop();
                }
                s => path.push(s),
            }
        }
        found.push(path.to_string_lossy().into_owned());
    }
    found
}

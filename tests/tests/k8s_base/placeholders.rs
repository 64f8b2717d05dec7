//! The placeholders of a kustomize tree — every YAML value containing [`MARKER`], named by file
//! and key — and the README's table and fill commands for them (README.md's for the base, an
//! overlay's own for the overlay).

use std::path::Path;
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

/// The one mark of a value the user must replace. It appears nowhere else in the tree (not in a
/// comment, not in a key), so `grep -rn change-me` lists exactly what is left to fill.
pub const MARKER: &str = "change-me";

/// Where README.md keeps the base's table and fill commands.
pub const BASE_SECTION: &str = "### Placeholders\n";
/// Where an overlay's README keeps its own.
pub const OVERLAY_SECTION: &str = "## Placeholders\n";

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Placeholder {
    /// Relative to the tree's root, with `/`.
    pub file: String,
    /// As ext-authz names keys (`jwt_providers[0].issuer`); in a file of several documents,
    /// prefixed with the object's `Kind/name: `.
    pub key: String,
}

impl std::fmt::Display for Placeholder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file, self.key)
    }
}

/// Every placeholder in the files under `dirs` (relative to `root`), in file and key order. A
/// marker anywhere but in a value is an error: `grep` would list it as a placeholder to fill.
/// Markdown is not read: an overlay's README names the marker in its fill step, and kustomize
/// applies no Markdown.
pub fn find(root: &Path, dirs: &[&str]) -> Result<Vec<Placeholder>, String> {
    let mut found = Vec::new();
    for dir in dirs {
        for path in files_under(&root.join(dir)) {
            let file = path.strip_prefix(root).expect("under the root").to_string_lossy().replace('\\', "/");
            if file.ends_with(".md") {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(|e| format!("{file}: {e}"))?;
            let mentions = text.matches(MARKER).count();
            if mentions == 0 {
                continue;
            }
            let mut in_values = 0;
            if file.ends_with(".yaml") || file.ends_with(".yml") {
                let documents = YamlLoader::load_from_str(&text).map_err(|e| format!("{file}: {e}"))?;
                let several = documents.len() > 1;
                for document in &documents {
                    let prefix = if several { object_name(document) } else { String::new() };
                    walk(document, &prefix, &mut |key, value| {
                        in_values += value.matches(MARKER).count();
                        found.push(Placeholder { file: file.clone(), key });
                    });
                }
            }
            if in_values != mentions {
                return Err(format!(
                    "{file}: `{MARKER}` appears outside a value ({mentions} mentions, {in_values} in values): \
                     `grep -rn {MARKER}` would list a comment or a key as a placeholder to fill"
                ));
            }
        }
    }
    found.sort();
    Ok(found)
}

/// `Ok` when no placeholder is left under `dirs`; otherwise one line per placeholder, naming the
/// file and the key to fill, and the README (`readme`) whose "Placeholders" says what goes there.
pub fn check_filled(root: &Path, dirs: &[&str], readme: &str) -> Result<(), String> {
    let left = find(root, dirs)?;
    if left.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = left
        .iter()
        .map(|p| format!("{p} is still a placeholder (`{MARKER}`): put your value there ({readme}, \"Placeholders\")"))
        .collect();
    Err(lines.join("\n"))
}

/// The rows of the placeholder table in a README's section `heading`, as (file, key); none when
/// the README has no such section.
pub fn documented(readme: &str, heading: &str) -> Vec<Placeholder> {
    let Some(section) = section(readme, heading) else { return Vec::new() };
    let mut rows: Vec<Placeholder> = section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(|c| c.trim().trim_matches('`')).collect();
            Placeholder { file: cells[1].to_string(), key: cells[2].to_string() }
        })
        .collect();
    rows.sort();
    rows
}

/// The README's fill commands: the first `sh` block of its placeholder section `heading`.
pub fn fill_commands(readme: &str, heading: &str) -> String {
    let section = section(readme, heading).unwrap_or_else(|| panic!("the README has no {heading:?} section"));
    let block = section.split("```sh\n").nth(1).expect("a sh block in the README's placeholder section");
    block.split("```").next().expect("the block's end").to_string()
}

/// From `heading` to the next heading.
fn section<'r>(readme: &'r str, heading: &str) -> Option<&'r str> {
    let start = readme.find(heading)?;
    let rest = &readme[start + heading.len()..];
    let end = ["\n## ", "\n### "].iter().filter_map(|h| rest.find(h)).min().unwrap_or(rest.len());
    Some(&rest[..end])
}

/// Runs a README's fill `commands` in `dir` as written, but for the lines that assign the
/// variables (`NAME=value  # yours`): those must be exactly the names of `values`, which are
/// given instead. The commands end by saying that no placeholder is left.
pub fn run_fill(dir: &Path, commands: &str, values: &[(&str, &str)]) {
    let assigns =
        |l: &&str| l.split_once('=').is_some_and(|(name, _)| name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'));
    let mut assigned: Vec<&str> = commands.lines().filter(assigns).filter_map(|l| l.split('=').next()).collect();
    let mut names: Vec<&str> = values.iter().map(|(name, _)| *name).collect();
    assigned.sort();
    names.sort();
    assert_eq!(assigned, names, "the variables the fill commands assign");
    let script: Vec<&str> = commands.lines().filter(|l| !assigns(l)).collect();
    let output = Command::new("sh")
        .arg("-euc")
        .arg(script.join("\n"))
        .current_dir(dir)
        .envs(values.iter().copied())
        .output()
        .expect("sh");
    assert!(output.status.success(), "the README's fill commands: {}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "no placeholder left\n");
}

/// `Kind/name: ` of a Kubernetes object, to tell the documents of one file apart.
fn object_name(document: &Yaml) -> String {
    let kind = document["kind"].as_str().unwrap_or("?");
    let name = document["metadata"]["name"].as_str().unwrap_or("?");
    format!("{kind}/{name}: ")
}

/// Calls `found(key, value)` for each string value containing the marker (a list of them once,
/// at the list's key: `audiences: [change-me]` is one placeholder).
fn walk(node: &Yaml, key: &str, found: &mut impl FnMut(String, &str)) {
    match node {
        Yaml::Hash(map) => {
            for (k, v) in map {
                let name = k.as_str().map_or_else(|| format!("{k:?}"), str::to_owned);
                let dot = if key.is_empty() || key.ends_with(' ') { "" } else { "." };
                walk(v, &format!("{key}{dot}{name}"), found);
            }
        }
        Yaml::Array(items) if items.iter().all(|i| matches!(i, Yaml::String(_))) => {
            let joined: Vec<&str> = items.iter().filter_map(Yaml::as_str).collect();
            let joined = joined.join(" ");
            if joined.contains(MARKER) {
                found(key.to_string(), &joined);
            }
        }
        Yaml::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &format!("{key}[{i}]"), found);
            }
        }
        Yaml::String(value) if value.contains(MARKER) => found(key.to_string(), value),
        _ => {}
    }
}

/// Every file below `dir`, sorted.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

//! The layering rule, checked: no import circles among a crate's modules.
//!
//! Each source file is a module (`src/a/b.rs` is `a::b`). A module depends on another when it
//! names it through `crate::…` or `super::…`. The rule holds among siblings, at every level: for
//! the children of one module (the crate's top-level modules, `core`'s modules, …), each child
//! standing for itself and everything below it, the dependencies between them form no circle.
//! A parent and its own children are one unit (the parent is their facade: it declares and
//! re-exports them, they use its shared types), so edges between them are not circles.
//! Test modules (`tests.rs` files, and a trailing `#[cfg(test)] mod tests`) are left out: tests
//! may reach anywhere. A circle means modules that can only be understood and changed
//! together; the check names every circle it finds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

fn module_of(src: &Path, file: &Path) -> Option<Module> {
    let relative = file.strip_prefix(src).ok()?;
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop()?;
    let stem = last.strip_suffix(".rs")?;
    if parts.first().map(String::as_str) == Some("bin") || stem == "tests" {
        return None;
    }
    match stem {
        "lib" | "main" if parts.is_empty() => {}
        "mod" => {}
        other => parts.push(other.to_string()),
    }
    Some(parts)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without comments and without its trailing test module.
fn code_of(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut end = lines.len();
    for (i, line) in lines.iter().enumerate() {
        let next = lines[i + 1..].iter().find(|l| !l.trim().is_empty()).map(|l| l.trim());
        if line.trim() == "#[cfg(test)]" && next.is_some_and(|n| n.starts_with("mod tests")) {
            end = i;
            break;
        }
    }
    lines[..end]
        .iter()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path a `use` tree starting at `text` spells out: `a::{b, c::{d, e}}` gives `a::b`,
/// `a::c::d`, `a::c::e`.
fn expand_paths(text: &str) -> Vec<Vec<String>> {
    fn tree(chars: &[char], at: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
        let mut path = prefix;
        loop {
            if chars.get(*at) == Some(&'{') {
                *at += 1;
                loop {
                    while chars.get(*at).is_some_and(|c| c.is_whitespace() || *c == ',') {
                        *at += 1;
                    }
                    if chars.get(*at).is_none_or(|c| *c == '}') {
                        *at += 1;
                        return;
                    }
                    tree(chars, at, path.clone(), out);
                    // Skip `as name` and anything else up to the next item.
                    while chars.get(*at).is_some_and(|c| *c != ',' && *c != '}') {
                        *at += 1;
                    }
                }
            }
            let start = *at;
            while *at < chars.len() && (chars[*at].is_alphanumeric() || chars[*at] == '_') {
                *at += 1;
            }
            let ident: String = chars[start..*at].iter().collect();
            if !ident.is_empty() && ident != "self" {
                path.push(ident);
            }
            if chars[*at..].starts_with(&[':', ':']) {
                *at += 2;
                continue;
            }
            out.push(path);
            return;
        }
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    tree(&chars, &mut 0, Vec::new(), &mut out);
    out
}

/// The modules `code` (of module `here`) depends on, resolved against the crate's modules.
fn dependencies(here: &Module, code: &str, modules: &BTreeSet<Module>) -> BTreeSet<Module> {
    let mut found = BTreeSet::new();
    let mut resolve = |mut path: Vec<String>| {
        while !path.is_empty() {
            if modules.contains(&path) {
                if &path != here {
                    found.insert(path);
                }
                return;
            }
            path.pop();
        }
    };
    let bytes = code.as_bytes();
    for (at, _) in code.match_indices("crate::") {
        if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_' || bytes[at - 1] == b'$') {
            continue;
        }
        for path in expand_paths(&code[at + "crate::".len()..]) {
            resolve(path);
        }
    }
    for (at, _) in code.match_indices("super::") {
        if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_' || bytes[at - 1] == b':') {
            continue;
        }
        let mut base = here.clone();
        let mut rest = &code[at..];
        while let Some(after) = rest.strip_prefix("super::") {
            base.pop();
            rest = after;
        }
        for path in expand_paths(rest) {
            resolve(base.iter().cloned().chain(path).collect());
        }
    }
    found
}

/// Every import circle among the modules of the crate at `src`, each as `a -> b -> a`.
fn circles(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeMap<Module, PathBuf> =
        files.into_iter().filter_map(|f| module_of(src, &f).map(|m| (m, f))).collect();
    let names: BTreeSet<Module> = modules.keys().cloned().collect();
    let graph: BTreeMap<Module, BTreeSet<Module>> = modules
        .iter()
        .map(|(module, file)| {
            let code = code_of(&std::fs::read_to_string(file).unwrap());
            (module.clone(), dependencies(module, &code, &names))
        })
        .collect();
    let mut found = BTreeSet::new();
    for parent in graph.keys() {
        // The child of `parent` that `module` is, or lies under.
        let child_of = |module: &Module| -> Option<Module> {
            (module.len() > parent.len() && module.starts_with(parent)).then(|| module[..parent.len() + 1].to_vec())
        };
        let mut siblings: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
        for (from, targets) in &graph {
            let Some(from) = child_of(from) else { continue };
            for to in targets.iter().filter_map(child_of) {
                if to != from {
                    siblings.entry(from.clone()).or_default().insert(to);
                }
            }
        }
        // For each edge a -> b, a circle exists when a is reachable from b; report the shortest.
        for (from, targets) in &siblings {
            for to in targets {
                if let Some(back) = shortest_path(&siblings, to, from) {
                    let mut ring: Vec<&Module> = vec![from];
                    ring.extend(back.iter().take(back.len() - 1));
                    // One spelling per circle: start at its smallest module.
                    let start = ring.iter().enumerate().min_by_key(|(_, m)| **m).map(|(i, _)| i).unwrap();
                    let mut names: Vec<String> =
                        (0..ring.len()).map(|i| display(ring[(start + i) % ring.len()])).collect();
                    names.push(names[0].clone());
                    found.insert(names.join(" -> "));
                }
            }
        }
    }
    found.into_iter().collect()
}

fn shortest_path(graph: &BTreeMap<Module, BTreeSet<Module>>, from: &Module, to: &Module) -> Option<Vec<Module>> {
    let mut previous: BTreeMap<Module, Module> = BTreeMap::new();
    let mut frontier = vec![from.clone()];
    let mut seen: BTreeSet<Module> = [from.clone()].into();
    while !frontier.is_empty() {
        let mut next = Vec::new();
        for node in frontier {
            if &node == to {
                let mut path = vec![node.clone()];
                let mut at = node;
                while let Some(p) = previous.get(&at) {
                    path.push(p.clone());
                    at = p.clone();
                }
                path.reverse();
                return Some(path);
            }
            for target in graph.get(&node).into_iter().flatten() {
                if seen.insert(target.clone()) {
                    previous.insert(target.clone(), node.clone());
                    next.push(target.clone());
                }
            }
        }
        frontier = next;
    }
    None
}

fn display(module: &Module) -> String {
    if module.is_empty() {
        "crate".into()
    } else {
        module.join("::")
    }
}

fn check(crate_dir: &str) {
    let src = shared::testing::workspace_root().join(crate_dir).join("src");
    let found = circles(&src);
    assert!(found.is_empty(), "import circles among {crate_dir}'s modules:\n  {}", found.join("\n  "));
}

#[test]
fn ratelimit_has_no_import_circles() {
    check("ratelimit");
}

#[test]
fn ext_authz_has_no_import_circles() {
    check("ext-authz");
}

#[test]
fn shared_has_no_import_circles() {
    check("shared");
}

/// The checker itself finds a planted circle (so a clean result means something).
#[test]
fn a_planted_circle_is_found() {
    let dir = std::env::temp_dir().join(format!("architecture-{}", std::process::id()));
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("core")).unwrap();
    std::fs::write(src.join("lib.rs"), "pub mod a;\npub mod b;\npub mod core;\n").unwrap();
    std::fs::write(src.join("a.rs"), "use crate::{b::B, core::unit::Unit};\npub struct A;\n").unwrap();
    std::fs::write(src.join("b.rs"), "pub struct B;\nfn f() -> crate::a::A { crate::a::A }\n").unwrap();
    std::fs::write(src.join("core.rs"), "pub mod unit;\npub use unit::Unit;\n").unwrap();
    std::fs::write(
        src.join("core/unit.rs"),
        "// crate::a is only named in a comment\npub struct Unit;\n#[cfg(test)]\nmod tests {\n    use crate::a::A;\n}\n",
    )
    .unwrap();
    assert_eq!(circles(&src), vec!["a -> b -> a".to_string()]);
    std::fs::write(src.join("core/unit.rs"), "pub struct Unit;\nfn g() { let _ = super::super::b::B; }\n").unwrap();
    std::fs::write(src.join("b.rs"), "pub struct B;\n").unwrap();
    assert_eq!(circles(&src), Vec::<String>::new());
    std::fs::write(src.join("b.rs"), "use crate::core::Unit;\npub struct B;\n").unwrap();
    std::fs::write(src.join("core/unit.rs"), "pub struct Unit;\nuse crate::a::A;\n").unwrap();
    assert_eq!(circles(&src), vec!["a -> b -> core -> a".to_string(), "a -> core -> a".to_string()]);
    // A parent and its own child using each other is not a circle.
    std::fs::write(src.join("core/unit.rs"), "pub struct Unit;\nuse super::Unit as U;\n").unwrap();
    std::fs::write(src.join("b.rs"), "pub struct B;\n").unwrap();
    assert_eq!(circles(&src), Vec::<String>::new());
    std::fs::remove_dir_all(&dir).unwrap();
}

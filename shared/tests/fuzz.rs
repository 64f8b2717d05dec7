//! Property tests of the YAML bounds every file goes through before any tree is built: the
//! check never panics, and what it lets through really is within the bounds once a YAML
//! library expands it. `scripts/fuzz.sh` runs it for longer.

#[path = "../fuzz/input.rs"]
mod input;

use proptest::prelude::*;
use shared::bounded_yaml::{check, YamlLimits};
use yaml_rust2::{Yaml, YamlLoader};

const LIMITS: YamlLimits =
    YamlLimits { max_bytes: 64 << 10, max_depth: 16, max_alias_nodes: 500, max_alias_bytes: 16 << 10 };

/// What a loaded document holds, aliases expanded (as every tree builder does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Extent {
    nodes: u64,
    depth: usize,
    /// Bytes of scalar text.
    bytes: u64,
}

fn extent(yaml: &Yaml) -> Extent {
    let collection = |children: Vec<Extent>| {
        children.into_iter().fold(Extent { nodes: 1, depth: 1, bytes: 0 }, |e, c| Extent {
            nodes: e.nodes + c.nodes,
            depth: e.depth.max(c.depth + 1),
            bytes: e.bytes + c.bytes,
        })
    };
    match yaml {
        Yaml::Array(items) => collection(items.iter().map(extent).collect()),
        Yaml::Hash(map) => collection(map.iter().flat_map(|(k, v)| [extent(k), extent(v)]).collect()),
        Yaml::String(s) | Yaml::Real(s) => Extent { nodes: 1, depth: 0, bytes: s.len() as u64 },
        Yaml::Integer(i) => Extent { nodes: 1, depth: 0, bytes: i.to_string().len() as u64 },
        Yaml::Boolean(b) => Extent { nodes: 1, depth: 0, bytes: b.to_string().len() as u64 },
        _ => Extent { nodes: 1, depth: 0, bytes: 4 },
    }
}

/// A generated document of anchors built on each other: each anchor is a string of some
/// length, or a list of aliases to earlier anchors; the document's last key lists aliases to
/// any of them. Returns the text, the bytes of scalar text it expands to and what its aliases
/// add (nodes, bytes), computed from the structure alone.
fn alias_structure(anchors: &[(usize, Vec<usize>)], top: &[usize]) -> (String, u64, Extent) {
    let mut yaml = String::new();
    let mut sizes: Vec<Extent> = Vec::new();
    let (mut bytes, mut added) = (0, Extent { nodes: 0, depth: 0, bytes: 0 });
    // Writes `{head} [*a…, …]` and counts what its aliases add.
    let mut list = |yaml: &mut String, head: &str, refs: &[usize], sizes: &[Extent]| {
        let aliases: Vec<String> = refs.iter().map(|r| format!("*a{r}")).collect();
        yaml.push_str(&format!("{head} [{}]\n", aliases.join(", ")));
        let value = refs.iter().fold(Extent { nodes: 1, depth: 1, bytes: 0 }, |e, r| Extent {
            nodes: e.nodes + sizes[*r].nodes,
            depth: e.depth.max(sizes[*r].depth + 1),
            bytes: e.bytes + sizes[*r].bytes,
        });
        added.nodes += value.nodes - 1;
        added.bytes += value.bytes;
        value
    };
    for (i, (length, refs)) in anchors.iter().enumerate() {
        let key = format!("a{i}");
        let refs: Vec<usize> = if i == 0 { Vec::new() } else { refs.iter().map(|r| r % i).collect() };
        let value = if refs.is_empty() {
            yaml.push_str(&format!("{key}: &{key} {}\n", "x".repeat(*length)));
            Extent { nodes: 1, depth: 0, bytes: *length as u64 }
        } else {
            list(&mut yaml, &format!("{key}: &{key}"), &refs, &sizes)
        };
        bytes += key.len() as u64 + value.bytes;
        sizes.push(value);
    }
    let refs: Vec<usize> = top.iter().map(|r| r % sizes.len()).collect();
    bytes += 3 + list(&mut yaml, "top:", &refs, &sizes).bytes;
    (yaml, bytes, added)
}

fn samples() -> Vec<String> {
    vec![
        "base: &b {unit: second, requests_per_unit: 5}\nx: *b\ny: [*b, *b]\n".into(),
        "a: &a [1, 2, [3, &c [4]]]\nb: [*a, *a, *c]\nc: {k: *a}\n".into(),
        "x0: &x0 [l, l, l]\nx1: &x1 [*x0, *x0, *x0]\nx2: &x2 [*x1, *x1, *x1]\nx3: [*x2, *x2, *x2]\n".into(),
        format!("s: &s {}\nx: [*s, *s, *s, *s, *s, *s, *s, *s, *s]\n", "y".repeat(4000)),
        format!("deep: {}1{}\n", "[".repeat(15), "]".repeat(15)),
    ]
}

proptest! {
    #[test]
    fn checked_yaml_stays_within_its_bounds(text in input::text(samples(), input::YAML_TOKENS)) {
        if check(&text, LIMITS).is_ok() {
            let written = text.matches(['[', '{', ':', ',', '-']).count() as u64 + 64;
            if let Ok(documents) = YamlLoader::load_from_str(&text) {
                for document in &documents {
                    let Extent { nodes, depth, bytes } = extent(document);
                    prop_assert!(depth <= LIMITS.max_depth + 1, "depth {} of {:?}", depth, text);
                    // What aliases add is bounded; the rest is what was written.
                    prop_assert!(nodes <= LIMITS.max_alias_nodes + 2 * text.len() as u64 + written, "{} nodes", nodes);
                    prop_assert!(bytes <= LIMITS.max_alias_bytes + 4 * text.len() as u64 + 64, "{} bytes", bytes);
                }
            }
        }
    }
}

proptest! {
    /// Memory stays bounded whatever the aliases: a checked document of anchors built on
    /// anchors expands to at most the file's own text and nodes plus the alias bounds (here
    /// 16 KiB and 500 nodes), and every document within the bounds is accepted: the bound is
    /// exact, not a guess that refuses honest files.
    #[test]
    fn alias_structures_expand_within_the_stated_bound(
        anchors in proptest::collection::vec((1usize..3000, proptest::collection::vec(0usize..64, 0..6)), 1..8),
        top in proptest::collection::vec(0usize..64, 1..12),
    ) {
        let (text, bytes, added) = alias_structure(&anchors, &top);
        let within = added.nodes <= LIMITS.max_alias_nodes && added.bytes <= LIMITS.max_alias_bytes;
        prop_assert_eq!(check(&text, LIMITS).is_ok(), within, "{:?} adds {:?}", text, added);
        if within {
            let documents = YamlLoader::load_from_str(&text).expect("a checked text loads");
            let loaded = extent(&documents[0]);
            prop_assert_eq!(loaded.bytes, bytes, "the model is right: {:?}", text);
            prop_assert!(loaded.bytes <= text.len() as u64 + LIMITS.max_alias_bytes, "{} bytes", loaded.bytes);
        }
    }
}

//! Property tests of the YAML bounds every file goes through before any tree is built: the
//! check never panics, and what it lets through really is within the bounds once a YAML
//! library expands it. `scripts/fuzz.sh` runs it for longer.

#[path = "../fuzz/input.rs"]
mod input;

use proptest::prelude::*;
use shared::bounded_yaml::{check, YamlLimits};
use yaml_rust2::{Yaml, YamlLoader};

const LIMITS: YamlLimits = YamlLimits { max_bytes: 64 << 10, max_depth: 16, max_alias_nodes: 500 };

/// Nodes and depth of a loaded document, aliases expanded (as every tree builder does).
fn extent(yaml: &Yaml) -> (u64, usize) {
    match yaml {
        Yaml::Array(items) => items.iter().map(extent).fold((1, 1), |(n, d), (cn, cd)| (n + cn, d.max(cd + 1))),
        Yaml::Hash(map) => map
            .iter()
            .flat_map(|(k, v)| [extent(k), extent(v)])
            .fold((1, 1), |(n, d), (cn, cd)| (n + cn, d.max(cd + 1))),
        _ => (1, 0),
    }
}

fn samples() -> Vec<String> {
    vec![
        "base: &b {unit: second, requests_per_unit: 5}\nx: *b\ny: [*b, *b]\n".into(),
        "a: &a [1, 2, [3, &c [4]]]\nb: [*a, *a, *c]\nc: {k: *a}\n".into(),
        "x0: &x0 [l, l, l]\nx1: &x1 [*x0, *x0, *x0]\nx2: &x2 [*x1, *x1, *x1]\nx3: [*x2, *x2, *x2]\n".into(),
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
                    let (nodes, depth) = extent(document);
                    prop_assert!(depth <= LIMITS.max_depth + 1, "depth {} of {:?}", depth, text);
                    // What aliases add is bounded; the rest is what was written.
                    prop_assert!(nodes <= LIMITS.max_alias_nodes + 2 * text.len() as u64 + written, "{} nodes", nodes);
                }
            }
        }
    }
}

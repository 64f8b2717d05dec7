//! YAML documents as `serde_json` values, for tests that read Kubernetes objects (a rendered
//! kustomization, a README's snippet) with JSON indexing: `object["spec"]["rules"]`.

use serde_json::Value;
use yaml_rust2::Yaml;

/// `yaml` as JSON. A non-string key becomes its debug text; numbers written as reals stay the
/// text they were written as (no rounding through `f64`); aliases and nulls become `null`.
pub fn to_json(yaml: &Yaml) -> Value {
    match yaml {
        Yaml::Hash(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.as_str().map(str::to_owned).unwrap_or_else(|| format!("{k:?}")), to_json(v)))
                .collect(),
        ),
        Yaml::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        Yaml::String(s) | Yaml::Real(s) => Value::String(s.clone()),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::Boolean(b) => Value::Bool(*b),
        _ => Value::Null,
    }
}

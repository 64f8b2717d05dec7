//! One config file, parsed and checked the way the reference checks it: YAML syntax, then the
//! key whitelist over the whole document, then the typed decode. Error texts are the reference's.
//! The tree-level rules (empty key, duplicates, units, replaces) live in `config.rs`.

use super::yaml::{parse_first_document, Node, NodeKind, Scalar};

/// Every key the reference accepts, anywhere in the document. The list is global, not per level
/// (a known key in the wrong place is accepted and ignored), because drop-in users rely on that:
/// Envoy Gateway's generated files carry a top-level `name:`.
const VALID_KEYS: &[&str] = &[
    "domain",
    "key",
    "value",
    "descriptors",
    "rate_limit",
    "unit",
    "requests_per_unit",
    "unlimited",
    "shadow_mode",
    "quota_mode",
    "name",
    "replaces",
    "detailed_metric",
    "value_to_metric",
    "share_threshold",
    "metadata",
];

/// Gatehouse's own keys (inside `rate_limit`): the reference refuses a file that has them, so a
/// file without them stays loadable by both. `ratelimit validate --reference` checks for them.
pub const EXTENSION_KEYS: &[&str] = &["algorithm", "burst"];

#[derive(Debug, Clone, Default, PartialEq)]
pub struct YamlRoot {
    pub domain: String,
    pub descriptors: Vec<YamlDescriptor>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct YamlDescriptor {
    pub key: String,
    pub value: String,
    pub rate_limit: Option<YamlRateLimit>,
    pub descriptors: Vec<YamlDescriptor>,
    pub shadow_mode: bool,
    pub quota_mode: bool,
    pub detailed_metric: bool,
    pub value_to_metric: bool,
    pub share_threshold: bool,
    /// Free-form metadata, returned in dynamic metadata; never inspected by the whitelist.
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// Set when `metadata` is present but cannot become a protobuf Struct.
    pub metadata_error: Option<MetadataError>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct YamlRateLimit {
    pub requests_per_unit: u32,
    pub unit: String,
    pub unlimited: bool,
    pub name: String,
    pub replaces: Vec<String>,
    /// Extension: `fixed_window` (default), `sliding_window`, `token_bucket`.
    pub algorithm: String,
    /// Extension: a token bucket's capacity.
    pub burst: Option<u32>,
}

/// Why a file is refused, displayed as the reference's text (without the file-name prefix,
/// which [`super::config::ConfigError`] adds): users and tools match on these texts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// Not YAML, or beyond the reader's bounds.
    #[error("error loading config file: {0}")]
    Yaml(#[from] super::yaml::YamlError),
    /// Values of the wrong type, one line each (`line N: cannot unmarshal ...`).
    #[error("error loading config file: yaml: unmarshal errors:\n  {}", .0.join("\n  "))]
    Unmarshal(Vec<String>),
    #[error("config error, key is not of type string: {0}")]
    KeyNotString(String),
    #[error("config error, unknown key '{0}'")]
    UnknownKey(String),
    #[error("config error, yaml file contains list of type other than map: {0}")]
    ListOfNonMap(String),
    /// A scalar of a kind the reference's key check refuses (e.g. a float).
    #[error("error checking config")]
    UnexpectedScalar,
}

/// Why a descriptor's `metadata` cannot become the protobuf Struct it is returned as.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata must be a map, found {0}")]
    NotAMap(String),
    #[error("line {line}: {value} is not a number a Struct can hold")]
    NotANumber { line: usize, value: String },
    #[error("line {line}: map key {key} is not a string")]
    KeyNotString { line: usize, key: String },
}

/// Parses one file's content.
pub fn parse_config_file(content: &str) -> Result<YamlRoot, FileError> {
    parse_with_keys(content, false)
}

/// Parses a file as the reference would: Gatehouse's extension keys are unknown keys.
pub fn parse_as_reference(content: &str) -> Result<YamlRoot, FileError> {
    parse_with_keys(content, true)
}

fn parse_with_keys(content: &str, reference_only: bool) -> Result<YamlRoot, FileError> {
    let document = parse_first_document(content)?;
    let Some(document) = document else {
        return Ok(YamlRoot::default());
    };
    let entries = match &document.kind {
        NodeKind::Map(entries) => entries,
        NodeKind::Scalar { value: Scalar::Null, .. } => return Ok(YamlRoot::default()),
        _ => return Err(FileError::Unmarshal(vec![type_error(&document, "map[interface {}]interface {}")])),
    };
    validate_keys(entries, reference_only)?;
    let mut decoder = Decoder::default();
    let root = decoder.root(entries);
    if decoder.errors.is_empty() {
        Ok(root)
    } else {
        Err(FileError::Unmarshal(decoder.errors))
    }
}

fn validate_keys(entries: &[(Node, Node)], reference_only: bool) -> Result<(), FileError> {
    for (key, value) in entries {
        let name = match &key.kind {
            NodeKind::Scalar { value: Scalar::Str(name), .. } => name,
            _ => return Err(FileError::KeyNotString(key.go_display())),
        };
        let extension = !reference_only && EXTENSION_KEYS.contains(&name.as_str());
        if !VALID_KEYS.contains(&name.as_str()) && !extension {
            return Err(FileError::UnknownKey(name.clone()));
        }
        if name == "metadata" {
            continue;
        }
        match &value.kind {
            NodeKind::Seq(items) => {
                for item in items {
                    match &item.kind {
                        NodeKind::Map(inner) => validate_keys(inner, reference_only)?,
                        _ => return Err(FileError::ListOfNonMap(item.go_display())),
                    }
                }
            }
            NodeKind::Map(inner) => validate_keys(inner, reference_only)?,
            NodeKind::Scalar { value: Scalar::Str(_) | Scalar::Int(_) | Scalar::Bool(_) | Scalar::Null, .. } => {}
            NodeKind::Scalar { .. } => return Err(FileError::UnexpectedScalar),
        }
    }
    Ok(())
}

/// The reference's decoding error: `line N: cannot unmarshal !!tag `value` into <Go type>`.
fn type_error(node: &Node, go_type: &str) -> String {
    let shown = match &node.kind {
        NodeKind::Scalar { text, .. } if text.chars().count() > 10 => {
            format!(" `{}...`", text.chars().take(7).collect::<String>())
        }
        NodeKind::Scalar { text, .. } => format!(" `{text}`"),
        _ => String::new(),
    };
    format!("line {}: cannot unmarshal {}{shown} into {go_type}", node.line, node.short_tag())
}

/// Decodes into the typed model, collecting every type error as the reference does.
#[derive(Default)]
struct Decoder {
    errors: Vec<String>,
}

impl Decoder {
    fn root(&mut self, entries: &[(Node, Node)]) -> YamlRoot {
        let mut root = YamlRoot::default();
        for (key, value) in string_keyed(entries) {
            match key {
                "domain" => root.domain = self.string(value),
                "descriptors" => root.descriptors = self.descriptors(value),
                _ => {}
            }
        }
        root
    }

    fn descriptors(&mut self, node: &Node) -> Vec<YamlDescriptor> {
        match &node.kind {
            NodeKind::Seq(items) => items.iter().filter_map(|item| self.descriptor(item)).collect(),
            NodeKind::Scalar { value: Scalar::Null, .. } => Vec::new(),
            _ => {
                self.errors.push(type_error(node, "[]config.YamlDescriptor"));
                Vec::new()
            }
        }
    }

    fn descriptor(&mut self, node: &Node) -> Option<YamlDescriptor> {
        let entries = match &node.kind {
            NodeKind::Map(entries) => entries,
            NodeKind::Scalar { value: Scalar::Null, .. } => return Some(YamlDescriptor::default()),
            _ => {
                self.errors.push(type_error(node, "config.YamlDescriptor"));
                return None;
            }
        };
        let mut descriptor = YamlDescriptor::default();
        for (key, value) in string_keyed(entries) {
            match key {
                "key" => descriptor.key = self.string(value),
                "value" => descriptor.value = self.string(value),
                "rate_limit" => descriptor.rate_limit = self.rate_limit(value),
                "descriptors" => descriptor.descriptors = self.descriptors(value),
                "shadow_mode" => descriptor.shadow_mode = self.boolean(value),
                "quota_mode" => descriptor.quota_mode = self.boolean(value),
                "detailed_metric" => descriptor.detailed_metric = self.boolean(value),
                "value_to_metric" => descriptor.value_to_metric = self.boolean(value),
                "share_threshold" => descriptor.share_threshold = self.boolean(value),
                "metadata" => match metadata_map(value) {
                    Ok(map) => descriptor.metadata = map,
                    Err(e) => descriptor.metadata_error = Some(e),
                },
                _ => {}
            }
        }
        Some(descriptor)
    }

    fn rate_limit(&mut self, node: &Node) -> Option<YamlRateLimit> {
        let entries = match &node.kind {
            NodeKind::Map(entries) => entries,
            // `rate_limit: null` (Envoy Gateway writes it) means "no limit here".
            NodeKind::Scalar { value: Scalar::Null, .. } => return None,
            _ => {
                self.errors.push(type_error(node, "config.YamlRateLimit"));
                return None;
            }
        };
        let mut limit = YamlRateLimit::default();
        for (key, value) in string_keyed(entries) {
            match key {
                "requests_per_unit" => limit.requests_per_unit = self.uint32(value),
                "unit" => limit.unit = self.string(value),
                "unlimited" => limit.unlimited = self.boolean(value),
                "name" => limit.name = self.string(value),
                "replaces" => limit.replaces = self.replaces(value),
                "algorithm" => limit.algorithm = self.string(value),
                "burst" => limit.burst = Some(self.uint32(value)),
                _ => {}
            }
        }
        Some(limit)
    }

    fn replaces(&mut self, node: &Node) -> Vec<String> {
        let items = match &node.kind {
            NodeKind::Seq(items) => items,
            NodeKind::Scalar { value: Scalar::Null, .. } => return Vec::new(),
            _ => {
                self.errors.push(type_error(node, "[]config.yamlReplaces"));
                return Vec::new();
            }
        };
        let mut names = Vec::new();
        for item in items {
            match &item.kind {
                NodeKind::Map(entries) => {
                    let mut name = String::new();
                    for (key, value) in string_keyed(entries) {
                        if key == "name" {
                            name = self.string(value);
                        }
                    }
                    names.push(name);
                }
                NodeKind::Scalar { value: Scalar::Null, .. } => names.push(String::new()),
                _ => self.errors.push(type_error(item, "config.yamlReplaces")),
            }
        }
        names
    }

    fn string(&mut self, node: &Node) -> String {
        match &node.kind {
            NodeKind::Scalar { value: Scalar::Null, .. } => String::new(),
            NodeKind::Scalar { text, .. } => text.clone(),
            _ => {
                self.errors.push(type_error(node, "string"));
                String::new()
            }
        }
    }

    fn boolean(&mut self, node: &Node) -> bool {
        match &node.kind {
            NodeKind::Scalar { value: Scalar::Bool(b), .. } => *b,
            NodeKind::Scalar { value: Scalar::Null, .. } => false,
            _ => {
                self.errors.push(type_error(node, "bool"));
                false
            }
        }
    }

    fn uint32(&mut self, node: &Node) -> u32 {
        match &node.kind {
            NodeKind::Scalar { value: Scalar::Int(i), .. } if u32::try_from(*i).is_ok() => *i as u32,
            NodeKind::Scalar { value: Scalar::Null, .. } => 0,
            _ => {
                self.errors.push(type_error(node, "uint32"));
                0
            }
        }
    }
}

/// Map entries with string keys; duplicate keys are not an error (the last one wins, because
/// later entries overwrite earlier ones as the decoder walks them in order).
fn string_keyed(entries: &[(Node, Node)]) -> impl Iterator<Item = (&str, &Node)> {
    entries.iter().filter_map(|(key, value)| match &key.kind {
        NodeKind::Scalar { text, value: Scalar::Str(_) } => Some((text.as_str(), value)),
        _ => None,
    })
}

fn metadata_map(node: &Node) -> Result<Option<serde_json::Map<String, serde_json::Value>>, MetadataError> {
    match to_json(node)? {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::Object(map) => Ok(Some(map)),
        other => Err(MetadataError::NotAMap(other.to_string())),
    }
}

/// Converts a node to a JSON value that a protobuf Struct can carry (string keys only).
fn to_json(node: &Node) -> Result<serde_json::Value, MetadataError> {
    use serde_json::Value;
    Ok(match &node.kind {
        NodeKind::Scalar { value, .. } => match value {
            Scalar::Null => Value::Null,
            Scalar::Bool(b) => Value::Bool(*b),
            Scalar::Int(i) => Value::from(*i),
            Scalar::Uint(u) => Value::from(*u),
            Scalar::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .ok_or_else(|| MetadataError::NotANumber { line: node.line, value: f.to_string() })?,
            Scalar::Str(s) => Value::String(s.clone()),
        },
        NodeKind::Seq(items) => Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        NodeKind::Map(entries) => {
            let mut map = serde_json::Map::new();
            for (key, value) in entries {
                let NodeKind::Scalar { value: Scalar::Str(name), .. } = &key.kind else {
                    return Err(MetadataError::KeyNotString { line: key.line, key: key.go_display() });
                };
                map.insert(name.clone(), to_json(value)?);
            }
            Value::Object(map)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(content: &str) -> String {
        parse_config_file(content).unwrap_err().to_string()
    }

    #[test]
    fn decodes_a_full_descriptor() {
        let root = parse_config_file(
            "domain: d\ndescriptors:\n  - key: k\n    value: 123\n    shadow_mode: yes\n    rate_limit:\n      unit: Minute\n      requests_per_unit: 5\n      name: n\n      replaces:\n        - name: other\n    metadata:\n      a: {b: 1.5}\n",
        )
        .unwrap();
        assert_eq!(root.domain, "d");
        let d = &root.descriptors[0];
        assert_eq!((d.key.as_str(), d.value.as_str(), d.shadow_mode), ("k", "123", true));
        let limit = d.rate_limit.as_ref().unwrap();
        assert_eq!((limit.unit.as_str(), limit.requests_per_unit), ("Minute", 5));
        assert_eq!(limit.replaces, vec!["other".to_string()]);
        assert_eq!(d.metadata.as_ref().unwrap()["a"]["b"], serde_json::json!(1.5));
    }

    #[test]
    fn whitelist_errors_are_the_references() {
        assert_eq!(error("domain: d\nfoo: 1\n"), "config error, unknown key 'foo'");
        assert_eq!(error("domain: d\n0.25: 1\n"), "config error, key is not of type string: 0.25");
        assert_eq!(
            error("domain: d\ndescriptors:\n  - foo\n"),
            "config error, yaml file contains list of type other than map: foo"
        );
        assert_eq!(error("domain: d\ndescriptors:\n  - key: k\n    value: 1.5\n"), "error checking config");
        // Known keys in the wrong place pass, as with the reference.
        assert!(parse_config_file("name: eg\ndomain: d\ndescriptors:\n  - key: k\n    rate_limit: null\n").is_ok());
    }

    #[test]
    fn decode_errors_name_the_line_and_type() {
        assert_eq!(
            error("domain: d\ndescriptors:\n  - key: k\n    rate_limit:\n      unit: second\n      requests_per_unit: -1\n"),
            "error loading config file: yaml: unmarshal errors:\n  line 6: cannot unmarshal !!int `-1` into uint32"
        );
        assert_eq!(
            error("domain: d\ndescriptors:\n  - key: k\n    rate_limit:\n      requests_per_unit: \"5\"\n    shadow_mode: \"true\"\n"),
            "error loading config file: yaml: unmarshal errors:\n  line 5: cannot unmarshal !!str `5` into uint32\n  line 6: cannot unmarshal !!str `true` into bool"
        );
        assert_eq!(
            error("domain: d\ndescriptors:\n  key: k\n"),
            "error loading config file: yaml: unmarshal errors:\n  line 3: cannot unmarshal !!map into []config.YamlDescriptor"
        );
        assert_eq!(
            error("- a\n- b\n"),
            "error loading config file: yaml: unmarshal errors:\n  line 1: cannot unmarshal !!seq into map[interface {}]interface {}"
        );
        assert_eq!(
            error("domain: d\ndescriptors:\n  - key: k\n    rate_limit:\n      requests_per_unit: 99999999999\n"),
            "error loading config file: yaml: unmarshal errors:\n  line 5: cannot unmarshal !!int `9999999...` into uint32"
        );
    }

    #[test]
    fn syntax_errors_are_prefixed() {
        assert!(error("'''").starts_with("error loading config file: yaml: line "));
        assert_eq!(parse_config_file("").unwrap(), YamlRoot::default());
    }
}

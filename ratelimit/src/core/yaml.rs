//! A YAML document as a tree that remembers line numbers, with scalars resolved the way
//! YAML 1.1 (and so the reference's Go YAML library) resolves them.
//!
//! Why not serde: the reference reports typed-decoding failures with the line and the YAML tag of
//! the offending node (`line 4: cannot unmarshal !!str `5` into uint32`), accepts YAML 1.1
//! booleans (`yes`, `on`, `y`), and checks every key of the document against a whitelist before
//! decoding. All three need the raw node tree, so we build it ourselves from parser events.

use shared::bounded_yaml::{self, YamlLimitError, YamlLimits};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A scalar after tag resolution.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    /// An integer above `i64::MAX`.
    Uint(u64),
    Float(f64),
    Str(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// `text` is the scalar as written (used in error messages), `value` the resolved scalar.
    Scalar {
        text: String,
        value: Scalar,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// 1-based line of the node's first token.
    pub line: usize,
    pub kind: NodeKind,
}

impl Node {
    /// The YAML 1.1 short tag, as Go's YAML library prints it in decoding errors.
    pub fn short_tag(&self) -> &'static str {
        match &self.kind {
            NodeKind::Seq(_) => "!!seq",
            NodeKind::Map(_) => "!!map",
            NodeKind::Scalar { value, .. } => match value {
                Scalar::Null => "!!null",
                Scalar::Bool(_) => "!!bool",
                Scalar::Int(_) | Scalar::Uint(_) => "!!int",
                Scalar::Float(_) => "!!float",
                Scalar::Str(_) => "!!str",
            },
        }
    }

    /// Renders the node as Go's `%v` would render the generic value (used by key validation).
    pub fn go_display(&self) -> String {
        match &self.kind {
            NodeKind::Scalar { value, .. } => match value {
                Scalar::Null => "<nil>".to_string(),
                Scalar::Bool(b) => b.to_string(),
                Scalar::Int(i) => i.to_string(),
                Scalar::Uint(u) => u.to_string(),
                Scalar::Float(f) => f.to_string(),
                Scalar::Str(s) => s.clone(),
            },
            NodeKind::Seq(items) => {
                let parts: Vec<String> = items.iter().map(Node::go_display).collect();
                format!("[{}]", parts.join(" "))
            }
            NodeKind::Map(entries) => {
                let parts: Vec<String> =
                    entries.iter().map(|(k, v)| format!("{}:{}", k.go_display(), v.go_display())).collect();
                format!("map[{}]", parts.join(" "))
            }
        }
    }
}

/// Why a config file is not YAML we read (the reference's texts: `yaml: line N: …`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum YamlError {
    #[error(transparent)]
    Limits(#[from] YamlLimitError),
    /// Within the alias bound alone, beyond it with the files of the same load before it.
    #[error("{0}, together with the files loaded before it")]
    LimitsTogether(YamlLimitError),
    /// The YAML parser's own text: it comes from outside, and nobody branches on it.
    #[error("yaml: line {line}: {info}")]
    Syntax { line: usize, info: String },
    #[error("yaml: line {line}: unknown anchor referenced")]
    UnknownAnchor { line: usize },
}

/// Parses the first document of `source`. `Ok(None)` for an empty stream. The text is checked
/// against [`YamlLimits::FILES`] first, so no alias bomb or deep nesting is ever expanded.
pub fn parse_first_document(source: &str) -> Result<Option<Node>, YamlError> {
    bounded_yaml::check(source, YamlLimits::FILES)?;
    let mut builder = TreeBuilder::default();
    let mut parser = Parser::new_from_str(source);
    // `multi = true` so a second document does not fail the parse: only the first is read.
    parser
        .load(&mut builder, true)
        .map_err(|e| YamlError::Syntax { line: e.marker().line(), info: e.info().to_string() })?;
    if let Some(err) = builder.error {
        return Err(err);
    }
    Ok(builder.documents.into_iter().next())
}

#[derive(Default)]
struct TreeBuilder {
    /// Open collections: the node being built and, for maps, a pending key.
    stack: Vec<(Node, Option<Node>)>,
    anchors: std::collections::HashMap<usize, Node>,
    /// Anchor ids of the open collections, parallel to `stack`.
    open_anchors: Vec<usize>,
    documents: Vec<Node>,
    error: Option<YamlError>,
}

impl TreeBuilder {
    fn push_value(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => self.documents.push(node),
            Some((parent, pending_key)) => match &mut parent.kind {
                NodeKind::Seq(items) => items.push(node),
                NodeKind::Map(entries) => match pending_key.take() {
                    None => *pending_key = Some(node),
                    Some(key) => entries.push((key, node)),
                },
                NodeKind::Scalar { .. } => unreachable!("scalars are never on the stack"),
            },
        }
    }
}

impl MarkedEventReceiver for TreeBuilder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let line = mark.line().max(1);
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                let value = resolve_scalar(&text, style, tag.as_ref().map(|t| t.suffix.as_str()));
                let node = Node { line, kind: NodeKind::Scalar { text, value } };
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.push_value(node);
            }
            Event::SequenceStart(anchor, _) => {
                self.stack.push((Node { line, kind: NodeKind::Seq(Vec::new()) }, None));
                self.open_anchors.push(anchor);
            }
            Event::MappingStart(anchor, _) => {
                self.stack.push((Node { line, kind: NodeKind::Map(Vec::new()) }, None));
                self.open_anchors.push(anchor);
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let (Some((node, _)), Some(anchor)) = (self.stack.pop(), self.open_anchors.pop()) {
                    if anchor > 0 {
                        self.anchors.insert(anchor, node.clone());
                    }
                    self.push_value(node);
                }
            }
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(node) => self.push_value(node),
                None => {
                    self.error.get_or_insert(YamlError::UnknownAnchor { line });
                }
            },
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentStart | Event::DocumentEnd => {}
        }
    }
}

/// YAML 1.1 resolution of a scalar: quoted scalars are strings; plain ones may be null, a
/// boolean (`yes`/`no`/`on`/`off`/`y`/`n`/`true`/`false` in three casings), an integer (decimal,
/// `0x`, `0b`, leading-zero octal, `_` separators) or a float.
fn resolve_scalar(text: &str, style: TScalarStyle, tag: Option<&str>) -> Scalar {
    if tag == Some("str") || style != TScalarStyle::Plain {
        return Scalar::Str(text.to_string());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Scalar::Null,
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "true" | "True" | "TRUE" => return Scalar::Bool(true),
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "false" | "False" | "FALSE" => {
            return Scalar::Bool(false)
        }
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Scalar::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Scalar::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Scalar::Float(f64::NAN),
        _ => {}
    }
    let first = text.as_bytes()[0];
    if first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.') {
        if let Some(int) = parse_yaml_int(text) {
            return int;
        }
        if is_yaml_float(text) {
            if let Ok(f) = text.parse::<f64>() {
                return Scalar::Float(f);
            }
        }
    }
    Scalar::Str(text.to_string())
}

fn parse_yaml_int(text: &str) -> Option<Scalar> {
    let plain: String = text.chars().filter(|&c| c != '_').collect();
    let (negative, digits) = match plain.as_bytes().first()? {
        b'-' => (true, &plain[1..]),
        b'+' => (false, &plain[1..]),
        _ => (false, plain.as_str()),
    };
    let (radix, body) = if let Some(hex) = digits.strip_prefix("0x") {
        (16, hex)
    } else if let Some(bin) = digits.strip_prefix("0b") {
        (2, bin)
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, &digits[1..])
    } else {
        (10, digits)
    };
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u64::from_str_radix(body, radix).ok()?;
    if negative {
        if magnitude <= i64::MAX as u64 + 1 {
            return Some(Scalar::Int((magnitude as i128).wrapping_neg() as i64));
        }
        return None;
    }
    Some(match i64::try_from(magnitude) {
        Ok(i) => Scalar::Int(i),
        Err(_) => Scalar::Uint(magnitude),
    })
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
fn is_yaml_float(text: &str) -> bool {
    let s = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", frac)) => !frac.is_empty() && frac.bytes().all(|b| b.is_ascii_digit()),
        Some((int, frac)) => {
            !int.is_empty() && int.bytes().all(|b| b.is_ascii_digit()) && frac.bytes().all(|b| b.is_ascii_digit())
        }
        None => !mantissa.is_empty() && mantissa.bytes().all(|b| b.is_ascii_digit()),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let digits = e.strip_prefix(['-', '+']).unwrap_or(e);
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    });
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(src: &str) -> Scalar {
        let doc = parse_first_document(&format!("k: {src}\n")).unwrap().unwrap();
        let NodeKind::Map(entries) = doc.kind else { panic!("not a map") };
        let NodeKind::Scalar { value, .. } = &entries[0].1.kind else { panic!("not a scalar") };
        value.clone()
    }

    #[test]
    fn resolves_yaml_1_1_scalars() {
        assert_eq!(scalar("yes"), Scalar::Bool(true));
        assert_eq!(scalar("Off"), Scalar::Bool(false));
        assert_eq!(scalar("\"true\""), Scalar::Str("true".into()));
        assert_eq!(scalar("-1"), Scalar::Int(-1));
        assert_eq!(scalar("0x10"), Scalar::Int(16));
        assert_eq!(scalar("1_000"), Scalar::Int(1000));
        assert_eq!(scalar("1.5"), Scalar::Float(1.5));
        assert_eq!(scalar("~"), Scalar::Null);
        assert_eq!(scalar(""), Scalar::Null);
        assert_eq!(scalar("18446744073709551615"), Scalar::Uint(u64::MAX));
        assert_eq!(scalar("abc"), Scalar::Str("abc".into()));
        assert_eq!(scalar("10.0.0.1"), Scalar::Str("10.0.0.1".into()));
    }

    #[test]
    fn keeps_lines_and_reads_only_the_first_document() {
        let doc = parse_first_document("---\na: 1\nb:\n  - c: 2\n---\nz: 1\n").unwrap().unwrap();
        let NodeKind::Map(entries) = doc.kind else { panic!() };
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].1.line, 4);
    }

    #[test]
    fn refuses_alias_bombs_and_deep_nesting_before_building() {
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            bomb.push_str(&format!("a{i}: &a{i} [{}]\n", vec![format!("*a{}", i - 1); 10].join(", ")));
        }
        let err = parse_first_document(&bomb).unwrap_err();
        assert_eq!(err.to_string(), "yaml: line 5: aliases expand to more than 100000 nodes (an alias bomb?)");
        let deep = format!("a: {}1{}", "[".repeat(100), "]".repeat(100));
        let err = parse_first_document(&deep).unwrap_err();
        assert_eq!(err.to_string(), "yaml: line 1: nested deeper than the limit of 64 levels");
    }

    #[test]
    fn reports_syntax_errors_with_a_line() {
        let err = parse_first_document("a: [1, 2\n").unwrap_err();
        assert!(err.to_string().starts_with("yaml: line "), "{err}");
        assert_eq!(parse_first_document("").unwrap(), None);
    }
}

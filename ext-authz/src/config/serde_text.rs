//! serde's type errors in the words of a YAML file: "invalid type: sequence, expected a map"
//! speaks of Rust and serde, where the user wrote a list and meant a section. (Its unknown and
//! missing field texts name the key and the choices already, and stay.)

use serde_json::{Map, Value};

/// `text` (a serde error message) with serde's terms replaced by the file's.
pub fn plain(text: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = text.strip_prefix(prefix) {
            if let Some((found, expected)) = rest.rsplit_once(", expected ") {
                return format!("expected {}, found {}", expected_term(expected), found_term(found));
            }
        }
    }
    text.to_string()
}

/// What serde found, as the file shows it (in [`crate::yaml_words`]' words). A config's text
/// is quoted: it is the file's (or the variable's) own value, and shows what was read.
fn found_term(found: &str) -> String {
    if let Some(text) = found.strip_prefix("string ") {
        return format!("the text {text}");
    }
    let quoted = |prefix: &str| found.strip_prefix(prefix).map(|v| v.trim_matches('`'));
    let scalar = quoted("integer ").or_else(|| quoted("floating point ")).or_else(|| quoted("boolean "));
    let value = match found {
        "sequence" => Some(Value::Array(Vec::new())),
        "map" => Some(Value::Object(Map::new())),
        "unit value" | "null" => Some(Value::Null),
        _ => scalar.and_then(|text| serde_json::from_str(text).ok()),
    };
    value.map_or_else(|| found.to_string(), |value| crate::yaml_words::found(&value))
}

/// What serde expected, as a YAML file's reader would call it.
fn expected_term(expected: &str) -> String {
    match expected {
        "usize" | "u64" | "u32" | "u16" | "u8" | "isize" | "i64" | "i32" => "a whole number".into(),
        "f64" | "f32" => "a number".into(),
        "a sequence" => "a list".into(),
        "a borrowed string" | "a string" => "text".into(),
        "a boolean" => "true or false".into(),
        other if other.starts_with("struct ") || other == "a map" => "a section (a map of keys)".into(),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::plain;

    #[test]
    fn serde_terms_become_the_files() {
        for (serde, ours) in [
            ("invalid type: string \"abc\", expected usize", "expected a whole number, found the text \"abc\""),
            ("invalid type: sequence, expected a map", "expected a section (a map of keys), found a list"),
            ("invalid type: map, expected a sequence", "expected a list, found a section (a map of keys)"),
            ("invalid type: integer `3`, expected a string", "expected text, found the number 3"),
            (
                "invalid type: boolean `true`, expected struct RawCache",
                "expected a section (a map of keys), found the boolean true",
            ),
            ("invalid type: unit value, expected a boolean", "expected true or false, found nothing"),
            ("unknown field `x`, expected one of `a`, `b`", "unknown field `x`, expected one of `a`, `b`"),
            ("a text of our own", "a text of our own"),
        ] {
            assert_eq!(plain(serde), ours);
        }
    }
}

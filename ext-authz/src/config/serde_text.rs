//! serde's type errors in the words of a YAML file: "invalid type: sequence, expected a map"
//! speaks of Rust and serde, where the user wrote a list and meant a section. (Its unknown and
//! missing field texts name the key and the choices already, and stay.)

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

/// What serde found, as the file shows it.
fn found_term(found: &str) -> String {
    let quoted = |prefix: &str| found.strip_prefix(prefix).map(|v| v.trim_matches('`').to_string());
    if let Some(number) = quoted("integer ").or_else(|| quoted("floating point ")) {
        return format!("the number {number}");
    }
    if let Some(value) = quoted("boolean ") {
        return value;
    }
    if let Some(text) = found.strip_prefix("string ") {
        return format!("the text {text}");
    }
    match found {
        "sequence" => "a list".into(),
        "map" => "a section (a map of keys)".into(),
        "unit value" | "null" => "nothing".into(),
        other => other.into(),
    }
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
                "expected a section (a map of keys), found true",
            ),
            ("invalid type: unit value, expected a boolean", "expected true or false, found nothing"),
            ("unknown field `x`, expected one of `a`, `b`", "unknown field `x`, expected one of `a`, `b`"),
            ("a text of our own", "a text of our own"),
        ] {
            assert_eq!(plain(serde), ours);
        }
    }
}

//! A value found where another was expected, named as the YAML file shows it: the config's
//! messages (from serde's texts) and the key files' (from the document) use the same words.

use serde_json::Value;

/// `value` in the file's words: "the number 3", "the boolean true", "a list", "a section (a map of keys)",
/// "nothing". A text is named by its kind only ("a string"): it could be a key pasted in the
/// wrong place.
pub fn found(value: &Value) -> String {
    match value {
        Value::Null => "nothing".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a section (a map of keys)".into(),
    }
}

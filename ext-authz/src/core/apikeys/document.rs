//! A key file's document read by hand, not by serde: every wrong shape gets a message that
//! names the key and says what to write (serde's untagged enum could only say that nothing
//! matched, and its type errors speak of sequences and maps).

use serde_json::{Map, Value};

use crate::yaml_words::found;

/// One stored key as written in a key file.
#[derive(Debug)]
pub(super) struct StoredKey {
    /// `sha256:<64 hex digits>`.
    pub hash: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub org_id: Option<String>,
    pub attributes: Map<String, Value>,
}

/// The fields of an entry, as the messages list them.
const FIELDS: &str = "hash, client_id, scopes, org_id and attributes";

/// A key file of the wrong shape: where (`keys[2].scopes`), what is wrong and what to write.
/// `found` is a value as [`found`] names it.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(super) enum ShapeError {
    #[error("a list at the top of the file: put the entries under `keys:` (`ext-authz api-key new` prints a whole key file)")]
    TopIsList,
    #[error("holds {0}, where `keys:` and a list of entries is expected")]
    TopIs(String),
    #[error(
        "holds no keys: write `keys:` and a list of entries (`ext-authz api-key new` prints a whole key file), \
         or `keys: []` for none"
    )]
    NoKeys,
    #[error(
        "{0}: unknown key beside `keys` (a key file's top holds only `keys:`, or the fields of a single entry \
         without it; an entry's {FIELDS} go in the list under `keys:`; notes go in # comments)"
    )]
    BesideKeys(String),
    #[error(
        "keys: is empty: list the entries under it (`  - hash: sha256:…`, as `ext-authz api-key new` prints \
         them), or write `keys: []` for none"
    )]
    KeysEmpty,
    #[error("keys: must be a list of entries (`- hash: …`), found {0}")]
    KeysNotList(String),
    #[error("{at}: must be an entry (a map of {FIELDS}), found {found}")]
    NotEntry { at: String, found: String },
    #[error("{0}: holds a plaintext `key`; store only its hash (see `ext-authz api-key new`)")]
    Plaintext(String),
    #[error("{0}: missing (`sha256:` and 64 hex digits, as `ext-authz api-key new` prints)")]
    NoHash(String),
    #[error("{0}: missing (the client's name, as the backend is told it)")]
    NoClientId(String),
    #[error("{key}: must be a list (`scopes: [a, b]`), found {found}")]
    ScopesNotList { key: String, found: String },
    #[error("{key}: must be a map (`attributes: {{plan: pro}}`), found {found}")]
    AttributesNotMap { key: String, found: String },
    #[error("{0}: unknown field (an entry has {FIELDS})")]
    UnknownField(String),
    #[error("{key}: must be a string, found {found} (quote it)")]
    NotString { key: String, found: String },
}

/// What a key file holds: `keys:` and a list of entries, or one entry (one file per key, as a
/// mounted Secret has). Each key comes with where it is (`keys[2]`, or `` for a file of one).
pub(super) fn stored_keys(document: Value) -> Result<Vec<(String, StoredKey)>, ShapeError> {
    let mut top = match document {
        Value::Object(map) => map,
        Value::Null => Map::new(),
        Value::Array(_) => return Err(ShapeError::TopIsList),
        other => return Err(ShapeError::TopIs(found(&other))),
    };
    let Some(keys) = top.remove("keys") else {
        if top.is_empty() {
            return Err(ShapeError::NoKeys);
        }
        return Ok(vec![(String::new(), stored_key("", top)?)]);
    };
    // Refused, not skipped: a mistyped or misplaced key (an entry's field one level too high)
    // would otherwise be silently without effect.
    if !top.is_empty() {
        let others: Vec<&str> = top.keys().map(String::as_str).collect();
        return Err(ShapeError::BesideKeys(others.join(", ")));
    }
    let entries = match keys {
        Value::Array(entries) => entries,
        Value::Null => return Err(ShapeError::KeysEmpty),
        other => return Err(ShapeError::KeysNotList(found(&other))),
    };
    let mut out = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let at = format!("keys[{i}]");
        match entry {
            Value::Object(map) => out.push((at.clone(), stored_key(&at, map)?)),
            other => return Err(ShapeError::NotEntry { at, found: found(&other) }),
        }
    }
    Ok(out)
}

fn stored_key(at: &str, mut entry: Map<String, Value>) -> Result<StoredKey, ShapeError> {
    let key = |field: &str| if at.is_empty() { field.to_string() } else { format!("{at}.{field}") };
    if entry.contains_key("key") {
        return Err(ShapeError::Plaintext(key("key")));
    }
    let hash = match entry.remove("hash") {
        None => return Err(ShapeError::NoHash(key("hash"))),
        Some(value) => string(&key("hash"), value)?,
    };
    let client_id = match entry.remove("client_id") {
        None => return Err(ShapeError::NoClientId(key("client_id"))),
        Some(value) => string(&key("client_id"), value)?,
    };
    let scopes = match entry.remove("scopes") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(scopes)) => {
            let each = scopes.into_iter().enumerate().map(|(j, s)| string(&format!("{}[{j}]", key("scopes")), s));
            each.collect::<Result<_, _>>()?
        }
        Some(other) => return Err(ShapeError::ScopesNotList { key: key("scopes"), found: found(&other) }),
    };
    let org_id = match entry.remove("org_id") {
        None | Some(Value::Null) => None,
        Some(value) => Some(string(&key("org_id"), value)?),
    };
    let attributes = match entry.remove("attributes") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(attributes)) => attributes,
        Some(other) => return Err(ShapeError::AttributesNotMap { key: key("attributes"), found: found(&other) }),
    };
    if let Some(other) = entry.keys().next() {
        return Err(ShapeError::UnknownField(key(other)));
    }
    Ok(StoredKey { hash, client_id, scopes, org_id, attributes })
}

fn string(key: &str, value: Value) -> Result<String, ShapeError> {
    match value {
        Value::String(text) => Ok(text),
        other => Err(ShapeError::NotString { key: key.to_string(), found: found(&other) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problem(document: Value) -> String {
        stored_keys(document).unwrap_err().to_string()
    }

    #[test]
    fn every_wrong_shape_is_named_with_its_fix() {
        for (document, expected) in [
            (json!(null), "holds no keys: write `keys:`"),
            (json!({}), "holds no keys: write `keys:`"),
            (json!({"keys": null}), "keys: is empty: list the entries under it"),
            (json!({"keys": {}}), "keys: must be a list of entries (`- hash: …`), found a section (a map of keys)"),
            (json!({"keys": "x"}), "keys: must be a list of entries (`- hash: …`), found a string"),
            (json!([{"hash": "h", "client_id": "c"}]), "a list at the top of the file: put the entries under `keys:`"),
            (json!("text"), "holds a string, where `keys:` and a list of entries is expected"),
            (
                json!({"keys": [], "extra": 1}),
                "extra: unknown key beside `keys` (a key file's top holds only `keys:`, or the fields of a single \
                 entry without it",
            ),
            (json!({"keys": [], "b": 1, "a": 2}), "a, b: unknown key beside `keys`"),
            (json!({"keys": ["x"]}), "keys[0]: must be an entry (a map of hash, client_id"),
            (json!({"keys": [{"client_id": "c"}]}), "keys[0].hash: missing (`sha256:` and 64 hex digits"),
            (json!({"keys": [{"hash": "h"}]}), "keys[0].client_id: missing"),
            (json!({"keys": [{"hash": 3, "client_id": "c"}]}), "keys[0].hash: must be a string, found the number 3"),
            (
                json!({"keys": [{"hash": "h", "client_id": 12}]}),
                "keys[0].client_id: must be a string, found the number 12 (quote it)",
            ),
            (
                json!({"keys": [{"hash": "h", "client_id": "c", "scopes": "a"}]}),
                "keys[0].scopes: must be a list (`scopes: [a, b]`), found a string",
            ),
            (
                json!({"keys": [{"hash": "h", "client_id": "c", "scopes": ["a", true]}]}),
                "keys[0].scopes[1]: must be a string, found the boolean true",
            ),
            (
                json!({"keys": [{"hash": "h", "client_id": "c", "attributes": [1]}]}),
                "keys[0].attributes: must be a map",
            ),
            (
                json!({"keys": [{"hash": "h", "client_id": "c", "bogus": 1}]}),
                "keys[0].bogus: unknown field (an entry has hash, client_id",
            ),
            (json!({"hash": "h", "client_id": "c", "scope": ["a"]}), "scope: unknown field"),
            (json!({"hash": "h", "client_id": "c", "key": "ghk_secret"}), "key: holds a plaintext `key`"),
        ] {
            let said = problem(document.clone());
            assert!(said.starts_with(expected), "{document}: {said}");
            assert!(!said.contains("ghk_secret"), "a misplaced key is never echoed: {said}");
        }
    }

    #[test]
    fn both_forms_and_empty_values_read() {
        let many =
            stored_keys(json!({"keys": [{"hash": "h", "client_id": "c", "scopes": null, "org_id": null}]})).unwrap();
        assert_eq!(many[0].0, "keys[0]");
        assert!(many[0].1.scopes.is_empty() && many[0].1.org_id.is_none());
        let one = stored_keys(json!({"hash": "h", "client_id": "c", "scopes": ["a"], "attributes": {"plan": "pro"}}))
            .unwrap();
        assert_eq!((one[0].0.as_str(), one[0].1.scopes.as_slice()), ("", &["a".to_string()][..]));
        assert!(stored_keys(json!({"keys": []})).unwrap().is_empty(), "`keys: []` is a file of no keys");
    }
}

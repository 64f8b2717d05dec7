//! Reading API key files: one YAML file, or every file of a directory (a mounted Kubernetes
//! Secret, whose `..data` entries and other dot-files are skipped).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use shared::bounded_yaml::{AliasBudget, YamlLimits};
use shared::reload;

use crate::core::apikeys::{ApiKeyError, ApiKeyStore};

pub mod printed;

/// Where the API keys are: one file, or a directory of them (`api_keys.file` / `api_keys.dir`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeysLocation {
    pub file: Option<PathBuf>,
    pub dir: Option<PathBuf>,
}

impl ApiKeysLocation {
    /// The file, or the directory.
    pub fn path(&self) -> &Path {
        self.file.as_deref().or(self.dir.as_deref()).unwrap_or(Path::new(""))
    }

    /// Whether the file or directory is there (`validate --no-secrets` lists it when not).
    pub fn exists(&self) -> bool {
        self.path().exists()
    }
}

/// Reads and parses every key file.
pub fn load(location: &ApiKeysLocation) -> Result<ApiKeyStore, ApiKeyError> {
    let mut documents = Vec::new();
    // One alias budget for all the files: a directory of many files each within the bound
    // must not expand to many times it together.
    let mut aliases = AliasBudget::of(YamlLimits::FILES);
    for path in files(location).map_err(|problem| ApiKeyError { file: describe(location), problem })? {
        let name = path.display().to_string();
        let problem = |e: &dyn std::fmt::Display| ApiKeyError { file: name.clone(), problem: e.to_string() };
        let text = shared::bounded_yaml::read_text(&path, YamlLimits::FILES).map_err(|e| problem(&e))?;
        // A key file cut short could lose a key's expiry or attributes and still parse.
        shared::file_end::require_end(&text).map_err(|e| problem(&e))?;
        shared::bounded_yaml::check_sharing(&text, YamlLimits::FILES, &mut aliases).map_err(|e| problem(&e))?;
        let value: serde_json::Value = config::Config::builder()
            .add_source(config::File::from_str(&text, config::FileFormat::Yaml))
            .build()
            .and_then(|c| c.try_deserialize())
            .or_else(|e| top_of_another_kind(&e).ok_or_else(|| problem(&e)))?;
        documents.push((name, value));
    }
    ApiKeyStore::from_documents(documents)
}

/// The keys at `location`: none when the config names no key files.
pub fn load_any(location: Option<&ApiKeysLocation>) -> Result<ApiKeyStore, ApiKeyError> {
    location.map_or_else(|| Ok(ApiKeyStore::default()), load)
}

/// The shared reloader's fingerprint of every key file (and of the directory's listing).
pub fn fingerprint(location: Option<&ApiKeysLocation>) -> u64 {
    let Some(location) = location else { return 0 };
    match files(location) {
        Ok(files) => reload::fingerprint(files.iter().map(PathBuf::as_path)),
        Err(problem) => {
            let mut hasher = DefaultHasher::new();
            problem.hash(&mut hasher);
            hasher.finish()
        }
    }
}

/// A document whose top is not a map, as the `config` crate refuses it ("invalid type:
/// sequence, expected a map"): a value of that kind (a string's text kept out), for the store
/// to name the shape and its fix in its own words.
fn top_of_another_kind(error: &config::ConfigError) -> Option<serde_json::Value> {
    use config::ConfigError;
    use serde_json::Value;
    let ConfigError::FileParse { cause, .. } = error else { return None };
    let refused = cause
        .downcast_ref::<Box<ConfigError>>()
        .map(|boxed| &**boxed)
        .or_else(|| cause.downcast_ref::<ConfigError>())?;
    let ConfigError::Type { unexpected, key: None, .. } = refused else { return None };
    // The crate does not export the kind's type; its text starts with the kind.
    let kind = unexpected.to_string();
    let of = |prefix: &str| kind.starts_with(prefix);
    Some(if of("sequence") {
        Value::Array(Vec::new())
    } else if of("string") {
        Value::String(String::new())
    } else if of("boolean") {
        Value::Bool(kind.contains("true"))
    } else if of("unit") {
        Value::Null
    } else if kind.contains("integer") || of("floating") {
        // "64-bit integer `3`": the number between the backticks.
        serde_json::from_str(kind.split('`').nth(1)?).ok()?
    } else {
        return None;
    })
}

fn describe(location: &ApiKeysLocation) -> String {
    location.file.as_ref().or(location.dir.as_ref()).map(|p| p.display().to_string()).unwrap_or_default()
}

fn files(location: &ApiKeysLocation) -> Result<Vec<PathBuf>, String> {
    if let Some(file) = &location.file {
        return Ok(vec![file.clone()]);
    }
    let Some(dir) = &location.dir else { return Ok(Vec::new()) };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        if is_file(&path) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn is_file(path: &Path) -> bool {
    std::fs::metadata(path).map(|m| m.is_file()).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file whose top is not a map is named by its kind and the fix, through the whole
    /// loader (the `config` crate's "invalid type: …, expected a map" never shows).
    #[test]
    fn a_top_of_another_kind_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys.yaml");
        let location = ApiKeysLocation { file: Some(file.clone()), dir: None };
        for (text, said) in [
            (
                "- hash: sha256:00\n  client_id: a\n...\n",
                "a list at the top of the file: put the entries under `keys:`",
            ),
            ("[1]", "a list at the top of the file"),
            ("ghk_pasted-key\n...\n", "holds a string, where `keys:` and a list of entries is expected"),
            ("3\n...\n", "holds the number 3, where"),
            ("true\n...\n", "holds the boolean true, where"),
            ("...\n", "holds no keys: write `keys:`"),
        ] {
            std::fs::write(&file, text).unwrap();
            let error = load(&location).unwrap_err().to_string();
            assert!(error.starts_with(&format!("{}: {said}", file.display())), "{text:?}: {error}");
            assert!(!error.contains("invalid type") && !error.contains("ghk_pasted"), "{error}");
        }
    }
}

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
        // The `config` crate refuses a list at the top in its own words ("invalid type:
        // sequence, expected a map"); the store names the shape and its fix.
        if opens_with_a_list(&text) {
            documents.push((name, serde_json::Value::Array(Vec::new())));
            continue;
        }
        let value: serde_json::Value = config::Config::builder()
            .add_source(config::File::from_str(&text, config::FileFormat::Yaml))
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| problem(&e))?;
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

/// Whether the document's first node is a list (`- …` or `[…]`), as an entry pasted alone is.
fn opens_with_a_list(text: &str) -> bool {
    let first = text
        .lines()
        .map(str::trim_start)
        .find(|line| !(line.is_empty() || line.starts_with('#') || line.starts_with('%') || line.starts_with("---")));
    first.is_some_and(|line| line == "-" || line.starts_with("- ") || line.starts_with('['))
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

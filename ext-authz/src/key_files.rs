//! Reading API key files: one YAML file, or every file of a directory (a mounted Kubernetes
//! Secret, whose `..data` entries and other dot-files are skipped).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::config::ApiKeysLocation;
use crate::core::apikeys::{ApiKeyError, ApiKeyStore};

/// Reads and parses every key file.
pub fn load(location: &ApiKeysLocation) -> Result<ApiKeyStore, ApiKeyError> {
    let mut documents = Vec::new();
    for path in files(location).map_err(|problem| ApiKeyError { file: describe(location), problem })? {
        let name = path.display().to_string();
        let text =
            std::fs::read_to_string(&path).map_err(|e| ApiKeyError { file: name.clone(), problem: e.to_string() })?;
        let value: serde_json::Value = config::Config::builder()
            .add_source(config::File::from_str(&text, config::FileFormat::Yaml))
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| ApiKeyError { file: name.clone(), problem: e.to_string() })?;
        documents.push((name, value));
    }
    ApiKeyStore::from_documents(documents)
}

/// A value that changes when any key file changes.
pub fn stamp(location: &ApiKeysLocation) -> Vec<(PathBuf, Option<SystemTime>, u64)> {
    files(location)
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            let meta = std::fs::metadata(&p).ok();
            let modified = meta.as_ref().and_then(|m| m.modified().ok());
            let len = meta.map_or(0, |m| m.len());
            (std::fs::canonicalize(&p).unwrap_or(p), modified, len)
        })
        .collect()
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

//! Reading config files laid out the way the reference's runtime loader lays them out, and
//! noticing when they change.
//!
//! Change detection is the shared reloader's (`shared::reload`): a fingerprint of the tree (the
//! resolved root, and each file's resolved path, size and modification time), polled.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use shared::bounded_yaml::{self, ReadYamlError, YamlLimits};

use crate::core::config::ConfigSource;

#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    #[error("cannot read config directory {path}: {source}")]
    Directory { path: PathBuf, source: std::io::Error },
    #[error("cannot read config file {path}: {source}")]
    File { path: PathBuf, source: ReadYamlError },
}

/// Where the config files are (the reference's `RUNTIME_*` settings).
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeSettings {
    pub root: PathBuf,
    pub subdirectory: String,
    pub app_directory: String,
    pub watch_root: bool,
    pub ignore_dotfiles: bool,
    pub poll_interval: std::time::Duration,
}

/// The config file tree.
#[derive(Debug, Clone)]
pub struct ConfigTree {
    settings: RuntimeSettings,
}

struct Found {
    key: String,
    path: PathBuf,
}

impl ConfigTree {
    pub fn new(settings: RuntimeSettings) -> ConfigTree {
        ConfigTree { settings }
    }

    /// The directory that is walked.
    pub fn base(&self) -> PathBuf {
        let mut base = self.settings.root.join(&self.settings.subdirectory);
        if !self.settings.watch_root {
            base = base.join(&self.settings.app_directory);
        }
        base
    }

    /// Every rate limit config file, sorted by key so loads are deterministic.
    pub fn read(&self) -> Result<Vec<ConfigSource>, LoaderError> {
        self.files()?
            .into_iter()
            .map(|found| {
                bounded_yaml::read_text(&found.path, YamlLimits::FILES)
                    .map(|content| ConfigSource { name: found.key, content })
                    .map_err(|source| LoaderError::File { path: found.path, source })
            })
            .collect()
    }

    /// A value that changes whenever a load could give a different result.
    pub fn fingerprint(&self) -> u64 {
        let mut hasher = DefaultHasher::new();
        std::fs::canonicalize(&self.settings.root).ok().hash(&mut hasher);
        match self.files() {
            Ok(files) => {
                for found in files {
                    found.key.hash(&mut hasher);
                    shared::reload::hash_file(&found.path, &mut hasher);
                }
            }
            Err(e) => e.to_string().hash(&mut hasher),
        }
        hasher.finish()
    }

    fn files(&self) -> Result<Vec<Found>, LoaderError> {
        let base = self.base();
        let mut found = Vec::new();
        self.walk(&base, &base, &mut found)?;
        if self.settings.watch_root {
            let prefix = format!("{}.", self.settings.app_directory);
            found.retain(|f| f.key.starts_with(&prefix));
        }
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }

    fn walk(&self, base: &Path, dir: &Path, found: &mut Vec<Found>) -> Result<(), LoaderError> {
        let entries =
            std::fs::read_dir(dir).map_err(|source| LoaderError::Directory { path: dir.to_path_buf(), source })?;
        for entry in entries {
            let entry = entry.map_err(|source| LoaderError::Directory { path: dir.to_path_buf(), source })?;
            let path = entry.path();
            if self.settings.ignore_dotfiles && entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            // Follow symlinks, as ConfigMap mounts are made of them.
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                self.walk(base, &path, found)?;
            } else if meta.is_file() {
                let relative = path.strip_prefix(base).unwrap_or(&path);
                let key = relative.to_string_lossy().replace(std::path::MAIN_SEPARATOR, ".");
                found.push(Found { key, path });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn settings(root: &Path, watch_root: bool, ignore_dotfiles: bool) -> RuntimeSettings {
        RuntimeSettings {
            root: root.to_path_buf(),
            subdirectory: "ratelimit".into(),
            app_directory: "config".into(),
            watch_root,
            ignore_dotfiles,
            poll_interval: Duration::from_secs(1),
        }
    }

    fn write(path: &Path, content: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    #[test]
    fn keys_follow_the_reference_layout() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("ratelimit/config/basic.yaml"), "domain: a\n");
        write(&dir.path().join("ratelimit/config/nested/more.yaml"), "domain: b\n");
        write(&dir.path().join("ratelimit/config/.hidden.yaml"), "domain: c\n");
        write(&dir.path().join("ratelimit/other/x.yaml"), "domain: d\n");

        let watched: Vec<String> =
            ConfigTree::new(settings(dir.path(), true, false)).read().unwrap().into_iter().map(|s| s.name).collect();
        assert_eq!(watched, vec!["config..hidden.yaml", "config.basic.yaml", "config.nested.more.yaml"]);

        let direct: Vec<String> =
            ConfigTree::new(settings(dir.path(), false, true)).read().unwrap().into_iter().map(|s| s.name).collect();
        assert_eq!(direct, vec!["basic.yaml", "nested.more.yaml"]);
    }

    #[test]
    fn fingerprint_changes_with_content_and_root_swaps() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("v1/ratelimit/config/a.yaml"), "domain: a\n");
        write(&dir.path().join("v2/ratelimit/config/a.yaml"), "domain: b\n");
        let current = dir.path().join("current");
        std::os::unix::fs::symlink(dir.path().join("v1"), &current).unwrap();
        let tree = ConfigTree::new(settings(&current, true, false));
        let first = tree.fingerprint();
        assert_eq!(first, tree.fingerprint());
        std::fs::remove_file(&current).unwrap();
        std::os::unix::fs::symlink(dir.path().join("v2"), &current).unwrap();
        assert_ne!(first, tree.fingerprint());
    }
}

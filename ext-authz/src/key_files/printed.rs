//! What `ext-authz api-key new` prints: exactly what a key file or the Kubernetes Secret takes,
//! so that its output can be saved as it is (the tests feed every format back to [`super::load`]).
//! The key itself is not part of it: a key file holds hashes only.

use crate::core::apikeys::{format_hash, KeyHash};

/// The Secret that k8s/base mounts as the `api_keys.dir` directory, one file per client.
pub const SECRET_NAME: &str = "ext-authz-api-keys";
/// k8s/base's namespace.
pub const SECRET_NAMESPACE: &str = "gatehouse";

/// `--format`: a whole key file (the default), or the Secret holding one as its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    File,
    Secret,
}

impl Format {
    pub const SPELLINGS: &'static str = "file or secret";

    pub fn parse(text: &str) -> Option<Format> {
        match text {
            "file" => Some(Format::File),
            "secret" => Some(Format::Secret),
            _ => None,
        }
    }
}

/// A new key's entry: its hash and what it stands for.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub hash: KeyHash,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub org_id: Option<String>,
}

impl NewEntry {
    /// The text to save, in `format`.
    pub fn print(&self, format: Format) -> String {
        match format {
            Format::File => format!(
                "# An API key file (`ext-authz api-key new`; hashes only). Save it as it is (e.g. as {} in the\n\
                 # api_keys.dir directory), or copy its entry (the `- hash:` lines) under `keys:` of an existing\n\
                 # key file, above its last line `...`.\n{}",
                self.file_name(),
                self.key_file()
            ),
            Format::Secret => {
                let file: String = self.key_file().lines().map(|line| format!("    {line}\n")).collect();
                format!(
                    "# The {SECRET_NAME} Secret of k8s/base (mounted as api_keys.dir), holding this key as its file\n\
                     # {name}. Applied as it is, it is the whole Secret: to keep other clients' keys, add this\n\
                     # stringData entry to your Secret's manifest instead.\n\
                     apiVersion: v1\nkind: Secret\nmetadata:\n  name: {SECRET_NAME}\n  namespace: {SECRET_NAMESPACE}\n\
                     type: Opaque\nstringData:\n  {name}: |\n{file}",
                    name = self.file_name(),
                )
            }
        }
    }

    /// A key file of this one key, with the end line the loader requires.
    fn key_file(&self) -> String {
        let scopes: Vec<String> = self.scopes.iter().map(|s| scalar(s)).collect();
        let mut text = format!(
            "keys:\n  - hash: {}\n    client_id: {}\n    scopes: [{}]\n",
            format_hash(&self.hash),
            scalar(&self.client_id),
            scopes.join(", ")
        );
        if let Some(org) = &self.org_id {
            text.push_str(&format!("    org_id: {}\n", scalar(org)));
        }
        text.push_str("...\n");
        text
    }

    /// The entry's file name: the client id as a Secret's data key may spell it (letters,
    /// digits, `-`, `_`, `.`), never a dot-file (the loader skips those).
    pub fn file_name(&self) -> String {
        let name: String = self
            .client_id
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '-' })
            .collect();
        let name = name.trim_start_matches('.');
        format!("{}.yaml", if name.is_empty() { "key" } else { name })
    }
}

/// A string as YAML reads it back unchanged, in block and in flow context: plain when it
/// cannot be read as anything else, otherwise double-quoted (JSON's quoting is YAML's).
fn scalar(text: &str) -> String {
    let plain = text.starts_with(|c: char| c.is_ascii_alphabetic())
        && text.chars().all(|c| c.is_ascii_alphanumeric() || "-_./@:".contains(c))
        && !text.ends_with(':')
        && !["true", "false", "null", "yes", "no", "on", "off", "y", "n"].contains(&text.to_ascii_lowercase().as_str());
    if plain {
        text.to_string()
    } else {
        serde_json::Value::String(text.to_string()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::apikeys::hash_key;
    use crate::key_files::{load, ApiKeysLocation};

    fn entry(client_id: &str, scopes: &[&str], org_id: Option<&str>) -> NewEntry {
        NewEntry {
            hash: hash_key(&format!("ghk_{client_id}")),
            client_id: client_id.into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            org_id: org_id.map(str::to_owned),
        }
    }

    /// The Secret's one file, as the kubelet writes it into the mounted directory.
    fn secret_files(printed: &str) -> Vec<(String, String)> {
        let secret: serde_json::Value = config::Config::builder()
            .add_source(config::File::from_str(printed, config::FileFormat::Yaml))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap();
        assert_eq!(secret["kind"], "Secret");
        assert_eq!(secret["metadata"]["name"], SECRET_NAME);
        let data = secret["stringData"].as_object().unwrap();
        data.iter().map(|(name, text)| (name.clone(), text.as_str().unwrap().to_string())).collect()
    }

    /// Every format, saved as it is printed, loads through the real loader with the same entry,
    /// whatever the client id and scopes are spelled like.
    #[test]
    fn every_format_loads_back_as_printed() {
        for new in [
            entry("billing", &["orders:read", "orders:write"], Some("acme")),
            entry("123", &["true", "a b", "#x"], None),
            entry("a: b # c", &[], Some("null")),
            entry(".hidden/../ünï", &["[x]", "{y}"], Some("'o'")),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("printed.yaml");
            std::fs::write(&file, new.print(Format::File)).unwrap();
            let from_file = load(&ApiKeysLocation { file: Some(file), dir: None }).unwrap();

            let mounted = dir.path().join("mounted");
            std::fs::create_dir(&mounted).unwrap();
            let files = secret_files(&new.print(Format::Secret));
            assert_eq!(files.len(), 1);
            assert_eq!(files[0].0, new.file_name());
            std::fs::write(mounted.join(&files[0].0), &files[0].1).unwrap();
            let from_secret = load(&ApiKeysLocation { file: None, dir: Some(mounted) }).unwrap();

            for store in [from_file, from_secret] {
                let found = store.lookup(&format!("ghk_{}", new.client_id)).expect("the key loads");
                assert_eq!(
                    (&found.client_id, &found.scopes, &found.org_id),
                    (&new.client_id, &new.scopes, &new.org_id),
                    "{}",
                    new.print(Format::File)
                );
            }
        }
    }

    #[test]
    fn file_names_are_secret_keys_and_never_dot_files() {
        assert_eq!(entry("billing", &[], None).file_name(), "billing.yaml");
        assert_eq!(entry(".hidden/../ünï", &[], None).file_name(), "hidden-..--n-.yaml");
        assert_eq!(entry("...", &[], None).file_name(), "key.yaml");
    }

    /// The Secret is the one k8s/base mounts.
    #[test]
    fn the_secret_is_the_one_the_base_mounts() {
        let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../k8s/base");
        let deployment = std::fs::read_to_string(base.join("ext-authz.yaml")).unwrap();
        assert!(deployment.contains(&format!("secretName: {SECRET_NAME}")), "k8s/base/ext-authz.yaml");
        let kustomization = std::fs::read_to_string(base.join("kustomization.yaml")).unwrap();
        assert!(kustomization.contains(&format!("\nnamespace: {SECRET_NAMESPACE}\n")), "k8s/base/kustomization.yaml");
    }
}

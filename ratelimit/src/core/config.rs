//! The loaded configuration: one descriptor tree per domain, built from validated files, and the
//! lookup of a request descriptor's limit.
//!
//! Lookup cost depends on the depth of the request descriptor, not on the number of rules: each
//! level is one hash lookup of `key_value`, then the level's wildcards (usually none), then one
//! hash lookup of `key`.

use shared::bounded_yaml::{self, AliasBudget, YamlLimits};
use std::collections::HashMap;

/// The tree's maps. Their keys come from config files only; requests are looked up, never
/// inserted, so they cannot build collisions, and a fast hash is safe here (the counters, whose
/// keys do come from requests, keep std's SipHash).
type ConfigMap<V> = HashMap<String, V, foldhash::fast::RandomState>;
use std::fmt;
use std::sync::Arc;

use super::algorithm::Algorithm;
use super::config_file::{parse_config_file, FileError, MetadataError, YamlDescriptor, YamlRoot};
use super::request::Entry;
use super::stat_key::{composite_key, StatLevel};
use super::unit::Unit;
use super::wildcard::WildcardPattern;
use super::yaml::YamlError;

/// A config load failure, displayed as the reference does: `<config name>: <problem>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{config_name}: {problem}")]
pub struct ConfigError {
    /// The file's runtime key (e.g. `config.basic.yaml`).
    pub config_name: String,
    pub problem: ConfigProblem,
}

/// What is wrong with one file (or xDS resource).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigProblem {
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Rule(#[from] RuleError),
}

/// A rule the reference refuses, with its exact text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("config file cannot have empty domain")]
    EmptyDomain,
    #[error("duplicate domain '{0}' in config file")]
    DuplicateDomain(String),
    #[error("descriptor has empty key")]
    EmptyKey,
    #[error("duplicate descriptor composite key '{0}'")]
    DuplicateKey(String),
    #[error("share_threshold can only be used with wildcard values (containing '*'), but found key '{0}'")]
    ShareThresholdWithoutWildcard(String),
    #[error("error parsing metadata: {0}")]
    Metadata(MetadataError),
    #[error("should not specify rate limit unit when unlimited")]
    UnitWhenUnlimited,
    #[error("invalid rate limit unit '{0}'")]
    InvalidUnit(String),
    #[error("should not have an empty replaces entry")]
    EmptyReplaces,
    #[error("replaces should not contain name of same descriptor")]
    ReplacesItself,
    /// Gatehouse's extension keys (`algorithm`, `burst`): not a reference text.
    #[error(transparent)]
    Algorithm(#[from] super::algorithm::AlgorithmError),
}

impl ConfigError {
    fn new(config_name: &str, problem: impl Into<ConfigProblem>) -> ConfigError {
        ConfigError { config_name: config_name.to_string(), problem: problem.into() }
    }
}

/// A configured limit, with everything the hot path needs precomputed at load time.
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    /// Index of this limit in [`RateLimitConfig::limits`], for per-limit state kept elsewhere.
    pub id: usize,
    pub requests_per_unit: u32,
    /// `None` only for unlimited limits written without a unit.
    pub unit: Option<Unit>,
    pub unlimited: bool,
    /// Shared with every answer that reports it, so answering never copies config strings.
    pub name: Arc<str>,
    pub replaces: Vec<String>,
    pub shadow_mode: bool,
    pub quota_mode: bool,
    /// The default stat key: `<domain>.` + the chain of config composite keys.
    pub stat_key: String,
    /// How each level contributes to the stat key when it depends on the request
    /// (`detailed_metric`, `value_to_metric`); `None` when `stat_key` is always used.
    pub dynamic_stat_levels: Option<Vec<StatLevel>>,
    /// Per request entry: the pattern value to use in the counter key instead of the request's
    /// value (levels matched through a `share_threshold` wildcard).
    pub shared_values: Vec<Option<String>>,
    /// How it counts (an extension; the reference's fixed window by default).
    pub algorithm: Algorithm,
}

#[derive(Debug, Default)]
struct Level {
    /// Children by composite key (`key` or `key_value`), wildcard ones included.
    nodes: ConfigMap<Node>,
    /// Composite keys of wildcard children, in config order, with their compiled patterns.
    wildcards: Vec<(String, WildcardPattern)>,
}

#[derive(Debug)]
struct Node {
    limit: Option<Arc<Limit>>,
    children: Level,
    metadata: Option<Arc<serde_json::Map<String, serde_json::Value>>>,
}

/// The result of a lookup.
#[derive(Debug, Clone, Copy)]
pub struct Matched<'a> {
    pub limit: &'a Arc<Limit>,
    /// The matched node's `metadata`, for dynamic metadata in the response.
    pub metadata: Option<&'a Arc<serde_json::Map<String, serde_json::Value>>>,
}

/// All domains, swapped atomically as a whole on every successful load.
#[derive(Debug, Default)]
pub struct RateLimitConfig {
    domains: ConfigMap<Level>,
    limits: Vec<Arc<Limit>>,
    /// Dump lines for the debug endpoint, in load order.
    dump: Vec<String>,
}

/// A file to load: its runtime key and its content.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    pub name: String,
    pub content: String,
}

/// What `source`'s aliases add, taken from the budget all the files of one load share: each
/// file is also checked alone as it is parsed, but a directory of many files each within the
/// bound must not expand to many times the bound together.
fn aliases_within(source: &ConfigSource, budget: &mut AliasBudget) -> Result<(), ConfigError> {
    let shared = *budget != AliasBudget::of(YamlLimits::FILES);
    bounded_yaml::check_sharing(&source.content, YamlLimits::FILES, budget).map_err(|e| {
        let error = if shared { YamlError::LimitsTogether(e) } else { YamlError::Limits(e) };
        ConfigError::new(&source.name, FileError::Yaml(error))
    })
}

impl RateLimitConfig {
    /// Builds a config from files, stopping at the first error like the reference.
    pub fn load(sources: &[ConfigSource], merge_domains: bool) -> Result<RateLimitConfig, ConfigError> {
        let mut config = RateLimitConfig::default();
        let mut aliases = AliasBudget::of(YamlLimits::FILES);
        for source in sources {
            aliases_within(source, &mut aliases)?;
            let root = parse_config_file(&source.content).map_err(|e| ConfigError::new(&source.name, e))?;
            config.add_root(root, merge_domains).map_err(|e| ConfigError::new(&source.name, e))?;
        }
        Ok(config)
    }

    /// Builds a config from already decoded documents (e.g. from xDS), with the same rules and
    /// messages as files; `name` plays the part of the file name.
    pub fn load_roots(roots: Vec<(String, YamlRoot)>, merge_domains: bool) -> Result<RateLimitConfig, ConfigError> {
        let mut config = RateLimitConfig::default();
        for (name, root) in roots {
            config.add_root(root, merge_domains).map_err(|e| ConfigError::new(&name, e))?;
        }
        Ok(config)
    }

    /// Checks files one by one and returns every file's first error (for `ratelimit validate`).
    pub fn validate_all(sources: &[ConfigSource], merge_domains: bool) -> Vec<ConfigError> {
        let mut config = RateLimitConfig::default();
        let mut errors = Vec::new();
        let mut aliases = AliasBudget::of(YamlLimits::FILES);
        for source in sources {
            if let Err(error) = aliases_within(source, &mut aliases) {
                errors.push(error);
                continue;
            }
            let result = parse_config_file(&source.content)
                .map_err(ConfigProblem::from)
                .and_then(|root| config.add_root(root, merge_domains).map_err(ConfigProblem::from));
            if let Err(problem) = result {
                errors.push(ConfigError { config_name: source.name.clone(), problem });
            }
        }
        errors
    }

    pub fn domain_count(&self) -> usize {
        self.domains.len()
    }

    pub fn has_domain(&self, domain: &str) -> bool {
        self.domains.contains_key(domain)
    }

    /// Every configured limit, indexed by [`Limit::id`].
    pub fn limits(&self) -> &[Arc<Limit>] {
        &self.limits
    }

    /// One line per limit: `<stat key>: unit=<UNIT> requests_per_unit=<n>, shadow_mode: <b>, quota_mode: <b>`.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for line in &self.dump {
            out.push_str(line);
            out.push('\n');
        }
        out
    }

    /// Finds the limit for a request descriptor's entries in `domain`, following the reference:
    /// per level exact `key_value`, else the first matching wildcard in config order, else the
    /// key-only node; no backtracking; a limit counts only if reached by the last entry.
    /// `scratch` is a buffer reused across calls to avoid allocating per level.
    pub fn find<'a>(&'a self, domain: &str, entries: &[Entry], scratch: &mut String) -> Option<Matched<'a>> {
        let mut level = self.domains.get(domain)?;
        let mut found = None;
        for (i, entry) in entries.iter().enumerate() {
            scratch.clear();
            scratch.push_str(&entry.key);
            scratch.push('_');
            scratch.push_str(&entry.value);
            let node = level
                .nodes
                .get(scratch.as_str())
                .or_else(|| {
                    let composite = scratch.as_str();
                    level.wildcards.iter().find(|(_, p)| p.matches(composite)).and_then(|(k, _)| level.nodes.get(k))
                })
                .or_else(|| level.nodes.get(entry.key.as_str()))?;
            if i + 1 == entries.len() {
                if let Some(limit) = &node.limit {
                    found = Some(Matched { limit, metadata: node.metadata.as_ref() });
                }
            }
            if node.children.nodes.is_empty() {
                break;
            }
            level = &node.children;
        }
        found
    }

    fn add_root(&mut self, root: YamlRoot, merge_domains: bool) -> Result<(), RuleError> {
        if root.domain.is_empty() {
            return Err(RuleError::EmptyDomain);
        }
        let domain = root.domain;
        if self.domains.contains_key(&domain) && !merge_domains {
            return Err(RuleError::DuplicateDomain(domain));
        }
        let mut level = self.domains.remove(&domain).unwrap_or_default();
        let mut chain = Vec::new();
        let result = self.add_descriptors(&domain, &mut level, &root.descriptors, &mut chain);
        self.domains.insert(domain, level);
        result
    }

    fn add_descriptors<'y>(
        &mut self,
        domain: &str,
        level: &mut Level,
        descriptors: &'y [YamlDescriptor],
        chain: &mut Vec<&'y YamlDescriptor>,
    ) -> Result<(), RuleError> {
        for descriptor in descriptors {
            if descriptor.key.is_empty() {
                return Err(RuleError::EmptyKey);
            }
            let composite = composite_key(&descriptor.key, &descriptor.value);
            if level.nodes.contains_key(&composite) {
                let mut path: Vec<String> = chain.iter().map(|d| composite_key(&d.key, &d.value)).collect();
                path.push(composite);
                return Err(RuleError::DuplicateKey(format!("{domain}.{}", path.join("."))));
            }
            let pattern = WildcardPattern::compile(&composite);
            if descriptor.share_threshold && pattern.is_none() {
                return Err(RuleError::ShareThresholdWithoutWildcard(composite));
            }
            if let Some(error) = &descriptor.metadata_error {
                return Err(RuleError::Metadata(error.clone()));
            }
            chain.push(descriptor);
            let limit = match &descriptor.rate_limit {
                Some(_) => Some(self.build_limit(domain, chain)?),
                None => None,
            };
            let mut children = Level::default();
            self.add_descriptors(domain, &mut children, &descriptor.descriptors, chain)?;
            chain.pop();
            let node = Node { limit, children, metadata: descriptor.metadata.clone().map(Arc::new) };
            if let Some(pattern) = pattern {
                level.wildcards.push((composite.clone(), pattern));
            }
            level.nodes.insert(composite, node);
        }
        Ok(())
    }

    /// Validates the rate limit of the last descriptor of `chain` and precomputes its keys.
    fn build_limit(&mut self, domain: &str, chain: &[&YamlDescriptor]) -> Result<Arc<Limit>, RuleError> {
        let leaf = chain[chain.len() - 1];
        let Some(yaml) = &leaf.rate_limit else { unreachable!("caller checked") };
        let unit = Unit::from_config_name(&yaml.unit);
        if yaml.unlimited {
            if unit.is_some() {
                return Err(RuleError::UnitWhenUnlimited);
            }
        } else if unit.is_none() {
            return Err(RuleError::InvalidUnit(yaml.unit.clone()));
        }
        if yaml.unlimited && (yaml.burst.is_some() || !matches!(yaml.algorithm.as_str(), "" | "fixed_window")) {
            return Err(super::algorithm::AlgorithmError::Unlimited.into());
        }
        let algorithm = Algorithm::from_config(&yaml.algorithm, yaml.burst, yaml.requests_per_unit)
            .map_err(RuleError::Algorithm)?;
        for replaced in &yaml.replaces {
            if replaced.is_empty() {
                return Err(RuleError::EmptyReplaces);
            }
            if *replaced == yaml.name {
                return Err(RuleError::ReplacesItself);
            }
        }
        let stat_key = std::iter::once(domain.to_string())
            .chain(chain.iter().map(|d| composite_key(&d.key, &d.value)))
            .collect::<Vec<_>>()
            .join(".");
        let limit = Arc::new(Limit {
            id: self.limits.len(),
            requests_per_unit: yaml.requests_per_unit,
            unit,
            unlimited: yaml.unlimited,
            name: Arc::from(yaml.name.as_str()),
            replaces: yaml.replaces.clone(),
            shadow_mode: leaf.shadow_mode,
            quota_mode: leaf.quota_mode,
            stat_key,
            dynamic_stat_levels: StatLevel::for_chain(chain),
            shared_values: chain.iter().map(|d| d.share_threshold.then(|| d.value.clone())).collect(),
            algorithm,
        });
        self.dump.push(format!(
            "{}: unit={} requests_per_unit={}, shadow_mode: {}, quota_mode: {}",
            limit.stat_key,
            limit.unit.map_or("UNKNOWN", Unit::name),
            limit.requests_per_unit,
            limit.shadow_mode,
            limit.quota_mode
        ));
        self.limits.push(limit.clone());
        Ok(limit)
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.unit {
            Some(unit) if !self.unlimited => write!(f, "{} per {}", self.requests_per_unit, unit),
            _ => f.write_str("unlimited"),
        }
    }
}

#[cfg(test)]
mod tests;

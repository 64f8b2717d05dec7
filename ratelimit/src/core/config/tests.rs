use super::*;

fn load(files: &[(&str, &str)]) -> Result<RateLimitConfig, ConfigError> {
    let sources: Vec<ConfigSource> =
        files.iter().map(|(n, c)| ConfigSource { name: n.to_string(), content: c.to_string() }).collect();
    RateLimitConfig::load(&sources, false)
}

fn one(content: &str) -> RateLimitConfig {
    load(&[("config.test.yaml", content)]).unwrap()
}

fn error(content: &str) -> String {
    load(&[("config.test.yaml", content)]).unwrap_err().to_string()
}

fn find(config: &RateLimitConfig, domain: &str, entries: &[(&str, &str)]) -> Option<String> {
    let entries: Vec<Entry> = entries.iter().map(|(k, v)| Entry::new(*k, *v)).collect();
    config.find(domain, &entries, &mut String::new()).map(|m| m.limit.stat_key.clone())
}

const TREE: &str = "
domain: d
descriptors:
  - key: key1
    value: value1
    descriptors:
      - key: subkey1
        rate_limit: {unit: second, requests_per_unit: 5}
  - key: key1
    rate_limit: {unit: minute, requests_per_unit: 10}
    descriptors:
      - key: deep
        rate_limit: {unit: hour, requests_per_unit: 1}
  - key: wild
    value: foo*
    rate_limit: {unit: minute, requests_per_unit: 3}
  - key: wild
    value: f*
    rate_limit: {unit: minute, requests_per_unit: 4}
  - key: wild
    value: foo1
    rate_limit: {unit: minute, requests_per_unit: 2}
  - key: white
  - key: mid
    rate_limit: {unit: day, requests_per_unit: 7}
    descriptors:
      - key: leaf
        rate_limit: {unit: day, requests_per_unit: 8}
";

#[test]
fn most_specific_match_wins_per_level() {
    let config = one(TREE);
    assert_eq!(find(&config, "d", &[("key1", "value1"), ("subkey1", "x")]).as_deref(), Some("d.key1_value1.subkey1"));
    assert_eq!(find(&config, "d", &[("key1", "other")]).as_deref(), Some("d.key1"));
    assert_eq!(find(&config, "d", &[("wild", "foo1")]).as_deref(), Some("d.wild_foo1"));
    assert_eq!(find(&config, "d", &[("wild", "foo2")]).as_deref(), Some("d.wild_foo*"), "first wildcard in order");
    assert_eq!(find(&config, "d", &[("wild", "fa")]).as_deref(), Some("d.wild_f*"));
}

#[test]
fn no_backtracking_and_depth_rules() {
    let config = one(TREE);
    // key1_value1 matched exactly; its subtree has no `deep`, and the key-only sibling is not retried.
    assert_eq!(find(&config, "d", &[("key1", "value1"), ("deep", "x")]), None);
    // A request ending at an intermediate node with a limit uses it.
    assert_eq!(find(&config, "d", &[("mid", "x")]).as_deref(), Some("d.mid"));
    assert_eq!(find(&config, "d", &[("mid", "x"), ("leaf", "y")]).as_deref(), Some("d.mid.leaf"));
    // Longer than the configured chain: no limit.
    assert_eq!(find(&config, "d", &[("mid", "x"), ("leaf", "y"), ("more", "z")]), None);
    assert_eq!(find(&config, "d", &[("wild", "foo1"), ("more", "z")]), None);
    // Whitelisted (no limit, no children), unknown keys, unknown domains, empty descriptors.
    assert_eq!(find(&config, "d", &[("white", "x")]), None);
    assert_eq!(find(&config, "d", &[("nope", "x")]), None);
    assert_eq!(find(&config, "other", &[("key1", "x")]), None);
    assert_eq!(find(&config, "d", &[]), None);
}

#[test]
fn validation_errors_are_the_references() {
    assert_eq!(error("descriptors: []"), "config.test.yaml: config file cannot have empty domain");
    assert_eq!(error("domain: d\ndescriptors:\n  - value: v\n"), "config.test.yaml: descriptor has empty key");
    assert_eq!(
        error(
            "domain: test-domain\ndescriptors:\n  - key: key1\n    value: value1\n  - key: key1\n    value: value1\n"
        ),
        "config.test.yaml: duplicate descriptor composite key 'test-domain.key1_value1'"
    );
    assert_eq!(
        error("domain: dn\ndescriptors:\n  - key: a_b\n    descriptors:\n      - key: c\n      - key: c\n"),
        "config.test.yaml: duplicate descriptor composite key 'dn.a_b.c'"
    );
    // Composite keys collide across spellings.
    assert_eq!(
        error("domain: d\ndescriptors:\n  - key: a_b\n  - key: a\n    value: b\n"),
        "config.test.yaml: duplicate descriptor composite key 'd.a_b'"
    );
    assert_eq!(
        error("domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: foo, requests_per_unit: 1}\n"),
        "config.test.yaml: invalid rate limit unit 'foo'"
    );
    assert_eq!(
        error("domain: d\ndescriptors:\n  - key: k\n    rate_limit: {requests_per_unit: 1}\n"),
        "config.test.yaml: invalid rate limit unit ''"
    );
    assert_eq!(
        error("domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: unknown}\n"),
        "config.test.yaml: invalid rate limit unit 'unknown'"
    );
    assert_eq!(
        error("domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unlimited: true, unit: second}\n"),
        "config.test.yaml: should not specify rate limit unit when unlimited"
    );
    assert_eq!(
        error("domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: second, replaces: [{name: ''}]}\n"),
        "config.test.yaml: should not have an empty replaces entry"
    );
    assert_eq!(
        error("domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: second, name: a, replaces: [{name: a}]}\n"),
        "config.test.yaml: replaces should not contain name of same descriptor"
    );
    assert_eq!(
        error("domain: d\ndescriptors:\n  - key: k\n    value: v\n    share_threshold: true\n"),
        "config.test.yaml: share_threshold can only be used with wildcard values (containing '*'), but found key 'k_v'"
    );
    // Unlimited with requests_per_unit and no unit is fine.
    one("domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unlimited: true, requests_per_unit: 5}\n");
}

#[test]
fn duplicate_domains_fail_unless_merged() {
    let a = ConfigSource { name: "config.a.yaml".into(), content: "domain: d\ndescriptors:\n  - key: a\n".into() };
    let b = ConfigSource {
        name: "config.b.yaml".into(),
        content: "domain: d\ndescriptors:\n  - key: b\n    rate_limit: {unit: second, requests_per_unit: 1}\n".into(),
    };
    let c = ConfigSource { name: "config.c.yaml".into(), content: "domain: d\ndescriptors:\n  - key: a\n".into() };
    let err = RateLimitConfig::load(&[a.clone(), b.clone()], false).unwrap_err();
    assert_eq!(err.to_string(), "config.b.yaml: duplicate domain 'd' in config file");
    let merged = RateLimitConfig::load(&[a.clone(), b], true).unwrap();
    assert_eq!(find(&merged, "d", &[("b", "x")]).as_deref(), Some("d.b"));
    let err = RateLimitConfig::load(&[a, c], true).unwrap_err();
    assert_eq!(err.to_string(), "config.c.yaml: duplicate descriptor composite key 'd.a'");
}

#[test]
fn dump_lists_every_limit() {
    let config = one("domain: d\ndescriptors:\n  - key: k\n    shadow_mode: true\n    rate_limit: {unit: second, requests_per_unit: 3}\n");
    assert_eq!(config.dump(), "d.k: unit=SECOND requests_per_unit=3, shadow_mode: true, quota_mode: false\n");
}

#[test]
fn validate_all_reports_every_file() {
    let sources = vec![
        ConfigSource { name: "config.a.yaml".into(), content: "domain: ''\n".into() },
        ConfigSource { name: "config.b.yaml".into(), content: "domain: d\nfoo: 1\n".into() },
        ConfigSource { name: "config.c.yaml".into(), content: "domain: ok\n".into() },
    ];
    let errors = RateLimitConfig::validate_all(&sources, false);
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[1].to_string(), "config.b.yaml: config error, unknown key 'foo'");
}

#[test]
fn algorithms_are_an_extension_with_clear_errors() {
    let limit = |extra: &str| {
        format!("domain: d\ndescriptors:\n  - key: k\n    rate_limit: {{unit: second, requests_per_unit: 5{extra}}}\n")
    };
    let config = one(&limit(", algorithm: token_bucket, burst: 2"));
    assert_eq!(config.limits()[0].algorithm, Algorithm::TokenBucket { burst: 2 });
    assert_eq!(one(&limit(", algorithm: sliding_window")).limits()[0].algorithm, Algorithm::SlidingWindow);
    assert_eq!(one(&limit("")).limits()[0].algorithm, Algorithm::FixedWindow);
    assert_eq!(
        error(&limit(", algorithm: leaky")),
        "config.test.yaml: algorithm \"leaky\" is not fixed_window, sliding_window or token_bucket"
    );
    assert_eq!(error(&limit(", burst: 3")), "config.test.yaml: burst is only for algorithm: token_bucket");
    let unlimited = "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unlimited: true, algorithm: token_bucket}\n";
    assert_eq!(error(unlimited), "config.test.yaml: an unlimited limit has no algorithm");
    // The reference refuses the extension keys: a file using them is not one it can load.
    let reference = crate::core::config_file::parse_as_reference(&limit(", algorithm: sliding_window"));
    assert_eq!(reference.unwrap_err().to_string(), "config error, unknown key 'algorithm'");
}

/// Many files each within the alias bounds must not expand to many times the bound together
/// (a ConfigMap of a hundred small files): the files of one load share one budget.
#[test]
fn the_files_of_one_load_share_the_alias_budget() {
    // 3 MiB of aliased text in each file.
    let file = |domain: &str| {
        format!(
            "domain: {domain}\ndescriptors:\n  - {{key: k0, value: &s {}}}\n  - {{key: k1, value: *s}}\n  \
             - {{key: k2, value: *s}}\n  - {{key: k3, value: *s}}\n",
            "x".repeat(1 << 20)
        )
    };
    let (a, b) = (file("a"), file("b"));
    assert!(load(&[("a.yaml", &a)]).is_ok(), "one file alone is within the bound");
    let err = load(&[("a.yaml", &a), ("b.yaml", &b)]).unwrap_err().to_string();
    let expected = "b.yaml: error loading config file: yaml: line 5: aliases expand to more than 4194304 bytes";
    assert!(err.starts_with(expected), "{err}");
    assert!(err.ends_with("together with the files loaded before it"), "{err}");
    let sources =
        [ConfigSource { name: "a.yaml".into(), content: a }, ConfigSource { name: "b.yaml".into(), content: b }];
    let every = RateLimitConfig::validate_all(&sources, false);
    assert_eq!(every.len(), 1, "{every:?}");
    assert_eq!(every[0].config_name, "b.yaml");
}
